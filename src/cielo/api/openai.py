"""The Azure OpenAI data plane, one endpoint per account: `{base}/accounts/{name}/openai/...`.

Classic deployment routes need `api-version`; the v1 routes (`/openai/v1/...`) take the deployment
name as `model`. Authentication and RBAC happen before the body is read into a model call.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, FastAPI, Request
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from cielo.api import errors, insights
from cielo.core import fast_json
from cielo.dataplane import auth, wire
from cielo.dataplane.index import Account
from cielo.dataplane.service import ACTIONS, ROUTES, Answer, DataPlane, Stream
from cielo.errors import (
    AccountNotFound,
    ApiVersionRequired,
    BearerRejected,
    DataPlaneError,
    PermissionDenied,
    UnsupportedApiVersion,
)
from cielo.http.bodies import MAX_JSON_DEPTH, nested_deeper_than, read_limited
from cielo.http.client_gone import WATCH_KEY, Watch
from cielo.http.failures import log_denial, log_failure, run_guarded

router = APIRouter(prefix="/accounts/{account_name}/openai")

GA_VERSIONS = {"2022-12-01", "2023-05-15", "2024-02-01", "2024-06-01", "2024-10-21"}
_PREVIEW = re.compile(r"^20(2[2-9])-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])-preview$")
_STREAM_HEADERS = {"Cache-Control": "no-cache, must-revalidate", "x-accel-buffering": "no"}
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a request whose client left; nobody receives it


def _plane(request: Request) -> DataPlane:
    plane: DataPlane = request.app.state.dataplane
    return plane


def query_value(scope: Scope, name: str) -> str | None:
    """What `request.query_params.get(name)` answers (the last value of `name`, blank values kept), without
    building the whole multi-dict: the data plane reads one parameter per request."""
    raw: str = scope.get("query_string", b"").decode("latin-1")
    if "%" in raw or "+" in raw:
        return dict(parse_qsl(raw, keep_blank_values=True)).get(name)
    found = None
    for pair in raw.split("&"):
        key, _, value = pair.partition("=")
        if key == name:
            found = value
    return found


def api_version(request: Request) -> str:
    """Required on the classic routes: every GA version from 2022-12-01 on, and previews."""
    version = query_value(request.scope, "api-version")
    if not version:
        raise ApiVersionRequired("Missing required query parameter 'api-version'. Supported versions: "
                                 + ", ".join(sorted(GA_VERSIONS)) + " and previews.")
    if version not in GA_VERSIONS and not _PREVIEW.match(version):
        raise UnsupportedApiVersion(f"The API version '{version[:40]}' is not supported. Supported versions: "
                                    + ", ".join(sorted(GA_VERSIONS)) + " and previews.")
    return version


def _account(request: Request, name: str) -> Account:
    account = _plane(request).index.account(name)
    if account is None:
        raise AccountNotFound("Resource not found")
    return account


def _authenticate(request: Request, account: Account, operation: str, *, v1: bool) -> None:
    auth.authenticate(account, request.headers, v1=v1, validator=request.app.state.validator,
                      access=request.app.state.access, data_action=ACTIONS[operation], route=ROUTES[operation],
                      grants=_plane(request).grants)


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))  # the version nibble and the variant bits
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


def _request_id() -> str:
    """A random (version 4) UUID, as Azure's request ids are. They identify, they do not protect, so they come
    from `random` (reseeded in each forked worker) rather than from `uuid.uuid4`'s system call per id."""
    text = "%032x" % (random.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET)
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _headers(request: Request, extra: dict[str, str] | None = None) -> dict[str, str]:
    headers = {"apim-request-id": _request_id(), "x-ms-region": "local", "x-request-id": _request_id()}
    client_id = request.headers.get("x-ms-client-request-id")
    if client_id:
        headers["x-ms-client-request-id"] = client_id[:100]
    headers.update(extra or {})
    return headers


def _respond(request: Request, result: Answer | Stream) -> Response:
    if isinstance(result, Stream):
        return StreamingResponse(result.events, media_type="text/event-stream",
                                 headers=_headers(request, {**_STREAM_HEADERS, **result.headers}))
    return JsonAnswer(result.body, _headers(request, result.headers))


class JsonAnswer(Response):
    """A 200 JSON answer with JSONResponse's headers and the same compact JSON (written by orjson), its header
    list built directly: JSONResponse's MutableHeaders lower-case and re-encode every header, which cost more
    than rendering the JSON of a small answer."""

    media_type = "application/json"

    def __init__(self, content: Any, headers: dict[str, str]) -> None:
        self.status_code = 200
        self.background = None
        self.body = self.render(content)
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.raw_headers += [(b"content-length", str(len(self.body)).encode("latin-1")),
                             (b"content-type", b"application/json")]

    def render(self, content: Any) -> bytes:
        return fast_json.dumps(content)  # JSONResponse's bytes, written by orjson (core/fast_json.py)


class IndexedHeaders(Headers):
    """Starlette's request headers with one dict lookup per name: `Headers.get` scans the whole list and, for a
    header that is absent (`api-key` on every bearer request), raises and catches a KeyError. The first of
    repeated headers wins, as in `Headers`."""

    def __init__(self, scope: Scope) -> None:
        super().__init__(scope=scope)
        index: dict[bytes, bytes] = {}
        for key, value in reversed(self._list):
            index[key] = value
        self._index = index

    def __getitem__(self, key: str) -> str:
        value = self._index.get(key.lower().encode("latin-1"))
        if value is None:
            raise KeyError(key)
        return value.decode("latin-1")

    def get(self, key: str, default: Any = None) -> Any:
        value = self._index.get(key.lower().encode("latin-1"))
        return default if value is None else value.decode("latin-1")

    def __contains__(self, key: Any) -> bool:
        return isinstance(key, str) and key.lower().encode("latin-1") in self._index


class DataPlaneRequest(Request):
    """The dispatcher's request: its headers are `IndexedHeaders`."""

    @property
    def headers(self) -> Headers:
        indexed: IndexedHeaders | None = self.__dict__.get("_indexed")
        if indexed is None:
            indexed = self.__dict__["_indexed"] = IndexedHeaders(self.scope)
        return indexed


async def read_body(request: Request) -> tuple[bytes, dict[str, Any]]:
    """The request body as received and as a JSON object: refused past `max_openai_body_bytes` while it streams
    in (413), nested too deeply, or not a JSON object (400)."""
    limit: int = request.app.state.settings.max_openai_body_bytes
    raw = await read_limited(request, limit, lambda: wire.too_large(limit))
    if nested_deeper_than(raw):
        raise wire.too_deep(MAX_JSON_DEPTH)
    return raw, wire.parse_body(raw)


def model_of(body: dict[str, Any]) -> str:
    """The deployment a v1 (or Responses) request names in `model`."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise wire.bad("'model' (the deployment name) is required.", "model")
    return model


async def _run(request: Request, account_name: str, deployment_name: str, operation: str, *, v1: bool,
               version: str | None) -> Response:
    account = _account(request, account_name)
    _authenticate(request, account, operation, v1=v1)
    # Only an authenticated caller with the data action gets its body read, and only up to the limit.
    raw, body = await read_body(request)
    plane = _plane(request)
    if v1:
        deployment_name = model_of(body)
    deployment = plane.deployment(account, deployment_name)
    wire.check_version(operation, body, version, developer=b"developer" in raw or b"\\u" in raw)
    if operation == "embeddings":
        work: Awaitable[Answer | Stream] = plane.embeddings(account, deployment, body, version)
    else:
        work = plane.generate(account, deployment, operation, body, version)
    result = await _unless_client_leaves(request, work)
    if result is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    return _respond(request, result)


async def _unless_client_leaves(request: Request, work: Awaitable[Answer | Stream]) -> Answer | Stream | None:
    """`work`'s result, or None once the client has gone: then `work` is cancelled, so a generation stops
    and a request still waiting for a model slot never starts. The server does not cancel a handler when
    its client leaves; it only answers the next `receive()` with `http.disconnect` (ASGI spec 2.3), and
    the body is read by now, so that is the one message left to wait for. (Once a stream has started,
    Starlette's StreamingResponse watches for the disconnect itself.)

    `work` runs in this task. `cielo up`'s server says when the connection is lost (http/client_gone.py);
    elsewhere one watcher task waits for the disconnect. Either cancels this task, so the generation's cleanup
    has run (the cancellation went through it) before this returns."""
    handler = asyncio.current_task()
    assert handler is not None
    left = finished = False

    def client_gone() -> None:
        nonlocal left
        if not finished:  # a call just after `work` returned must not cancel the handler while it answers
            left = True
            handler.cancel()

    stop_watching: Callable[[], object]
    watch: Watch | None = request.scope.get(WATCH_KEY)
    if watch is not None:
        stop_watching = watch(client_gone)
    else:
        watcher = asyncio.ensure_future(_disconnected(request))

        def on_disconnect(done: asyncio.Task[None]) -> None:
            # receive() failed or was cancelled: a disconnect cannot be seen, so the work goes on.
            if not done.cancelled() and done.exception() is None:
                client_gone()

        watcher.add_done_callback(on_disconnect)
        stop_watching = watcher.cancel
    try:
        return await work
    except asyncio.CancelledError:
        # Only the client's leaving means "the client left"; the server stopping cancels too.
        if left and handler.uncancel() == 0:
            return None
        raise
    finally:
        finished = True
        stop_watching()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


# ----------------------------------------------------------------------------- classic routes
@router.post("/deployments/{deployment}/completions")
async def completions(account_name: str, deployment: str, request: Request) -> Response:
    return await _run(request, account_name, deployment, "completions", v1=False, version=api_version(request))


@router.post("/deployments/{deployment}/chat/completions")
async def chat_completions(account_name: str, deployment: str, request: Request) -> Response:
    return await _run(request, account_name, deployment, "chat", v1=False, version=api_version(request))


@router.post("/deployments/{deployment}/embeddings")
async def embeddings(account_name: str, deployment: str, request: Request) -> Response:
    return await _run(request, account_name, deployment, "embeddings", v1=False, version=api_version(request))


def _epoch(iso: str) -> int:
    try:
        return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return int(time.time())


def _deployment_json(deployment: Any) -> dict[str, Any]:
    created = _epoch(deployment.created_at)
    return {"scale_settings": {"scale_type": "standard"}, "model": deployment.model.name,
            "owner": "organization-owner", "id": deployment.name, "status": "succeeded", "created_at": created,
            "updated_at": created, "object": "deployment"}


@router.get("/deployments")
async def list_deployments(account_name: str, request: Request) -> Response:
    api_version(request)
    account = _account(request, account_name)
    _authenticate(request, account, "deployments", v1=False)
    items = [_deployment_json(d) for d in sorted(account.deployments.values(), key=lambda d: d.name)]
    return JSONResponse({"data": items, "object": "list"}, headers=_headers(request))


@router.get("/deployments/{deployment}")
async def get_deployment(account_name: str, deployment: str, request: Request) -> Response:
    api_version(request)
    account = _account(request, account_name)
    _authenticate(request, account, "deployments", v1=False)
    return JSONResponse(_deployment_json(_plane(request).deployment(account, deployment)), headers=_headers(request))


@router.get("/models")
async def list_models(account_name: str, request: Request) -> Response:
    api_version(request)
    account = _account(request, account_name)
    _authenticate(request, account, "models", v1=False)
    entries = {d.model.name: d.model for d in account.deployments.values()}
    data = []
    for entry in entries.values():
        caps = dict(entry.capabilities)
        data.append({"id": entry.name, "status": "succeeded", "object": "model", "created_at": 0, "updated_at": 0,
                     "lifecycle_status": "generally-available", "deprecation": {"inference": 4102444800},
                     "capabilities": {"fine_tune": False, "inference": True,
                                      "completion": caps.get("completion") == "true",
                                      "chat_completion": caps.get("chatCompletion") == "true",
                                      "embeddings": caps.get("embeddings") == "true", "scale_types": ["standard"]}})
    return JSONResponse({"data": data, "object": "list"}, headers=_headers(request))


# ----------------------------------------------------------------------------- v1 routes
@router.post("/v1/chat/completions")
async def v1_chat(account_name: str, request: Request) -> Response:
    return await _run(request, account_name, "", "chat", v1=True, version=None)


@router.post("/v1/completions")
async def v1_completions(account_name: str, request: Request) -> Response:
    return await _run(request, account_name, "", "completions", v1=True, version=None)


@router.post("/v1/embeddings")
async def v1_embeddings(account_name: str, request: Request) -> Response:
    return await _run(request, account_name, "", "embeddings", v1=True, version=None)


@router.get("/v1/models")
async def v1_models(account_name: str, request: Request) -> Response:
    account = _account(request, account_name)
    auth.authenticate(account, request.headers, v1=True, validator=request.app.state.validator,
                      access=request.app.state.access, data_action=ACTIONS["models"], route="GET /openai/v1/models",
                      grants=_plane(request).grants)
    data = [{"id": d.name, "object": "model", "created": _epoch(d.created_at), "owned_by": "organization-owner"}
            for d in sorted(account.deployments.values(), key=lambda d: d.name)]
    return JSONResponse({"object": "list", "data": data}, headers=_headers(request))


# ----------------------------------------------------------------------------- errors
def _error_response(request: Request, exc: DataPlaneError) -> Response:
    headers = {"x-ms-error-code": exc.code, **_headers(request, exc.headers)}
    if isinstance(exc, PermissionDenied) and exc.reason is not None:
        log_denial(request.scope, exc.code, headers["apim-request-id"], exc.reason)
        insights.data_denied(request, exc.message, headers["apim-request-id"])  # rare: the activity log
    if exc.status == 429 or exc.status == 408 or exc.status >= 500:
        insights.data_refused(exc.status, exc.code, request.scope.get("path", ""))  # metrics
    if isinstance(exc, BearerRejected):
        # Azure's gateway answers bearer failures without the `error` wrapper (as public reports show, e.g.
        # Azure-Samples/azure-search-openai-demo#458).
        return JSONResponse({"statusCode": 401, "message": exc.message}, status_code=401, headers=headers)
    # `param` and `type` only when known: the spec's errorResponse makes both strings, never null, and a client
    # reads a missing one as null (openai-python's APIError takes body.get("param")).
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.param is not None:
        error["param"] = exc.param
    if exc.error_type is not None:
        error["type"] = exc.error_type
    return JSONResponse({"error": error}, status_code=exc.status, headers=headers)


def install(app: FastAPI) -> None:
    """The data plane's error envelope, and its routes served ahead of FastAPI's router (`DataPlaneRoutes`)."""

    @app.exception_handler(DataPlaneError)
    async def _dataplane(request: Request, exc: DataPlaneError) -> Response:
        return _error_response(request, exc)

    app.add_middleware(DataPlaneRoutes)


# ----------------------------------------------------------------------------- the hot path's dispatcher
Handler = Callable[..., Awaitable[Response]]
_ACCOUNT = r"/accounts/(?P<account_name>[^/]+)/openai"
_DEPLOYMENT = r"/deployments/(?P<deployment>[^/]+)"
_ROUTES: dict[str, list[tuple[re.Pattern[str], Handler]]] = {
    "POST": [(re.compile(_ACCOUNT + _DEPLOYMENT + r"/chat/completions"), chat_completions),
             (re.compile(_ACCOUNT + _DEPLOYMENT + r"/completions"), completions),
             (re.compile(_ACCOUNT + _DEPLOYMENT + r"/embeddings"), embeddings),
             (re.compile(_ACCOUNT + r"/v1/chat/completions"), v1_chat),
             (re.compile(_ACCOUNT + r"/v1/completions"), v1_completions),
             (re.compile(_ACCOUNT + r"/v1/embeddings"), v1_embeddings)],
    "GET": [(re.compile(_ACCOUNT + r"/deployments"), list_deployments),
            (re.compile(_ACCOUNT + _DEPLOYMENT), get_deployment),
            (re.compile(_ACCOUNT + r"/models"), list_models),
            (re.compile(_ACCOUNT + r"/v1/models"), v1_models)],
}


class DataPlaneRoutes:
    """Pure ASGI middleware: the data plane's routes (the same handlers `router` declares), each matched by one
    regular expression, without FastAPI's route matching and parameter solving, which cost more per request
    than Cielo's own checks (docs/benchmarks.md). What it does not match (another method, a trailing slash)
    goes on to FastAPI, which answers as before. Errors are answered as FastAPI's exception middleware and
    errors.CatchAll would: a typed error by the app's handler for it, anything else a 500 in Azure OpenAI's
    envelope, logged once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and path.startswith("/accounts/") and not scope.get("root_path"):
            for pattern, handler in _ROUTES.get(scope["method"], ()):
                found = pattern.fullmatch(path)
                if found is not None:
                    await self._serve(handler, found.groupdict(), scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(self, handler: Handler, params: dict[str, str], scope: Scope, receive: Receive,
                     send: Send) -> None:
        request = DataPlaneRequest(scope, receive, send)
        try:
            response = await handler(request=request, **params)
        except DataPlaneError as exc:
            response = _error_response(request, exc)
        except Exception as exc:
            response = await _handled(request, exc)
        await run_guarded(response, _internal_error_app, scope, receive, send)


def _internal_error_app(scope: Scope, request_id: str) -> ASGIApp:
    return errors.internal_error_response(Request(scope), request_id)


async def _handled(request: Request, exc: Exception) -> Response:
    """The app's exception handler for `exc` (looked up along its class's MRO, as Starlette does), or a 500."""
    handlers = request.app.exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception:  # as Starlette's exception middleware: that one is the catch-all's business
            break
        handler = handlers.get(cls)
        if handler is not None:
            response: Response = await handler(request, exc)
            return response
    request_id = str(uuid.uuid4())
    log_failure(request.scope, exc, request_id, started=False)
    return errors.internal_error_response(request, request_id)
