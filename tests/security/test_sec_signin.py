"""Sign-in attacks: redirect-URI confusion, password guessing, user enumeration, CSRF, device-code phishing.

Each test attacks a real `cielo up` the way the outside review did and asserts the refusal and its code.
"""

from __future__ import annotations

import re
import secrets
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from identity_support import (
    COGNITIVE_SCOPE,
    UserAccount,
    check_oauth_error,
    new_user,
    query_of,
    submit_sign_in,
    token_post,
)

from support.browser import csrf_token, device_login
from support.server import CLI_CLIENT_ID, CieloServer, start_server

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def _authorize_url(server: CieloServer, redirect_uri: str, **extra: str) -> str:
    query = {"client_id": CLI_CLIENT_ID, "response_type": "code", "redirect_uri": redirect_uri,
             "scope": "openid offline_access", "state": "s", **extra}
    return f"{server.base_url}/{server.tenant_id}/oauth2/v2.0/authorize?{urlencode(query)}"


def _browser(server: CieloServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, verify=server.bundle, timeout=30, follow_redirects=False)


def _ropc(server: CieloServer, username: str, password: str, client_id: str = CLI_CLIENT_ID) -> httpx.Response:
    return token_post(server, {"grant_type": "password", "client_id": client_id, "username": username,
                               "password": password, "scope": GRAPH_SCOPE})


@pytest.fixture(scope="module")
def member_user(cielo_server: CieloServer) -> UserAccount:
    return new_user(cielo_server, "sec-signin")


# ----------------------------------------------------------------------------- 1. redirect URI confusion
@pytest.mark.parametrize("redirect_uri", [
    "http://evil.example:10450\\@localhost/",      # urlsplit reads host localhost; browsers read evil.example
    "http://evil.example\\@127.0.0.1:8400/",
    "http://localhost@evil.example/",              # userinfo
    "http://localhost:8400@evil.example/",
    "http://localhost%2eevil.example/",            # percent-encoded host characters
    "http://127.0.0.1.evil.example/",
    "http://localhost:8400#@evil.example/",        # fragment
    "http://localhost:8400/\\evil.example",
    "http://localhost:8400/cb\t",
    "http://LOCALHOST:8400/",
    "http://[::1]@evil.example/",
    "http://evil.example/",
    "https://evil.example/cb",
    "javascript:alert(1)//localhost",
])
def test_redirect_uri_tricks_are_refused(cielo_server: CieloServer, redirect_uri: str) -> None:
    for mode in ("form_post", "query"):
        with _browser(cielo_server) as browser:
            page = browser.get(_authorize_url(cielo_server, redirect_uri, response_mode=mode))
        assert page.status_code == 400, page.text
        assert "AADSTS50011" in page.text
        assert "evil.example" not in page.headers.get("location", "")


def test_the_reported_code_theft_gets_no_code(cielo_server: CieloServer, member_user: UserAccount) -> None:
    """The review's attack: form_post to `http://evil.example:10450\\@localhost/` after a real sign-in."""
    url = _authorize_url(cielo_server, "http://evil.example:10450\\@localhost/", response_mode="form_post")
    with _browser(cielo_server) as browser:
        page = browser.get(url)
        assert page.status_code == 400 and "AADSTS50011" in page.text
        # Posting the form directly, as an attacker's page would, is refused the same way.
        answer = browser.post(f"/{cielo_server.tenant_id}/oauth2/v2.0/authorize", data={
            **dict(query_of(url)), "username": member_user.upn, "password": member_user.password,
            "csrf_token": browser.cookies.get("cielo_csrf", "")})
    assert answer.status_code == 400 and "AADSTS50011" in answer.text
    assert 'name="code"' not in answer.text


def test_form_post_targets_the_rebuilt_loopback_uri(cielo_server: CieloServer, member_user: UserAccount) -> None:
    answer = submit_sign_in(cielo_server, _authorize_url(cielo_server, "http://127.0.0.1:33333/cb?x=1",
                                                         response_mode="form_post"),
                            member_user.upn, member_user.password)
    assert answer.status_code == 200, answer.text
    actions = re.findall(r'<form method="post" name="hiddenform" action="([^"]*)"', answer.text)
    assert actions == ["http://127.0.0.1:33333/cb?x=1"]


# ----------------------------------------------------------------------------- 2. lockout and throttling
@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CieloServer]:
    """A server with a low lockout threshold and short lockouts, so the tests can watch them grow."""
    server = start_server(tmp_path_factory.mktemp("lockout") / "data", env={
        "CIELO_LOCKOUT_THRESHOLD": "3", "CIELO_LOCKOUT_DURATION_S": "2", "CIELO_LOCKOUT_MAX_S": "60",
        "CIELO_SIGNIN_THROTTLE_FAILURES": "1000"})
    yield server
    server.stop()


def _locked(response: httpx.Response) -> int:
    check_oauth_error(response, 400, "invalid_grant", 50053)
    return int(response.headers["retry-after"])


def test_smart_lockout_on_the_token_endpoint(strict_server: CieloServer) -> None:
    user = new_user(strict_server, "lockout")
    for _ in range(3):
        check_oauth_error(_ropc(strict_server, user.upn, "wrong-password"), 400, "invalid_grant", 50126)
    # Locked: even the right password is refused, with Retry-After.
    retry = _locked(_ropc(strict_server, user.upn, user.password))
    assert 1 <= retry <= 2
    time.sleep(retry + 0.2)
    # After a lockout, one more failure locks again, for twice as long.
    check_oauth_error(_ropc(strict_server, user.upn, "wrong-again"), 400, "invalid_grant", 50126)
    assert 3 <= _locked(_ropc(strict_server, user.upn, user.password)) <= 4
    time.sleep(4.2)
    assert _ropc(strict_server, user.upn, user.password).status_code == 200


def test_unknown_names_lock_like_real_ones(strict_server: CieloServer) -> None:
    """A lockout must not reveal whether the account exists."""
    ghost = f"nobody-{secrets.token_hex(4)}@cielo.local"
    for _ in range(3):
        check_oauth_error(_ropc(strict_server, ghost, "guess"), 400, "invalid_grant", 50126)
    _locked(_ropc(strict_server, ghost, "guess"))


def test_lockout_on_the_sign_in_form(strict_server: CieloServer) -> None:
    user = new_user(strict_server, "formlock")
    url = _authorize_url(strict_server, "http://localhost:8400")
    for _ in range(3):
        assert submit_sign_in(strict_server, url, user.upn, "wrong").status_code == 400
    answer = submit_sign_in(strict_server, url, user.upn, user.password)
    assert answer.status_code == 429 and "AADSTS50053" in answer.text
    assert int(answer.headers["retry-after"]) >= 1
    assert "location" not in answer.headers


def test_lockout_on_device_login(strict_server: CieloServer) -> None:
    user = new_user(strict_server, "devlock")
    with strict_server.http() as client:
        flow = client.post(f"/{strict_server.tenant_id}/oauth2/v2.0/devicecode",
                           data={"client_id": CLI_CLIENT_ID, "scope": GRAPH_SCOPE}).json()
    for _ in range(3):
        answer = device_login(strict_server.base_url, strict_server.bundle, flow["user_code"], user.upn, "wrong")
        assert answer.status_code == 400
    answer = device_login(strict_server.base_url, strict_server.bundle, flow["user_code"], user.upn, user.password)
    assert answer.status_code == 429 and "AADSTS50053" in answer.text


def test_failures_from_one_address_are_throttled(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", env={"CIELO_SIGNIN_THROTTLE_FAILURES": "4",
                                                   "CIELO_SIGNIN_THROTTLE_WINDOW_S": "30"})
    try:
        for _ in range(4):  # four different names: no single account reaches its lockout
            name = f"spray-{secrets.token_hex(3)}@cielo.local"
            check_oauth_error(_ropc(server, name, "Winter2026!"), 400, "invalid_grant", 50126)
        response = _ropc(server, f"spray-{secrets.token_hex(3)}@cielo.local", "Winter2026!")
        assert 1 <= _locked(response) <= 30
        assert "IP address" in response.json()["error_description"]
    finally:
        server.stop()


# ----------------------------------------------------------------------------- 3. user enumeration
def test_bad_client_answers_the_same_for_every_user(cielo_server: CieloServer, member_user: UserAccount) -> None:
    unknown_client = str(uuid.uuid4())
    ghost = f"ghost-{secrets.token_hex(4)}@cielo.local"
    existing = _ropc(cielo_server, member_user.upn, "wrong", client_id=unknown_client)
    missing = _ropc(cielo_server, ghost, "wrong", client_id=unknown_client)
    check_oauth_error(existing, 400, "unauthorized_client", 700016)
    check_oauth_error(missing, 400, "unauthorized_client", 700016)


def test_unknown_user_and_wrong_password_answer_alike(cielo_server: CieloServer, member_user: UserAccount) -> None:
    ghost = f"ghost-{secrets.token_hex(4)}@cielo.local"
    a = check_oauth_error(_ropc(cielo_server, member_user.upn, "wrong"), 400, "invalid_grant", 50126)
    b = check_oauth_error(_ropc(cielo_server, ghost, "wrong"), 400, "invalid_grant", 50126)
    strip = re.compile(r"Trace ID.*", re.S)
    assert strip.sub("", a["error_description"]) == strip.sub("", b["error_description"])


def _median_seconds(call: Any, times: int = 5) -> float:
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def test_every_failure_costs_one_password_check(cielo_server: CieloServer, member_user: UserAccount) -> None:
    """A timing side channel is a security property: a bad client, an unknown user and a wrong password
    must all spend the argon2 verification (the review measured about 3 ms against 260 ms)."""
    unknown_client = str(uuid.uuid4())
    ghost = f"ghost-{secrets.token_hex(4)}@cielo.local"
    cases = {
        "existing user, bad client": lambda: _ropc(cielo_server, member_user.upn, "x", client_id=unknown_client),
        "unknown user, bad client": lambda: _ropc(cielo_server, ghost, "x", client_id=unknown_client),
        "unknown user": lambda: _ropc(cielo_server, ghost, "x"),
    }
    timings = {name: _median_seconds(call) for name, call in cases.items()}
    fastest, slowest = min(timings.values()), max(timings.values())
    assert slowest < fastest * 3, timings


# ----------------------------------------------------------------------------- CSRF, device-code phishing
def test_sign_in_form_needs_its_csrf_token(cielo_server: CieloServer, member_user: UserAccount) -> None:
    url = _authorize_url(cielo_server, "http://localhost:8400")
    form = {**query_of(url), "username": member_user.upn, "password": member_user.password}
    path = f"/{cielo_server.tenant_id}/oauth2/v2.0/authorize"
    with _browser(cielo_server) as browser:  # an attacker's page posting cross-site: no cookie, no token
        answer = browser.post(path, data=form)
    assert answer.status_code == 400 and "location" not in answer.headers
    with _browser(cielo_server) as browser:  # a token, but not the one bound to this browser's cookie
        browser.get(url)
        answer = browser.post(path, data={**form, "csrf_token": secrets.token_urlsafe(32)})
    assert answer.status_code == 400 and "location" not in answer.headers
    with _browser(cielo_server) as browser:
        page = browser.get(url)
        assert "httponly" in page.headers["set-cookie"].lower() and "samesite=strict" in page.headers[
            "set-cookie"].lower()
        answer = browser.post(path, data={**form, "csrf_token": csrf_token(page)})
    assert answer.status_code == 302 and "code=" in answer.headers["location"]


def _device_flow(server: CieloServer, client_id: str = CLI_CLIENT_ID) -> dict[str, Any]:
    with server.http() as client:
        response = client.post(f"/{server.tenant_id}/oauth2/v2.0/devicecode",
                               data={"client_id": client_id, "scope": COGNITIVE_SCOPE})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _poll(server: CieloServer, flow: dict[str, Any]) -> httpx.Response:
    return token_post(server, {"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                               "client_id": CLI_CLIENT_ID, "device_code": flow["device_code"]})


def test_device_login_needs_its_csrf_token(cielo_server: CieloServer, member_user: UserAccount) -> None:
    flow = _device_flow(cielo_server)
    with _browser(cielo_server) as browser:
        answer = browser.post("/devicelogin", data={"user_code": flow["user_code"], "username": member_user.upn,
                                                    "password": member_user.password, "decision": "approve"})
    assert answer.status_code == 400
    check_oauth_error(_poll(cielo_server, flow), 400, "authorization_pending", 70016)


def test_device_login_names_the_app_and_scopes_before_approval(cielo_server: CieloServer) -> None:
    flow = _device_flow(cielo_server)
    with _browser(cielo_server) as browser:
        page = browser.get("/devicelogin")
        assert 'name="password"' not in page.text  # step one asks for the code only
        consent = browser.post("/devicelogin", data={"user_code": flow["user_code"], "csrf_token": csrf_token(page)})
    assert consent.status_code == 200
    assert "Microsoft Azure CLI" in consent.text and COGNITIVE_SCOPE in consent.text
    buttons = re.findall(r'<button[^>]*type="submit"[^>]*value="(\w+)"', consent.text)
    assert buttons[0] == "approve", "pressing Enter submits the first button: it must approve, not deny"
    assert "deny" in buttons[1:]


def test_device_login_deny_needs_no_password(cielo_server: CieloServer) -> None:
    flow = _device_flow(cielo_server)
    answer = device_login(cielo_server.base_url, cielo_server.bundle, flow["user_code"], "", "", decision="deny")
    assert answer.status_code == 200 and "denied" in answer.text.lower()
    check_oauth_error(_poll(cielo_server, flow), 400, "authorization_declined", 70000)


# ----------------------------------------------------------------------------- session_state
def test_session_state_is_opaque(cielo_server: CieloServer, member_user: UserAccount) -> None:
    states = []
    for _ in range(2):
        answer = submit_sign_in(cielo_server, _authorize_url(cielo_server, "http://localhost:8400"),
                                member_user.upn, member_user.password)
        assert answer.status_code == 302
        states.append(query_of(answer.headers["location"])["session_state"])
    assert member_user.object_id not in states and states[0] != states[1]
    assert all(uuid.UUID(s) for s in states)
