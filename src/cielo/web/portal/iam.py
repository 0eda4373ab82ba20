"""Access control (IAM) on any scope: role assignments here and inherited, add and remove; Check access (what
`cielo role check` asks: `POST {scope}/providers/Microsoft.Authorization/checkAccess`); role definitions.

Built-in role definitions are Azure's public catalogue: their names, descriptions and permissions are read from it
here (the same data the API serves to any signed-in caller), so a page with a thousand assignments does not
fetch 900 definitions. Custom roles come from the API (`$filter=type eq 'CustomRole'`), as the user may read them.
"""

from __future__ import annotations

import uuid
from fnmatch import fnmatchcase
from typing import Any

from starlette.responses import Response

from cielo.rbac import BUILTIN_ROLES
from cielo.web.portal.client import Api, ApiError
from cielo.web.portal.ids import Scope, url
from cielo.web.portal.resources import blade
from cielo.web.portal.web import Portal

AUTHZ = "/providers/Microsoft.Authorization"
_BUILTINS: dict[str, dict[str, Any]] = {}
COMMON_ACTIONS = [
    ("Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action", True),
    ("Microsoft.CognitiveServices/accounts/OpenAI/deployments/completions/action", True),
    ("Microsoft.CognitiveServices/accounts/listKeys/action", False),
    ("Microsoft.CognitiveServices/accounts/deployments/write", False),
    ("Microsoft.Authorization/roleAssignments/write", False),
    ("Microsoft.Resources/subscriptions/resourceGroups/write", False),
    ("Microsoft.Compute/virtualMachines/write", False),
]


def builtins() -> dict[str, dict[str, Any]]:
    """Built-in roles by GUID, in ARM's `properties` shape plus `id` (GUID) and `roleType`."""
    if not _BUILTINS:
        for role in BUILTIN_ROLES:
            props = dict(role.to_arm()["properties"])  # type: ignore[call-overload]
            _BUILTINS[role.id.lower()] = {**props, "id": role.id.lower()}
    return _BUILTINS


async def roles(api: Api, scope: str) -> dict[str, dict[str, Any]]:
    """Every role the user may see at this scope: the built-ins and the custom roles the API lists."""
    custom, _ = await api.try_arm("GET", f"{scope}{AUTHZ}/roleDefinitions", "authorization",
                                  params={"$filter": "type eq 'CustomRole'"})
    out = dict(builtins())
    for item in (custom or {}).get("value", []):
        out[str(item["name"]).lower()] = {**item["properties"], "id": str(item["name"]).lower()}
    return out


def role_guid(role_definition_id: str) -> str:
    return role_definition_id.rsplit("/", 1)[-1].lower()


def allows(permissions: list[dict[str, Any]], action: str) -> bool:
    """Whether these permission blocks (the caller's own, from `…/permissions`) grant a control action."""
    wanted = action.lower()
    for block in permissions:
        if any(fnmatchcase(wanted, a.lower()) for a in block.get("actions", [])) and \
                not any(fnmatchcase(wanted, a.lower()) for a in block.get("notActions", [])):
            return True
    return False


async def names_of(api: Api, ids: set[str]) -> dict[str, dict[str, str]]:
    """Display name and type of each directory object, by id: one Graph call per thousand."""
    found: dict[str, dict[str, str]] = {}
    wanted = sorted(ids)
    for start in range(0, len(wanted), 1000):
        try:
            answer = await api.graph("POST", "/directoryObjects/getByIds", {"ids": wanted[start:start + 1000]})
        except ApiError:
            break
        for item in answer.get("value", []):
            kind = str(item.get("@odata.type", "")).rsplit(".", 1)[-1]
            if kind == "servicePrincipal" and item.get("servicePrincipalType") == "ManagedIdentity":
                kind = "managedIdentity"
            found[str(item["id"]).lower()] = {"name": str(item.get("displayName") or ""), "kind": kind,
                                              "detail": str(item.get("userPrincipalName") or item.get("appId") or "")}
    return found


async def principals(api: Api) -> dict[str, list[dict[str, str]]]:
    """Users, groups, service principals and managed identities the user may list, for the pickers."""
    out: dict[str, list[dict[str, str]]] = {"User": [], "Group": [], "ServicePrincipal": [], "ManagedIdentity": []}
    for path, kind in (("/users", "User"), ("/groups", "Group"), ("/servicePrincipals", "ServicePrincipal")):
        try:
            answer = await api.graph("GET", path)
        except ApiError:
            continue
        for item in answer.get("value", []):
            this = "ManagedIdentity" if item.get("servicePrincipalType") == "ManagedIdentity" else kind
            out[this].append({"id": str(item["id"]), "name": str(item.get("displayName") or ""),
                              "detail": str(item.get("userPrincipalName") or item.get("mail") or item.get("appId")
                                            or "")})
    for items in out.values():
        items.sort(key=lambda p: p["name"].lower())
    return out


def _above_or_at(assignment_scope: str, scope: str) -> bool:
    a, s = assignment_scope.rstrip("/").lower(), scope.rstrip("/").lower()
    return a == s or a == "" or s.startswith(a + "/")


async def _assignments(api: Api, scope: str, flt: str | None = None) -> list[dict[str, Any]]:
    params = {"$filter": flt} if flt else None
    answer = await api.arm("GET", f"{scope}{AUTHZ}/roleAssignments", "authorization", params=params)
    return [a for a in answer.get("value", []) if _above_or_at(a["properties"]["scope"], scope)]


async def _rows(api: Api, scope: str, found: list[dict[str, Any]], known: dict[str, dict[str, Any]]
                ) -> list[dict[str, Any]]:
    names = await names_of(api, {str(a["properties"]["principalId"]).lower() for a in found})
    rows = []
    for a in found:
        props = a["properties"]
        role = known.get(role_guid(props["roleDefinitionId"]), {})
        who = names.get(str(props["principalId"]).lower(), {})
        here = props["scope"].rstrip("/").lower() == scope.rstrip("/").lower()
        rows.append({"id": a["id"], "role": role.get("roleName") or role_guid(props["roleDefinitionId"]),
                     "principal": who.get("name") or props["principalId"], "detail": who.get("detail", ""),
                     "kind": who.get("kind") or props.get("principalType", ""), "principalId": props["principalId"],
                     "scope": props["scope"], "here": here,
                     "from": "This resource" if here else _scope_label(props["scope"])})
    rows.sort(key=lambda r: (not r["here"], r["role"].lower(), r["principal"].lower()))
    return rows


def _scope_label(scope: str) -> str:
    parts = [p for p in scope.split("/") if p]
    if not parts:
        return "Root (inherited)"
    if len(parts) == 2:
        return "Subscription (inherited)"
    if len(parts) == 4:
        return f"Resource group {parts[3]} (inherited)"
    return f"{parts[-1]} (inherited)"


async def _may(api: Api, scope: str, action: str) -> bool:
    answer, error = await api.try_arm("GET", f"{scope}{AUTHZ}/permissions", "authorization")
    return error is None and allows(list((answer or {}).get("value", [])), action)


@blade("iam")
async def iam(portal: Portal, scope: Scope) -> Response:
    tab = portal.query("tab", "assignments")
    error: ApiError | None = None
    if portal.request.method == "POST":
        form = await portal.form()
        try:
            if form.get("action") == "remove":
                target = form.get("id", "")
                if not target.lower().startswith(("/subscriptions/", "/providers/microsoft.authorization/")) or \
                        "/providers/microsoft.authorization/roleassignments/" not in target.lower():
                    raise ApiError(400, "InvalidRoleAssignmentId", "Not a role assignment id.")
                await portal.api.arm("DELETE", target, "authorization")
                return portal.redirect(url(scope.id, "iam"), "Role assignment removed.")
            if form.get("action") == "add":
                return await _add(portal, scope, form)
            if form.get("action") == "check":
                return await check(portal, scope, form)
        except ApiError as exc:
            error = exc
    if tab == "check":
        return await check(portal, scope, None, error)
    if tab == "roles":
        return await role_list(portal, scope)
    if tab == "add":
        return await add_page(portal, scope, error)
    known = await roles(portal.api, scope.id)
    # atScope(): here and inherited, not the (possibly many) assignments below this scope.
    rows = await _rows(portal.api, scope.id, await _assignments(portal.api, scope.id, "atScope()"), known)
    may_add = await _may(portal.api, scope.id, "Microsoft.Authorization/roleAssignments/write")
    may_remove = await _may(portal.api, scope.id, "Microsoft.Authorization/roleAssignments/delete")
    return portal.render("portal/iam.html", title="Access control (IAM)", subtitle=scope.name or scope.group or "",
                         scope=scope.id, blade="iam", tab="assignments", rows=rows, may_add=may_add,
                         may_remove=may_remove, error=error)


async def add_page(portal: Portal, scope: Scope, error: ApiError | None = None) -> Response:
    known = await roles(portal.api, scope.id)
    chosen = known.get(portal.query("role").lower())
    people = await principals(portal.api) if chosen else {}
    listed = sorted(known.values(), key=lambda r: (r.get("type") != "CustomRole", r["roleName"].lower()))
    return portal.render("portal/iam_add.html", title="Add role assignment", subtitle=scope.name or scope.group or "",
                         scope=scope.id, blade="iam", tab="add", roles=listed, chosen=chosen, people=people,
                         error=error)


async def _add(portal: Portal, scope: Scope, form: dict[str, str]) -> Response:
    role = form.get("role", "").lower()
    principal, _, kind = form.get("principal", "").partition("|")
    if not principal:
        raise ApiError(400, "PrincipalRequired", "Select a member to assign the role to.")
    principal_type = {"ManagedIdentity": "ServicePrincipal"}.get(kind, kind or "User")
    body = {"properties": {
        "roleDefinitionId": f"/subscriptions/{scope.subscription}{AUTHZ}/roleDefinitions/{role}",
        "principalId": principal, "principalType": principal_type}}
    await portal.api.arm("PUT", f"{scope.id}{AUTHZ}/roleAssignments/{uuid.uuid4()}", "authorization", body=body)
    name = builtins().get(role, {}).get("roleName", role)
    return portal.redirect(url(scope.id, "iam"), f"Added role assignment: {name}.")


async def check(portal: Portal, scope: Scope, form: dict[str, str] | None,
                error: ApiError | None = None) -> Response:
    principal = (form or {}).get("principal") or portal.query("principal")
    principal = principal.partition("|")[0]
    action = (form or {}).get("check_action", "") or portal.query("check_action")
    result = None
    effective: list[dict[str, Any]] = []
    known = await roles(portal.api, scope.id)
    if principal:
        try:
            effective = await _rows(portal.api, scope.id, await _assignments(
                portal.api, scope.id, f"assignedTo('{principal.replace(chr(39), '')}')"), known)
            if action:
                data_action = (form or {}).get("data_action") == "on" if form else "/openai/" in action.lower()
                result = await portal.api.arm("POST", f"{scope.id}{AUTHZ}/checkAccess", "authorization", body={
                    "principalId": principal, "action": action, "isDataAction": data_action})
                matched = result.get("matchedAssignments", [])
                result["matchedRows"] = await _rows(portal.api, scope.id, matched, known) if matched else []
        except ApiError as exc:
            error = exc
    people = await principals(portal.api)
    return portal.render("portal/iam_check.html", title="Check access", subtitle=scope.name or scope.group or "",
                         scope=scope.id, blade="iam", tab="check", people=people, principal=principal,
                         action=action, result=result, effective=effective, common=COMMON_ACTIONS, error=error)


async def role_list(portal: Portal, scope: Scope) -> Response:
    known = await roles(portal.api, scope.id)
    chosen = known.get(portal.query("role").lower())
    listed = sorted(known.values(), key=lambda r: (r.get("type") != "CustomRole", r["roleName"].lower()))
    return portal.render("portal/iam_roles.html", title="Roles", subtitle=scope.name or scope.group or "",
                         scope=scope.id, blade="iam", tab="roles", roles=listed, chosen=chosen)


@blade("roles")
async def roles_blade(portal: Portal, scope: Scope) -> Response:
    return await role_list(portal, scope)
