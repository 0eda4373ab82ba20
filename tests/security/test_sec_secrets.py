"""Secrets at rest and in logs.

At rest (docs/security.md): passwords are stored as argon2id hashes, client secrets, host credentials, refresh
tokens, authorization and device codes as SHA-256 hashes, and account API keys as a SHA-256 hash plus a sealed
(Fernet) copy for listKeys; none of them, and no access token, is anywhere in the data directory in plaintext (the
SQLite database, its write-ahead log, any other file). Private keys (token signing, TLS, sealing) are mode 0600 in
0700 directories.

In logs: after flows that carry passwords, client secrets (in the form and in HTTP Basic), authorization and device
codes, PKCE verifiers, refresh tokens, bearer tokens, host credentials and API keys (in headers and query strings),
none of those strings is in the server's log, at the default level or at debug level (where the access log is on).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from identity_support import (
    COGNITIVE_SCOPE,
    GRAPH,
    LOOPBACK_REDIRECT,
    UserAccount,
    approve_device_code,
    new_app,
    new_user,
    query_of,
    sign_in_via_browser,
    token_post,
)
from security_support import ACCOUNT, ARM, client_of, database_texts, files_containing

from support.server import ADMIN_PASSWORD, CLI_CLIENT_ID, CieloServer, start_server

pytestmark = pytest.mark.e2e


def _run_flows(server: CieloServer, user: UserAccount) -> list[str]:
    """Client credentials, ROPC, refresh, auth code (good and bad); returns every secret that went by."""
    app = new_app(server, "e2e-log")
    seen = [app["secret"], user.password, ADMIN_PASSWORD]
    good = token_post(server, {"client_id": app["appId"], "client_secret": app["secret"],
                               "grant_type": "client_credentials", "scope": COGNITIVE_SCOPE})
    assert good.status_code == 200
    seen.append(good.json()["access_token"])
    wrong = token_post(server, {"client_id": app["appId"], "client_secret": app["secret"][::-1],
                                "grant_type": "client_credentials", "scope": COGNITIVE_SCOPE})
    assert wrong.status_code == 401
    seen.append(app["secret"][::-1])
    user_tokens = token_post(server, {"client_id": CLI_CLIENT_ID, "grant_type": "password", "username": user.upn,
                                      "password": user.password, "scope": f"{GRAPH}/.default offline_access"})
    assert user_tokens.status_code == 200
    seen += [user_tokens.json()["access_token"], user_tokens.json()["refresh_token"]]
    refreshed = token_post(server, {"client_id": CLI_CLIENT_ID, "grant_type": "refresh_token",
                                    "refresh_token": user_tokens.json()["refresh_token"], "scope": f"{GRAPH}/.default"})
    assert refreshed.status_code == 200
    seen.append(refreshed.json()["access_token"])
    bad_password = token_post(server, {"client_id": CLI_CLIENT_ID, "grant_type": "password",
                                       "username": user.upn, "password": "Wr0ng-Passw0rd-xyz",
                                       "scope": f"{GRAPH}/.default"})
    assert bad_password.status_code == 400
    seen.append("Wr0ng-Passw0rd-xyz")
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {"client_id": CLI_CLIENT_ID, "response_type": "code", "redirect_uri": LOOPBACK_REDIRECT,
             "scope": f"{GRAPH}/.default openid", "code_challenge": challenge, "code_challenge_method": "S256"}
    location = sign_in_via_browser(server, f"{server.base_url}/{server.tenant_id}/oauth2/v2.0/authorize?"
                                   f"{urlencode(query)}", user.upn, user.password)
    code = query_of(location)["code"]
    redeemed = token_post(server, {"client_id": CLI_CLIENT_ID, "grant_type": "authorization_code", "code": code,
                                   "redirect_uri": LOOPBACK_REDIRECT, "code_verifier": verifier})
    assert redeemed.status_code == 200, redeemed.text
    seen += [code, verifier, redeemed.json()["access_token"], redeemed.json()["id_token"]]
    return seen


def _assert_clean(log: str, values: list[str]) -> None:
    for value in values:
        assert value not in log, f"a secret ({value[:4]}...) is in the server log"


def test_session_server_log_has_no_secrets(cielo_server: CieloServer) -> None:
    seen = _run_flows(cielo_server, new_user(cielo_server, "sec-log"))
    _assert_clean(cielo_server.log_text(), seen)


@pytest.fixture(scope="module")
def debug_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CieloServer]:
    server = start_server(tmp_path_factory.mktemp("debuglog") / "data", extra_args=("--log-level", "debug"),
                          env={"CIELO_DEVICE_CODE_INTERVAL_S": "1"})
    yield server
    server.stop()


def _device_code_flow(server: CieloServer, user: UserAccount) -> dict[str, Any]:
    """RFC 8628 as the CLI does it: the device code goes by on every poll; returns it and the tokens."""
    started = token_post(server, {"client_id": CLI_CLIENT_ID, "scope": f"{GRAPH}/.default offline_access"},
                         path="oauth2/v2.0/devicecode")
    assert started.status_code == 200, started.text
    device_code = started.json()["device_code"]
    approve_device_code(server, started.json()["user_code"], user)
    for _ in range(10):
        time.sleep(started.json()["interval"])
        polled = token_post(server, {"client_id": CLI_CLIENT_ID, "device_code": device_code,
                                     "grant_type": "urn:ietf:params:oauth:grant-type:device_code"})
        if polled.status_code == 200:
            return {"device_code": device_code, **polled.json()}
        assert polled.json()["error"] in ("authorization_pending", "slow_down"), polled.text
    raise AssertionError("the device code was never redeemed")


def _arm(server: CieloServer, token: str, method: str, path: str, body: Any = None,
         api: str = "2023-05-01") -> httpx.Response:
    return client_of(server).request(method, path, params={"api-version": api}, json=body,
                                     headers={"Authorization": f"Bearer {token}"})


def _keys_and_host_credentials(server: CieloServer) -> dict[str, Any]:
    """As the administrator: the account's API keys (listKeys, then regenerateKey), used on the data plane in the
    header, as a bearer on /openai/v1 and wrong; a VM's host credential, used to get a managed-identity token."""
    admin = server.admin_token(ARM)
    account = f"/subscriptions/{server.subscription_id}/resourceGroups/cielo-rg/providers/" \
              f"Microsoft.CognitiveServices/accounts/{ACCOUNT}"
    listed = _arm(server, admin, "POST", f"{account}/listKeys")
    assert listed.status_code == 200, listed.text
    regenerated = _arm(server, admin, "POST", f"{account}/regenerateKey", {"keyName": "Key2"})
    assert regenerated.status_code == 200, regenerated.text
    keys = [listed.json()["key1"], listed.json()["key2"], regenerated.json()["key2"]]
    client = client_of(server)
    models = f"/accounts/{ACCOUNT}/openai/v1/models"
    assert client.get(models, headers={"api-key": keys[0]}).status_code == 200
    assert client.get(models, headers={"Authorization": f"Bearer {keys[2]}"}).status_code == 200
    wrong_key = keys[0][::-1]
    assert client.get(models, headers={"api-key": wrong_key}).status_code == 401

    vm = f"/subscriptions/{server.subscription_id}/resourceGroups/cielo-rg/providers/Microsoft.Compute/" \
         f"virtualMachines/sec-vm-{secrets.token_hex(3)}"
    created = _arm(server, admin, "PUT", vm, {"identity": {"type": "SystemAssigned"}}, api="2023-09-01")
    assert created.status_code in (200, 201), created.text
    issued = _arm(server, admin, "POST", f"{vm}/issueHostCredential", api="2023-09-01")
    assert issued.status_code == 200, issued.text
    credential = issued.json()["credential"]
    mi = client.post("/cielo/managed-identity/token", data={"resource": "https://cognitiveservices.azure.com"},
                     headers={"Authorization": f"HostCredential {credential}"})
    assert mi.status_code == 200, mi.text
    return {"admin": admin, "keys": keys, "wrong_key": wrong_key, "credential": credential,
            "mi_token": mi.json()["access_token"]}


@pytest.fixture(scope="module")
def debug_traffic(debug_server: CieloServer) -> dict[str, Any]:
    """Flows, plus secrets in query strings, which an access log would print verbatim; plus the device code flow,
    HTTP Basic client authentication, API keys and a host credential. `at_rest` names what must not be stored."""
    user = new_user(debug_server, "bob")
    seen = _run_flows(debug_server, user)
    device = _device_code_flow(debug_server, user)
    seen += [device["device_code"], device["access_token"], device["refresh_token"]]
    basic_app = new_app(debug_server, "e2e-basic")
    basic = base64.b64encode(f"{basic_app['appId']}:{basic_app['secret']}".encode()).decode()
    answer = token_post(debug_server, {"grant_type": "client_credentials", "scope": COGNITIVE_SCOPE},
                        headers={"Authorization": f"Basic {basic}"})
    assert answer.status_code == 200, answer.text
    seen += [basic_app["secret"], basic, answer.json()["access_token"]]
    held = _keys_and_host_credentials(debug_server)
    seen += [*held["keys"], held["wrong_key"], held["credential"], held["credential"].split(".", 1)[1],
             held["mi_token"], held["admin"]]
    app = new_app(debug_server, "e2e-query")
    query_code = "Qc0de" + secrets.token_urlsafe(24)
    with debug_server.http() as client:
        response = client.post(
            f"/{debug_server.tenant_id}/oauth2/v2.0/token?{urlencode({'code': query_code})}",
            data={"client_id": app["appId"], "client_secret": app["secret"], "grant_type": "client_credentials",
                  "scope": COGNITIVE_SCOPE},
        )
        assert response.status_code == 200
        seen += [app["secret"], response.json()["access_token"]]
        page = client.get(f"/{debug_server.tenant_id}/oauth2/v2.0/authorize?code={query_code}&"
                          f"client_secret={app['secret']}&client_id={CLI_CLIENT_ID}")
        assert page.status_code == 400
    seen.append(query_code)
    at_rest = {
        "password": user.password, "client secret": basic_app["secret"], "API key 1": held["keys"][0],
        "API key 2 (old)": held["keys"][1], "API key 2 (regenerated)": held["keys"][2],
        "host credential secret": held["credential"].split(".", 1)[1], "device code": device["device_code"],
        "refresh token": device["refresh_token"], "access token": device["access_token"],
        "managed identity token": held["mi_token"],
    }
    return {"seen": seen, "at_rest": at_rest, "user": user, "app": basic_app, "keys": held["keys"],
            "credential": held["credential"]}


def test_debug_log_has_no_secrets(debug_server: CieloServer, debug_traffic: dict[str, Any]) -> None:
    log = debug_server.log_text()
    # The access log (Cielo's, at every level) names the requests, never their query strings or secrets.
    assert f"/{debug_server.tenant_id}/oauth2/v2.0/token" in log
    assert "?code=" not in log
    _assert_clean(log, debug_traffic["seen"])


def test_debug_access_log_lines_survive_redaction(debug_server: CieloServer,
                                                  debug_traffic: dict[str, Any]) -> None:
    log = debug_server.log_text()
    assert "--- Logging error ---" not in log
    # One line per request even at debug level: Cielo's access line; uvicorn's own access log stays off.
    assert not [line for line in log.splitlines() if ' HTTP/1.1" ' in line], log[-2000:]
    token_path = f"POST /{debug_server.tenant_id}/oauth2/v2.0/token 200 "
    lines = [line for line in log.splitlines() if "cielo.access" in line and token_path in line]
    assert lines, log[-2000:]


# ----------------------------------------------------------------------------- at rest
def test_no_secret_is_in_the_data_directory_in_plaintext(debug_server: CieloServer,
                                                         debug_traffic: dict[str, Any]) -> None:
    """Every cell of every table of cielo.db (read through SQLite, WAL included), and every file's raw bytes."""
    secrets_at_rest: dict[str, str] = debug_traffic["at_rest"]
    cells = list(database_texts(debug_server.data_dir))
    # The search finds what is stored in plaintext: the user's name and the application's id.
    for public in (debug_traffic["user"].upn, debug_traffic["app"]["appId"]):
        assert any(public in text for _, _, text in cells), public
        assert files_containing(debug_server.data_dir, public), public
    for what, value in secrets_at_rest.items():
        where = [(table, column) for table, column, text in cells if value in text]
        assert where == [], f"the {what} is stored in plaintext in {where}"
        files = files_containing(debug_server.data_dir, value)
        assert files == [], f"the {what} is in {files}"


def _column(data_dir: Path, table: str, column: str) -> list[str]:
    return [text for t, c, text in database_texts(data_dir) if (t, c) == (table, column)]


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def test_secrets_are_stored_as_their_hashes(debug_server: CieloServer, debug_traffic: dict[str, Any]) -> None:
    data_dir = debug_server.data_dir
    # Passwords: argon2id, salted (two users with the same password have different hashes).
    password_hashes = _column(data_dir, "users", "password_hash")
    assert password_hashes and all(h.startswith("$argon2id$") for h in password_hashes), password_hashes
    assert len(set(password_hashes)) == len(password_hashes)
    # Client secrets: SHA-256, with only a three-character hint kept.
    assert sha256(debug_traffic["app"]["secret"]) in _column(data_dir, "password_credentials", "secret_hash")
    assert debug_traffic["app"]["secret"][:3] in _column(data_dir, "password_credentials", "hint")
    # API keys: SHA-256 for the data plane's check, and a Fernet-sealed copy for listKeys.
    key1, _, key2 = debug_traffic["keys"]
    assert sha256(key1) in _column(data_dir, "account_keys", "key1_hash")
    assert sha256(key2) in _column(data_dir, "account_keys", "key2_hash")
    sealed = _column(data_dir, "account_keys", "key1_encrypted") + _column(data_dir, "account_keys", "key2_encrypted")
    assert sealed and all(s.startswith("gAAAAA") for s in sealed), sealed  # Fernet's version byte and timestamp
    # Host credentials (`<id>.<secret>`): the id, and a hash of the secret.
    credential_id, secret = debug_traffic["credential"].split(".", 1)
    assert credential_id in _column(data_dir, "host_credentials", "id")
    assert all(secret not in h for h in _column(data_dir, "host_credentials", "secret_hash"))
    # Refresh tokens and device codes: SHA-256 (64 hex digits) as the lookup key.
    for table, column in (("refresh_tokens", "token_hash"), ("device_codes", "device_code_hash"),
                          ("auth_codes", "code_hash")):
        values = _column(data_dir, table, column)
        assert values and all(len(v) == 64 and set(v) <= set("0123456789abcdef") for v in values), (table, values)


def test_private_keys_are_readable_by_their_owner_only(debug_server: CieloServer) -> None:
    data_dir = debug_server.data_dir
    private = [*sorted((data_dir / "keys").glob("*.key")), data_dir / "tls" / "ca-key.pem",
               data_dir / "tls" / "server-key.pem", data_dir / "sealing.key"]
    assert len(private) >= 4 and all(p.exists() for p in private), private
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} is {oct(path.stat().st_mode)}"
    for directory in (data_dir, data_dir / "keys", data_dir / "tls"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, f"{directory} is {oct(directory.stat().st_mode)}"
    # The administrator's password (given to `cielo up` on its command line here) is not kept either.
    assert files_containing(data_dir, ADMIN_PASSWORD) == []
