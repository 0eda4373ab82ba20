"""`cielo vm|vmss|webapp|identity …` run in-process: workloads, their managed identities (system-assigned and
user-assigned), and the host credentials that enroll a host agent, as a user sees them (exit code, stdout,
stderr), with what ARM then holds."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inproc import World, unique
from inproc_cli import Cli, signed_in_cli

from cielo.control.identities import IdentityError


@pytest.fixture()
def cli(world: World, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Cli]:
    with signed_in_cli(world, tmp_path_factory, tmp_path) as runner:
        yield runner


@pytest.fixture()
def group(cli: Cli) -> Iterator[str]:
    name = unique("cli-mi")
    cli.ok("group", "create", "-n", name, "-l", "local", "-o", "none")
    yield name
    cli.ok("group", "delete", "-n", name, "--yes")


def _principal_exists(world: World, object_id: str) -> bool:
    return world.services.directory.repo.find_service_principal(object_id) is not None


def test_user_assigned_identity_lifecycle(cli: Cli, world: World, group: str) -> None:
    created = cli.json("identity", "create", "-g", group, "-n", "uami-one", "-l", "West Europe")
    assert created["id"] == (f"/subscriptions/{world.sub}/resourcegroups/{group}/providers/"
                             "Microsoft.ManagedIdentity/userAssignedIdentities/uami-one")
    assert (created["name"], created["location"], created["resourceGroup"], created["tenantId"], created["type"]) == (
        "uami-one", "westeurope", group, world.tenant, "Microsoft.ManagedIdentity/userAssignedIdentities")
    assert _principal_exists(world, created["principalId"])
    # PUT again: the same identity (its principal and client id are kept).
    again = cli.json("identity", "create", "-g", group, "-n", "uami-one")
    assert (again["principalId"], again["clientId"], again["location"]) == (
        created["principalId"], created["clientId"], "westeurope")
    assert cli.json("identity", "show", "-g", group, "-n", "uami-one")["clientId"] == created["clientId"]
    assert [i["name"] for i in cli.json("identity", "list", "-g", group)] == ["uami-one"]
    assert cli.ok("identity", "delete", "-g", group, "-n", "uami-one") == ""
    assert not _principal_exists(world, created["principalId"])
    assert cli.json("identity", "list", "-g", group) == []
    err = cli.fails("identity", "show", "-g", group, "-n", "uami-one", code=3)
    assert err.startswith("ERROR: (ResourceNotFound) ") and "userAssignedIdentities/uami-one" in err, err


@pytest.mark.parametrize("kind", ["vm", "vmss", "webapp"])
def test_workload_with_both_identity_kinds(cli: Cli, world: World, group: str, kind: str) -> None:
    uami = cli.json("identity", "create", "-g", group, "-n", f"uami-{kind}")
    out = cli.json(kind, "create", "-g", group, "-n", f"{kind}-a", "--assign-identity", "[system]", f"uami-{kind}")
    assert out["resourceGroup"] == group and out["name"] == f"{kind}-a"
    system = out["identity"]["systemAssignedIdentity"]
    assert _principal_exists(world, system)
    assert out["identity"]["userAssignedIdentities"] == {
        uami["id"]: {"clientId": uami["clientId"], "principalId": uami["principalId"]}}
    block = cli.json(kind, "identity", "show", "-g", group, "-n", f"{kind}-a")
    assert block["type"] == "SystemAssigned, UserAssigned" and block["principalId"] == system
    shown = cli.json(kind, "show", "-g", group, "-n", f"{kind}-a")
    expected_props = {"vm": "vmId", "vmss": "uniqueId", "webapp": "defaultHostName"}[kind]
    assert expected_props in shown["properties"], shown
    assert [r["name"] for r in cli.json(kind, "list", "-g", group)] == [f"{kind}-a"]

    # Removing the system-assigned identity deletes its principal; the user-assigned one stays attached.
    after = cli.json(kind, "identity", "remove", "-g", group, "-n", f"{kind}-a", "--identities", "[system]")
    assert after["systemAssignedIdentity"] == "" and list(after["userAssignedIdentities"]) == [uami["id"]]
    assert not _principal_exists(world, system)
    # Assigning it again makes a new principal.
    again = cli.json(kind, "identity", "assign", "-g", group, "-n", f"{kind}-a")
    assert again["systemAssignedIdentity"] not in ("", system)

    # Deleting the user-assigned identity detaches it from the workload.
    cli.ok("identity", "delete", "-g", group, "-n", f"uami-{kind}")
    block = cli.json(kind, "identity", "show", "-g", group, "-n", f"{kind}-a")
    assert block["type"] == "SystemAssigned" and "userAssignedIdentities" not in block, block

    # Deleting the workload deletes its system-assigned principal.
    cli.ok(kind, "delete", "-g", group, "-n", f"{kind}-a", "--yes")
    assert not _principal_exists(world, again["systemAssignedIdentity"])
    assert cli.json(kind, "list", "-g", group) == []


def test_identities_given_by_id_and_removed_one_by_one(cli: Cli, group: str) -> None:
    one = cli.json("identity", "create", "-g", group, "-n", "uami-1")
    two = cli.json("identity", "create", "-g", group, "-n", "uami-2")
    cli.ok("vm", "create", "-g", group, "-n", "vm-u", "-o", "none")
    assert cli.ok("vm", "identity", "show", "-g", group, "-n", "vm-u") == ""  # no identity block at all
    both = cli.json("vm", "identity", "assign", "-g", group, "-n", "vm-u", "--identities", one["id"], "uami-2")
    assert both["systemAssignedIdentity"] == "" and set(both["userAssignedIdentities"]) == {one["id"], two["id"]}
    left = cli.json("vm", "identity", "remove", "-g", group, "-n", "vm-u", "--identities=uami-1")
    assert list(left["userAssignedIdentities"]) == [two["id"]]
    none = cli.json("vm", "identity", "remove", "-g", group, "-n", "vm-u", "--identities", "uami-2")
    assert none == {"systemAssignedIdentity": "", "userAssignedIdentities": {}}
    assert cli.ok("vm", "identity", "show", "-g", group, "-n", "vm-u") == ""


@pytest.mark.parametrize(("args", "error"), [
    (("--assign-identity", "no-such-uami"), "ERROR: (FailedIdentityOperation) The user-assigned identity"),
    (("--assign-identity", "/not/an/id"), "ERROR: (BadRequest) The scope '/not/an/id' is not valid"),
])
def test_a_missing_or_malformed_user_assigned_identity_is_refused(cli: Cli, group: str, args: tuple[str, ...],
                                                                  error: str) -> None:
    assert cli.fails("vm", "create", "-g", group, "-n", "vm-bad", *args).startswith(error)
    assert cli.json("vm", "list", "-g", group) == []


def test_agent_credential_is_written_private_and_can_be_revoked(cli: Cli, world: World, group: str,
                                                               tmp_path: Path) -> None:
    cli.ok("webapp", "create", "-g", group, "-n", "app-c", "--assign-identity", "-o", "none")
    assert cli.fails("webapp", "agent-credential", "-g", group, "-n", "app-c") == \
        "ERROR: --file is required (the credential is written there, never printed)\n"
    target = tmp_path / "host" / "credential.json"
    out = cli.json("webapp", "agent-credential", "-g", group, "-n", "app-c", "--file", str(target))
    resource_id = f"{world.rg_path(group)}/providers/Microsoft.Web/sites/app-c"
    assert out == {"file": str(target.resolve()), "resourceId": resource_id}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    saved: dict[str, Any] = json.loads(target.read_text())
    assert (saved["endpoint"], saved["tenantId"], saved["resourceId"]) == (
        "https://127.0.0.1:8443", world.tenant, resource_id)
    host = world.services.identities.host_for(saved["credential"])
    assert host.id == resource_id
    assert cli.json("webapp", "agent-credential", "-g", group, "-n", "app-c", "--revoke") == {"revoked": 1}
    with pytest.raises(IdentityError) as refused:
        world.services.identities.host_for(saved["credential"])
    assert (refused.value.status, refused.value.error) == (401, "unauthorized_client")


def test_a_name_held_by_another_type_and_a_missing_workload(cli: Cli, group: str) -> None:
    err = cli.fails("vmss", "identity", "assign", "-g", group, "-n", "nothing-here", code=3)
    assert err.startswith("ERROR: (ResourceNotFound) "), err
    err = cli.fails("vm", "agent-credential", "-g", group, "-n", "nothing-here", "--revoke", code=3)
    assert err.startswith("ERROR: (ResourceNotFound) "), err
    assert cli.ok("vm", "delete", "-g", group, "-n", "nothing-here", "--yes") == ""  # 204: nothing to delete
