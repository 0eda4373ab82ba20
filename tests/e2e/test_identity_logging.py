"""Secrets never reach the server's log: client secrets, passwords, codes, refresh and access tokens."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from identity_support import (
    COGNITIVE_SCOPE,
    GRAPH,
    LOOPBACK_REDIRECT,
    UserAccount,
    new_app,
    new_user,
    query_of,
    sign_in_via_browser,
    token_post,
)

from support.server import ADMIN_PASSWORD, CLI_CLIENT_ID, CieloServer, start_server


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


def test_session_server_log_has_no_secrets(cielo_server: CieloServer, member_user: UserAccount) -> None:
    seen = _run_flows(cielo_server, member_user)
    _assert_clean(cielo_server.log_text(), seen)


@pytest.fixture(scope="module")
def debug_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CieloServer]:
    server = start_server(tmp_path_factory.mktemp("debuglog") / "data", extra_args=("--log-level", "debug"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def debug_traffic(debug_server: CieloServer) -> dict[str, Any]:
    """Flows, plus secrets in query strings, which an access log would print verbatim."""
    user = new_user(debug_server, "bob")
    seen = _run_flows(debug_server, user)
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
    return {"seen": seen}


def test_debug_log_has_no_secrets(debug_server: CieloServer, debug_traffic: dict[str, Any]) -> None:
    log = debug_server.log_text()
    # The access log is on at debug level: the requests are there, their secrets are not.
    assert f"/{debug_server.tenant_id}/oauth2/v2.0/token" in log
    assert "code=<redacted>" in log
    _assert_clean(log, debug_traffic["seen"])


def test_debug_access_log_lines_survive_redaction(debug_server: CieloServer,
                                                  debug_traffic: dict[str, Any]) -> None:
    log = debug_server.log_text()
    assert "--- Logging error ---" not in log
    lines = [line for line in log.splitlines() if "oauth2/v2.0/token?code=<redacted>" in line]
    assert len(lines) == 1 and lines[0].startswith("INFO:") and '" 200' in lines[0], lines
