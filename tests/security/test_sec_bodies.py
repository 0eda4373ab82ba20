"""Memory exhaustion through request bodies: every body limit holds while the body streams in.

Against the session's real `cielo up`, per surface (token endpoint, ARM, Graph, Azure OpenAI data plane):
- a declared Content-Length over the limit gets 413 in the surface's envelope although only a few bytes
  were sent (so the server answered without waiting for, let alone holding, the body);
- a chunked body streaming 64 MB gets 413, and the server's peak RSS meanwhile grows by far less than
  the body (the kernel's VmHWM, reset just before, plus sampling of VmRSS);
- JSON nested 100,000 deep (100 KB, under every limit) gets 400 in the envelope, not a 500;
- an unauthenticated caller declaring a huge body gets 401 at once: nothing is read before authentication.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.server import ADMIN_PASSWORD, ADMIN_USER, CLI_CLIENT_ID, CieloServer

pytestmark = pytest.mark.e2e

ARM_SCOPE = "https://management.core.windows.net//.default"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
USER_PASSWORD = "B0dies-Passw0rd!x"
STREAMED = 64 * 1024 * 1024
MAX_GROWTH = 20 * 1024 * 1024
PROMPT_S = 5.0
DECLARED = 150_000_000  # what the report's member user sent to getByIds
MISSING_KEY = ("Access denied due to missing subscription key. Make sure to include subscription key when making "
               "requests to an API.")


# ----------------------------------------------------------------------------- the server's memory
def _tree(pid: int) -> list[int]:
    """The server process and its descendants."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            pass
    return pids


def _status_kib(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class PeakRss:
    """Peak resident memory of the server's processes while a block runs, in bytes above the start."""

    pid: int
    baseline: int = 0
    samples: list[int] = field(default_factory=list)
    hwm_reset: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)

    def total(self, name: str) -> int:
        return sum(_status_kib(p, name) for p in _tree(self.pid)) * 1024

    def __enter__(self) -> PeakRss:
        try:  # Linux: writing 5 to clear_refs resets VmHWM (the peak) to the current RSS
            for pid in _tree(self.pid):
                Path(f"/proc/{pid}/clear_refs").write_text("5")
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self.baseline = self.total("VmRSS")
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.total("VmRSS"))
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(self.total("VmRSS"))
        if self.hwm_reset:
            self.samples.append(self.total("VmHWM"))

    @property
    def growth(self) -> int:
        return max(self.samples) - self.baseline


# ----------------------------------------------------------------------------- requests
def raw_request(server: CieloServer, method: str, path: str, headers: dict[str, str],
                body: bytes = b"") -> tuple[httpx.Response, float]:
    """Headers and a few body bytes, whatever Content-Length says; the answer and how long it took."""
    context = ssl.create_default_context(cafile=server.bundle)
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=PROMPT_S * 4) as sock, \
            context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
        head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}",
                *(f"{name}: {value}" for name, value in headers.items()), "", ""]
        tls.sendall("\r\n".join(head).encode() + body)
        answer = http.client.HTTPResponse(tls)  # type: ignore[arg-type]
        answer.begin()
        content = answer.read()
        elapsed = time.monotonic() - start
    return httpx.Response(answer.status, headers=answer.getheaders(), content=content), elapsed


def _stream(total: int, piece: bytes = b" " * 65536) -> Iterator[bytes]:
    for _ in range(total // len(piece)):
        yield piece


# ----------------------------------------------------------------------------- envelopes
def oauth_413(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["error"] == "invalid_request" and body["error_codes"] == [9002313], body
    assert body["error_description"].startswith("AADSTS9002313:"), body


def arm_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, response.text
    assert set(error) <= {"code", "message", "target", "details"}, error
    message: str = error["message"]
    assert message
    return message


def openai_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and error["message"], response.text
    assert response.headers.get("x-ms-error-code") == code
    assert response.headers.get("apim-request-id")
    return error


@dataclass(frozen=True)
class Surface:
    name: str
    method: str
    path: str
    headers: dict[str, str]  # a credential that passes, and the content type
    limit: int
    too_large: Callable[[httpx.Response], None]
    too_deep: Callable[[httpx.Response], None] | None = None
    unauthenticated: Callable[[httpx.Response], None] | None = None


def _token(server: CieloServer, upn: str, password: str, scope: str) -> str:
    return str(server.token({"client_id": CLI_CLIENT_ID, "grant_type": "password", "username": upn,
                             "password": password, "scope": scope})["access_token"])


@pytest.fixture(scope="module")
def surfaces(cielo_server: CieloServer) -> dict[str, Surface]:
    server = cielo_server
    graph_admin = server.admin_token()
    arm_admin = _token(server, ADMIN_USER, ADMIN_PASSWORD, ARM_SCOPE)
    with server.http() as client:
        upn = f"bodies-{uuid.uuid4().hex[:8]}@cielo.local"
        created = client.post("/v1.0/users", headers={"Authorization": f"Bearer {graph_admin}"}, json={
            "userPrincipalName": upn, "displayName": "Bodies", "passwordProfile": {"password": USER_PASSWORD}})
        assert created.status_code == 201, created.text
        account = (f"/subscriptions/{server.subscription_id}/resourceGroups/cielo-rg/providers/"
                   "Microsoft.CognitiveServices/accounts/cielo-openai")
        keys = client.post(f"{account}/listKeys", params={"api-version": "2023-05-01"},
                           headers={"Authorization": f"Bearer {arm_admin}"})
        assert keys.status_code == 200, keys.text
    member = _token(server, upn, USER_PASSWORD, GRAPH_SCOPE)  # a plain member, as in the report
    json_type = {"Content-Type": "application/json"}

    def arm_413(response: httpx.Response) -> None:
        assert "1 MB" in arm_error(response, 413, "RequestContentTooLarge")

    def graph_413(response: httpx.Response) -> None:
        arm_error(response, 413, "Request_EntityTooLarge")

    def openai_413(response: httpx.Response) -> None:
        openai_error(response, 413, "RequestTooLarge")

    def openai_deep(response: httpx.Response) -> None:
        error = openai_error(response, 400, "BadRequest")
        assert error["type"] == "invalid_request_error" and "deeper than 64" in error["message"], error

    def openai_unauthenticated(response: httpx.Response) -> None:
        # The gateway's answer to no credential: `{"statusCode", "message"}`, no `error` wrapper.
        assert response.status_code == 401, response.text
        assert response.json() == {"statusCode": 401, "message": MISSING_KEY}

    return {
        "token": Surface("token", "POST", f"/{server.tenant_id}/oauth2/v2.0/token",
                         {"Content-Type": "application/x-www-form-urlencoded"}, 64 * 1024, oauth_413),
        "arm": Surface(
            "arm", "PUT",
            f"/subscriptions/{server.subscription_id}/resourcegroups/bodies-rg?api-version=2022-12-01",
            {"Authorization": f"Bearer {arm_admin}", **json_type}, 1024 * 1024, arm_413,
            lambda r: arm_error(r, 400, "InvalidRequestContent"),
            lambda r: arm_error(r, 401, "AuthenticationFailed")),
        "graph": Surface(
            "graph", "POST", "/v1.0/directoryObjects/getByIds",
            {"Authorization": f"Bearer {member}", **json_type}, 1024 * 1024, graph_413,
            lambda r: arm_error(r, 400, "BadRequest"),
            lambda r: arm_error(r, 401, "AuthenticationFailed")),
        "openai": Surface(
            "openai", "POST", "/accounts/cielo-openai/openai/deployments/smollm2/chat/completions"
            "?api-version=2024-10-21", {"api-key": str(keys.json()["key1"]), **json_type}, 4 * 1024 * 1024,
            openai_413, openai_deep, openai_unauthenticated),
    }


SURFACES = ["token", "arm", "graph", "openai"]


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("name", SURFACES)
def test_declared_length_over_the_limit_is_refused_unread(cielo_server: CieloServer,
                                                          surfaces: dict[str, Surface], name: str) -> None:
    surface = surfaces[name]
    for declared in (surface.limit + 1, DECLARED):
        response, elapsed = raw_request(cielo_server, surface.method, surface.path,
                                        {**surface.headers, "Content-Length": str(declared)}, b"{}")
        surface.too_large(response)
        assert elapsed < PROMPT_S, f"{name}: the 413 took {elapsed:.1f} s: the server waited for the body"


@pytest.mark.parametrize("path", ["/devicelogin", "/organizations/oauth2/v2.0/authorize"])
def test_sign_in_pages_refuse_declared_large_forms_unread(cielo_server: CieloServer, path: str) -> None:
    response, elapsed = raw_request(cielo_server, "POST", path, {
        "Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(DECLARED)}, b"a=b")
    assert response.status_code == 413, response.text
    assert elapsed < PROMPT_S


@pytest.mark.parametrize("name", SURFACES)
def test_streamed_body_is_cut_off_at_the_limit(cielo_server: CieloServer, surfaces: dict[str, Surface],
                                               name: str) -> None:
    surface = surfaces[name]
    with cielo_server.http() as client:
        client.get("/healthz")  # the connection pool and TLS are warm before measuring
        with PeakRss(cielo_server.process.pid) as rss:
            response = client.request(surface.method, surface.path, headers=surface.headers,
                                      content=_stream(STREAMED))
        surface.too_large(response)
        print(f"{name}: streamed {STREAMED >> 20} MB, server peak RSS +{rss.growth / 1e6:.1f} MB "
              f"(baseline {rss.baseline / 1e6:.0f} MB, VmHWM reset: {rss.hwm_reset})")
        assert rss.growth < MAX_GROWTH, f"{name}: RSS grew by {rss.growth / 1e6:.1f} MB"
        assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("name", ["arm", "graph", "openai"])
def test_deep_nesting_is_a_400_in_the_envelope(cielo_server: CieloServer, surfaces: dict[str, Surface],
                                               name: str) -> None:
    surface = surfaces[name]
    assert surface.too_deep is not None
    with cielo_server.http() as client:
        for body in (b"[" * 100_000, b'{"a":' * 100_000, b"[" * 65 + b"]" * 65):
            response = client.request(surface.method, surface.path, headers=surface.headers, content=body)
            surface.too_deep(response)


@pytest.mark.parametrize("name", ["arm", "graph", "openai"])
def test_unauthenticated_caller_is_refused_before_the_body_is_read(
        cielo_server: CieloServer, surfaces: dict[str, Surface], name: str) -> None:
    surface = surfaces[name]
    assert surface.unauthenticated is not None
    headers = {k: v for k, v in surface.headers.items() if k.lower() not in ("authorization", "api-key")}
    response, elapsed = raw_request(cielo_server, surface.method, surface.path,
                                    {**headers, "Content-Length": str(DECLARED)}, b"{}")
    surface.unauthenticated(response)
    assert elapsed < PROMPT_S
    # A credential that fails, too: the body still waits for authentication.
    wrong = ({"api-key": "0" * 32} if name == "openai" else {"Authorization": "Bearer not.a.token"})
    response, elapsed = raw_request(cielo_server, surface.method, surface.path,
                                    {**headers, **wrong, "Content-Length": str(DECLARED)}, b"{}")
    assert response.status_code == 401, response.text
    assert elapsed < PROMPT_S


def test_managed_identity_endpoint_checks_the_host_credential_before_the_body(cielo_server: CieloServer) -> None:
    for credential in ({}, {"Authorization": "HostCredential not-a.credential"}):
        response, elapsed = raw_request(cielo_server, "POST", "/cielo/managed-identity/token", {
            **credential, "Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(DECLARED)},
            b"resource=x")
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "unauthorized_client"
        assert elapsed < PROMPT_S
