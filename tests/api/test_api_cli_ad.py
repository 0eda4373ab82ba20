"""`cielo ad …` (users, groups, applications, service principals) and service-principal sign-in, in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from inproc import ADMIN, World, unique
from inproc_cli import Cli, cli_in, signed_in_cli


@pytest.fixture()
def cli(world: World, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Cli]:
    with signed_in_cli(world, tmp_path_factory, tmp_path) as runner:
        yield runner


def test_user_lifecycle(cli: Cli, world: World) -> None:
    upn = f"{unique('cli-user')}@cielo.local"
    created = cli.json("ad", "user", "create", "--display-name", "Ada CLI", "--password", "Str0ng-Passw0rd!x",
                       "--user-principal-name", upn)
    assert created["userPrincipalName"] == upn and created["displayName"] == "Ada CLI"
    assert "passwordProfile" not in created or not created["passwordProfile"].get("password")
    assert cli.json("ad", "user", "show", "--id", upn)["id"] == created["id"]
    assert cli.json("ad", "user", "list", "--upn", upn, "--query", "[].id") == [created["id"]]
    assert cli.ok("ad", "signed-in-user", "show", "--query", "userPrincipalName", "-o", "tsv") == f"{ADMIN}\n"
    assert cli.ok("ad", "user", "delete", "--id", created["id"]) == ""
    assert cli.fails("ad", "user", "show", "--id", upn).startswith(f"ERROR: Resource '{upn}' does not exist")


def test_directory_group_and_members(cli: Cli) -> None:
    name = unique("cli-group")
    group = cli.json("ad", "group", "create", "--display-name", name, "--mail-nickname", name)
    assert cli.json("ad", "group", "show", "-g", group["id"])["displayName"] == name
    assert cli.json("ad", "group", "list", "--display-name", name, "--query", "[].id") == [group["id"]]
    me = cli.json("ad", "signed-in-user", "show")["id"]
    assert cli.ok("ad", "group", "member", "add", "-g", group["id"], "--member-id", me) == ""
    assert cli.json("ad", "group", "member", "check", "-g", group["id"], "--member-id", me) == {"value": True}
    assert cli.json("ad", "group", "member", "list", "-g", group["id"], "--query", "[].id") == [me]
    assert cli.ok("ad", "group", "member", "remove", "-g", group["id"], "--member-id", me) == ""
    assert cli.json("ad", "group", "member", "check", "-g", group["id"], "--member-id", me) == {"value": False}
    assert cli.ok("ad", "group", "delete", "-g", group["id"]) == ""


def test_app_and_service_principal_lifecycle(cli: Cli) -> None:
    name = unique("cli-app")
    app = cli.json("ad", "app", "create", "--display-name", name, "--identifier-uris", f"api://{name}")
    assert app["displayName"] == name and app["identifierUris"] == [f"api://{name}"]
    assert cli.json("ad", "app", "show", "--id", app["appId"])["id"] == app["id"]
    assert cli.json("ad", "app", "list", "--app-id", app["appId"], "--query", "[].displayName") == [name]
    reset = cli("ad", "app", "credential", "reset", "--id", app["appId"], "--append", "--display-name", "ci")
    assert reset.exit_code == 0, reset.stderr
    secret = json.loads(reset.stdout)
    assert secret["appId"] == app["appId"] and secret["password"]
    assert "WARNING: " in reset.stderr
    creds = cli.json("ad", "app", "credential", "list", "--id", app["appId"])
    assert [c["displayName"] for c in creds] == ["ci"] and creds[0].get("secretText") is None

    sp = cli.json("ad", "sp", "create", "--id", app["appId"])
    assert sp["appId"] == app["appId"]
    assert cli.json("ad", "sp", "show", "--id", app["appId"])["id"] == sp["id"]
    assert cli.json("ad", "sp", "list", "--display-name", name, "--query", "[].id") == [sp["id"]]
    assert cli.ok("ad", "sp", "delete", "--id", app["appId"]) == ""
    assert cli.fails("ad", "sp", "show", "--id", sp["id"]).startswith(f"ERROR: Resource '{sp['id']}' does not exist")
    assert cli.ok("ad", "app", "delete", "--id", app["appId"]) == ""
    assert cli.json("ad", "app", "list", "--app-id", app["appId"]) == []


def test_service_principal_signs_in_with_its_secret(cli: Cli, world: World, tmp_path: Path) -> None:
    created = cli("ad", "sp", "create-for-rbac", "-n", unique("cli-sp"))
    assert created.exit_code == 0 and "WARNING: " in created.stderr
    sp = json.loads(created.stdout)
    assert sp["tenant"] == world.tenant
    assert cli.fails("ad", "sp", "create-for-rbac", "--role", "Reader") == \
        "ERROR: Usage error: To create role assignments, specify both --role and --scopes.\n"
    with cli_in(world, tmp_path / "sp-home") as as_sp:
        err = as_sp.fails("login", "--service-principal", "-u", sp["appId"], "-p", sp["password"], "-t", world.tenant)
        assert err == f"ERROR: No subscriptions found for {sp['appId']}.\n"
        entries = as_sp.json("login", "--service-principal", "-u", sp["appId"], "-p", sp["password"],
                             "-t", world.tenant, "--allow-no-subscriptions")
        assert entries[0]["name"] == "N/A(tenant level account)"
        assert entries[0]["user"] == {"name": sp["appId"], "type": "servicePrincipal"}
        token = as_sp.json("account", "get-access-token", "--resource", "https://cognitiveservices.azure.com")
        assert token["tenant"] == world.tenant and token["accessToken"]
        bad = as_sp.fails("login", "--service-principal", "-u", sp["appId"], "-p", "wrong", "-t", world.tenant)
        assert bad.startswith("ERROR: AADSTS7000215"), bad
        assert as_sp.fails("login", "--service-principal", "-u", sp["appId"]) == \
            "ERROR: --service-principal needs --username APP_ID and --tenant TENANT.\n"
