"""`cielo functionapp`: function apps and their managed identities, mirroring `az functionapp`.

A function app is a web app (`Microsoft.Web/sites`) whose `kind` says `functionapp` (`functionapp,linux` on Linux),
as in Azure; `list` keeps the sites whose kind says so, as az does (azure-cli appservice/utils.py, is_functionapp).
Cielo runs no code: a function app here is a registration that gives the code running elsewhere an identity, which
it gets tokens for through `cielo agent`'s App Service protocol (IDENTITY_ENDPOINT/IDENTITY_HEADER), as Functions
do. `identity assign|remove|show` print the ARM identity block, as az's do for function apps (not the
`systemAssignedIdentity` shape of `az vm identity assign`).
"""

from __future__ import annotations

from typing import Any

import click

from cielo.cli.armcall import group_path, subscription_id, with_resource_group
from cielo.cli.common import CliError, ResourceNotFound, ServiceError, global_options
from cielo.cli.compute import (
    KINDS,
    AzListCommand,
    add_agent_credential,
    arm_call,
    identity_body,
    is_function_app,
    resource_path,
    uami_id,
)
from cielo.cli.role import create_assignment

SITE = KINDS["webapp"]
OS_KINDS = {"windows": "functionapp", "linux": "functionapp,linux"}


@click.group("functionapp")
def functionapp() -> None:
    """Manage function apps and their managed identities.

    \b
    Examples:
      cielo functionapp create -g my-rg -n my-func --os-type Linux --assign-identity
      cielo functionapp identity assign -g my-rg -n my-func --role "Cognitive Services OpenAI User" --scope $accountId
      cielo functionapp list --query "[].{name:name, kind:kind}" -o table
      cielo functionapp agent-credential -g my-rg -n my-func --file my-func.credential"""


def _grant(identity: dict[str, Any] | None, role: str, scope: str | None) -> None:
    """az's `--role`/`--scope`: a role for the system-assigned identity at the scope (already held: fine, as az)."""
    if scope is None:
        return
    principal_id = (identity or {}).get("principalId")
    if not principal_id:
        raise CliError("--scope gives a role to the system-assigned identity, and this function app has none: "
                       "add [system] to the identities.")
    try:
        create_assignment(role, str(principal_id), None, scope)
    except ServiceError as exc:
        if exc.code != "RoleAssignmentExists":
            raise


@functionapp.command("create", cls=AzListCommand)
@click.option("-g", "--resource-group", required=True, help="Resource group name.")
@click.option("-n", "--name", required=True, help="The function app's name.")
@click.option("-l", "--location", default=None, help="Location (default: the resource group's).")
@click.option("--os-type", type=click.Choice(["Windows", "Linux"], case_sensitive=False), default="Windows",
              show_default=True, help="The kind it is registered as: functionapp (Windows) or functionapp,linux.")
@click.option("--assign-identity", "assign_identity", multiple=True, is_flag=False, flag_value="[system]",
              help="Enable managed identities: [system] (alone: the default) and/or user-assigned identity names or "
              "ids, space-separated.")
@click.option("--role", default="Contributor", show_default=True,
              help="Role name or id the system-assigned identity gets at --scope.")
@click.option("--scope", default=None, help="Scope the system-assigned identity gets --role at.")
@global_options
def create(resource_group: str, name: str, location: str | None, os_type: str, assign_identity: tuple[str, ...],
           role: str, scope: str | None) -> Any:
    """Create (register) a function app.

    Cielo runs no code and needs no App Service plan or storage account: the function app is the identity that
    code running elsewhere uses through `cielo agent`.

    \b
    Examples:
      cielo functionapp create -g my-rg -n my-func
      cielo functionapp create -g my-rg -n my-func --os-type Linux --assign-identity [system] my-identity
      cielo functionapp create -g my-rg -n my-func --assign-identity --role Reader --scope $groupId"""
    if scope is not None and not assign_identity:
        raise CliError("--scope and --role need --assign-identity.")
    body: dict[str, Any] = {"kind": OS_KINDS[os_type.lower()]}
    if location:
        body["location"] = location
    if assign_identity:
        body["identity"] = identity_body(assign_identity, resource_group, None, remove=False)
    created = arm_call("PUT", resource_path(SITE, resource_group, name), body)
    _grant(created.get("identity"), role, scope)
    return with_resource_group(created)


@functionapp.command("show")
@click.option("-g", "--resource-group", required=True, help="Resource group name.")
@click.option("-n", "--name", required=True, help="The function app's name.")
@global_options
def show(resource_group: str, name: str) -> Any:
    """Show a function app.

    \b
    Examples:
      cielo functionapp show -g my-rg -n my-func
      cielo functionapp show -g my-rg -n my-func --query identity.principalId -o tsv"""
    return with_resource_group(arm_call("GET", resource_path(SITE, resource_group, name)))


@functionapp.command("list")
@click.option("-g", "--resource-group", default=None, help="Resource group name (default: the whole subscription).")
@global_options
def list_(resource_group: str | None) -> Any:
    """List function apps (the sites whose kind says functionapp).

    \b
    Examples:
      cielo functionapp list -g my-rg
      cielo functionapp list --query "[].name" -o tsv"""
    base = group_path(resource_group) if resource_group else f"/subscriptions/{subscription_id(None)}"
    sites = arm_call("GET", f"{base}/providers/{SITE[0]}/{SITE[1]}")["value"]
    return [with_resource_group(s) for s in sites if is_function_app(s)]


@functionapp.command("delete")
@click.option("-g", "--resource-group", required=True, help="Resource group name.")
@click.option("-n", "--name", required=True, help="The function app's name.")
@global_options
def delete(resource_group: str, name: str) -> None:
    """Delete a function app; its system-assigned identity, that identity's role assignments and the app's host
    credentials go too.

    \b
    Examples:
      cielo functionapp delete -g my-rg -n my-func"""
    arm_call("DELETE", resource_path(SITE, resource_group, name))


@functionapp.group("identity")
def identity() -> None:
    """Manage the function app's managed identities.

    \b
    Examples:
      cielo functionapp identity assign -g my-rg -n my-func
      cielo functionapp identity assign -g my-rg -n my-func --identities [system] my-identity
      cielo functionapp identity show -g my-rg -n my-func --query principalId -o tsv
      cielo functionapp identity remove -g my-rg -n my-func --identities my-identity"""


@identity.command("assign", cls=AzListCommand)
@click.option("-g", "--resource-group", required=True, help="Resource group name.")
@click.option("-n", "--name", required=True, help="The function app's name.")
@click.option("--identities", multiple=True,
              help="Space-separated identities to assign: [system] (the default) and/or user-assigned identity names "
              "or ids.")
@click.option("--role", default="Contributor", show_default=True,
              help="Role name or id the system-assigned identity gets at --scope.")
@click.option("--scope", default=None, help="Scope the system-assigned identity gets --role at.")
@global_options
def assign(resource_group: str, name: str, identities: tuple[str, ...], role: str, scope: str | None) -> Any:
    """Assign managed identities (the system-assigned one by default); with --scope, give it --role there.

    \b
    Examples:
      cielo functionapp identity assign -g my-rg -n my-func
      cielo functionapp identity assign -g my-rg -n my-func --identities my-identity
      cielo functionapp identity assign -g my-rg -n func --role "Cognitive Services OpenAI User" --scope $accountId"""
    path = resource_path(SITE, resource_group, name)
    current = arm_call("GET", path).get("identity")
    updated = arm_call("PATCH", path, {"identity": identity_body(identities, resource_group, current, False)})
    _grant(updated.get("identity"), role, scope)
    return updated.get("identity")


@identity.command("remove", cls=AzListCommand)
@click.option("-g", "--resource-group", required=True, help="Resource group name.")
@click.option("-n", "--name", required=True, help="The function app's name.")
@click.option("--identities", multiple=True,
              help="Space-separated identities to remove: [system] (the default) and/or user-assigned identity names "
              "or ids.")
@global_options
def remove(resource_group: str, name: str, identities: tuple[str, ...]) -> Any:
    """Remove managed identities (the system-assigned one by default, which is then deleted with its role
    assignments).

    \b
    Examples:
      cielo functionapp identity remove -g my-rg -n my-func
      cielo functionapp identity remove -g my-rg -n my-func --identities my-identity"""
    path = resource_path(SITE, resource_group, name)
    current = arm_call("GET", path).get("identity")
    attached = {k.lower() for k in ((current or {}).get("userAssignedIdentities") or {})}
    missing = [i for i in (uami_id(i, resource_group) for i in identities if i != "[system]")
               if i.lower() not in attached]
    if missing:
        # az's ResourceNotFoundError (exit 3), rather than a removal that silently does nothing.
        raise ResourceNotFound(404, "ResourceNotFound", f"'{','.join(missing)}' are not associated with '{name}'")
    updated = arm_call("PUT", path, {"identity": identity_body(identities, resource_group, current, True)})
    return updated.get("identity")


@identity.command("show")
@click.option("-g", "--resource-group", required=True, help="Resource group name.")
@click.option("-n", "--name", required=True, help="The function app's name.")
@global_options
def identity_show(resource_group: str, name: str) -> Any:
    """Show the function app's identity block (nothing when it has none).

    \b
    Examples:
      cielo functionapp identity show -g my-rg -n my-func
      cielo functionapp identity show -g my-rg -n my-func --query principalId -o tsv"""
    return arm_call("GET", resource_path(SITE, resource_group, name)).get("identity")


add_agent_credential(functionapp, SITE, "function app")
