"""`cielo login -u/-p`, `account show/list/set`, `logout` and `account get-access-token`, as az prints them.

The real `cielo` runs in a subprocess against the session's `cielo up` (az's output shapes, from Azure/azure-cli's
profile/custom.py and azure-cli-core's _profile.py).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from e2e.cli_helpers import COGNITIVE, GRAPH, Cli, make_cli, new_user, verify_token
from support.server import ADMIN_USER, CieloServer

ACCOUNT_FIELDS = {"id", "name", "tenantId", "user", "state", "isDefault", "environmentName", "homeTenantId"}


@pytest.fixture()
def cli(cielo_server: CieloServer, client_env: dict[str, str], tmp_path: Path) -> Cli:
    return make_cli(cielo_server, client_env, tmp_path)


@pytest.fixture()
def admin(cli: Cli) -> Cli:
    cli.login_admin()
    return cli


def test_login_with_password_then_account_show(cli: Cli, cielo_server: CieloServer) -> None:
    entries = cli.login_admin()
    assert [e["id"] for e in entries] == [cielo_server.subscription_id]
    # az login prints the subscriptions with cloudName; account show renames it environmentName.
    assert "cloudName" in entries[0] and "environmentName" not in entries[0]

    shown = cli.json("account", "show")
    assert shown.keys() >= ACCOUNT_FIELDS
    assert shown["id"] == cielo_server.subscription_id
    assert shown["name"] == "Cielo Subscription"
    assert shown["tenantId"] == shown["homeTenantId"] == cielo_server.tenant_id
    assert shown["user"] == {"name": ADMIN_USER, "type": "user"}
    assert shown["state"] == "Enabled"
    assert shown["isDefault"] is True
    assert shown["environmentName"]

    # The how-to's `az account show -o json | jq -r .user.name`, and the same without jq.
    assert cli.run("account", "show", "--query", "user.name", "-o", "tsv").stdout == f"{ADMIN_USER}\n"
    assert cli.run("account", "show", "-s", cielo_server.subscription_id, "--query", "user.name",
                   "-o", "tsv").stdout == f"{ADMIN_USER}\n"


def test_account_show_piped_to_jq(admin: Cli) -> None:
    """The shell pipes of the 2023 Azure OpenAI managed-identity how-to, verbatim apart from `az`
    (learn.microsoft.com/azure/ai-services/openai/how-to/managed-identity)."""
    if shutil.which("jq") is None:
        pytest.skip("jq is not installed (apt-get install -y jq); the pipe is also covered by --query -o tsv")
    cielo = f"{sys.executable} -m cielo.cli.main"
    user = _sh(admin, f"{cielo} account show -o json | jq -r .user.name")
    assert user == f"{ADMIN_USER}\n"
    token = _sh(admin, f"{cielo} account get-access-token --resource {COGNITIVE} -o json | jq -r .accessToken")
    assert token.count(".") == 2 and token.endswith("\n")
    # No -o at all: json is the default output, so the pipe works as written in older how-tos.
    assert _sh(admin, f"{cielo} account show | jq -r .user.name") == f"{ADMIN_USER}\n"


def _sh(cli: Cli, command: str) -> str:
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], env=cli.env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_account_list_set_and_logout(cli: Cli, cielo_server: CieloServer) -> None:
    user = new_user(cielo_server)
    cli.login_admin()
    # A member without subscriptions signs in tenant-level, and becomes the default account.
    cli.fails("login", "-u", user.upn, "-p", user.password)
    member = cli.json("login", "-u", user.upn, "-p", user.password, "--allow-no-subscriptions")
    assert member[0]["id"] == cielo_server.tenant_id
    assert member[0]["name"] == "N/A(tenant level account)"

    listed = cli.json("account", "list")
    assert {(e["user"]["name"], e["id"]) for e in listed} == {
        (ADMIN_USER, cielo_server.subscription_id), (user.upn, cielo_server.tenant_id)}
    assert [e["isDefault"] for e in listed].count(True) == 1
    assert all("cloudName" in e for e in listed)
    assert cli.json("account", "show")["user"]["name"] == user.upn

    # account set, by id and by name; an unknown one is an error.
    assert cli.run("account", "set", "--subscription", cielo_server.subscription_id).stdout == ""
    assert cli.json("account", "show")["user"]["name"] == ADMIN_USER
    cli.run("account", "set", "-n", "N/A(tenant level account)")
    assert cli.json("account", "show")["user"]["name"] == user.upn
    cli.run("account", "set", "-s", "cielo subscription")
    assert cli.json("account", "show")["id"] == cielo_server.subscription_id
    error = cli.fails("account", "set", "-s", "00000000-0000-0000-0000-000000000000")
    assert "doesn't exist" in error.stderr
    table = cli.run("account", "list", "-o", "table").stdout.splitlines()
    assert table[0].split()[:1] and "Name" in table[0] and len(table) == 4

    # logout forgets the current account only; the other stays and becomes the default.
    cli.run("logout")
    remaining = cli.json("account", "list")
    assert [e["user"]["name"] for e in remaining] == [user.upn]
    assert remaining[0]["isDefault"] is True
    assert ADMIN_USER not in json.dumps(cli.tokens())
    cli.run("logout", "--username", user.upn)
    assert cli.json("account", "list") == []
    assert "login" in cli.fails("account", "show").stderr
    assert "login" in cli.fails("account", "get-access-token").stderr
    assert "no active accounts" in cli.fails("logout").stderr
    assert cli.tokens()["accounts"] == {}


def test_wrong_password_is_an_error(cli: Cli) -> None:
    error = cli.fails("login", "-u", ADMIN_USER, "-p", "not-the-password")
    assert "AADSTS50126" in error.stderr
    assert not (cli.config_dir / "profile.json").exists()


def test_get_access_token_shape(admin: Cli, cielo_server: CieloServer) -> None:
    before = time.time()
    token = admin.json("account", "get-access-token", "--resource", COGNITIVE)
    assert set(token) == {"accessToken", "expiresOn", "expires_on", "subscription", "tenant", "tokenType"}
    assert token["tokenType"] == "Bearer"
    assert token["subscription"] == cielo_server.subscription_id
    assert token["tenant"] == cielo_server.tenant_id
    claims = verify_token(cielo_server, token["accessToken"], COGNITIVE)
    assert claims["upn"] == ADMIN_USER and claims["tid"] == cielo_server.tenant_id
    # expires_on is counted from expires_in (as MSAL does): never after the real expiry, at most a
    # request's latency before it.
    assert isinstance(token["expires_on"], int) and claims["exp"] - 10 <= token["expires_on"] <= claims["exp"]
    assert token["expires_on"] > before + 3000
    # expiresOn is local time in exactly the format AzureCliCredential parses.
    local = dt.datetime.strptime(token["expiresOn"], "%Y-%m-%d %H:%M:%S.%f")
    assert int(local.timestamp()) == token["expires_on"]

    # --scope instead of --resource, and the default (ARM) resource.
    by_scope = admin.json("account", "get-access-token", "--scope", f"{GRAPH}/.default")
    assert verify_token(cielo_server, by_scope["accessToken"], GRAPH)["upn"] == ADMIN_USER
    arm = admin.json("account", "get-access-token")
    assert verify_token(cielo_server, arm["accessToken"], "https://management.core.windows.net/")
    assert "can't be used together" in admin.fails(
        "account", "get-access-token", "--resource", COGNITIVE, "--scope", f"{GRAPH}/.default").stderr

    # With --tenant, az prints no subscription (the token is tenant-level).
    for tenant in (cielo_server.tenant_id, "cielo.local"):
        scoped = admin.json("account", "get-access-token", "--resource", COGNITIVE, "--tenant", tenant)
        assert "subscription" not in scoped
        assert verify_token(cielo_server, scoped["accessToken"], COGNITIVE)["tid"] == cielo_server.tenant_id
    assert admin.fails("account", "get-access-token", "--tenant", "no-such-tenant.example").stderr


def test_token_cache_renewal_and_rotation(admin: Cli, cielo_server: CieloServer) -> None:
    first = admin.json("account", "get-access-token", "--resource", COGNITIVE)
    tokens_file = admin.config_dir / "tokens.json"
    assert stat.S_IMODE(tokens_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(admin.config_dir.stat().st_mode) == 0o700

    # A second call is served from the cache: same token, and it needs no server at all.
    offline = {"CIELO_ENDPOINT": "https://127.0.0.1:9"}
    again = admin.json("account", "get-access-token", "--resource", COGNITIVE, env=offline)
    assert again["accessToken"] == first["accessToken"]

    # Once the cached token is stale, a new one comes from the refresh token, which rotates.
    old_refresh = admin.tokens()["accounts"][ADMIN_USER]["refresh_token"]
    saved = admin.tokens()
    admin.expire_access_tokens()
    admin.fails("account", "get-access-token", "--resource", COGNITIVE, env=offline)
    renewed = admin.json("account", "get-access-token", "--resource", COGNITIVE)
    assert renewed["accessToken"] != first["accessToken"]
    assert verify_token(cielo_server, renewed["accessToken"], COGNITIVE)["upn"] == ADMIN_USER
    new_refresh = admin.tokens()["accounts"][ADMIN_USER]["refresh_token"]
    assert new_refresh and new_refresh != old_refresh
    assert stat.S_IMODE(tokens_file.stat().st_mode) == 0o600

    # Replaying the redeemed refresh token fails, and tells the user to sign in again.
    admin.write_tokens(saved)
    admin.expire_access_tokens()
    error = admin.fails("account", "get-access-token", "--resource", COGNITIVE)
    assert "login" in error.stderr
    assert "Traceback" not in error.stderr
    # Reuse detection revoked the whole family: the rotated refresh token is dead too.
    data = admin.tokens()
    data["accounts"][ADMIN_USER]["refresh_token"] = new_refresh
    admin.write_tokens(data)
    admin.expire_access_tokens()
    assert "login" in admin.fails("account", "get-access-token", "--resource", COGNITIVE).stderr


def test_deleted_user_must_sign_in_again(cli: Cli, cielo_server: CieloServer) -> None:
    user = new_user(cielo_server)
    cli.run("login", "-u", user.upn, "-p", user.password, "--allow-no-subscriptions")
    cielo_server.graph("DELETE", f"/users/{user.object_id}")
    cli.expire_access_tokens()
    assert "login" in cli.fails("account", "get-access-token", "--resource", COGNITIVE).stderr


def test_concurrent_renewals_do_not_revoke_the_session(admin: Cli, cielo_server: CieloServer) -> None:
    """Several `az account get-access-token` at once (DefaultAzureCredential in threads) must all work.

    The refresh token rotates on every use and a replayed one revokes its family, so the CLI must
    not redeem one refresh token twice, nor write back a stale one."""
    resources = [COGNITIVE, GRAPH, "https://management.azure.com", "https://ai.azure.com"]
    processes = [admin.popen("account", "get-access-token", "--resource", r, "-o", "json") for r in resources]
    outputs = [p.communicate(timeout=60) for p in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
        assert json.loads(out)["accessToken"]
    admin.expire_access_tokens()
    final = admin.json("account", "get-access-token", "--resource", COGNITIVE)
    assert verify_token(cielo_server, final["accessToken"], COGNITIVE)["upn"] == ADMIN_USER
