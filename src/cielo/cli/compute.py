"""`cielo vm`, `cielo vmss`, `cielo webapp` and `cielo identity`: workloads and their managed identities,
mirroring az. A VM here is a registered workload host; `agent-credential` enrolls a host agent to it.
(`cielo functionapp`, in cli/functionapp.py, uses the helpers here.)"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from cielo.agent.credential import HostCredentialFile
from cielo.cli.armcall import arm, group_path, with_resource_group
from cielo.cli.common import CliError, SpaceListCommand, global_options
from cielo.client.http import default_verify

KINDS = {
    "vm": ("Microsoft.Compute", "virtualMachines", "2023-09-01"),
    "vmss": ("Microsoft.Compute", "virtualMachineScaleSets", "2023-09-01"),
    "webapp": ("Microsoft.Web", "sites", "2023-01-01"),
}
UAMI = ("Microsoft.ManagedIdentity", "userAssignedIdentities", "2023-01-31")


class AzListCommand(SpaceListCommand):
    """Takes az's space-separated identity lists (`--identities [system] myId`, `--assign-identity [system] myId`)."""

    LIST_OPTIONS = ("--identities", "--assign-identity")


def resource_path(kind: tuple[str, str, str], resource_group: str, name: str) -> str:
    return f"{group_path(resource_group)}/providers/{kind[0]}/{kind[1]}/{name}"


def arm_call(method: str, path: str, body: Any = None) -> Any:
    return arm(method, path, body, api="resources")


def uami_id(value: str, resource_group: str) -> str:
    return value if value.startswith("/") else resource_path(UAMI, resource_group, value)


def identity_body(identities: tuple[str, ...], resource_group: str, current: dict[str, Any] | None,
                   remove: bool) -> dict[str, Any]:
    """az's `--identities`: `[system]` (the default) and user-assigned names or ids."""
    wanted = identities or ("[system]",)
    system_now = "systemassigned" in str((current or {}).get("type", "")).lower()
    users_now = dict((current or {}).get("userAssignedIdentities") or {})
    want_system = "[system]" in wanted
    user_ids = [uami_id(i, resource_group) for i in wanted if i != "[system]"]
    if remove:
        system = system_now and not want_system
        users: dict[str, Any] = {k: {} for k in users_now if k.lower() not in {u.lower() for u in user_ids}}
    else:
        system = system_now or want_system
        users = {k: {} for k in users_now}
        users.update({u: {} for u in user_ids})
    kind = ", ".join(k for k, on in (("SystemAssigned", system), ("UserAssigned", bool(users))) if on) or "None"
    body: dict[str, Any] = {"type": kind}
    if users:
        body["userAssignedIdentities"] = users
    return body


def is_function_app(site: dict[str, Any]) -> bool:
    """az tells function apps from web apps and logic apps by the site's `kind`: `functionapp`, `functionapp,linux`
    (a function app), `functionapp,workflowapp` (a logic app), `app` (a web app): azure-cli appservice/utils.py,
    is_functionapp and is_webapp, which compare case-sensitively."""
    kind = str(site.get("kind") or "")
    return "functionapp" in kind and "workflowapp" not in kind


def is_web_app(site: dict[str, Any]) -> bool:
    kind = str(site.get("kind") or "")
    return "app" in kind and not is_function_app(site) and "workflowapp" not in kind


def az_identity(identity: dict[str, Any] | None) -> dict[str, Any]:
    """The shape `az vm identity assign` prints."""
    identity = identity or {}
    return {"systemAssignedIdentity": identity.get("principalId") or "",
            "userAssignedIdentities": {k: {"clientId": v.get("clientId"), "principalId": v.get("principalId")}
                                       for k, v in (identity.get("userAssignedIdentities") or {}).items()}}


def _add_commands(group: click.Group, kind_name: str) -> None:
    kind = KINDS[kind_name]
    label = {"vm": "virtual machine", "vmss": "scale set", "webapp": "web app"}[kind_name]

    @group.command("create", cls=AzListCommand)
    @click.option("-g", "--resource-group", required=True, help="Resource group name.")
    @click.option("-n", "--name", required=True, help=f"The {label}'s name.")
    @click.option("-l", "--location", default=None, help="Location (default: the resource group's).")
    @click.option("--assign-identity", "assign_identity", multiple=True, is_flag=False, flag_value="[system]",
                  help="Enable managed identities: [system] (alone: the default) and/or user-assigned identity "
                  "names or ids, space-separated.")
    @global_options
    def create(resource_group: str, name: str, location: str | None, assign_identity: tuple[str, ...]) -> Any:
        body: dict[str, Any] = {}
        if location:
            body["location"] = location
        if assign_identity:
            body["identity"] = identity_body(assign_identity, resource_group, None, remove=False)
        created = arm_call("PUT", resource_path(kind, resource_group, name), body)
        out = with_resource_group(created)
        if assign_identity:
            out["identity"] = az_identity(created.get("identity"))
        return out

    create.help = f"Create (register) a {label}."

    @group.command("show")
    @click.option("-g", "--resource-group", required=True, help="Resource group name.")
    @click.option("-n", "--name", required=True, help="Name.")
    @global_options
    def show(resource_group: str, name: str) -> Any:
        return with_resource_group(arm_call("GET", resource_path(kind, resource_group, name)))

    show.help = f"Show a {label}."

    @group.command("list")
    @click.option("-g", "--resource-group", required=True, help="Resource group name.")
    @global_options
    def list_(resource_group: str) -> Any:
        path = f"{group_path(resource_group)}/providers/{kind[0]}/{kind[1]}"
        found = arm_call("GET", path)["value"]
        if kind_name == "webapp":  # az's is_webapp: the sites that are neither function apps nor logic apps
            found = [r for r in found if is_web_app(r)]
        return [with_resource_group(r) for r in found]

    list_.help = f"List {label}s in a resource group."

    @group.command("delete")
    @click.option("-g", "--resource-group", required=True, help="Resource group name.")
    @click.option("-n", "--name", required=True, help="Name.")
    @click.option("-y", "--yes", is_flag=True, help="Do not prompt for confirmation.")
    @global_options
    def delete(resource_group: str, name: str, yes: bool) -> None:
        arm_call("DELETE", resource_path(kind, resource_group, name))

    delete.help = f"Delete a {label}; its system-assigned identity and that identity's role assignments go too."

    @group.group("identity")
    def identity() -> None:
        pass

    identity.help = (f"Manage the {label}'s managed identities.\n\n\b\nExamples:\n"
                     f"  cielo {kind_name} identity assign -g my-rg -n NAME --identities [system] my-identity\n"
                     f"  cielo {kind_name} identity show -g my-rg -n NAME --query principalId -o tsv\n"
                     f"  cielo {kind_name} identity remove -g my-rg -n NAME --identities my-identity")

    @identity.command("assign", cls=AzListCommand)
    @click.option("-g", "--resource-group", required=True, help="Resource group name.")
    @click.option("-n", "--name", required=True, help="Name.")
    @click.option("--identities", multiple=True,
                  help="[system] (default) and/or user-assigned identity names or ids, space-separated.")
    @global_options
    def assign(resource_group: str, name: str, identities: tuple[str, ...]) -> Any:
        path = resource_path(kind, resource_group, name)
        current = arm_call("GET", path).get("identity")
        updated = arm_call("PATCH", path, {"identity": identity_body(identities, resource_group, current, False)})
        return az_identity(updated.get("identity"))

    assign.help = "Enable managed identities (system-assigned by default)."

    @identity.command("remove", cls=AzListCommand)
    @click.option("-g", "--resource-group", required=True, help="Resource group name.")
    @click.option("-n", "--name", required=True, help="Name.")
    @click.option("--identities", multiple=True,
                  help="[system] (default) and/or user-assigned identity names or ids, space-separated.")
    @global_options
    def remove(resource_group: str, name: str, identities: tuple[str, ...]) -> Any:
        path = resource_path(kind, resource_group, name)
        current = arm_call("GET", path).get("identity")
        updated = arm_call("PUT", path, {"identity": identity_body(identities, resource_group, current, True)})
        return az_identity(updated.get("identity"))

    remove.help = "Remove managed identities; a removed system-assigned identity is deleted."

    @identity.command("show")
    @click.option("-g", "--resource-group", required=True, help="Resource group name.")
    @click.option("-n", "--name", required=True, help="Name.")
    @global_options
    def identity_show(resource_group: str, name: str) -> Any:
        return arm_call("GET", resource_path(kind, resource_group, name)).get("identity")

    identity_show.help = "Show the ARM identity block."

    add_agent_credential(group, kind, label)


def add_agent_credential(group: click.Group, kind: tuple[str, str, str], label: str) -> None:
    """`GROUP agent-credential`: enroll a host agent to the resource (or revoke its credentials)."""

    @group.command("agent-credential")
    @click.option("-g", "--resource-group", required=True, help="Resource group name.")
    @click.option("-n", "--name", required=True, help="Name.")
    @click.option("--file", "file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="Where to write the host credential (mode 0600).")
    @click.option("--revoke", is_flag=True, help="Revoke every host credential of this resource instead.")
    @global_options
    def agent_credential(resource_group: str, name: str, file: Path | None, revoke: bool) -> Any:
        path = resource_path(kind, resource_group, name)
        if revoke:
            return arm_call("POST", f"{path}/revokeHostCredentials")
        if file is None:
            raise CliError("--file is required (the credential is written there, never printed)")
        issued = arm_call("POST", f"{path}/issueHostCredential")
        verify = default_verify()
        bundle = os.path.abspath(verify) if isinstance(verify, str) else None
        HostCredentialFile(issued["endpoint"], issued["tenantId"], issued["resourceId"], issued["credential"],
                           bundle).save(file)
        return {"file": str(file.resolve()), "resourceId": issued["resourceId"]}

    agent_credential.help = (f"Write a host credential enrolling `cielo agent` to this {label} (or --revoke them). "
                             "Keep it on the host, mode 0600; never give it to workloads.")


@click.group("vm")
def vm() -> None:
    """Manage virtual machines (registered workload hosts) and their managed identities.

    \b
    Examples:
      cielo vm create -g my-rg -n host1 --assign-identity
      cielo vm identity show -g my-rg -n host1
      cielo vm agent-credential -g my-rg -n host1 --file host1.credential"""


@click.group("vmss")
def vmss() -> None:
    """Manage virtual machine scale sets and their managed identities.

    \b
    Examples:
      cielo vmss create -g my-rg -n pool --assign-identity [system] my-identity
      cielo vmss identity remove -g my-rg -n pool --identities my-identity"""


@click.group("webapp")
def webapp() -> None:
    """Manage web apps and their managed identities.

    \b
    Examples:
      cielo webapp create -g my-rg -n site --assign-identity
      cielo webapp agent-credential -g my-rg -n site --file site.credential"""


for _group, _kind in ((vm, "vm"), (vmss, "vmss"), (webapp, "webapp")):
    _add_commands(_group, _kind)


# ----------------------------------------------------------------------------- user-assigned identities
@click.group("identity")
def identity() -> None:
    """Manage user-assigned managed identities.

    \b
    Examples:
      cielo identity create -g my-rg -n my-identity
      cielo identity show -g my-rg -n my-identity --query clientId -o tsv"""


def _uami_out(resource: dict[str, Any]) -> dict[str, Any]:
    props = resource.get("properties") or {}
    return {"clientId": props.get("clientId"), "id": resource["id"], "location": resource.get("location"),
            "name": resource["name"], "principalId": props.get("principalId"),
            "resourceGroup": with_resource_group(resource)["resourceGroup"], "tags": resource.get("tags") or {},
            "tenantId": props.get("tenantId"), "type": resource["type"]}


@identity.command("create")
@click.option("-g", "--resource-group", required=True, help="Resource group name.")
@click.option("-n", "--name", required=True, help="Identity name.")
@click.option("-l", "--location", default=None, help="Location (default: the resource group's).")
@global_options
def identity_create(resource_group: str, name: str, location: str | None) -> Any:
    """Create a user-assigned identity."""
    body = {"location": location} if location else {}
    return _uami_out(arm_call("PUT", resource_path(UAMI, resource_group, name), body))


@identity.command("show")
@click.option("-g", "--resource-group", required=True, help="Resource group name.")
@click.option("-n", "--name", required=True, help="Identity name.")
@global_options
def identity_show(resource_group: str, name: str) -> Any:
    """Show a user-assigned identity."""
    return _uami_out(arm_call("GET", resource_path(UAMI, resource_group, name)))


@identity.command("list")
@click.option("-g", "--resource-group", required=True, help="Resource group name.")
@global_options
def identity_list(resource_group: str) -> Any:
    """List user-assigned identities."""
    path = f"{group_path(resource_group)}/providers/{UAMI[0]}/{UAMI[1]}"
    return [_uami_out(r) for r in arm_call("GET", path)["value"]]


@identity.command("delete")
@click.option("-g", "--resource-group", required=True, help="Resource group name.")
@click.option("-n", "--name", required=True, help="Identity name.")
@global_options
def identity_delete(resource_group: str, name: str) -> None:
    """Delete a user-assigned identity (it is detached everywhere; its role assignments go)."""
    arm_call("DELETE", resource_path(UAMI, resource_group, name))
