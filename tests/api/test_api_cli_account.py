"""`cielo login` (user name and password), `account …` and the output formats, run in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from inproc import ADMIN, PASSWORD, World
from inproc_cli import Cli, cli_in, signed_in_cli


@pytest.fixture()
def cli(world: World, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Cli]:
    with signed_in_cli(world, tmp_path_factory, tmp_path) as runner:
        yield runner


def test_login_with_password_prints_the_subscriptions(world: World, tmp_path: Path) -> None:
    with cli_in(world, tmp_path / "home") as fresh:
        entries = json.loads(fresh.ok("login", "-u", ADMIN, "-p", PASSWORD))
        # Not cached: redeemed with the refresh token, and tenant-level (no subscription) with --tenant.
        token = fresh.json("account", "get-access-token", "--scope", "https://cognitiveservices.azure.com/.default",
                           "--tenant", world.tenant)
        assert "subscription" not in token and token["tenant"] == world.tenant
    assert [e["id"] for e in entries] == [world.sub]
    entry = entries[0]
    assert entry["cloudName"] == "Cielo" and entry["isDefault"] is True
    assert entry["user"] == {"name": ADMIN, "type": "user"}
    assert entry["tenantId"] == world.tenant
    assert (tmp_path / "home" / "tokens.json").stat().st_mode & 0o777 == 0o600


def test_login_with_a_wrong_password_fails_and_keeps_no_account(world: World, tmp_path: Path) -> None:
    with cli_in(world, tmp_path / "home") as fresh:
        err = fresh.fails("login", "-u", ADMIN, "-p", "not-the-password")
        assert err.startswith("ERROR: AADSTS50126"), err
        assert "Please run 'cielo login'" in fresh.fails("account", "show")


def test_account_show_and_list(cli: Cli, world: World) -> None:
    shown = cli.json("account", "show")
    assert shown["id"] == world.sub and shown["environmentName"] == "Cielo"
    assert cli.json("account", "list")[0]["cloudName"] == "Cielo"
    assert cli.ok("account", "show", "--query", "user.name", "-o", "tsv") == f"{ADMIN}\n"
    assert "not found" in cli.fails("account", "show", "-s", "no-such-subscription")


def test_get_access_token_in_every_output_format(cli: Cli, world: World) -> None:
    token = cli.json("account", "get-access-token")
    assert set(token) >= {"accessToken", "expiresOn", "expires_on", "subscription", "tenant", "tokenType"}
    assert token["subscription"] == world.sub and token["tokenType"] == "Bearer"
    assert cli.ok("account", "get-access-token", "--query", "tenant", "-o", "tsv") == f"{world.tenant}\n"
    assert cli.ok("account", "get-access-token", "-o", "none") == ""
    table = cli.ok("account", "get-access-token", "--query", "{Tenant:tenant, Type:tokenType}", "-o", "table")
    lines = table.splitlines()
    assert lines[0].split() == ["Tenant", "Type"] and lines[2].split() == [world.tenant, "Bearer"]
    yaml = cli.ok("account", "get-access-token", "-o", "yaml")
    assert f"tenant: {world.tenant}" in yaml and "tokenType: Bearer" in yaml
    graph = cli.json("account", "get-access-token", "--resource-type", "ms-graph")
    assert graph["accessToken"] != token["accessToken"]


def test_get_access_token_usage_errors(cli: Cli) -> None:
    err = cli.fails("account", "get-access-token", "--resource", "https://x", "--scope", "https://x/.default")
    assert err == "ERROR: usage error: --resource and --scope can't be used together.\n"
    assert cli.fails("account", "get-access-token", "--query", "[").startswith(
        "ERROR: argument --query: invalid jmespath query '[': ")
    result = cli("account", "get-access-token", "-o", "xml")
    assert result.exit_code == 2 and "Invalid value for '-o'" in result.stderr


def test_account_set_and_logout(cli: Cli, world: World) -> None:
    assert cli.ok("account", "set", "-s", world.sub) == ""
    assert "doesn't exist" in cli.fails("account", "set", "-s", "nope")
    assert cli.ok("logout") == ""
    assert cli.fails("account", "show") == "ERROR: Please run 'cielo login' to setup account.\n"
    assert cli.fails("logout") == "ERROR: There are no active accounts.\n"
