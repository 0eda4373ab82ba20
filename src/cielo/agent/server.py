"""The agent's HTTP server: what a workload on this host talks to, the managed-identity protocols of
learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token and
learn.microsoft.com/azure/app-service/overview-managed-identity, as azure-identity's ManagedIdentityCredential
and msal.ManagedIdentityClient (msal/managed_identity.py) call them.

- IMDS: `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=R[&client_id|object_id|msi_res_id]`
  with `Metadata: true`; refuses `X-Forwarded-For`; string fields; IMDS's error shape and rate limits.
- App Service 2019-08-01: `GET /msi/token?api-version=2019-08-01&resource=R` with `X-IDENTITY-HEADER`;
  selectors `client_id|object_id|principal_id|mi_res_id`; integer-epoch `expires_on` (as a string).
- Legacy 2017-09-01 (`MSI_ENDPOINT`/`MSI_SECRET`): `GET /msi/legacy?api-version=2017-09-01&resource=R` with
  header `secret`; selector `clientid` (and whatever azure-identity and MSAL send for an object or resource id:
  `object_id`, `msi_res_id`, `resource_id`); integer-epoch `expires_on` (as a string). azure-identity and MSAL
  treat these variables as Azure Machine Learning, whose `expires_on` is an epoch: MSAL parses nothing else.

The rate limit (20 per second, 5 at a time) is the host's: it covers all three protocols. Every request must
name the agent in `Host` (agent/hosts.py: DNS rebinding), which IMDS itself does not ask.

An unexpected failure is a 500 in the protocol's shape (IMDS `server_error`, App Service `statusCode` 500), never
Starlette's plain-text page; its traceback is logged once, redacted, with the request id the answer names.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from cielo.agent.hosts import HostAllowList
from cielo.agent.upstream import Failure, TokenSource
from cielo.http.failures import CatchAll

log = logging.getLogger("cielo.agent")

IMDS_VERSIONS = {"2018-02-01", "2018-04-02", "2018-10-01", "2019-08-01", "2020-06-01", "2020-07-15", "2020-09-01",
                 "2020-10-01", "2021-02-01"}
# What IMDS lists in its "api-version was not specified" answer
# (learn.microsoft.com/azure/virtual-machines/instance-metadata-service), verbatim.
NEWEST = ["2020-10-01", "2020-09-01", "2020-07-15"]
TOO_MANY = "Too many requests: IMDS allows 20 per second and 5 at a time for managed identity tokens."
RATE_PER_S = 20
MAX_CONCURRENT = 5
# These are GET protocols: a request carries no body. One over this size is refused (413) without being
# held: a declared Content-Length at once, a chunked body as soon as its running count passes it.
MAX_BODY_BYTES = 4 * 1024
BODY_TOO_LARGE = f"Request rejected: these endpoints take no request body (at most {MAX_BODY_BYTES} bytes)."


class RateLimiter:
    """IMDS's managed-identity limits: 20 requests per second and 5 at a time per host."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()
        self._active = 0

    def try_enter(self) -> bool:
        now = time.monotonic()
        while self._times and now - self._times[0] > 1.0:
            self._times.popleft()
        if len(self._times) >= RATE_PER_S or self._active >= MAX_CONCURRENT:
            return False
        self._times.append(now)
        self._active += 1
        return True

    def leave(self) -> None:
        self._active -= 1


def _query(request: Request) -> dict[str, str] | None:
    """The query parameters, or None when one is duplicated (IMDS rejects duplicates)."""
    pairs = parse_qsl(request.url.query, keep_blank_values=True)
    names = [name for name, _ in pairs]
    return None if len(names) != len(set(names)) else dict(pairs)


async def _body_too_large(request: Request) -> bool:
    declared = request.headers.get("content-length")
    if declared is not None:
        return not (declared.isascii() and declared.isdigit()) or len(declared) > 18 or int(declared) > MAX_BODY_BYTES
    if "transfer-encoding" not in request.headers:
        return False
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > MAX_BODY_BYTES:
            return True
    return False


def _imds_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _app_service_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"statusCode": status, "message": message}, status_code=status)


def _secret_ok(presented: str | None, expected: str) -> bool:
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


class HostGuard:
    """Answers only requests whose `Host` names the agent (DNS rebinding, agent/hosts.py): anything else gets
    400 in the shape of the protocol its path belongs to, before any other check."""

    def __init__(self, app: ASGIApp, hosts: HostAllowList) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            values = Headers(scope=scope).getlist("host")
            if len(values) != 1 or not self.hosts.permits(values[0]):
                message = "Request rejected: the Host header does not name this agent."
                answer = _app_service_error(400, message) if scope["path"].startswith("/msi/") \
                    else _imds_error(400, "invalid_request", message)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _internal_error(scope: Scope, request_id: str) -> ASGIApp:
    """A 500 in the shape of the protocol the path belongs to: IMDS's `{"error": "server_error",
    "error_description"}` (the 500 code of IMDS's spec examples) or App Service's `{"statusCode": 500,
    "message"}`. Installed through cielo.http.failures.CatchAll, outermost."""
    message = f"The managed identity endpoint had an internal error (request id {request_id})."
    if str(scope.get("path", "")).startswith("/msi/"):
        return _app_service_error(500, message)
    return _imds_error(500, "server_error", message)


def build_app(source: TokenSource, identity_header: str, tenant_id: str,
              hosts: HostAllowList | None = None) -> Starlette:
    limiter = RateLimiter()

    async def imds_token(request: Request) -> Response:
        if request.headers.get("x-forwarded-for") is not None:
            return _imds_error(400, "invalid_request", "Request rejected: the X-Forwarded-For header is not allowed.")
        if request.headers.get("metadata") != "true":
            return _imds_error(400, "bad_request_102", "Required metadata header not specified")
        if await _body_too_large(request):
            return _imds_error(413, "invalid_request", BODY_TOO_LARGE)
        query = _query(request)
        if query is None:
            return _imds_error(400, "invalid_request", "A query parameter is duplicated.")
        version = query.get("api-version")
        if not version:
            return JSONResponse({"error": "Bad request. api-version was not specified in the request. For more "
                                 "information refer to aka.ms/azureimds", "newest-versions": NEWEST}, status_code=400)
        if version not in IMDS_VERSIONS:
            return JSONResponse({"error": "Bad request. api-version is invalid or was not specified in the request. "
                                 "For more information refer to aka.ms/azureimds", "newest-versions": NEWEST},
                                status_code=400)
        resource = query.get("resource")
        if not resource:
            return _imds_error(400, "invalid_request", "Required query variable 'resource' is missing")
        try:
            selector = _selector(query, {"client_id": "client_id", "object_id": "object_id",
                                         "msi_res_id": "msi_res_id", "mi_res_id": "msi_res_id",
                                         "resource_id": "msi_res_id"})
        except Conflict:
            return _imds_error(400, "invalid_request", "Only one of client_id, object_id and msi_res_id may be given.")
        if not limiter.try_enter():
            return _imds_error(429, "too_many_requests", TOO_MANY)
        try:
            body = await source.token(resource, selector)
        except Failure as exc:
            return _imds_error(exc.status, exc.error, exc.description)
        finally:
            limiter.leave()
        remaining = max(0, int(body["expires_on"]) - int(time.time()))
        out = {"access_token": body["access_token"], "refresh_token": "", "expires_in": str(remaining),
               "expires_on": str(body["expires_on"]), "ext_expires_in": str(remaining),
               "not_before": str(body["not_before"]), "resource": body["resource"], "token_type": "Bearer",
               "client_id": body["client_id"], "object_id": body["object_id"]}
        if body.get("msi_res_id"):
            out["msi_res_id"] = body["msi_res_id"]
        return JSONResponse(out)

    async def imds_info(request: Request) -> Response:
        if request.headers.get("metadata") != "true":
            return _imds_error(400, "bad_request_102", "Required metadata header not specified")
        if await _body_too_large(request):
            return _imds_error(413, "invalid_request", BODY_TOO_LARGE)
        return JSONResponse({"tenantId": tenant_id})

    async def app_service_token(request: Request) -> Response:
        if not _secret_ok(request.headers.get("x-identity-header"), identity_header):
            return _app_service_error(401, "The X-IDENTITY-HEADER is missing or wrong.")
        if await _body_too_large(request):
            return _app_service_error(413, BODY_TOO_LARGE)
        query = _query(request)
        if query is None or query.get("api-version") != "2019-08-01":
            return _app_service_error(400, "api-version 2019-08-01 is required, once.")
        resource = query.get("resource")
        if not resource:
            return _app_service_error(400, "The resource parameter is required.")
        try:
            selector = _selector(query, {"client_id": "client_id", "object_id": "object_id",
                                         "principal_id": "object_id", "mi_res_id": "msi_res_id",
                                         "resource_id": "msi_res_id"})
        except Conflict:
            return _app_service_error(400, "Only one of client_id, principal_id and mi_res_id may be given.")
        if not limiter.try_enter():
            return _app_service_error(429, TOO_MANY)
        try:
            body = await source.token(resource, selector)
        except Failure as exc:
            return _app_service_error(exc.status, exc.description)
        finally:
            limiter.leave()
        return JSONResponse({"access_token": body["access_token"], "expires_on": str(body["expires_on"]),
                             "resource": body["resource"], "token_type": "Bearer", "client_id": body["client_id"]})

    async def legacy_token(request: Request) -> Response:
        if not _secret_ok(request.headers.get("secret"), identity_header):
            return _app_service_error(401, "The secret header is missing or wrong.")
        if await _body_too_large(request):
            return _app_service_error(413, BODY_TOO_LARGE)
        query = _query(request)
        if query is None or not query.get("resource"):
            return _app_service_error(400, "The resource parameter is required, once.")
        try:
            selector = _selector(query, {"clientid": "client_id", "client_id": "client_id", "object_id": "object_id",
                                         "principal_id": "object_id", "msi_res_id": "msi_res_id",
                                         "mi_res_id": "msi_res_id", "resource_id": "msi_res_id"})
        except Conflict:
            return _app_service_error(400, "Only one of clientid, object_id and msi_res_id may be given.")
        if not limiter.try_enter():
            return _app_service_error(429, TOO_MANY)
        try:
            body = await source.token(query["resource"], selector)
        except Failure as exc:
            return _app_service_error(exc.status, exc.description)
        finally:
            limiter.leave()
        return JSONResponse({"access_token": body["access_token"], "expires_on": str(body["expires_on"]),
                             "resource": body["resource"], "token_type": "Bearer", "client_id": body["client_id"]})

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await source.close()

    app = Starlette(lifespan=lifespan, middleware=[Middleware(CatchAll, answer=_internal_error),
                                                   Middleware(HostGuard, hosts=hosts or HostAllowList())], routes=[
        Route("/metadata/identity/oauth2/token", imds_token),
        Route("/metadata/identity/info", imds_info),
        Route("/msi/token", app_service_token),
        Route("/msi/token/", app_service_token),
        Route("/msi/legacy", legacy_token),
    ])
    return app


class Conflict(ValueError):
    """More than one identity selector was given."""


def _selector(query: dict[str, str], names: dict[str, str]) -> tuple[str, str] | None:
    found = [(names[k], v) for k, v in query.items() if k in names and v]
    if len(found) > 1:
        raise Conflict()
    return found[0] if found else None


async def serve(app: Starlette, host: str, port: int) -> None:
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
    await uvicorn.Server(config).serve()


def run_forever(app: Starlette, hosts: list[str], port: int) -> None:
    async def main() -> None:
        await asyncio.gather(*(serve(app, host, 80 if host == "169.254.169.254" else port) for host in hosts))

    asyncio.run(main())
