"""`cielo ad ...` against the Graph-compatible directory, as an administrator and as a member."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from azure.identity import ClientSecretCredential

from e2e.cli_helpers import COGNITIVE, Cli, client_credentials, make_cli, new_user, verify_token
from support.server import CieloServer


@pytest.fixture()
def admin(cielo_server: CieloServer, client_env: dict[str, str], tmp_path: Path) -> Cli:
    cli = make_cli(cielo_server, client_env, tmp_path)
    cli.login_admin()
    return cli


def test_users(admin: Cli, cielo_server: CieloServer) -> None:
    suffix = secrets.token_hex(4)
    upn = f"cli-ad-{suffix}@cielo.local"
    created = admin.json("ad", "user", "create", "--display-name", f"Ada {suffix}", "--password", "Ada-Passw0rd!1",
                         "--user-principal-name", upn)
    assert created["userPrincipalName"] == upn and created["displayName"] == f"Ada {suffix}"
    assert created["id"]

    listed = admin.json("ad", "user", "list", "--upn", upn)
    assert [u["id"] for u in listed] == [created["id"]]
    assert upn in admin.run("ad", "user", "list", "--query", "[].userPrincipalName", "-o", "tsv").stdout.split()
    assert admin.json("ad", "user", "list", "--display-name", f"Ada {suffix}")[0]["id"] == created["id"]
    assert admin.json("ad", "user", "show", "--id", upn)["id"] == created["id"]
    assert admin.json("ad", "user", "show", "--id", created["id"])["userPrincipalName"] == upn

    # The new user can sign in with the CLI too.
    user_cli = make_cli(cielo_server, admin.env, Path(admin.config_dir).parent, "ada")
    user_cli.run("login", "-u", upn, "-p", "Ada-Passw0rd!1", "--allow-no-subscriptions")
    assert user_cli.json("ad", "signed-in-user", "show")["id"] == created["id"]

    assert admin.run("ad", "user", "delete", "--id", upn).stdout == ""
    assert admin.json("ad", "user", "list", "--upn", upn) == []
    assert "does not exist" in admin.fails("ad", "user", "show", "--id", upn).stderr
    # Deleting the user ends their CLI session too.
    user_cli.expire_access_tokens()
    assert "login" in user_cli.fails("ad", "signed-in-user", "show").stderr


def test_groups(admin: Cli, cielo_server: CieloServer) -> None:
    name = f"cli-group-{secrets.token_hex(4)}"
    group = admin.json("ad", "group", "create", "--display-name", name, "--mail-nickname", name)
    assert group["displayName"] == name and group["securityEnabled"] is True
    assert [g["id"] for g in admin.json("ad", "group", "list", "--display-name", name)] == [group["id"]]

    user = new_user(cielo_server, "cli-member")
    assert admin.run("ad", "group", "member", "add", "-g", group["id"], "--member-id", user.object_id).stdout == ""
    members = admin.json("ad", "group", "member", "list", "-g", group["id"])
    assert [(m["id"], m["userPrincipalName"]) for m in members] == [(user.object_id, user.upn)]
    assert admin.json("ad", "group", "member", "check", "-g", group["id"], "--member-id", user.object_id) == {
        "value": True}
    admin.run("ad", "group", "member", "remove", "-g", group["id"], "--member-id", user.object_id)
    assert admin.json("ad", "group", "member", "list", "-g", group["id"]) == []
    admin.run("ad", "group", "delete", "-g", group["id"])
    assert admin.json("ad", "group", "list", "--display-name", name) == []


def test_service_principals(admin: Cli, cielo_server: CieloServer) -> None:
    name = f"cli-rbac-{secrets.token_hex(4)}"
    result = admin.run("ad", "sp", "create-for-rbac", "-n", name)
    created = result.json()
    # az's shape, in az's order, and its warning about the secret on stderr.
    assert list(created) == ["appId", "displayName", "password", "tenant"]
    assert created["displayName"] == name and created["tenant"] == cielo_server.tenant_id
    assert "credentials that you must protect" in result.stderr
    app_id = created["appId"]
    assert client_credentials(cielo_server, app_id, created["password"]).status_code == 200

    listed = admin.json("ad", "sp", "list", "--display-name", name)
    assert [s["appId"] for s in listed] == [app_id]
    shown = admin.json("ad", "sp", "show", "--id", app_id)
    assert shown["appId"] == app_id and shown["id"] == listed[0]["id"]
    assert admin.json("ad", "sp", "show", "--id", shown["id"])["appId"] == app_id

    admin.run("ad", "sp", "delete", "--id", app_id)
    assert admin.json("ad", "sp", "list", "--display-name", name) == []
    assert "does not exist" in admin.fails("ad", "sp", "show", "--id", app_id).stderr
    # Without its service principal the app cannot get tokens in the tenant any more.
    assert client_credentials(cielo_server, app_id, created["password"]).status_code != 200


def test_app_credential_reset(admin: Cli, cielo_server: CieloServer, client_env: dict[str, str]) -> None:
    created = admin.json("ad", "sp", "create-for-rbac", "-n", f"cli-reset-{secrets.token_hex(4)}")
    app_id, first = created["appId"], created["password"]

    def works(secret: str) -> bool:
        """azure-identity gets a token with the secret (the refusal is checked on the wire, below)."""
        with ClientSecretCredential(cielo_server.tenant_id, app_id, secret, authority=cielo_server.base_url,
                                    disable_instance_discovery=True) as credential:
            token = credential.get_token(f"{COGNITIVE}/.default").token
        return verify_token(cielo_server, token, COGNITIVE)["appid"] == app_id

    def refused(secret: str) -> bool:
        # Not with azure-identity: after a failure it keeps its TLS connection open (even once closed),
        # which holds up the session server's shutdown.
        answer = client_credentials(cielo_server, app_id, secret)
        return answer.status_code == 401 and answer.json()["error"] == "invalid_client"

    reset = admin.json("ad", "app", "credential", "reset", "--id", app_id)
    assert set(reset) == {"appId", "password", "tenant"} and reset["appId"] == app_id
    second = reset["password"]
    assert second != first
    assert works(second)
    assert refused(first)

    third = admin.json("ad", "app", "credential", "reset", "--id", app_id, "--append")["password"]
    assert works(third) and works(second)
    assert refused(first)

    listed = admin.json("ad", "app", "credential", "list", "--id", app_id)
    assert len(listed) == 2 and all(c.get("secretText") is None for c in listed)


def test_member_cannot_write_the_directory(cielo_server: CieloServer, client_env: dict[str, str],
                                           tmp_path: Path) -> None:
    member = new_user(cielo_server, "cli-reader")
    cli = make_cli(cielo_server, client_env, tmp_path, "member")
    cli.run("login", "-u", member.upn, "-p", member.password, "--allow-no-subscriptions")
    # Reading is allowed, as in Entra's defaults.
    assert any(u["id"] == member.object_id for u in cli.json("ad", "user", "list"))
    writes = [
        ("ad", "user", "create", "--display-name", "x", "--password", "Xx-Passw0rd!1", "--user-principal-name",
         f"x-{secrets.token_hex(3)}@cielo.local"),
        ("ad", "group", "create", "--display-name", "x", "--mail-nickname", "x"),
        ("ad", "sp", "create-for-rbac", "-n", "x"),
        ("ad", "user", "delete", "--id", member.upn),
    ]
    for args in writes:
        error = cli.fails(*args)
        assert "Insufficient privileges" in error.stderr, error
        assert "Traceback" not in error.stderr
