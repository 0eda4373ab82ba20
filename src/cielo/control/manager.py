"""The resource manager's operations, one method each, as the ARM routes call them.

The services below it (`ResourceService`, `IdentityService`, `AuthorizationService`, `AccessService`) each keep one
kind of record; an operation that spans them lives here, in one method, so that no caller can do half of it:
deleting anything that role assignments may hang off reloads the RBAC index in the same method (a route that
forgot it would leave RBAC granting on a deleted scope), deleting a resource group deletes its managed identities'
principals first, and attaching a user-assigned identity checks its `assign/action`.
"""

from __future__ import annotations

from typing import Any

from cielo.control import arm_bodies
from cielo.control.access import AccessService, ArmCaller
from cielo.control.authorization import Guard, subscription_of
from cielo.control.identities import UAMI_TYPE, IdentityService
from cielo.control.resources import ACCOUNT_TYPE, DEPLOYMENT_TYPE, ResourceService, ResourceWriter, resource_json
from cielo.core.arm_ids import RG_TYPE, ResourceId
from cielo.errors import (
    InvalidAuthenticationTokenTenant,
    InvalidIdentity,
    ResourceGroupNotFound,
    SubscriptionNotFound,
)
from cielo.identity.directory import DirectoryService
from cielo.store.models import Subscription, Tenant
from cielo.store.resources import Resource

UAMI_ASSIGN = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"


class ResourceManager:
    def __init__(self, resources: ResourceService, identities: IdentityService, access: AccessService,
                 directory: DirectoryService, base_url: str) -> None:
        self._resources = resources
        self._identities = identities
        self._access = access
        self._directory = directory
        self._base_url = base_url

    # ----------------------------------------------------------------- subscriptions and tenants
    def subscription(self, subscription_id: str, tenant_id: str) -> Subscription:
        """The subscription, which must exist and belong to the caller's tenant (ARM answers 401 otherwise)."""
        for sub in self._directory.list_subscriptions():
            if sub.id == subscription_id.lower():
                if sub.tenant_id != tenant_id:
                    raise InvalidAuthenticationTokenTenant(
                        f"The access token is from the wrong issuer. It must match the tenant '{sub.tenant_id}' "
                        f"associated with this subscription. Please use the authority (URL) "
                        f"'{self._base_url}/{sub.tenant_id}' to get the token.")
                return sub
        raise SubscriptionNotFound(f"The subscription '{subscription_id}' could not be found.")

    def visible_subscriptions(self, caller: ArmCaller) -> list[Subscription]:
        """Subscriptions in which the caller holds any role assignment (at, above or below the subscription)."""
        subs = self._directory.list_subscriptions(caller.tenant_id)
        if not caller.exists:
            return []
        ids = caller.rbac.lookup_set
        mine = [a for a in self._access.index.list_assignments() if a.principal_id in ids]
        if any(a.scope == "/" for a in mine):
            return subs
        held = {subscription_of(a.scope) for a in mine}
        return [s for s in subs if s.id in {h.lower() for h in held if h}]

    def tenant(self, tenant_id: str) -> Tenant | None:
        return self._directory.find_tenant(tenant_id)

    # ----------------------------------------------------------------- resource groups
    def list_groups(self, subscription_id: str) -> list[Resource]:
        return self._resources.list_resources(subscription_id=subscription_id, type_=RG_TYPE)

    def group(self, subscription_id: str, name: str) -> Resource:
        return self._resources.get_group(subscription_id, name)

    def group_exists(self, subscription_id: str, name: str) -> bool:
        return self._resources.find(ResourceId(subscription_id, name)) is not None

    def put_group(self, subscription_id: str, name: str, body: dict[str, Any], writer: ResourceWriter, *,
                  patch: bool = False) -> tuple[Resource, bool]:
        if patch:
            # A PATCH changes the tags only; the location stays (ARM's resource group PATCH).
            current = self._resources.get_group(subscription_id, name)
            sent = arm_bodies.parse(arm_bodies.ResourceGroupPatch, body)
            body = {"location": current.location, "tags": sent.tags if sent.sent("tags") else current.tags}
        return self._resources.put_group(subscription_id, name, body, writer)

    def delete_group(self, subscription_id: str, name: str) -> None:
        """The group, what it holds, the role assignments at those scopes, and its managed identities' principals
        with their role assignments anywhere; RBAC forgets them before the next request."""
        self._identities.delete_in_group(subscription_id, name)
        if not self._resources.delete_group(subscription_id, name):
            raise ResourceGroupNotFound(f"Resource group '{name}' could not be found.")
        self._access.scopes_deleted()

    def resources_in_group(self, subscription_id: str, name: str) -> tuple[Resource, list[Resource]]:
        """The group and what it holds."""
        group = self._resources.get_group(subscription_id, name)
        found = self._resources.list_resources(subscription_id=subscription_id, resource_group=name)
        return group, [r for r in found if r.type != RG_TYPE]

    # ----------------------------------------------------------------- Cognitive Services accounts
    def list_accounts(self, subscription_id: str, resource_group: str | None) -> list[Resource]:
        if resource_group:
            self._resources.get_group(subscription_id, resource_group)
        return self._resources.list_resources(subscription_id=subscription_id, resource_group=resource_group,
                                              type_=ACCOUNT_TYPE)

    def account(self, rid: ResourceId) -> Resource:
        return self._resources.get_account(rid)

    def put_account(self, rid: ResourceId, body: dict[str, Any], writer: ResourceWriter, guard: Guard | None = None,
                    *, patch: bool = False) -> tuple[Resource, bool]:
        """An account with its `identity` block, as a VM's (docs/managed-identities.md): a system-assigned identity
        gets a principal that lives as long as it. Attaching a user-assigned identity needs its assign action."""
        sent = body.get("identity")
        _check_assign(sent, guard)
        if patch:
            current = resource_json(self._resources.get_account(rid))
            arm_bodies.parse(arm_bodies.AccountBody, body)  # `properties`, merged below, is an object or null
            merged_props = {**current["properties"], **(body.get("properties") or {})}
            body = {**current, **body, "properties": merged_props}
        tenant_id = self._tenant_of(rid.subscription)
        made: list[str] = []

        def identity(existing: Resource | None) -> dict[str, Any] | None:
            block = self._identities.identity_for(rid.id, tenant_id, sent, existing, patch,
                                                  existing.name if existing else rid.name)
            new = (block or {}).get("principalId")
            if new and new != ((existing.identity or {}) if existing else {}).get("principalId"):
                made.append(str(new))
            return block

        try:
            return self._resources.put_account(rid, body, writer, identity=identity)
        except Exception:
            for principal_id in made:  # the account was not written: neither is its new principal
                self._identities.drop_principal(principal_id)
            raise

    def _tenant_of(self, subscription_id: str) -> str:
        for sub in self._directory.list_subscriptions():
            if sub.id == subscription_id.lower():
                return sub.tenant_id
        raise SubscriptionNotFound(f"The subscription '{subscription_id}' could not be found.")

    def delete_account(self, rid: ResourceId) -> bool:
        """False when there was no such account (ARM's 204). Its system-assigned principal goes with it."""
        found = self._resources.find(rid)
        if found is None or not self._resources.delete_account(rid):
            return False
        self._identities.drop_system_identity(found)
        self._access.scopes_deleted()  # the store dropped the role assignments at the account and below
        return True

    def list_keys(self, rid: ResourceId) -> dict[str, str]:
        return self._resources.list_keys(self._resources.get_account(rid))

    def regenerate_key(self, account: Resource, body: dict[str, Any]) -> dict[str, str]:
        return self._resources.regenerate_key(account, body)

    # ----------------------------------------------------------------- deployments
    def list_deployments(self, account_rid: ResourceId) -> list[Resource]:
        account = self._resources.get_account(account_rid)
        return self._resources.list_resources(parent_key=account.key, type_=DEPLOYMENT_TYPE)

    def deployment(self, rid: ResourceId) -> Resource:
        return self._resources.get_deployment(rid)

    def put_deployment(self, rid: ResourceId, body: dict[str, Any], writer: ResourceWriter, *,
                       patch: bool = False) -> tuple[Resource, bool]:
        if patch:
            body = {**resource_json(self._resources.get_deployment(rid)), **body}
        return self._resources.put_deployment(rid, body, writer)

    def delete_deployment(self, rid: ResourceId) -> bool:
        if not self._resources.delete_deployment(rid):
            return False
        self._access.scopes_deleted()  # the store dropped the role assignments at the deployment: so must RBAC
        return True

    # ----------------------------------------------------------------- compute and managed identities
    def list_typed(self, subscription_id: str, resource_group: str, type_: str) -> list[Resource]:
        return self._resources.list_resources(subscription_id=subscription_id, resource_group=resource_group,
                                              type_=type_)

    def typed(self, rid: ResourceId, type_: str) -> Resource:
        return self._identities.get_typed(rid, type_)

    def put_typed(self, rid: ResourceId, type_: str, body: dict[str, Any], caller: ArmCaller, guard: Guard, *,
                  patch: bool = False) -> tuple[Resource, bool]:
        """A user-assigned identity, or a VM, scale set or web app with its `identity` block. Attaching a
        user-assigned identity needs its assign action (ARM checks it too); detaching one (value null) does not."""
        writer = writer_of(caller)
        if type_ == UAMI_TYPE:
            return self._identities.put_uami(rid, body, caller.tenant_id, writer)
        _check_assign(body.get("identity"), guard)
        if patch:
            self._identities.get_typed(rid, type_)
        return self._identities.put_compute(rid, type_, body, caller.tenant_id, writer, patch=patch)

    def delete_typed(self, rid: ResourceId, type_: str) -> bool:
        """The resource, its system-assigned principal (or, for a user-assigned identity, its principal, detached
        everywhere) and their role assignments; RBAC forgets them at once. False when there was none."""
        deleted = (self._identities.delete_uami(rid) if type_ == UAMI_TYPE
                   else self._identities.delete_compute(rid, type_))
        if deleted:
            self._access.scopes_deleted()
        return deleted

    def issue_host_credential(self, rid: ResourceId, type_: str) -> tuple[Resource, str]:
        resource = self._identities.get_typed(rid, type_)
        return resource, self._identities.issue_host_credential(resource)

    def revoke_host_credentials(self, rid: ResourceId, type_: str) -> int:
        return self._identities.revoke_host_credentials(self._identities.get_typed(rid, type_))


def _check_assign(identity: object, guard: Guard | None) -> None:
    """Attaching a user-assigned identity needs its assign action (ARM checks it too); detaching one (value null)
    does not. Without a guard (Cielo's own writes) nothing may be attached."""
    if identity is not None and not isinstance(identity, dict):
        raise InvalidIdentity("identity must be an object.")
    wanted = (identity or {}).get("userAssignedIdentities")
    if isinstance(wanted, dict):
        for uami_id, value in wanted.items():
            if value is None:
                continue
            if guard is None:
                raise InvalidIdentity("A user-assigned identity can only be attached through the resource "
                                      "manager's API.")
            if not guard.allowed(UAMI_ASSIGN, uami_id):
                raise guard.denied(UAMI_ASSIGN, uami_id)


def writer_of(caller: ArmCaller) -> ResourceWriter:
    """Who writes, for a resource's systemData."""
    return ResourceWriter(caller.display, "User" if caller.kind == "User" else "Application")
