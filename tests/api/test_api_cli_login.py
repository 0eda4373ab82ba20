"""`cielo login` in-process, each way a user can sign in besides a password: the browser (authorization code +
PKCE with a loopback redirect: the "browser" is the test, which signs in on the in-process sign-in page and then
calls the CLI's loopback listener), the device code (the user approves while the CLI polls; its sleeps are the
test's turns), and a managed identity (`--identity`: through the in-process host agent to the in-process Cielo)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest
from fastapi import FastAPI
from inproc import ADMIN, BASE_URL, PASSWORD, RG, World, unique
from inproc_cli import Cli, SyncASGITransport, cli_in

from cielo.agent import upstream
from cielo.agent.credential import HostCredentialFile
from cielo.agent.server import build_app
from cielo.agent.upstream import TokenSource
from cielo.cli import managed_login
from cielo.client.http import CieloClient


@pytest.fixture()
def cli(world: World, tmp_path: Path) -> Iterator[Cli]:
    """A CLI that has never signed in."""
    with cli_in(world, tmp_path / "cielo-config") as runner:
        yield runner


@pytest.fixture()
def browser(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Callable[[str], str]]]:
    """A browser for the CLI to open: the test's steps, each given the URL it opened (or the last answer)."""
    steps: list[Callable[[str], str]] = []
    monkeypatch.setenv("BROWSER", "test-browser")  # a browser is available: `cielo login` picks it

    def open_url(url: str) -> bool:
        value = url
        for step in steps:
            value = step(value)
        return True

    monkeypatch.setattr("cielo.cli.browser_login.webbrowser.open", open_url)
    yield steps


def _sign_in(world: World, password: str = PASSWORD) -> Callable[[str], str]:
    """The user signs in on the page the URL shows; the result is where the page sends the browser."""
    def step(url: str) -> str:
        transport = SyncASGITransport(world.app)
        try:
            with httpx.Client(transport=transport, base_url=BASE_URL) as page:
                form = page.get(url.removeprefix(BASE_URL))
                assert form.status_code == 200, form.text
                fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form.text))
                fields.update({"username": ADMIN, "password": password})
                answer = page.post(urlparse(url).path, data=fields)
                assert answer.status_code == 302, answer.text
                return str(answer.headers["location"])
        finally:
            transport.shutdown()

    return step


def _arrive(url: str) -> str:
    """The browser follows the redirect to the CLI's loopback listener."""
    assert urlparse(url).hostname == "localhost"
    arrived = httpx.get(url.replace("localhost", "127.0.0.1"), follow_redirects=True)
    assert arrived.status_code == 200 and not arrived.url.query  # the code leaves the address bar
    failed = "error=" in url
    assert arrived.url.path == ("/failed" if failed else "/done")
    assert ("did not complete" if failed else "Authentication complete") in arrived.text
    return url


def test_browser_sign_in(cli: Cli, world: World, browser: list[Callable[[str], str]]) -> None:
    opened: list[str] = []

    def look(url: str) -> str:
        opened.append(url)
        # A stray request first (a favicon): the listener answers 404 and keeps waiting for the code.
        port = urlparse(parse_qs(urlparse(url).query)["redirect_uri"][0]).port
        assert httpx.get(f"http://127.0.0.1:{port}/favicon.ico").status_code == 404
        return url

    browser += [look, _sign_in(world), _arrive]
    result = cli("login", "-o", "json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "A web browser has been opened at" in result.stderr
    query = parse_qs(urlparse(opened[0]).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["scope"] == ["https://management.core.windows.net//.default offline_access openid profile"]
    assert cli.ok("account", "show", "--query", "user.name", "-o", "tsv") == f"{ADMIN}\n"
    assert cli.ok("account", "show", "--query", "id", "-o", "tsv") == f"{world.sub}\n"


def _callback(**values: str) -> Callable[[str], str]:
    """Where a sign-in would send the browser, made up from the authorize URL (no sign-in): `state` as sent."""
    def step(url: str) -> str:
        query = parse_qs(urlparse(url).query)
        return f"{query['redirect_uri'][0]}?{urlencode({'state': query['state'][0], **values})}"

    return step


@pytest.mark.parametrize(("values", "error"), [
    ({"error": "access_denied", "error_description": "the user said no"}, "ERROR: access_denied: the user said no"),
    ({"code": "c", "state": "forged"}, "ERROR: The sign-in response's state does not match; refusing it."),
    ({"code": "forged"}, "ERROR: AADSTS"),
])
def test_browser_sign_in_refusals(cli: Cli, browser: list[Callable[[str], str]], values: dict[str, str],
                                  error: str) -> None:
    browser += [_callback(**values), _arrive]
    result = cli("login")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines()[-1].startswith(error), result.stderr
    assert cli("account", "show").exit_code != 0  # nothing was stored


def test_the_browser_that_cannot_open_prints_the_url(cli: Cli, world: World,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROWSER", "test-browser")
    opened: list[str] = []

    def cannot_open(url: str) -> bool:
        opened.append(url)
        _arrive(_callback(error="access_denied", error_description="no")(url))  # the user copies the URL elsewhere
        return False

    monkeypatch.setattr("cielo.cli.browser_login.webbrowser.open", cannot_open)
    result = cli("login", "-o", "none")
    assert result.exit_code == 1 and result.stderr.endswith("ERROR: access_denied: no\n"), result.stderr
    assert f"Open this URL in a browser to sign in: {opened[0]}" in result.stderr


# ----------------------------------------------------------------------------- device code
@pytest.fixture()
def device(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The flow the CLI started, and what the user does at each of the CLI's waits ("approve", "decline", None)."""
    state: dict[str, Any] = {"flow": None, "turns": [], "slept": 0}
    original = CieloClient.device_code

    def record(self: CieloClient, tenant: str, client_id: str, scope: str) -> dict[str, Any]:
        state["flow"] = original(self, tenant, client_id, scope)
        return state["flow"]  # type: ignore[no-any-return]

    def wait(seconds: float) -> None:
        state["slept"] += 1
        decision = state["turns"].pop(0) if state["turns"] else None
        if decision is not None:
            user_code = state["flow"]["user_code"].upper().replace("-", "")
            user = world.admin_id if decision == "approved" else None
            assert world.services.grants.decide_device_code(user_code, decision, user)

    monkeypatch.setattr(CieloClient, "device_code", record)
    monkeypatch.setattr("cielo.cli.account.time.sleep", wait)
    yield state


def test_device_code_sign_in(cli: Cli, world: World, device: dict[str, Any]) -> None:
    device["turns"] = [None, "approved"]  # the user takes a while: the first poll finds it pending
    result = cli("login", "--use-device-code", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert device["flow"]["message"] in result.stderr and "/devicelogin" in result.stderr
    assert device["slept"] == 2  # a poll that finds it pending, then (approved meanwhile) the token
    assert cli.ok("account", "show", "--query", "user.name", "-o", "tsv") == f"{ADMIN}\n"


def test_device_code_declined(cli: Cli, device: dict[str, Any]) -> None:
    device["turns"] = ["declined"]
    result = cli("login", "--use-device-code")
    assert result.exit_code == 1 and result.stderr.splitlines()[-1].startswith("ERROR: AADSTS70000"), result.stderr


# ----------------------------------------------------------------------------- managed identity
@pytest.fixture()
def host_agent(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A VM with a system-assigned identity and its host agent, in-process; `cielo login --identity` reaches the
    agent through `IDENTITY_ENDPOINT`, as a workload on that VM would."""
    transport = SyncASGITransport(world.app)
    with httpx.Client(transport=transport, base_url=BASE_URL, headers=world.arm) as arm:
        vm = f"{world.rg_path(RG)}/providers/Microsoft.Compute/virtualMachines/{unique('login-vm')}"
        created = arm.put(vm, params={"api-version": "2023-09-01"}, json={"identity": {"type": "SystemAssigned"}})
        assert created.status_code == 201, created.text
        credential = arm.post(f"{vm}/issueHostCredential", params={"api-version": "2023-09-01"}).json()["credential"]
    transport.shutdown()

    def in_process(*, base_url: str, verify: Any, timeout: float) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=world.app), base_url=base_url)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(upstream, "httpx", SimpleNamespace(AsyncClient=in_process, HTTPError=httpx.HTTPError))
        source = TokenSource(HostCredentialFile(BASE_URL, world.tenant, vm, credential, None))
    agent = SyncASGITransport(cast(FastAPI, build_app(source, "i" * 40, world.tenant)))  # any ASGI app

    def get(url: str, *, params: dict[str, str], headers: dict[str, str], timeout: float) -> httpx.Response:
        with httpx.Client(transport=agent) as client:
            return client.get(url, params=params, headers=headers)

    monkeypatch.setattr(managed_login, "httpx", SimpleNamespace(get=get, HTTPError=httpx.HTTPError))
    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:8100/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "i" * 40)
    yield {"vm": vm, "principal": created.json()["identity"]["principalId"]}
    agent.shutdown()
    transport = SyncASGITransport(world.app)
    with httpx.Client(transport=transport, base_url=BASE_URL, headers=world.arm) as arm:
        assert arm.delete(vm, params={"api-version": "2023-09-01"}).status_code == 200
    transport.shutdown()


def test_managed_identity_sign_in(cli: Cli, world: World, host_agent: dict[str, Any]) -> None:
    [entry] = cli.json("login", "--identity", "--allow-no-subscriptions")
    assert entry["user"] == {"name": "systemAssignedIdentity", "type": "servicePrincipal",
                             "assignedIdentityInfo": "MSI"}
    assert entry["tenantId"] == world.tenant and entry["name"] == "N/A(tenant level account)"
    token = cli.json("account", "get-access-token", "--resource", "https://cognitiveservices.azure.com")
    claims = _claims(token["accessToken"])
    assert (claims["oid"], claims["aud"]) == (host_agent["principal"], "https://cognitiveservices.azure.com")


def test_managed_identity_sign_in_for_an_identity_the_host_lacks(cli: Cli, host_agent: dict[str, Any]) -> None:
    assert cli.fails("login", "--identity", "-u", "00000000-0000-0000-0000-0000000000bb") == \
        "ERROR: Failed to get a managed identity token: Identity not found\n"


@pytest.mark.parametrize(("answer", "error"), [
    (None, "ERROR: Failed to connect to the managed identity endpoint: refused. Is a host agent running "
           "(`cielo agent`)?\n"),
    (httpx.Response(502, text="<html>bad gateway</html>"),
     "ERROR: The managed identity endpoint answered 502 without JSON.\n"),
    (httpx.Response(400, json={"error": "invalid_request"}),
     "ERROR: Failed to get a managed identity token: invalid_request\n"),
])
def test_managed_identity_endpoint_failures(cli: Cli, monkeypatch: pytest.MonkeyPatch,
                                            answer: httpx.Response | None, error: str) -> None:
    def get(url: str, **_kwargs: Any) -> httpx.Response:
        if answer is None:
            raise httpx.ConnectError("refused")
        return answer

    monkeypatch.setattr(managed_login, "httpx", SimpleNamespace(get=get, HTTPError=httpx.HTTPError))
    assert cli.fails("login", "--identity") == error


def _claims(token: str) -> dict[str, Any]:
    import jwt

    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims
