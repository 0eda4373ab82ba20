"""Managed identities: user-assigned identities, the `identity` blocks of VMs, scale sets, web apps (function
apps are web apps of `kind` functionapp) and Cognitive Services accounts, and the host credentials that enroll a
host agent to one of them (shapes from Azure/azure-rest-api-specs:
specification/msi/resource-manager/Microsoft.ManagedIdentity/stable/2023-01-31 and the compute `identity`).

Enabling a system-assigned identity creates a service principal of type ManagedIdentity whose life
follows the resource: removing the identity or deleting the resource deletes the principal and its
role assignments. A user-assigned identity is a resource of its own and can be attached to several
resources.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from cielo.control import arm_bodies
from cielo.control.access import AccessService
from cielo.control.resources import ACCOUNT_TYPE, ResourceService, ResourceWriter, resource_json
from cielo.core.arm_ids import InvalidResourceId, ResourceId, parse
from cielo.core.clock import Clock
from cielo.core.ids import new_guid, sha256_hex
from cielo.errors import (
    FailedIdentityOperation,
    InvalidIdentity,
    InvalidRequestContent,
    InvalidTag,
    InvalidUserAssignedIdentity,
    NotFound,
    ResourceTypeMismatch,
)
from cielo.store.directory import DirectoryRepo
from cielo.store.models import ServicePrincipal
from cielo.store.resources import HostCredential, HostCredentialRepo, Resource

UAMI_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
VM_TYPE = "Microsoft.Compute/virtualMachines"
VMSS_TYPE = "Microsoft.Compute/virtualMachineScaleSets"
SITE_TYPE = "Microsoft.Web/sites"
COMPUTE_TYPES = (VM_TYPE, VMSS_TYPE, SITE_TYPE)
# What may carry an `identity` block: the compute types and Cognitive Services accounts.
IDENTITY_HOLDERS = (*COMPUTE_TYPES, ACCOUNT_TYPE)


def mirid(resource_id: str) -> str:
    """The form tokens carry in `xms_mirid`: `resourcegroups` in lower case, as decoded MI tokens show."""
    rid = parse(resource_id)
    out = f"/subscriptions/{rid.subscription}/resourcegroups/{rid.resource_group}/providers/{rid.namespace}"
    for type_, name in zip(rid.types, rid.names, strict=True):
        out += f"/{type_}/{name}"
    return out


@dataclass(frozen=True)
class SelectedIdentity:
    principal_id: str
    client_id: str
    mirid: str
    host_id: str
    user_assigned: bool


class IdentityError(Exception):
    """A managed-identity token request that cannot be served; `status` and `error` as IMDS answers."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


def _kind(value: object, type_: str) -> str | None:
    """A site's `kind` is kept as sent (`app`, `functionapp`, `functionapp,linux`, …): az tells web apps from function
    apps by it. Only a string is a kind."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRequestContent(f"The {type_} property 'kind' must be a string.")
    return value


def _new_site(name: str) -> dict[str, Any]:
    """What a site (web app or function app) holds: a registration, so its state and host name are fixed, and no
    App Service plan holds it, said as a null `serverFarmId`, which az reads as "no plan" (its `functionapp show`
    looks for a Flex Consumption plan there and fails on a missing key)."""
    return {"provisioningState": "Succeeded", "state": "Running", "defaultHostName": f"{name.lower()}.local",
            "serverFarmId": None}


def _check_site_properties(sent: object, held: dict[str, Any]) -> None:
    """A site's `properties` may only repeat what Cielo holds (az's `identity assign` PUTs back the site it read)
    or be null: a plan, a site configuration or a state Cielo would not honour is refused, naming the field."""
    if sent is None:
        return
    if not isinstance(sent, dict):
        raise InvalidRequestContent("The Microsoft.Web/sites property 'properties' must be an object.")
    for key, value in sent.items():
        if value is None or (key in held and held[key] == value):
            continue
        raise InvalidRequestContent(
            f"The Microsoft.Web/sites property 'properties.{key}' is not served by this Cielo: a site here is a "
            "registration that gives code running elsewhere a managed identity (no App Service plan, storage or "
            "site configuration). Send the site without it.")


def _type_text(system: bool, user: bool) -> str:
    if system and user:
        return "SystemAssigned, UserAssigned"
    return "SystemAssigned" if system else "UserAssigned" if user else "None"


class IdentityService:
    def __init__(self, resources: ResourceService, directory: DirectoryRepo, access: AccessService,
                 credentials: HostCredentialRepo, clock: Clock) -> None:
        self._resources = resources
        self._directory = directory
        self._access = access
        self._credentials = credentials
        self._clock = clock

    # ----------------------------------------------------------------- principals
    def _new_principal(self, tenant_id: str, name: str) -> ServicePrincipal:
        sp = ServicePrincipal(new_guid(), tenant_id, new_guid(), name, "ManagedIdentity", self._clock.now())
        self._directory.create_service_principal(sp)
        return sp

    def drop_principal(self, principal_id: str) -> None:
        self._directory.delete_service_principal(principal_id)
        self._access.remove_principal(principal_id)

    # ----------------------------------------------------------------- user-assigned identities
    def put_uami(self, rid: ResourceId, body: dict[str, Any], tenant_id: str,
                 writer: ResourceWriter) -> tuple[Resource, bool]:
        assert rid.resource_group is not None
        group = self._resources.get_group(rid.subscription, rid.resource_group)
        existing = self._resources.get_by_key(rid.key)
        if existing is not None:
            props = existing.properties
        else:
            sp = self._new_principal(tenant_id, rid.name)
            props = {"clientId": sp.app_id, "principalId": sp.object_id, "tenantId": tenant_id}
        location = body.get("location") or (existing.location if existing else group.location)
        tags = body.get("tags", existing.tags if existing else None)
        if tags is not None and not isinstance(tags, dict):
            raise InvalidTag("Tags must be an object of string values.")
        # The Microsoft.ManagedIdentity provider spells its ids with `resourcegroups` (see the examples of
        # azure-rest-api-specs specification/msi/resource-manager/Microsoft.ManagedIdentity/stable/2023-01-31): the
        # same string as the keys of `userAssignedIdentities` blocks and the tokens' `xms_mirid`.
        resource = Resource(
            id=existing.id if existing else mirid(rid.id), subscription_id=rid.subscription,
            resource_group=rid.resource_group, parent_key=None, type=UAMI_TYPE,
            name=existing.name if existing else rid.name, location=str(location).replace(" ", "").lower(), kind=None,
            sku=None, tags=tags, properties=props, identity=None, system_data=None, etag=uuid.uuid4().hex,
        )
        self._resources.store(resource)
        return resource, existing is None

    def get_typed(self, rid: ResourceId, type_: str) -> Resource:
        found = self._resources.get_by_key(rid.key)
        if found is None or found.type.lower() != type_.lower():
            raise NotFound(f"The Resource '{type_}/{rid.name}' under resource group '{rid.resource_group}' was not "
                           "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix")
        return found

    def delete_uami(self, rid: ResourceId) -> bool:
        found = self._resources.get_by_key(rid.key)
        if found is None or found.type != UAMI_TYPE:
            return False
        self._resources.delete_tree(rid.key)
        self.drop_principal(str(found.properties["principalId"]))
        # Detach it everywhere: its principal no longer exists.
        for type_ in IDENTITY_HOLDERS:
            for resource in self._resources.list_resources(type_=type_):
                users = dict((resource.identity or {}).get("userAssignedIdentities") or {})
                if any(k.lower() == found.key for k in users):
                    kept = {k: v for k, v in users.items() if k.lower() != found.key}
                    self._store_identity(resource, bool((resource.identity or {}).get("principalId")), kept)
        return True

    # ----------------------------------------------------------------- compute resources
    def identity_for(self, resource_id: str, tenant_id: str, body_identity: Any, existing: Resource | None,
                     patch: bool, name: str) -> dict[str, Any] | None:
        """The `identity` block a resource gets from the one sent (None: it keeps its own), creating the principal
        of a system-assigned identity it gains and deleting the one of a system-assigned identity it loses. Every
        refusal comes before either, so a refused body changes nothing."""
        old = (existing.identity or {}) if existing else {}
        old_users: dict[str, Any] = dict(old.get("userAssignedIdentities") or {})
        if body_identity is None:
            return old or None if existing else None
        sent = arm_bodies.parse(arm_bodies.IdentityBlock, body_identity, at="identity")
        system, user = sent.system_assigned, sent.user_assigned
        users: dict[str, Any] = dict(old_users) if patch else {}
        for key, value in (sent.user_assigned_identities or {}).items():
            if value is None:
                users = {k: v for k, v in users.items() if k.lower() != key.lower()}
                continue
            uami = self._uami_by_id(key, tenant_id)
            users = {k: v for k, v in users.items() if k.lower() != uami.key}
            users[mirid(uami.id)] = {"principalId": uami.properties["principalId"],
                                     "clientId": uami.properties["clientId"]}
        if not user:
            users = {}
        elif not users:
            raise InvalidIdentity(
                "The identity type UserAssigned needs at least one identity in userAssignedIdentities.")
        principal_id = old.get("principalId")
        if system and not principal_id:
            principal_id = self._new_principal(tenant_id, name).object_id
        if not system and principal_id:
            self.drop_principal(str(principal_id))
            principal_id = None
        if not system and not users:
            return None
        block: dict[str, Any] = {"type": _type_text(system, bool(users))}
        if principal_id:
            block.update({"principalId": principal_id, "tenantId": tenant_id})
        if users:
            block["userAssignedIdentities"] = users
        return block

    def _uami_by_id(self, resource_id: str, tenant_id: str) -> Resource:
        try:
            rid = parse(resource_id)
        except InvalidResourceId as exc:
            raise InvalidUserAssignedIdentity(f"'{resource_id}' is not a valid user-assigned identity id.") from exc
        found = self._resources.get_by_key(rid.key)
        if found is None or found.type != UAMI_TYPE or found.properties.get("tenantId") != tenant_id:
            raise FailedIdentityOperation(f"The user-assigned identity '{resource_id}' was not found.")
        return found

    def _store_identity(self, resource: Resource, system: bool, users: dict[str, Any]) -> None:
        identity = dict(resource.identity or {})
        identity["userAssignedIdentities"] = users
        if not users:
            identity.pop("userAssignedIdentities")
        identity["type"] = _type_text(system, bool(users))
        self._resources.store(Resource(**{**resource.__dict__,
                                             "identity": identity if system or users else None}))

    def put_compute(self, rid: ResourceId, type_: str, body: dict[str, Any], tenant_id: str, writer: ResourceWriter, *,
                    patch: bool = False) -> tuple[Resource, bool]:
        assert rid.resource_group is not None
        group = self._resources.get_group(rid.subscription, rid.resource_group)
        existing = self._resources.get_by_key(rid.key)
        if existing is not None and existing.type != type_:
            raise ResourceTypeMismatch(f"A resource of another type exists at '{rid.id}'.")
        name = existing.name if existing else rid.name
        if type_ == SITE_TYPE:  # before the identity block, which may create a principal
            _check_site_properties(body.get("properties"), existing.properties if existing else _new_site(rid.name))
        identity = self.identity_for(rid.id, tenant_id, body.get("identity"), existing, patch, name)
        properties: dict[str, Any] = dict(existing.properties) if existing else {"provisioningState": "Succeeded"}
        if type_ == VM_TYPE:
            properties.setdefault("vmId", new_guid())
            props_in = body.get("properties")
            hardware = props_in.get("hardwareProfile") if isinstance(props_in, dict) else None
            size = hardware.get("vmSize") if isinstance(hardware, dict) else None
            old_size = (properties.get("hardwareProfile") or {}).get("vmSize", "Standard_B1s")
            properties["hardwareProfile"] = {"vmSize": size or old_size}
        elif type_ == VMSS_TYPE:
            properties.setdefault("uniqueId", new_guid())
        else:
            properties = {**_new_site(rid.name), **properties}
        location = body.get("location") or (existing.location if existing else group.location)
        tags = body.get("tags", existing.tags if existing else None)
        default_kind = "app" if type_ == SITE_TYPE else None
        kind = _kind(body.get("kind"), type_) or (existing.kind if existing else default_kind)
        sku = body.get("sku") if isinstance(body.get("sku"), dict) else (existing.sku if existing else None)
        resource = Resource(
            id=existing.id if existing else rid.id, subscription_id=rid.subscription, resource_group=rid.resource_group,
            parent_key=None, type=type_, name=name, location=str(location).replace(" ", "").lower(), kind=kind,
            sku=sku, tags=tags if isinstance(tags, dict) else None, properties=properties, identity=identity,
            system_data=None, etag=uuid.uuid4().hex,
        )
        self._resources.store(resource)
        return resource, existing is None

    def delete_compute(self, rid: ResourceId, type_: str) -> bool:
        found = self._resources.get_by_key(rid.key)
        if found is None or found.type != type_:
            return False
        principal_id = (found.identity or {}).get("principalId")
        self._resources.delete_tree(rid.key)
        self._credentials.delete_for(found.key)
        if principal_id:
            self.drop_principal(str(principal_id))
        return True

    def drop_system_identity(self, resource: Resource) -> None:
        """A deleted resource's system-assigned principal and its role assignments (the caller reloads RBAC)."""
        principal_id = (resource.identity or {}).get("principalId")
        if principal_id:
            self.drop_principal(str(principal_id))

    def delete_in_group(self, subscription: str, resource_group: str) -> None:
        """Before a resource group goes: delete its compute resources', accounts' and user-assigned identities'
        principals (and their role assignments anywhere), as deleting each resource would."""
        for resource in self._resources.list_resources(subscription_id=subscription,
                                                            resource_group=resource_group):
            if resource.type in COMPUTE_TYPES:
                self.delete_compute(parse(resource.id), resource.type)
            elif resource.type == ACCOUNT_TYPE:
                self.drop_system_identity(resource)
            elif resource.type == UAMI_TYPE:
                self.delete_uami(parse(resource.id))

    # ----------------------------------------------------------------- host credentials
    def issue_host_credential(self, resource: Resource) -> str:
        """`<id>.<secret>`: shown once, stored hashed. The host agent presents it for tokens."""
        credential_id = new_guid()
        secret = secrets.token_urlsafe(32)
        self._credentials.add(HostCredential(credential_id, resource.key, sha256_hex(secret), self._clock.now(),
                                             False))
        return f"{credential_id}.{secret}"

    def revoke_host_credentials(self, resource: Resource) -> int:
        return self._credentials.revoke_for(resource.key)

    def host_for(self, presented: str) -> Resource:
        """The compute resource a host credential is enrolled to, or IdentityError(401)."""
        credential_id, _, secret = presented.partition(".")
        stored = self._credentials.get(credential_id) if credential_id and secret else None
        if stored is None or stored.revoked or not hmac.compare_digest(stored.secret_hash, sha256_hex(secret)):
            raise IdentityError(401, "unauthorized_client", "The host credential is not valid or was revoked.")
        resource = self._resources.get_by_key(stored.resource_key)
        if resource is None:
            raise IdentityError(401, "unauthorized_client", "The host credential's resource no longer exists.")
        return resource

    def select(self, host: Resource, *, client_id: str | None = None, object_id: str | None = None,
               resource_id: str | None = None) -> SelectedIdentity:
        """Which identity a workload asks for, among those attached to its host (IMDS's rules)."""
        if sum(x is not None for x in (client_id, object_id, resource_id)) > 1:
            raise IdentityError(400, "invalid_request",
                                "Only one of client_id, object_id and msi_res_id/mi_res_id may be given.")
        identity = host.identity or {}
        candidates: list[SelectedIdentity] = []
        system_id = identity.get("principalId")
        if system_id:
            sp = self._directory.find_service_principal(str(system_id))
            if sp is not None:
                candidates.append(SelectedIdentity(sp.object_id, sp.app_id, mirid(host.id), host.id, False))
        for uami_id, info in (identity.get("userAssignedIdentities") or {}).items():
            candidates.append(SelectedIdentity(str(info["principalId"]), str(info["clientId"]), mirid(uami_id),
                                               host.id, True))
        if client_id is not None:
            found = [c for c in candidates if c.client_id == client_id.lower()]
        elif object_id is not None:
            found = [c for c in candidates if c.principal_id == object_id.lower()]
        elif resource_id is not None:
            found = [c for c in candidates if c.user_assigned and c.mirid.lower() == resource_id.lower().rstrip("/")]
        else:
            system = [c for c in candidates if not c.user_assigned]
            found = system or (candidates if len(candidates) == 1 else [])
            if not found and len(candidates) > 1:
                raise IdentityError(400, "invalid_request", "Multiple user assigned identities exist, please specify "
                                    "the clientId / resourceId of the identity in the token request")
        if not found:
            raise IdentityError(400, "invalid_request", "Identity not found")
        selected = found[0]
        # A user-assigned identity deleted since it was attached has no principal any more.
        if self._directory.find_service_principal(selected.principal_id) is None:
            raise IdentityError(400, "invalid_request", "Identity not found")
        return selected


def compute_json(resource: Resource) -> dict[str, Any]:
    out = resource_json(resource)
    if resource.type in COMPUTE_TYPES:
        out.pop("systemData", None)
    return out
