"""`cielo role …`: role definitions and assignments, mirroring `az role`, plus `role check`."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import click

from cielo.cli.armcall import arm, flatten, graph_or_none, group_path, subscription_id
from cielo.cli.common import CliError, ServiceError, global_options, table_layout, warn
from cielo.core.ids import is_guid

AUTH = "providers/Microsoft.Authorization"


def _scope(scope: str | None, resource_group: str | None, subscription: str | None) -> str:
    if scope:
        return scope.rstrip("/") or "/"
    if resource_group:
        return group_path(resource_group, subscription)
    return f"/subscriptions/{subscription_id(subscription)}"


def _at(scope: str, tail: str) -> str:
    return f"{'' if scope == '/' else scope}/{AUTH}/{tail}"


def _quote(value: str) -> str:
    return value.replace("'", "''")


def resolve_role(role: str, scope: str) -> dict[str, Any]:
    """A role by name (as az resolves `--role "Cognitive Services User"`), GUID or full id."""
    guid = role.rstrip("/").rsplit("/", 1)[-1]
    if is_guid(guid.lower()):
        found: dict[str, Any] = arm("GET", _at(scope, f"roleDefinitions/{guid}"), api="authorization")
        return found
    matches = arm("GET", _at(scope, "roleDefinitions"), api="authorization",
                  params={"$filter": f"roleName eq '{_quote(role)}'"})["value"]
    if not matches:
        raise CliError(f"Role '{role}' doesn't exist.")
    result: dict[str, Any] = matches[0]
    return result


def resolve_assignee(assignee: str) -> tuple[str, str, str]:
    """(object id, principal type, display name) for a UPN, object id, app id or service principal name."""
    if "@" in assignee:
        user = graph_or_none(f"/users/{assignee}")
        if user:
            return user["id"], "User", user["userPrincipalName"]
    elif is_guid(assignee.lower()):
        for path, kind, name_key in (
            (f"/users/{assignee}", "User", "userPrincipalName"),
            (f"/servicePrincipals/{assignee}", "ServicePrincipal", "appId"),
            (f"/servicePrincipals(appId='{assignee}')", "ServicePrincipal", "appId"),
            (f"/groups/{assignee}", "Group", "displayName"),
        ):
            found = graph_or_none(path)
            if found:
                return found["id"], kind, found[name_key]
    raise CliError(f"Cannot find user or service principal in graph database for '{assignee}'. If the assignee is "
                   "an appId, make sure the corresponding service principal is created with 'cielo ad sp create "
                   "--id {assignee}'.")


@click.group("role")
def role() -> None:
    """Manage role definitions and assignments (Azure RBAC).

    \b
    Examples:
      cielo role assignment create --role "Cognitive Services User" --assignee ada@cielo.local --scope "$RG_ID"
      cielo role assignment list --scope "$RG_ID" -o table
      cielo role definition list -n Reader
      cielo role check --assignee ada@cielo.local --action Microsoft.Resources/subscriptions/resourceGroups/read"""


# ----------------------------------------------------------------------------- definitions
@role.group("definition")
def definition() -> None:
    """Manage role definitions.

    \b
    Examples:
      cielo role definition list --custom-role-only --query "[].roleName" -o tsv
      cielo role definition create --role-definition @my-role.json
      cielo role definition delete -n "My Role\""""


@definition.command("list")
@click.option("-n", "--name", default=None, help="A role's name or id.")
# As az's three-state flag: `--custom-role-only` alone is true, `--custom-role-only false|true` says which.
@click.option("--custom-role-only", type=click.BOOL, is_flag=False, flag_value=True, default=False,
              help="Only custom roles (alone, or `true`; `false` lists the built-ins too).")
@click.option("--scope", default=None, help="Scope (default: the current subscription).")
@global_options
def definition_list(name: str | None, custom_role_only: bool, scope: str | None) -> Any:
    """List role definitions: Azure's whole built-in catalogue and the custom roles at the scope."""
    at = _scope(scope, None, None)
    params = {}
    if name and not is_guid(name.lower()):
        params["$filter"] = f"roleName eq '{_quote(name)}'"
    elif custom_role_only:
        params["$filter"] = "type eq 'CustomRole'"
    if name and is_guid(name.lower()):
        found = [arm("GET", _at(at, f"roleDefinitions/{name}"), api="authorization")]
    else:
        found = arm("GET", _at(at, "roleDefinitions"), api="authorization", params=params)["value"]
    return [flatten(r) for r in found if not custom_role_only or r["properties"]["type"] == "CustomRole"]


def _load_definition(text: str) -> dict[str, Any]:
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    elif Path(text).is_file():
        text = Path(text).read_text()
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CliError(f"--role-definition is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CliError("--role-definition must be a JSON object")
    return data


def _pick(data: dict[str, Any], *names: str) -> Any:
    lowered = {k.lower(): v for k, v in data.items()}
    for name in names:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


@definition.command("create")
@click.option("--role-definition", required=True,
              help="JSON, a file, or @file: Name, Description, Actions, NotActions, DataActions, NotDataActions, "
                   "AssignableScopes (az's format).")
@global_options
def definition_create(role_definition: str) -> Any:
    """Create a custom role."""
    data = _load_definition(role_definition)
    scopes = _pick(data, "AssignableScopes", "assignableScopes") or []
    if not scopes:
        raise CliError("the role definition needs AssignableScopes")
    properties = {
        "roleName": _pick(data, "Name", "roleName"),
        "description": _pick(data, "Description"),
        "type": "CustomRole",
        "permissions": [{
            "actions": _pick(data, "Actions") or [], "notActions": _pick(data, "NotActions") or [],
            "dataActions": _pick(data, "DataActions") or [], "notDataActions": _pick(data, "NotDataActions") or [],
        }],
        "assignableScopes": scopes,
    }
    guid = str(uuid.uuid4())
    return flatten(arm("PUT", _at(scopes[0], f"roleDefinitions/{guid}"), {"properties": properties},
                       api="authorization"))


@definition.command("delete")
@click.option("-n", "--name", required=True, help="The custom role's name or id.")
@click.option("--scope", default=None, help="Scope (default: the current subscription).")
@global_options
def definition_delete(name: str, scope: str | None) -> None:
    """Delete a custom role (it must have no assignments)."""
    at = _scope(scope, None, None)
    found = resolve_role(name, at)
    if found["properties"]["type"] != "CustomRole":
        raise CliError(f"'{name}' is a built-in role and cannot be deleted.")
    arm("DELETE", _at(at, f"roleDefinitions/{found['name']}"), api="authorization")


# ----------------------------------------------------------------------------- assignments
@role.group("assignment")
def assignment() -> None:
    """Manage role assignments.

    \b
    Examples:
      cielo role assignment create --role Reader --assignee APP_ID --scope "$RG_ID"
      cielo role assignment list --assignee APP_ID --scope "$RG_ID"
      cielo role assignment delete --assignee APP_ID --role Reader --scope "$RG_ID\""""


@assignment.command("create")
@click.option("--role", required=True, help="Role name (e.g. \"Cognitive Services User\"), GUID or id.")
@click.option("--assignee", default=None, help="User principal name, object id, app id or service principal name.")
@click.option("--assignee-object-id", default=None, help="Object id (skips the directory lookup).")
@click.option("--assignee-principal-type", default=None,
              type=click.Choice(["User", "Group", "ServicePrincipal", "ForeignGroup"]),
              help="With --assignee-object-id.")
@click.option("--scope", required=True,
              help="Scope, e.g. a resource group's id. Required, as in az since 2.54: nothing is assigned at the "
                   "subscription unless you name it.")
@click.option("--description", default=None, help="A description.")
@click.option("--condition", default=None, help="An ABAC condition (refused: not supported by Cielo).")
@click.option("--subscription", default=None, help="Subscription name or id.")
@global_options
def assignment_create(role: str, assignee: str | None, assignee_object_id: str | None,
                      assignee_principal_type: str | None, scope: str, description: str | None,
                      condition: str | None, subscription: str | None) -> Any:
    """Assign a role to a user, group or service principal at a scope.

    Run again, it prints the existing assignment (az's create is idempotent).

    \b
    Examples:
      cielo role assignment create --role "Cognitive Services User" --assignee ada@cielo.local \\
          --scope "$(cielo group show -g cielo-rg --query id -o tsv)"
      cielo role assignment create --role Reader --assignee-object-id OBJECT_ID \\
          --assignee-principal-type ServicePrincipal --scope /subscriptions/SUB_ID/resourceGroups/cielo-rg"""
    if bool(assignee) == bool(assignee_object_id):
        raise CliError("usage error: --assignee STRING | --assignee-object-id GUID")
    if assignee_principal_type and not assignee_object_id:
        raise CliError("usage error: --assignee-object-id GUID --assignee-principal-type TYPE")
    if assignee_object_id:
        principal_id, principal_type = assignee_object_id, assignee_principal_type
    else:
        assert assignee is not None
        principal_id, principal_type, _ = resolve_assignee(assignee)
    at = _scope(scope, None, subscription)
    found_role = resolve_role(role, at)
    try:
        return create_assignment(found_role, principal_id, principal_type, at, description=description,
                                 condition=condition)
    except ServiceError as exc:
        if exc.code != "RoleAssignmentExists":
            raise
        # As az: the same principal, role and scope again is no error; print the assignment that exists.
        wanted = (principal_id.lower(), str(found_role["name"]).lower(), at.lower())
        existing = [a for a in arm("GET", _at(at, "roleAssignments"), api="authorization",
                                   params={"$filter": "atScope()"})["value"]
                    if (str(a["properties"]["principalId"]).lower(),
                        str(a["properties"]["roleDefinitionId"]).lower().rsplit("/", 1)[-1],
                        str(a["properties"]["scope"]).lower()) == wanted]
        if not existing:
            raise
        return _decorate(existing, at)[0]


def create_assignment(role: str | dict[str, Any], principal_id: str, principal_type: str | None, scope: str, *,
                      description: str | None = None, condition: str | None = None) -> dict[str, Any]:
    """PUT a new role assignment (a role given by name or id is looked up at `scope`); ARM's refusal, such as
    `RoleAssignmentExists`, is raised as a `ServiceError`."""
    at = scope.rstrip("/") or "/"
    found_role = resolve_role(role, at) if isinstance(role, str) else role
    properties: dict[str, Any] = {"roleDefinitionId": found_role["id"], "principalId": principal_id}
    if principal_type:
        properties["principalType"] = principal_type
    if description:
        properties["description"] = description
    if condition:
        properties["condition"] = condition
        properties["conditionVersion"] = "2.0"
    created = flatten(arm("PUT", _at(at, f"roleAssignments/{uuid.uuid4()}"), {"properties": properties},
                          api="authorization"))
    created.setdefault("systemData", None)  # az prints its SDK model, which has the field, null when not sent
    if created.get("resourceGroup") is None:
        created.pop("resourceGroup", None)  # az adds resourceGroup only to ids inside a resource group
    return created


def _decorate(items: list[dict[str, Any]], scope: str) -> list[dict[str, Any]]:
    """az's list shape: null fields left out, principalName and roleDefinitionName added."""
    names: dict[str, str] = {}
    out = []
    for item in items:
        # az's list prints the assignments without their null fields (condition, description, ...).
        flat = {key: value for key, value in flatten(item).items() if value is not None}
        role_guid = str(flat["roleDefinitionId"]).rsplit("/", 1)[-1]
        if role_guid not in names:
            try:
                names[role_guid] = resolve_role(role_guid, scope)["properties"]["roleName"]
            except CliError:
                names[role_guid] = ""
        flat["roleDefinitionName"] = names[role_guid]
        principal = graph_or_none(f"/users/{flat['principalId']}") if flat["principalType"] == "User" else None
        sp = graph_or_none(f"/servicePrincipals/{flat['principalId']}") if flat["principalType"] == "ServicePrincipal" \
            else None
        flat["principalName"] = (principal or {}).get("userPrincipalName") or (sp or {}).get("appId") or ""
        out.append(flat)
    return out


@assignment.command("list")
@click.option("--assignee", default=None, help="Only this principal's assignments.")
@click.option("--role", default=None, help="Only this role's assignments.")
@click.option("--scope", default=None, help="Scope (default: the current subscription).")
@click.option("-g", "--resource-group", default=None, help="A resource group as the scope.")
@click.option("--all", "show_all", is_flag=True, help="Also assignments below the scope.")
@click.option("--include-inherited", is_flag=True, help="Also assignments above the scope.")
@click.option("--subscription", default=None, help="Subscription name or id.")
@global_options
@table_layout(lambda result: [{"Principal": a.get("principalName"), "Role": a.get("roleDefinitionName"),
                               "Scope": a.get("scope")} for a in result])
def assignment_list(assignee: str | None, role: str | None, scope: str | None, resource_group: str | None,
                    show_all: bool, include_inherited: bool, subscription: str | None) -> Any:
    """List role assignments at a scope (az shows those at the scope; --all adds those below).

    \b
    Examples:
      cielo role assignment list --scope "$(cielo group show -g cielo-rg --query id -o tsv)" -o table
      cielo role assignment list --assignee ada@cielo.local --include-inherited"""
    at = _scope(scope, resource_group, subscription)
    params: dict[str, str] = {}
    principal_id = resolve_assignee(assignee)[0] if assignee else None
    if principal_id:
        params["$filter"] = f"assignedTo('{principal_id}')"
    items = arm("GET", _at(at, "roleAssignments"), api="authorization", params=params)["value"]
    key = at.lower()
    keep = []
    for item in items:
        item_scope = str(item["properties"]["scope"]).lower()
        below = item_scope.startswith(key.rstrip("/") + "/") and item_scope != key
        above = key.startswith(item_scope.rstrip("/") + "/") or (item_scope == "/" and key != "/")
        if (below and not show_all) or (above and not include_inherited and not principal_id):
            continue
        keep.append(item)
    decorated = _decorate(keep, at)
    if role:
        wanted = role.lower()
        decorated = [a for a in decorated if wanted in (a["roleDefinitionName"].lower(),
                                                        str(a["roleDefinitionId"]).rsplit("/", 1)[-1].lower())]
    return decorated


@assignment.command("delete")
@click.option("--ids", multiple=True, help="Full role assignment ids.")
@click.option("--assignee", default=None, help="Delete this principal's assignments (with --role/--scope).")
@click.option("--role", default=None, help="Only this role's assignments.")
@click.option("--scope", default=None, help="Scope (default: the current subscription).")
@click.option("-g", "--resource-group", default=None, help="A resource group as the scope.")
@click.option("--yes", "-y", is_flag=True, help="Accepted for az compatibility.")
@click.option("--subscription", default=None, help="Subscription name or id.")
@global_options
def assignment_delete(ids: tuple[str, ...], assignee: str | None, role: str | None, scope: str | None,
                      resource_group: str | None, yes: bool, subscription: str | None) -> None:
    """Delete role assignments by id, or by assignee/role at a scope."""
    targets = list(ids)
    if not targets:
        if not assignee and not role:
            raise CliError("usage error: --ids IDS | --assignee ASSIGNEE [--role ROLE] [--scope SCOPE]")
        at = _scope(scope, resource_group, subscription)
        principal_id = resolve_assignee(assignee)[0] if assignee else None
        items = arm("GET", _at(at, "roleAssignments"), api="authorization",
                    params={"$filter": "atScope()"})["value"]
        for item in _decorate(items, at):
            if item["scope"].lower() != at.lower():
                continue
            if principal_id and item["principalId"] != principal_id.lower():
                continue
            if role and role.lower() not in (item["roleDefinitionName"].lower(),
                                             str(item["roleDefinitionId"]).rsplit("/", 1)[-1].lower()):
                continue
            targets.append(item["id"])
        if not targets:
            raise CliError("No matched assignments were found to delete")
    for target in targets:
        arm("DELETE", target, api="authorization")


# ----------------------------------------------------------------------------- explain
@role.command("check")
@click.option("--assignee", required=True, help="User principal name, object id or app id.")
@click.option("--action", required=True, help="An action, e.g. Microsoft.Authorization/roleAssignments/write.")
@click.option("--scope", default=None, help="Scope (default: the current subscription).")
@click.option("-g", "--resource-group", default=None, help="A resource group as the scope.")
@click.option("--data-action/--control-action", "data_action", default=None,
              help="Check a data action (default: yes for .../OpenAI/... actions).")
@click.option("--subscription", default=None, help="Subscription name or id.")
@global_options
def role_check(assignee: str, action: str, scope: str | None, resource_group: str | None,
               data_action: bool | None, subscription: str | None) -> Any:
    """Explain access: is ACTION allowed for ASSIGNEE at SCOPE, which assignment grants it, or what is missing.

    Also warns of each action in the assignee's custom roles there that matches no operation this Cielo serves
    (`unknownActions`): accepted, as Azure accepts any well-formed action, but granting nothing here."""
    at = _scope(scope, resource_group, subscription)
    principal_id, _, _ = resolve_assignee(assignee)
    is_data = data_action if data_action is not None else "/openai/" in action.lower()
    result: dict[str, Any] = arm("POST", _at(at, "checkAccess"),
                                 {"principalId": principal_id, "action": action, "isDataAction": is_data},
                                 api="authorization")
    result["matchedAssignments"] = [flatten(a) for a in result.get("matchedAssignments", [])]
    for unknown in result.get("unknownActions", []):
        warn(f"{unknown['message']} It is accepted, as Azure accepts any well-formed action, but grants nothing "
             "here.")
    return result
