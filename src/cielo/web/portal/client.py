"""Cielo's own APIs, called in-process with the signed-in user's bearer token: the same routing, authentication
and RBAC as any client (httpx over ASGITransport on this app). What the user cannot do from the CLI, the portal
cannot do for them: a refusal comes back as the API's own error, shown as it is.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request

from cielo.core.resources import PORTAL_CLIENT_ID
from cielo.web.portal.session import Session

RESOURCES = {
    "arm": "https://management.azure.com/",
    "graph": "https://graph.microsoft.com",
    "cog": "https://cognitiveservices.azure.com",
}
API = {
    "resources": "2022-09-01",
    "cognitiveservices": "2023-05-01",
    "authorization": "2022-04-01",
    "compute": "2023-09-01",
    "web": "2023-01-01",
    "msi": "2023-01-31",
    "insights": "2015-04-01",
}
OPENAI_API = "2024-10-21"
_EARLY_S = 300  # refresh an access token this long before it expires


class ApiError(Exception):
    """An error answer from Cielo's API: its status, code and message, as the API put them."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message

    @classmethod
    def of(cls, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            return cls(response.status_code, "Error", response.text[:500] or response.reason_phrase)
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return cls(response.status_code, str(error.get("code") or "Error"), str(error.get("message") or ""))
        if isinstance(error, str):  # OAuth's envelope
            return cls(response.status_code, error, str(body.get("error_description") or ""))
        return cls(response.status_code, "Error", response.text[:500])


class SignedOut(Exception):
    """The session cannot get a token any more (refresh token expired, revoked or replayed): sign in again."""


def http(request: Request) -> httpx.AsyncClient:
    """One client per worker, on this very app (a cache: it holds no session)."""
    state = request.app.state
    client: httpx.AsyncClient | None = getattr(state, "portal_http", None)
    if client is None:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=request.app),
                                   base_url=state.settings.base_url, timeout=60)
        state.portal_http = client
    return client


async def token_request(request: Request, tenant: str, form: dict[str, str]) -> dict[str, Any]:
    answer = await http(request).post(f"/{tenant}/oauth2/v2.0/token", data={"client_id": PORTAL_CLIENT_ID, **form})
    if answer.status_code != 200:
        raise ApiError.of(answer)
    body: dict[str, Any] = answer.json()
    return body


# A refresh token is redeemed once (rotation, with replay detection). Two requests of one browser arriving at one
# worker at once must not both redeem it: the second waits on the first and takes its result from here.
_locks: dict[str, asyncio.Lock] = {}
_redeemed: dict[str, tuple[float, str, dict[str, tuple[str, float]]]] = {}


def forget(refresh_token: str) -> None:
    """Drop this worker's copy of a session's refreshed tokens (at sign-out). Cielo has no route that revokes a
    refresh token (docs/portal.md), so the token itself stays valid until it expires."""
    key = hashlib.sha256(refresh_token.encode()).hexdigest()
    for stale in [k for k, v in _redeemed.items() if k == key or v[1] == refresh_token]:
        _redeemed.pop(stale, None)
        _locks.pop(stale, None)


@dataclass
class Api:
    request: Request
    session: Session
    memo: dict[Any, Any] = field(default_factory=dict)  # answers kept for this request only (role names)

    async def token(self, kind: str) -> str:
        found = self.session.tokens.get(kind)
        if found and found[1] - _EARLY_S > time.time():
            return found[0]
        key = hashlib.sha256(self.session.refresh_token.encode()).hexdigest()
        lock = _locks.setdefault(key, asyncio.Lock())
        async with lock:
            done = _redeemed.get(key)
            if done is not None and kind in done[2]:
                self.session.refresh_token, self.session.tokens = done[1], dict(done[2])
                self.session.changed = True
                return done[2][kind][0]
            try:
                body = await token_request(self.request, self.session.tenant_id, {
                    "grant_type": "refresh_token", "refresh_token": self.session.refresh_token,
                    "scope": f"{RESOURCES[kind].rstrip('/')}/.default offline_access"})
            except ApiError as exc:
                if exc.status in (400, 401):
                    raise SignedOut(exc.message) from exc
                raise
            self.session.refresh_token = str(body.get("refresh_token") or self.session.refresh_token)
            self.session.tokens[kind] = (str(body["access_token"]), time.time() + float(body.get("expires_in", 0)))
            self.session.changed = True
            now = time.time()
            _redeemed[key] = (now, self.session.refresh_token, dict(self.session.tokens))
            for stale in [k for k, v in _redeemed.items() if v[0] < now - 120]:
                _redeemed.pop(stale, None)
                _locks.pop(stale, None)
        return self.session.tokens[kind][0]

    async def call(self, kind: str, method: str, path: str, *, body: Any = None,
                   params: dict[str, str] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {await self.token(kind)}"}
        answer = await http(self.request).request(method, path, json=body, params=params, headers=headers)
        if answer.status_code >= 400:
            raise ApiError.of(answer)
        if not answer.content:
            return None
        try:
            return answer.json()
        except ValueError:
            return None

    async def arm(self, method: str, path: str, api: str = "resources", body: Any = None,
                  params: dict[str, str] | None = None) -> Any:
        return await self.call("arm", method, path, body=body, params={"api-version": API[api], **(params or {})})

    async def graph(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        return await self.call("graph", method, "/v1.0" + path, body=body, params=params)

    async def try_arm(self, method: str, path: str, api: str = "resources", body: Any = None,
                      params: dict[str, str] | None = None) -> tuple[Any, ApiError | None]:
        """The answer, or the error (for parts of a page that show a refusal in place)."""
        try:
            return await self.arm(method, path, api, body, params), None
        except ApiError as exc:
            return None, exc

    async def stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[tuple[int, bytes]]:
        """POST to the data plane and yield (status, chunk) as the app sends them (httpx's ASGITransport would
        buffer the whole answer): a minimal ASGI call on this app, the same app every client reaches."""
        token = await self.token("cog")
        import json

        payload = json.dumps(body).encode()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        path_only, _, query = path.partition("?")
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "https",
            "path": path_only, "raw_path": path_only.encode(), "query_string": query.encode(), "root_path": "",
            "headers": [(b"host", self.request.app.state.settings.base_url.split("://", 1)[1].encode()),
                        (b"content-type", b"application/json"), (b"authorization", f"Bearer {token}".encode()),
                        (b"content-length", str(len(payload)).encode())],
            "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 443), "extensions": {},
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": payload, "more_body": False}
            await asyncio.Event().wait()  # the app waits for a disconnect that comes when it is cancelled
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            await queue.put((message["type"], message))

        async def run() -> None:
            try:
                await self.request.app(scope, receive, send)
            finally:
                await queue.put(("done", None))

        task = asyncio.create_task(run())
        status = 500
        try:
            while True:
                kind, message = await queue.get()
                if kind == "done":
                    break
                if kind == "http.response.start":
                    status = int(message["status"])
                elif kind == "http.response.body":
                    chunk = message.get("body", b"")
                    if chunk:
                        yield status, chunk
                    if not message.get("more_body"):
                        break
        finally:
            if not task.done():
                task.cancel()
