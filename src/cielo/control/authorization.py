"""Microsoft.Authorization: role assignments and role definitions, in ARM's REST shapes (2022-04-01)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any, Protocol

from cielo.control import arm_bodies, provider_operations
from cielo.control.access import AccessService, ArmCaller
from cielo.control.naming import check_case_unambiguous
from cielo.core.arm_ids import InvalidResourceId, parse
from cielo.core.clock import Clock
from cielo.core.ids import is_guid
from cielo.errors import (
    BadRequest,
    DuplicateKey,
    InvalidAssignmentScope,
    InvalidFilterInQueryString,
    InvalidRoleAssignmentId,
    InvalidRoleDefinitionContent,
    InvalidRoleDefinitionId,
    NotFound,
    PrincipalNotFound,
    ResourceGroupNotFound,
    RoleAssignmentNotFound,
    RoleDefinitionDoesNotExist,
    SubscriptionNotFound,
    UnmatchedPrincipalType,
)
from cielo.rbac.errors import RoleAssignmentUpdateNotPermitted, RoleDefinitionNotFound
from cielo.rbac.model import RoleAssignment
from cielo.rbac.roles import RoleDefinition
from cielo.rbac.scopes import is_within, parse_scope
from cielo.store.directory import DirectoryRepo
from cielo.store.integrity import ROLE_ASSIGNMENT_NAME
from cielo.store.resources import ResourceRepo, StoredAssignment, StoredRole

ASSIGNMENT_TYPE = "Microsoft.Authorization/roleAssignments"
RD_READ = "Microsoft.Authorization/roleDefinitions/read"
RD_WRITE = "Microsoft.Authorization/roleDefinitions/write"
RD_DELETE = "Microsoft.Authorization/roleDefinitions/delete"
_FILTER = re.compile(r"^\s*(?:(atScope\(\))|(principalId)\s+eq\s+'([^']*)'|(assignedTo)\('([^']*)'\)|"
                     r"(roleName)\s+eq\s+'((?:[^']|'')*)'|(type)\s+eq\s+'([^']*)')\s*$", re.IGNORECASE)


def _iso(ts: float | dt.datetime | None) -> str | None:
    if ts is None:
        return None
    if isinstance(ts, dt.datetime):
        return ts.isoformat()
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def subscription_of(scope: str) -> str | None:
    parts = scope.strip("/").split("/")
    return parts[1] if len(parts) >= 2 and parts[0].lower() == "subscriptions" else None


def assignment_json(a: RoleAssignment) -> dict[str, Any]:
    sub = subscription_of(a.scope)
    role_id = f"/providers/Microsoft.Authorization/roleDefinitions/{a.role_definition_id}"
    return {
        "properties": {
            "roleDefinitionId": f"/subscriptions/{sub}{role_id}" if sub else role_id,
            "principalId": a.principal_id,
            "principalType": a.principal_type,
            "scope": a.scope,
            "condition": a.condition,
            "conditionVersion": a.condition_version,
            "createdOn": _iso(a.created_on),
            "updatedOn": _iso(a.updated_on),
            "createdBy": a.created_by,
            "updatedBy": a.updated_by,
            "delegatedManagedIdentityResourceId": None,
            "description": a.description,
        },
        "id": a.resource_id,
        "type": ASSIGNMENT_TYPE,
        "name": a.id,
    }


def parse_filter(raw: str | None) -> tuple[str, str] | None:
    """`atScope()`, `principalId eq '…'`, `assignedTo('…')`, `roleName eq '…'`, `type eq '…'`."""
    if not raw:
        return None
    match = _FILTER.match(raw)
    if match is None:
        raise InvalidFilterInQueryString(f"The filter '{raw[:200]}' is not supported.")
    if match.group(1):
        return "atScope", ""
    if match.group(2):
        return "principalId", match.group(3).lower()
    if match.group(4):
        return "assignedTo", match.group(5).lower()
    if match.group(6):
        return "roleName", match.group(7).replace("''", "'")
    return "type", match.group(9)


class Guard(Protocol):
    """The caller's Azure RBAC, as the resource manager applies it (the API layer builds one per request)."""

    def allowed(self, action: str, scope: str) -> bool: ...

    def denied(self, action: str, scope: str) -> Exception:
        """The error for a denial: ARM's 403 AuthorizationFailed naming `action` and `scope`."""
        ...


class AuthorizationService:
    def __init__(self, access: AccessService, resources: ResourceRepo, directory: DirectoryRepo, clock: Clock) -> None:
        self.access = access
        self._resources = resources
        self._directory = directory
        self._clock = clock

    # ----------------------------------------------------------------- scopes
    def check_scope_exists(self, scope: str, tenant_id: str) -> str:
        """The canonical scope, after checking that what it names exists (ARM refuses dangling scopes)."""
        canonical = parse_scope(scope).path
        if canonical == "/":
            return canonical
        check_case_unambiguous(canonical)
        try:
            rid = parse(canonical)
        except InvalidResourceId as exc:
            raise InvalidAssignmentScope(f"The scope '{scope}' is not valid.") from exc
        subs = {s.id: s for s in self._directory.list_subscriptions(tenant_id)}
        if rid.subscription.lower() not in subs:
            raise SubscriptionNotFound(f"The subscription '{rid.subscription}' could not be found.")
        if rid.resource_group is not None:
            from cielo.core.arm_ids import ResourceId

            if self._resources.get(ResourceId(rid.subscription, rid.resource_group).key) is None:
                raise ResourceGroupNotFound(f"Resource group '{rid.resource_group}' could not be found.")
        if rid.namespace is not None and self._resources.get(rid.key) is None:
            # Subscription-level resources too: Cielo has none, so such a scope names nothing.
            where = (f"resource group '{rid.resource_group}'" if rid.resource_group
                     else f"subscription '{rid.subscription}'")
            raise NotFound(f"The Resource '{rid.type}/{rid.name}' under {where} was not found.")
        return canonical

    # ----------------------------------------------------------------- role assignments
    def principal_type(self, principal_id: str, tenant_id: str) -> str:
        """User, Group or ServicePrincipal; 400 PrincipalNotFound unless it exists in `tenant_id`."""
        found = self._directory.directory_objects([principal_id])
        kind = found.get(principal_id, (None, ""))[0]
        user = self._directory.get_user(principal_id) if kind == "user" else None
        sp = self._directory.find_service_principal(principal_id) if kind == "servicePrincipal" else None
        group = self._directory.find_group(tenant_id, principal_id) if kind == "group" else None
        owner = (user.tenant_id if user else sp.tenant_id if sp else group.tenant_id if group else None)
        if kind is None or owner != tenant_id:
            raise PrincipalNotFound(f"Principal {principal_id.replace('-', '')} does not exist in the directory "
                                    f"{tenant_id}. Check that you have the correct principal ID.")
        return {"user": "User", "group": "Group", "servicePrincipal": "ServicePrincipal"}[kind]

    def create_assignment(
        self, caller: ArmCaller, scope: str, name: str, body: dict[str, Any]
    ) -> tuple[RoleAssignment, bool]:
        if not is_guid(name.lower()):
            raise InvalidRoleAssignmentId(
                f"The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID.")
        props = arm_bodies.parse(arm_bodies.RoleAssignmentBody, body).properties
        role_ref, principal_id = props.role_definition_id, props.principal_id.lower()
        role = self.access.index.get_role_definition(role_ref)
        if role is None:
            raise RoleDefinitionNotFound(
                f"The specified role definition with ID '{role_ref.rsplit('/', 1)[-1]}' does not exist.")
        canonical = self.check_scope_exists(scope, caller.tenant_id)
        actual = self.principal_type(principal_id, caller.tenant_id)
        given = props.principal_type
        if given is not None and given != actual and not (given == "ForeignGroup" and actual == "Group"):
            raise UnmatchedPrincipalType(
                f"The principal type '{given}' does not match the principal's type '{actual}'.")
        description = props.description
        existing = self.access.index.get_assignment(name)
        if existing is None:
            now = self._clock.now()
            stored = StoredAssignment(
                name=name.lower(), scope=canonical, tenant_id=caller.tenant_id, role_definition_name=role.id,
                principal_id=principal_id, principal_type=actual, description=description, condition=None,
                condition_version=None, created_on=now, updated_on=now, created_by=caller.object_id,
                updated_by=caller.object_id,
            )
            try:
                return self.access.add_assignment(stored), True
            except DuplicateKey as exc:
                # Another worker stored this name a moment ago: answer as if it had been there all along.
                existing = self.access.stored_assignment(name) if ROLE_ASSIGNMENT_NAME.matches(exc) else None
                if existing is None:
                    raise
        # The same name again: its principal, role and scope cannot change; the description can.
        if (existing.principal_id, existing.role_definition_id, parse_scope(existing.scope).key) != (
                principal_id, role.id, parse_scope(canonical).key):
            raise RoleAssignmentUpdateNotPermitted()
        if description == existing.description:
            return existing, False
        return self.access.update_assignment(existing.id, description, caller.object_id), False

    def get_assignment(self, scope: str, name: str) -> RoleAssignment:
        found = self.access.index.get_assignment(name)
        if found is None or parse_scope(found.scope).key != parse_scope(scope).key:
            raise RoleAssignmentNotFound("The role assignment '" + name + "' is not found.")
        return found

    def delete_assignment(self, scope: str, name: str) -> RoleAssignment | None:
        found = self.access.index.get_assignment(name)
        if found is None or parse_scope(found.scope).key != parse_scope(scope).key:
            return None
        self.access.remove_assignment(found.id)
        return found

    def list_assignments(self, scope: str, flt: tuple[str, str] | None, tenant_id: str) -> list[RoleAssignment]:
        """At the scope, above it (inherited) and below it, as ARM's list does; atScope() drops those below."""
        index = self.access.index
        at_scope_only = flt is not None and flt[0] == "atScope"
        found = index.list_assignments(scope, include_inherited=True, include_below=not at_scope_only)
        if flt and flt[0] == "principalId":
            found = [a for a in found if a.principal_id == flt[1]]
        elif flt and flt[0] == "assignedTo":
            ids = {flt[1]} | set(self.access.groups_of(flt[1]))
            found = [a for a in found if a.principal_id in ids]
        tenant_subs = {s.id for s in self._directory.list_subscriptions(tenant_id)}
        return [a for a in found if (subscription_of(a.scope) or "").lower() in tenant_subs or a.scope == "/"]

    # ----------------------------------------------------------------- explaining access
    def permissions(self, caller: ArmCaller, scope: str) -> list[dict[str, object]]:
        """Azure's `GET {scope}/providers/Microsoft.Authorization/permissions`: the caller's own permissions."""
        index = self.access.index
        found = index.list_assignments(scope, include_inherited=True)
        mine = [a for a in found if a.principal_id in caller.rbac.lookup_set] if caller.exists else []
        out: list[dict[str, object]] = []
        for assignment in mine:
            role = index.get_role_definition(assignment.role_definition_id)
            if role is not None:
                out.extend(p.to_arm() for p in role.permissions)
        return out

    def check_access(self, principal_id: str, action: str, scope: str, data_action: bool,
                     tenant_id: str) -> dict[str, Any]:
        """Cielo's "why was it denied?" about `principal_id` (whether the caller may ask is the API's to decide
        before it reads the question): the decision, its reason and the assignments that matched."""
        from cielo.rbac.model import Principal

        target = Principal(principal_id, tenant_id, self.access.groups_of(principal_id.lower()))
        try:
            self.principal_type(principal_id.lower(), tenant_id)
        except BadRequest:
            # Unknown here, or of another tenant: the answer must not tell which.
            return {"allowed": False, "principalId": principal_id, "action": action, "scope": scope,
                    "isDataAction": data_action, "reason": "The principal does not exist in the directory.",
                    "matchedAssignments": []}
        decision = self.access.index.authorize(target, action, scope, data_action=data_action)
        return {"allowed": decision.allowed, "principalId": principal_id.lower(), "action": action, "scope": scope,
                "isDataAction": data_action, "reason": decision.reason,
                "matchedAssignments": [assignment_json(a) for a in decision.matched],
                "unknownActions": self.unknown_actions(e.assignment.role_definition_id for e in decision.evaluations)}

    def unknown_actions(self, role_ids: Iterable[str]) -> list[dict[str, str]]:
        """The entries of these custom roles that match no operation of the providers Cielo serves: accepted (Azure
        checks only an action's form), but granting nothing here. Built-ins are Azure's and not listed."""
        catalogue = provider_operations.catalogue()
        out: list[dict[str, str]] = []
        for role_id in dict.fromkeys(role_ids):
            role = self.access.index.get_role_definition(role_id)
            if role is None or role.is_builtin:
                continue
            for perm in role.permissions:
                for field, patterns, data in (("actions", perm.actions, False),
                                              ("dataActions", perm.data_actions, True)):
                    for pattern in catalogue.unknown_patterns(patterns, data):
                        out.append({"roleDefinitionId": role.id, "roleName": role.role_name, "field": field,
                                    "action": pattern,
                                    "message": f"'{pattern}' in {field} of custom role '{role.role_name}' matches no "
                                               "operation of the providers this Cielo serves."})
        return out

    # ----------------------------------------------------------------- role definitions
    def _tenant_role(self, guid: str, tenant_id: str) -> RoleDefinition | None:
        """A built-in, or a custom role of `tenant_id`; None for anything else (another tenant's role too)."""
        role = self.access.index.get_role_definition(guid) if is_guid(guid.lower()) else None
        if role is None or role.is_builtin:
            return role
        return role if role.id in {r.name for r in self._resources.list_roles(tenant_id)} else None

    @staticmethod
    def may_read(guard: Guard, role: RoleDefinition, scope: str) -> bool:
        """Whether the caller may see `role` when asking at `scope`.

        Built-ins are readable by every signed-in principal. A custom role needs
        `Microsoft.Authorization/roleDefinitions/read` at the asked scope where the role applies there (one of
        its assignable scopes is that scope or above it), else at one of its assignable scopes.
        """
        if role.is_builtin:
            return True
        for assignable in role.assignable_scopes:
            if guard.allowed(RD_READ, scope if is_within(scope, assignable) else assignable):
                return True
        return False

    def role_definitions(self, guard: Guard, scope: str, flt: tuple[str, str] | None,
                         tenant_id: str) -> list[RoleDefinition]:
        """ARM's list at `scope`: the built-ins, and the tenant's custom roles related to `scope` (assignable at
        it, above it or below it) that the caller may read. Never 403: built-ins are for everyone."""
        if flt and flt[0] not in ("roleName", "type"):
            raise InvalidFilterInQueryString("Only roleName and type filters are supported for role definitions.")
        roles = self.access.index.role_definitions()
        tenant_roles = {r.name for r in self._resources.list_roles(tenant_id)}
        roles = [r for r in roles if r.is_builtin or r.id in tenant_roles]
        if scope != "/":
            roles = [r for r in roles if r.is_builtin or any(
                is_within(scope, s) or is_within(s, scope) for s in r.assignable_scopes)]
        if flt and flt[0] == "roleName":
            roles = [r for r in roles if r.role_name.lower() == flt[1].lower()]
        elif flt and flt[0] == "type":
            roles = [r for r in roles if r.role_type.lower() == flt[1].lower()]
        roles = [r for r in roles if self.may_read(guard, r, scope)]
        return sorted(roles, key=lambda r: (not r.is_builtin, r.role_name.lower()))

    def get_role_definition(self, guard: Guard, scope: str, role_id: str, tenant_id: str) -> RoleDefinition:
        """A role the caller may read; 404 RoleDefinitionDoesNotExist otherwise, the same answer as for an
        unknown id, so that probing GUIDs tells nothing (and the list leaves such a role out too)."""
        role = self._tenant_role(role_id, tenant_id)
        if role is not None and self.may_read(guard, role, scope):
            return role
        raise RoleDefinitionDoesNotExist(f"The role definition '{role_id}' could not be found.")

    def _require_at_current_scopes(self, guard: Guard, action: str, scope: str, role: RoleDefinition) -> None:
        """`action` at every assignable scope the role has now (Azure: a role is changed or deleted only by
        someone who may write it wherever it is assignable). A denial names that scope if the caller may read
        the role, else the role's own id, so that it never reveals where a hidden role is assignable."""
        for assignable in role.assignable_scopes:
            if not guard.allowed(action, assignable):
                named = assignable if self.may_read(guard, role, scope) else (
                    f"{'' if scope == '/' else scope}{role.resource_id}")
                raise guard.denied(action, named)

    def put_role_definition(self, guard: Guard, caller: ArmCaller, scope: str, guid: str,
                            body: dict[str, Any]) -> tuple[RoleDefinition, bool]:
        """Create or replace a custom role: `roleDefinitions/write` at every assignable scope it has (when it
        exists) and at every one it will have. Built-ins are never changed. Nothing is written on a refusal."""
        if not is_guid(guid.lower()):
            raise InvalidRoleDefinitionId("The role definition id must be a GUID.")
        existing = self.access.index.get_role_definition(guid)
        if existing is not None and existing.is_builtin:
            raise InvalidRoleDefinitionContent(f"'{existing.role_name}' is a built-in role and cannot be changed.")
        if existing is not None:
            if self._tenant_role(guid, caller.tenant_id) is None:
                # Another tenant's role: its GUID is taken, and nothing about it may show.
                raise guard.denied(RD_WRITE, f"{'' if scope == '/' else scope}{existing.resource_id}")
            self._require_at_current_scopes(guard, RD_WRITE, scope, existing)
        # The assignable scopes first: the right to write the role there is checked before the rest of the body.
        scopes = arm_bodies.parse(arm_bodies.RoleDefinitionScopes, body).properties.assignable_scopes
        for target in scopes:
            # Before checking that the scope exists: a caller without the right learns nothing from a 404.
            if not guard.allowed(RD_WRITE, target):
                raise guard.denied(RD_WRITE, target)
        props = arm_bodies.parse(arm_bodies.RoleDefinitionBody, body).properties
        for target in scopes:
            self.check_scope_exists(target, caller.tenant_id)
        now = self._clock.now()
        stored = StoredRole(
            name=guid.lower(), tenant_id=caller.tenant_id, role_name=props.role_name, description=props.description,
            permissions=[p.to_stored() for p in props.permissions], assignable_scopes=list(scopes), created_on=now,
            updated_on=now, created_by=caller.object_id,
        )
        return self.access.put_role(stored), existing is None

    def delete_role_definition(self, guard: Guard, scope: str, guid: str, tenant_id: str) -> RoleDefinition | None:
        """Delete a custom role: `roleDefinitions/delete` at every assignable scope it has. None (ARM's 204)
        when there is no such role, after checking the right at the request's scope. Built-ins stay."""
        role = self._tenant_role(guid, tenant_id)
        if role is None:
            if not guard.allowed(RD_DELETE, scope):
                raise guard.denied(RD_DELETE, scope)
            return None
        if role.is_builtin:
            raise InvalidRoleDefinitionContent(f"'{role.role_name}' is a built-in role and cannot be deleted.")
        self._require_at_current_scopes(guard, RD_DELETE, scope, role)
        return self.access.delete_role(role.id)
