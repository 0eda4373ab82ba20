"""`cielo functionapp …` run in-process: create|show|list|delete and identity assign|remove|show with az's options
(`--identities` lists, `--role`/`--scope`), output formats and --query, as a user sees them (exit code, stdout,
stderr), with what ARM and the directory then hold."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inproc import World, unique
from inproc_cli import Cli, signed_in_cli

from cielo.cli.compute import is_function_app, is_web_app


@pytest.fixture()
def cli(world: World, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Cli]:
    with signed_in_cli(world, tmp_path_factory, tmp_path) as runner:
        yield runner


@pytest.fixture()
def group(cli: Cli) -> Iterator[str]:
    name = unique("cli-fa")
    cli.ok("group", "create", "-n", name, "-l", "local", "-o", "none")
    yield name
    cli.ok("group", "delete", "-n", name, "--yes")


def _principal_exists(world: World, object_id: str) -> bool:
    return world.services.directory.repo.find_service_principal(object_id) is not None


def _assignments_of(world: World, principal_id: str) -> list[Any]:
    return [a for a in world.services.access.index.list_assignments() if a.principal_id == principal_id]


def test_create_show_list_delete(cli: Cli, world: World, group: str) -> None:
    created = cli.json("functionapp", "create", "-g", group, "-n", "func-a")
    assert (created["kind"], created["type"], created["name"], created["resourceGroup"]) == (
        "functionapp", "Microsoft.Web/sites", "func-a", group)
    assert "identity" not in created or created["identity"] is None
    linux = cli.json("functionapp", "create", "-g", group, "-n", "func-b", "--os-type", "linux")
    assert linux["kind"] == "functionapp,linux"
    cli.ok("webapp", "create", "-g", group, "-n", "site-c", "-o", "none")
    assert cli.json("functionapp", "show", "-g", group, "-n", "func-b")["kind"] == "functionapp,linux"
    # list keeps the function apps (az's filter on kind); webapp list keeps the web apps.
    assert sorted(a["name"] for a in cli.json("functionapp", "list", "-g", group)) == ["func-a", "func-b"]
    assert [a["name"] for a in cli.json("webapp", "list", "-g", group)] == ["site-c"]
    # Without -g: the subscription's, through --query and -o tsv.
    names = cli.ok("functionapp", "list", "--query", f"[?resourceGroup=='{group}'].name", "-o", "tsv").split()
    assert sorted(names) == ["func-a", "func-b"]
    assert cli.ok("functionapp", "delete", "-g", group, "-n", "func-a") == ""
    err = cli.fails("functionapp", "show", "-g", group, "-n", "func-a", code=3)
    assert err.startswith("ERROR: (ResourceNotFound) ") and "Microsoft.Web/sites/func-a" in err, err
    assert [a["name"] for a in cli.json("functionapp", "list", "-g", group)] == ["func-b"]


def test_create_with_identities_and_a_role(cli: Cli, world: World, group: str) -> None:
    uami = cli.json("identity", "create", "-g", group, "-n", "fa-uami")
    scope = world.rg_path(group)
    out = cli.json("functionapp", "create", "-g", group, "-n", "func-ids", "--assign-identity", "[system]", "fa-uami",
                   "--role", "Reader", "--scope", scope)
    block = out["identity"]
    assert block["type"] == "SystemAssigned, UserAssigned" and block["tenantId"] == world.tenant
    assert block["userAssignedIdentities"] == {
        uami["id"]: {"principalId": uami["principalId"], "clientId": uami["clientId"]}}
    assigned = _assignments_of(world, block["principalId"])
    assert [(a.scope.lower(), a.role_definition_id.rsplit("/", 1)[-1]) for a in assigned] == [
        (scope.lower(), world.role_id("Reader").rsplit("/", 1)[-1])]
    # Deleting it deletes its system-assigned principal and that role assignment.
    cli.ok("functionapp", "delete", "-g", group, "-n", "func-ids")
    assert not _principal_exists(world, block["principalId"]) and _assignments_of(world, block["principalId"]) == []
    assert _principal_exists(world, uami["principalId"])


def test_identity_assign_remove_show(cli: Cli, world: World, group: str) -> None:
    uami = cli.json("identity", "create", "-g", group, "-n", "fa-uami-2")
    cli.ok("functionapp", "create", "-g", group, "-n", "func-i", "-o", "none")
    assert cli.ok("functionapp", "identity", "show", "-g", group, "-n", "func-i") == ""  # no identity block
    # az's shape for function apps: the ARM identity block.
    system = cli.json("functionapp", "identity", "assign", "-g", group, "-n", "func-i")
    assert system == {"type": "SystemAssigned", "principalId": system["principalId"], "tenantId": world.tenant}
    both = cli.json("functionapp", "identity", "assign", "-g", group, "-n", "func-i", "--identities", uami["id"])
    assert both["type"] == "SystemAssigned, UserAssigned" and both["principalId"] == system["principalId"]
    assert list(both["userAssignedIdentities"]) == [uami["id"]]
    principal = cli.ok("functionapp", "identity", "show", "-g", group, "-n", "func-i", "--query", "principalId",
                       "-o", "tsv").strip()
    assert principal == system["principalId"]
    # Removing an identity that is not attached is az's ResourceNotFoundError, and changes nothing.
    other = cli.json("identity", "create", "-g", group, "-n", "fa-uami-3")
    err = cli.fails("functionapp", "identity", "remove", "-g", group, "-n", "func-i", "--identities", "fa-uami-3",
                    code=3)
    assert "are not associated with 'func-i'" in err and "fa-uami-3" in err, err
    assert cli.json("functionapp", "identity", "show", "-g", group, "-n", "func-i") == both
    assert other["principalId"]
    # Removing the system-assigned one deletes its principal; the user-assigned one stays.
    left = cli.json("functionapp", "identity", "remove", "-g", group, "-n", "func-i")
    assert left == {"type": "UserAssigned", "userAssignedIdentities": both["userAssignedIdentities"]}
    assert not _principal_exists(world, system["principalId"])
    assert cli.ok("functionapp", "identity", "remove", "-g", group, "-n", "func-i", "--identities",
                  "fa-uami-2") == ""
    assert cli.ok("functionapp", "identity", "show", "-g", group, "-n", "func-i") == ""
    assert cli.json("functionapp", "show", "-g", group, "-n", "func-i")["kind"] == "functionapp"


def test_identity_assign_with_role_and_scope(cli: Cli, world: World, group: str) -> None:
    cli.ok("functionapp", "create", "-g", group, "-n", "func-r", "-o", "none")
    account = world.account_path()
    out = cli.json("functionapp", "identity", "assign", "-g", group, "-n", "func-r", "--role",
                   "Cognitive Services User", "--scope", account)
    assigned = _assignments_of(world, out["principalId"])
    assert [(a.scope.lower(), a.role_definition_id.rsplit("/", 1)[-1]) for a in assigned] == [
        (account.lower(), world.role_id("Cognitive Services User").rsplit("/", 1)[-1])]
    # Again: the assignment exists already, which az takes as done.
    again = cli.json("functionapp", "identity", "assign", "-g", group, "-n", "func-r", "--role",
                     "Cognitive Services User", "--scope", account)
    assert again == out and len(_assignments_of(world, out["principalId"])) == 1
    # Only a user-assigned identity: no principal to give the role to.
    cli.json("identity", "create", "-g", group, "-n", "fa-uami-r")
    cli.ok("functionapp", "create", "-g", group, "-n", "func-u", "--assign-identity", "fa-uami-r", "-o", "none")
    err = cli.fails("functionapp", "identity", "assign", "-g", group, "-n", "func-u", "--identities", "fa-uami-r",
                    "--scope", account)
    assert err.startswith("ERROR: --scope gives a role to the system-assigned identity"), err
    assert cli.fails("functionapp", "create", "-g", group, "-n", "func-x", "--scope", account) == \
        "ERROR: --scope and --role need --assign-identity.\n"
    err = cli.fails("functionapp", "identity", "assign", "-g", group, "-n", "func-r", "--role", "No Such Role",
                    "--scope", account)
    assert err == "ERROR: Role 'No Such Role' doesn't exist.\n", err


def test_agent_credential_for_a_function_app(cli: Cli, world: World, group: str, tmp_path: Path) -> None:
    cli.ok("functionapp", "create", "-g", group, "-n", "func-h", "--assign-identity", "-o", "none")
    target = tmp_path / "func.credential"
    out = cli.json("functionapp", "agent-credential", "-g", group, "-n", "func-h", "--file", str(target))
    resource_id = f"{world.rg_path(group)}/providers/Microsoft.Web/sites/func-h"
    assert out == {"file": str(target.resolve()), "resourceId": resource_id}
    saved = json.loads(target.read_text())
    assert world.services.identities.host_for(saved["credential"]).id == resource_id
    assert cli.json("functionapp", "agent-credential", "-g", group, "-n", "func-h", "--revoke") == {"revoked": 1}


def test_az_usage_errors(cli: Cli) -> None:
    assert cli.fails("functionapp", "create", "-n", "x", code=2).startswith(
        "ERROR: the following arguments are required: --resource-group")
    assert cli.fails("functionapp", "create", "-g", "g", "-n", "x", "--storage-account", "s", code=2).startswith(
        "ERROR: unrecognized arguments: --storage-account")


@pytest.mark.parametrize(("kind", "function_app", "web_app"), [
    ("functionapp", True, False), ("functionapp,linux", True, False), ("functionapp,linux,container", True, False),
    ("functionapp,workflowapp", False, False),  # a logic app: neither list shows it, as az's
    ("app", False, True), ("app,linux", False, True), (None, False, False),
    ("FunctionApp", False, False),  # az compares case-sensitively: neither "functionapp" nor "app"
])
def test_which_sites_each_list_keeps(kind: str | None, function_app: bool, web_app: bool) -> None:
    site = {"kind": kind}
    assert (is_function_app(site), is_web_app(site)) == (function_app, web_app)
