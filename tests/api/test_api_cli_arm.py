"""`cielo group …`, `role …` and `cognitiveservices …` run in-process, as a user sees them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from inproc import ACCOUNT, ADMIN, BASE_URL, MOCK_DEPLOYMENT, RG, World, unique
from inproc_cli import Cli, cli_in, signed_in_cli

from cielo.cli.main import cli as cielo
from cielo.client.http import use_transport


@pytest.fixture()
def cli(world: World, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Cli]:
    with signed_in_cli(world, tmp_path_factory, tmp_path) as runner:
        yield runner


def test_resource_group_lifecycle(cli: Cli, world: World) -> None:
    name = unique("cli-rg")
    created = cli.json("group", "create", "-n", name, "-l", "local", "--tags", "team=ml", "--tags", "env=test")
    assert created["id"] == world.rg_path(name)
    assert created["tags"] == {"team": "ml", "env": "test"}
    assert cli.ok("group", "show", "-g", name, "--query", "location", "-o", "tsv") == "local\n"
    assert name in cli.json("group", "list", "--query", "[].name")
    assert cli.ok("group", "exists", "-n", name) == "true\n"
    table = cli.ok("group", "list", "--query", f"[?name=='{name}'].{{Name:name, Location:location}}", "-o", "table")
    assert table.splitlines()[0].split() == ["Name", "Location"] and table.splitlines()[2].split() == [name, "local"]
    assert cli.ok("group", "delete", "-n", name, "--yes") == ""
    assert cli.ok("group", "exists", "-n", name) == "false\n"
    # az's ResourceNotFoundError: exit code 3, azure-core's `(Code) Message`, `Code:` and `Message:` lines.
    err = cli.fails("group", "show", "-n", name, code=3)
    lines = err.splitlines()
    assert lines[0].startswith("ERROR: (ResourceGroupNotFound) ") and lines[1] == "Code: ResourceGroupNotFound", err
    assert lines[2] == f"Message: {lines[0].split(') ', 1)[1]}" and len(lines) == 3, err


def test_group_delete_asks_first(cli: Cli) -> None:
    name = unique("cli-rg")
    cli.ok("group", "create", "-n", name, "-l", "local", "-o", "none")
    kept = cli("group", "delete", "-n", name, input="n\n")
    assert kept.exit_code == 0 and "Are you sure" in kept.stderr
    assert cli.ok("group", "exists", "-n", name) == "true\n"
    assert cli("group", "delete", "-n", name, input="y\n").exit_code == 0
    assert cli.ok("group", "exists", "-n", name) == "false\n"


def test_bad_tags_and_unreachable_server(cli: Cli) -> None:
    assert cli.fails("group", "create", "-n", unique("cli-rg"), "-l", "local", "--tags", "=x") == \
        "ERROR: invalid tag '=x'; use KEY=VALUE\n"

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with use_transport(httpx.MockTransport(refuse)):
        result = CliRunner().invoke(cielo, ["group", "list"],
                                    env={"CIELO_CONFIG_DIR": str(cli.home), "CIELO_ENDPOINT": BASE_URL})
    assert result.exit_code == 1, result.output
    assert result.stdout == "" and result.stderr.startswith(
        f"ERROR: cannot reach Cielo at {BASE_URL}: connection refused. Is the server running (`cielo up`)?"), result
    assert "cielo cloud set --endpoint" in result.stderr


def test_commands_need_a_signed_in_account(world: World, tmp_path: Path) -> None:
    with cli_in(world, tmp_path / "empty") as fresh:
        assert fresh.fails("group", "list") == "ERROR: Please run 'cielo login' to setup account.\n"


def test_role_definitions(cli: Cli) -> None:
    names = cli.json("role", "definition", "list", "--query", "[].roleName")
    assert {"Owner", "Reader", "Cognitive Services OpenAI User"} <= set(names)
    reader = cli.json("role", "definition", "list", "-n", "Reader")
    assert len(reader) == 1 and reader[0]["roleName"] == "Reader" and reader[0]["roleType"] == "BuiltInRole"
    by_id = cli.json("role", "definition", "list", "-n", reader[0]["name"])
    assert by_id[0]["id"] == reader[0]["id"]
    assert cli.json("role", "definition", "list", "--custom-role-only", "--query", "[?roleType!='CustomRole']") == []


def test_role_assignment_lifecycle_with_assignee(cli: Cli, world: World) -> None:
    rg = unique("cli-rg")
    cli.ok("group", "create", "-n", rg, "-l", "local", "-o", "none")
    sp = cli.json("ad", "sp", "create-for-rbac", "-n", unique("cli-sp"))
    created = cli.json("role", "assignment", "create", "--role", "Reader", "--assignee", sp["appId"],
                       "--scope", world.rg_path(rg))
    assert created["scope"] == world.rg_path(rg)
    assert created["principalType"] == "ServicePrincipal"
    assert created["roleDefinitionId"].endswith("/acdd72a7-3385-48ef-bd42-f606fba81ae7")

    listed = cli.json("role", "assignment", "list", "--assignee", sp["appId"], "-g", rg)
    assert [(a["roleDefinitionName"], a["principalName"]) for a in listed] == [("Reader", sp["appId"])]
    tsv = cli.ok("role", "assignment", "list", "-g", rg, "--query", "[].roleDefinitionName", "-o", "tsv")
    assert tsv == "Reader\n"

    allowed = cli.json("role", "check", "--assignee", sp["appId"], "-g", rg,
                       "--action", "Microsoft.Resources/subscriptions/resourceGroups/read")
    assert allowed["allowed"] is True and allowed["matchedAssignments"][0]["id"] == created["id"]
    denied = cli.json("role", "check", "--assignee", sp["appId"], "-g", rg,
                      "--action", "Microsoft.Resources/subscriptions/resourceGroups/write")
    assert denied["allowed"] is False and denied["matchedAssignments"] == []

    # As az: creating it again prints the assignment that exists (with list's names), exit 0.
    again = cli.json("role", "assignment", "create", "--role", "Reader", "--assignee", sp["appId"],
                     "--scope", world.rg_path(rg))
    assert again["id"] == created["id"] and again["roleDefinitionName"] == "Reader"
    assert cli.ok("role", "assignment", "delete", "--assignee", sp["appId"], "--role", "Reader", "-g", rg) == ""
    assert cli.json("role", "assignment", "list", "-g", rg) == []
    err = cli.fails("role", "assignment", "delete", "--assignee", sp["appId"], "-g", rg)
    assert err == "ERROR: No matched assignments were found to delete\n"


def test_role_usage_errors(cli: Cli, world: World) -> None:
    scope = world.rg_path(RG)
    assert cli.fails("role", "assignment", "create", "--role", "Reader", "--scope", scope) == \
        "ERROR: usage error: --assignee STRING | --assignee-object-id GUID\n"
    assert cli.fails("role", "assignment", "create", "--role", "No Such Role", "--assignee", ADMIN,
                     "--scope", scope) == "ERROR: Role 'No Such Role' doesn't exist.\n"
    err = cli.fails("role", "assignment", "create", "--role", "Reader", "--assignee", "nobody@cielo.local",
                    "--scope", scope)
    assert err.startswith("ERROR: Cannot find user or service principal in graph database for 'nobody@cielo.local'")
    assert cli.fails("role", "assignment", "delete").startswith("ERROR: usage error: --ids IDS")
    # As az since 2.54: no --scope, no assignment (it used to default to the subscription); -g is gone too.
    missing = cli("role", "assignment", "create", "--role", "Reader", "--assignee", ADMIN)
    assert (missing.exit_code, missing.stdout) == (2, ""), missing
    assert missing.stderr.startswith("ERROR: the following arguments are required: --scope\n"), missing.stderr
    gone = cli("role", "assignment", "create", "--role", "Reader", "--assignee", ADMIN, "-g", RG)
    assert gone.exit_code == 2 and gone.stderr.startswith("ERROR: unrecognized arguments: -g\n"), gone.stderr


def test_openai_account_keys_and_deployments(cli: Cli, world: World) -> None:
    rg = unique("cli-rg")
    name = unique("cli-oai")
    cli.ok("group", "create", "-n", rg, "-l", "local", "-o", "none")
    created = cli.json("cognitiveservices", "account", "create", "-n", name, "-g", rg, "-l", "local",
                       "--kind", "OpenAI", "--sku", "S0", "--custom-domain", name, "--yes")
    assert created["id"] == world.account_path(name, rg) and created["resourceGroup"] == rg
    assert created["kind"] == "OpenAI" and created["properties"]["customSubDomainName"] == name
    shown = cli.json("cognitiveservices", "account", "show", "-n", name, "-g", rg)
    assert shown["id"] == created["id"]
    assert cli.json("cognitiveservices", "account", "list", "-g", rg, "--query", "[].name") == [name]
    assert ACCOUNT in cli.json("cognitiveservices", "account", "list", "--query", "[].name")

    keys = cli.json("cognitiveservices", "account", "keys", "list", "-n", name, "-g", rg)
    assert set(keys) == {"key1", "key2"} and keys["key1"] != keys["key2"]
    assert cli.json("cognitiveservices", "account", "keys", "list", "-n", ACCOUNT, "-g", RG)["key1"] == world.api_key

    deployment = cli.json("cognitiveservices", "account", "deployment", "create", "-n", name, "-g", rg,
                          "--deployment-name", "chat", "--model-name", "mock", "--model-version", "1",
                          "--model-format", "Cielo", "--sku-capacity", "5")
    assert deployment["name"] == "chat" and deployment["sku"]["capacity"] == 5
    assert deployment["properties"]["model"]["name"] == "mock"
    listed = cli.json("cognitiveservices", "account", "deployment", "list", "-n", name, "-g", rg)
    assert [d["name"] for d in listed] == ["chat"]
    assert MOCK_DEPLOYMENT in cli.json("cognitiveservices", "account", "deployment", "list", "-n", ACCOUNT,
                                       "-g", RG, "--query", "[].name")

    missing = unique("missing")
    err = cli.fails("cognitiveservices", "account", "show", "-n", missing, "-g", rg, code=3)
    assert err.startswith(f"ERROR: (ResourceNotFound) The Resource 'Microsoft.CognitiveServices/accounts/{missing}' "
                          f"under resource group '{rg}' was not found."), err
    assert cli.ok("group", "delete", "-n", rg, "--yes") == ""
    assert cli.ok("cognitiveservices", "account", "list", "-g", RG, "--query", f"[?name=='{name}']", "-o", "tsv") == ""
