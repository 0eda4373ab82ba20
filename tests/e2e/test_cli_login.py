"""`cielo login` the other ways: device code, browser (auth code + PKCE on loopback), service principal
with a secret, a certificate or a federated token. The real `cielo` runs in a subprocess."""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.cli_helpers import (
    COGNITIVE,
    Cli,
    User,
    approve_device_code,
    make_cli,
    new_user,
    read_report,
    verify_token,
    write_browser,
)
from support.server import ADMIN_PASSWORD, ADMIN_USER, CieloServer


@pytest.fixture()
def cli(cielo_server: CieloServer, client_env: dict[str, str], tmp_path: Path) -> Cli:
    return make_cli(cielo_server, client_env, tmp_path)


@pytest.fixture(scope="module")
def member(cielo_server: CieloServer) -> User:
    return new_user(cielo_server, "cli-login")


def _wait_for_code(process: Any, timeout: float = 30) -> tuple[str, str]:
    """Read stderr up to the device-code message; return (verification URL, user code)."""
    deadline = time.time() + timeout
    seen = ""
    while time.time() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen += line
        match = re.search(r"open the page (\S+) and enter the code (\S+) to authenticate", line)
        if match:
            return match.group(1), match.group(2)
    process.kill()
    raise AssertionError(f"no device code message on stderr: {seen!r}")


# ----------------------------------------------------------------------------- device code
def test_device_code_login(cli: Cli, cielo_server: CieloServer, member: User) -> None:
    process = cli.popen("login", "--use-device-code", "--allow-no-subscriptions", "-o", "json")
    try:
        url, code = _wait_for_code(process)
        assert url == f"{cielo_server.base_url}/devicelogin"
        # A wrong password is refused on the page, and the CLI keeps waiting.
        assert approve_device_code(cielo_server, code, member.upn, "wrong-password").status_code == 400
        assert process.poll() is None
        answer = approve_device_code(cielo_server, code, member.upn, member.password)
        assert answer.status_code == 200, answer.text
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert '"name": "' + member.upn + '"' in out
    shown = cli.json("account", "show")
    assert shown["user"] == {"name": member.upn, "type": "user"}
    token = cli.json("account", "get-access-token", "--resource", COGNITIVE)
    assert verify_token(cielo_server, token["accessToken"], COGNITIVE)["oid"] == member.object_id


def test_device_code_declined(cli: Cli, cielo_server: CieloServer, member: User) -> None:
    process = cli.popen("login", "--use-device-code", "--allow-no-subscriptions")
    try:
        _, code = _wait_for_code(process)
        assert approve_device_code(cielo_server, code, member.upn, member.password, "deny").status_code == 200
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, err
    assert "ERROR: " in err and out == ""
    assert not (cli.config_dir / "profile.json").exists()


def test_without_a_browser_login_uses_device_code(cli: Cli) -> None:
    """No BROWSER and no display: `cielo login` falls back to the device code flow, as az does."""
    process = cli.popen("login")
    try:
        url, code = _wait_for_code(process)
        assert url.endswith("/devicelogin") and code
    finally:
        process.kill()
        process.communicate()


# ----------------------------------------------------------------------------- browser
def test_browser_login(cli: Cli, cielo_server: CieloServer, tmp_path: Path) -> None:
    browser, report = write_browser(tmp_path, cielo_server, ADMIN_USER, ADMIN_PASSWORD)
    result = cli.run("login", "-o", "json", env={"BROWSER": str(browser)}, timeout=60)
    seen = read_report(report)
    # The CLI asked for a loopback redirect, PKCE (S256) and a state, as the Azure CLI client.
    query = dict(httpx.URL(seen["authorize_url"]).params)
    assert seen["authorize_url"].startswith(f"{cielo_server.base_url}/organizations/oauth2/v2.0/authorize?")
    assert query["client_id"] == "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
    assert re.fullmatch(r"http://localhost:\d+", query["redirect_uri"])
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["state"] and query["response_type"] == "code"
    assert seen["post_status"] == 302 and seen["loopback_status"] == 200
    assert seen["loopback_final_url"].endswith("/done") and "code=" not in seen["loopback_final_url"]
    assert "web browser has been opened" in result.stderr
    assert result.json()[0]["user"] == {"name": ADMIN_USER, "type": "user"}
    assert cli.json("account", "show")["id"] == cielo_server.subscription_id
    token = cli.json("account", "get-access-token", "--resource", COGNITIVE)
    assert verify_token(cielo_server, token["accessToken"], COGNITIVE)["upn"] == ADMIN_USER


def test_browser_login_refuses_a_forged_state(cli: Cli, cielo_server: CieloServer, tmp_path: Path) -> None:
    browser, report = write_browser(tmp_path, cielo_server, ADMIN_USER, ADMIN_PASSWORD, state="forged")
    error = cli.fails("login", env={"BROWSER": str(browser)}, timeout=60)
    assert "state does not match" in error.stderr
    assert read_report(report)["loopback_status"] == 200
    assert not (cli.config_dir / "profile.json").exists()


def test_browser_login_wrong_redirect_is_refused(cli: Cli, cielo_server: CieloServer, tmp_path: Path) -> None:
    """The Azure CLI client may only redirect to loopback: the server shows an error, never redirects."""
    browser, report = write_browser(tmp_path, cielo_server, ADMIN_USER, ADMIN_PASSWORD,
                                    redirect_uri="https://attacker.example/callback")
    process = cli.popen("login", env={"BROWSER": str(browser)})
    try:
        deadline = time.time() + 30
        while not report.exists() and time.time() < deadline:
            time.sleep(0.1)
        seen = read_report(report)
        assert seen["page_status"] == 400
        assert "AADSTS50011" in seen["page"] or "redirect URI" in seen["page"]
        assert "location" not in seen
        assert process.poll() is None  # the CLI is still waiting for its own loopback redirect
    finally:
        process.kill()
        process.communicate()


# ----------------------------------------------------------------------------- service principals
@pytest.fixture(scope="module")
def admin_cli(cielo_server: CieloServer, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """A signed-in administrator, for making service principals with `cielo ad`."""
    cli = make_cli(cielo_server, cielo_server.client_env(), tmp_path_factory.mktemp("admin-cli"))
    cli.login_admin()
    return cli


@pytest.fixture(scope="module")
def rbac_secret(admin_cli: Cli) -> dict[str, Any]:
    created: dict[str, Any] = admin_cli.json("ad", "sp", "create-for-rbac", "-n", f"cli-sp-{secrets.token_hex(3)}")
    return created


def test_service_principal_with_secret(cli: Cli, cielo_server: CieloServer, rbac_secret: dict[str, Any]) -> None:
    app_id, secret = rbac_secret["appId"], rbac_secret["password"]
    # An SP without subscriptions: az's message, unless --allow-no-subscriptions.
    error = cli.fails("login", "--service-principal", "-u", app_id, "-p", secret, "--tenant", cielo_server.tenant_id)
    assert error.stderr.startswith(f"ERROR: No subscriptions found for {app_id}.")
    assert not (cli.config_dir / "profile.json").exists()

    entries = cli.json("login", "--service-principal", "-u", app_id, "-p", secret,
                       "--tenant", cielo_server.tenant_id, "--allow-no-subscriptions")
    assert entries[0]["user"] == {"name": app_id, "type": "servicePrincipal"}
    assert entries[0]["id"] == cielo_server.tenant_id and entries[0]["tenantId"] == cielo_server.tenant_id
    token = cli.json("account", "get-access-token", "--resource", COGNITIVE)
    claims = verify_token(cielo_server, token["accessToken"], COGNITIVE)
    assert claims["appid"] == app_id and claims["idtyp"] == "app" and claims["appidacr"] == "1"
    assert token["subscription"] == cielo_server.tenant_id

    # A wrong secret is refused with Entra's message; nothing is stored for it.
    other = cli.fails("login", "--service-principal", "-u", app_id, "-p", "wrong", "--tenant", "cielo.local",
                      "--allow-no-subscriptions")
    assert "AADSTS7000215" in other.stderr
    assert cli.json("account", "show")["user"]["name"] == app_id


def test_service_principal_with_certificate(cli: Cli, cielo_server: CieloServer, admin_cli: Cli,
                                            tmp_path: Path) -> None:
    created = admin_cli.json("ad", "sp", "create-for-rbac", "-n", f"cli-cert-{secrets.token_hex(3)}",
                             "--create-cert")
    pem = Path(created["fileWithCertAndPrivateKey"])
    assert created["password"] is None
    assert pem.is_file() and pem.stat().st_mode & 0o077 == 0
    assert pem.is_relative_to(admin_cli.home)  # az writes it in the home directory
    text = pem.read_text()
    assert "PRIVATE KEY-----" in text and "BEGIN CERTIFICATE-----" in text
    app_id = created["appId"]

    # `-p FILE`, as az's warning says, and `--certificate FILE`.
    cli.run("login", "--service-principal", "-u", app_id, "-p", str(pem), "--tenant", cielo_server.tenant_id,
            "--allow-no-subscriptions")
    token = cli.json("account", "get-access-token", "--resource", COGNITIVE)
    claims = verify_token(cielo_server, token["accessToken"], COGNITIVE)
    assert claims["appid"] == app_id and claims["appidacr"] == "2"
    second = make_cli(cielo_server, cli.env, tmp_path, "second")
    second.run("login", "--service-principal", "-u", app_id, "--certificate", str(pem), "--tenant", "cielo.local",
               "--allow-no-subscriptions")
    again = second.json("account", "get-access-token", "--resource", COGNITIVE, "--query", "accessToken")
    assert verify_token(cielo_server, again, COGNITIVE)["appid"] == app_id

    # Another certificate (not registered) is refused.
    stranger = admin_cli.json("ad", "sp", "create-for-rbac", "-n", f"cli-cert-{secrets.token_hex(3)}",
                              "--create-cert")
    error = second.fails("login", "--service-principal", "-u", app_id, "-p", stranger["fileWithCertAndPrivateKey"],
                         "--tenant", cielo_server.tenant_id, "--allow-no-subscriptions")
    assert "AADSTS700027" in error.stderr


def test_service_principal_with_federated_token(cli: Cli, cielo_server: CieloServer, admin_cli: Cli,
                                                rbac_secret: dict[str, Any]) -> None:
    """Workload identity federation with Cielo itself as the trusted issuer.

    A first service principal gets a token for an exchange audience of our own (an app with an
    identifier URI; `api://AzureADTokenExchange` is not a resource Cielo can issue tokens for); a
    second app trusts that issuer and subject; `cielo login --federated-token` signs in as it."""
    suffix = secrets.token_hex(3)
    audience = f"api://cielo-cli-exchange-{suffix}"
    exchange = admin_cli.json("ad", "app", "create", "--display-name", f"cli-exchange-{suffix}",
                              "--identifier-uris", audience)
    admin_cli.run("ad", "sp", "create", "--id", exchange["appId"])
    source_oid = admin_cli.run("ad", "sp", "show", "--id", rbac_secret["appId"], "--query", "id",
                               "-o", "tsv").stdout.strip()
    target = admin_cli.json("ad", "sp", "create-for-rbac", "-n", f"cli-federated-{suffix}")
    issuer = f"{cielo_server.base_url}/{cielo_server.tenant_id}/"
    admin_cli.run("ad", "app", "federated-credential", "create", "--id", target["appId"], "--parameters",
                  f'{{"name": "self", "issuer": "{issuer}", "subject": "{source_oid}", "audiences": ["{audience}"]}}')

    with cielo_server.http() as client:
        answer = client.post(f"/{cielo_server.tenant_id}/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": rbac_secret["appId"],
            "client_secret": rbac_secret["password"], "scope": f"{audience}/.default"})
    assert answer.status_code == 200, answer.text
    federated = answer.json()["access_token"]
    assert verify_token(cielo_server, federated, audience)["iss"] == issuer

    entries = cli.json("login", "--service-principal", "-u", target["appId"], "--federated-token", federated,
                       "--tenant", cielo_server.tenant_id, "--allow-no-subscriptions")
    assert entries[0]["user"] == {"name": target["appId"], "type": "servicePrincipal"}
    token = cli.json("account", "get-access-token", "--resource", COGNITIVE)
    assert verify_token(cielo_server, token["accessToken"], COGNITIVE)["appid"] == target["appId"]

    # A token from another subject is not trusted.
    error = cli.fails("login", "--service-principal", "-u", rbac_secret["appId"], "--federated-token", federated,
                      "--tenant", cielo_server.tenant_id, "--allow-no-subscriptions")
    assert "AADSTS70021" in error.stderr


def test_service_principal_needs_a_tenant_and_a_credential(cli: Cli, rbac_secret: dict[str, Any]) -> None:
    assert "--tenant" in cli.fails("login", "--service-principal", "-u", rbac_secret["appId"], "-p", "x").stderr
    assert "--password" in cli.fails("login", "--service-principal", "-u", rbac_secret["appId"],
                                     "--tenant", "cielo.local").stderr
