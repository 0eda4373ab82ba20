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
PAGE_SIZE = 50  # role assignments a page shows (Azure's portal pages its list too)
FEW_IDS = 10  # up to this many principals' names: one getByIds call; more: a listing per principal type
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
    """Every role the user may see at this scope: the built-ins and the custom roles the API lists (asked once a
    request)."""
    cached: dict[str, dict[str, Any]] | None = api.memo.get(("roles", scope))
    if cached is not None:
        return cached
    custom, _ = await api.try_arm("GET", f"{scope}{AUTHZ}/roleDefinitions", "authorization",
                                  params={"$filter": "type eq 'CustomRole'"})
    out = dict(builtins())
    for item in (custom or {}).get("value", []):
        out[str(item["name"]).lower()] = {**item["properties"], "id": str(item["name"]).lower()}
    api.memo[("roles", scope)] = out
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


async def names_of(api: Api, ids: set[str] | dict[str, str]) -> dict[str, dict[str, str]]:
    """Display name and type of each directory object, by id (a dict gives each id's `principalType`).

    A few ids: one `directoryObjects/getByIds` call. More: one listing per principal type among them (users,
    groups, service principals), kept to the ids asked for, because Cielo's getByIds looks each id up on its own
    (about 3 ms an id) where a listing is one query; ids of another type still go to one getByIds call."""
    types = ids if isinstance(ids, dict) else dict.fromkeys(ids, "")
    wanted = {i.lower(): t for i, t in types.items()}
    found: dict[str, dict[str, str]] = {}
    by_id: list[str] = sorted(wanted)
    if len(wanted) > FEW_IDS:
        by_id = sorted(i for i, t in wanted.items() if t not in LISTINGS)
        for path in sorted({LISTINGS[t] for t in wanted.values() if t in LISTINGS}):
            try:
                answer = await api.graph("GET", path)
            except ApiError:
                continue
            _note(found, [item for item in answer.get("value", []) if str(item.get("id", "")).lower() in wanted],
                  path)
    for start in range(0, len(by_id), 1000):
        try:
            answer = await api.graph("POST", "/directoryObjects/getByIds", {"ids": by_id[start:start + 1000]})
        except ApiError:
            break
        _note(found, answer.get("value", []))
    return found


LISTINGS = {"User": "/users", "Group": "/groups", "ServicePrincipal": "/servicePrincipals"}
_KIND_OF_LISTING = {"/users": "user", "/groups": "group", "/servicePrincipals": "servicePrincipal"}


def _note(found: dict[str, dict[str, str]], items: list[dict[str, Any]], listing: str = "") -> None:
    for item in items:
        kind = str(item.get("@odata.type", "")).rsplit(".", 1)[-1] or _KIND_OF_LISTING.get(listing, "")
        if kind == "servicePrincipal" and item.get("servicePrincipalType") == "ManagedIdentity":
            kind = "managedIdentity"
        found[str(item["id"]).lower()] = {"name": str(item.get("displayName") or ""), "kind": kind,
                                          "detail": str(item.get("userPrincipalName") or item.get("appId") or "")}


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


def _bare_rows(scope: str, found: list[dict[str, Any]], known: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of these assignments before their principals' names are known, in the list's order: here first,
    then by role, by principal type and id."""
    rows = []
    here_scope = scope.rstrip("/").lower()
    for a in found:
        props = a["properties"]
        guid = role_guid(props["roleDefinitionId"])
        role = known.get(guid, {})
        here = props["scope"].rstrip("/").lower() == here_scope
        rows.append({"id": a["id"], "role": role.get("roleName") or guid, "principal": props["principalId"],
                     "detail": "", "kind": props.get("principalType", ""), "principalId": props["principalId"],
                     "scope": props["scope"], "here": here,
                     "from": "This resource" if here else _scope_label(props["scope"])})
    rows.sort(key=lambda r: (not r["here"], r["role"].lower(), r["kind"], r["principalId"].lower()))
    return rows


async def _named(api: Api, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """These rows with their principals' names (looked up for these rows only), each role's rows by name."""
    names = await names_of(api, {str(r["principalId"]).lower(): r["kind"] for r in rows})
    for row in rows:
        who = names.get(str(row["principalId"]).lower(), {})
        row.update(principal=who.get("name") or row["principalId"], detail=who.get("detail", ""),
                   kind=who.get("kind") or row["kind"])
    rows.sort(key=lambda r: (not r["here"], r["role"].lower(), r["principal"].lower()))
    return rows


async def _rows(api: Api, scope: str, found: list[dict[str, Any]], known: dict[str, dict[str, Any]]
                ) -> list[dict[str, Any]]:
    return await _named(api, _bare_rows(scope, found, known))


def _scope_label(scope: str) -> str:
    parts = [p for p in scope.split("/") if p]
    if not parts:
        return "Root (inherited)"
    if len(parts) == 2:
        return "Subscription (inherited)"
    if len(parts) == 4:
        return f"Resource group {parts[3]} (inherited)"
    return f"{parts[-1]} (inherited)"


async def _may(api: Api, scope: str, *actions: str) -> list[bool]:
    """Whether the user may do each of these actions here: one `…/permissions` call for all of them."""
    answer, error = await api.try_arm("GET", f"{scope}{AUTHZ}/permissions", "authorization")
    blocks = list((answer or {}).get("value", []))
    return [error is None and allows(blocks, action) for action in actions]


def _page_number(text: str) -> int:
    return int(text) if text.isdigit() and 0 < int(text) < 100_000 else 1


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
    # atScope(): here and inherited, not the (possibly many) assignments below this scope.
    found = await _assignments(portal.api, scope.id, "atScope()")
    known = builtins()
    if any(role_guid(a["properties"]["roleDefinitionId"]) not in known for a in found):
        known = await roles(portal.api, scope.id)  # a custom role among them: ask for its name
    rows = _bare_rows(scope.id, found, known)
    search = portal.query("q").strip()
    if search:  # by name too: every principal's name is needed, then the page
        needle = search.lower()
        rows = [r for r in await _named(portal.api, rows)
                if any(needle in str(r[k]).lower() for k in ("principal", "detail", "role", "kind", "principalId"))]
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    number = min(_page_number(portal.query("page", "1")), pages)
    shown = rows[(number - 1) * PAGE_SIZE:number * PAGE_SIZE]
    if not search:
        shown = await _named(portal.api, shown)
    may_add, may_remove = await _may(portal.api, scope.id, "Microsoft.Authorization/roleAssignments/write",
                                     "Microsoft.Authorization/roleAssignments/delete")
    return portal.render("portal/iam.html", title="Access control (IAM)", subtitle=scope.name or scope.group or "",
                         scope=scope.id, blade="iam", tab="assignments", rows=shown, total=len(rows), page=number,
                         pages=pages, first=(number - 1) * PAGE_SIZE + 1, search=search, may_add=may_add,
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
