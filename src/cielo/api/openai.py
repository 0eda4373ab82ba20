"""The Azure OpenAI data plane, one endpoint per account: `{base}/accounts/{name}/openai/...`.

Classic deployment routes need `api-version`; the v1 routes (`/openai/v1/...`) take the deployment
name as `model`. Authentication and RBAC happen before the body is read into a model call.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
import uuid
from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from cielo.api.bodies import MAX_JSON_DEPTH, nested_deeper_than, read_limited
from cielo.dataplane import auth, wire
from cielo.dataplane.index import Account
from cielo.dataplane.service import ACTIONS, ROUTES, Answer, DataPlane, Stream
from cielo.errors import BearerRejected, DataPlaneError

router = APIRouter(prefix="/accounts/{account_name}/openai")

GA_VERSIONS = {"2022-12-01", "2023-05-15", "2024-02-01", "2024-06-01", "2024-10-21"}
_PREVIEW = re.compile(r"^20(2[2-9])-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])-preview$")
_STREAM_HEADERS = {"Cache-Control": "no-cache, must-revalidate", "x-accel-buffering": "no"}
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a request whose client left; nobody receives it


def _plane(request: Request) -> DataPlane:
    plane: DataPlane = request.app.state.dataplane
    return plane


def api_version(request: Request) -> str:
    """Required on the classic routes: every GA version from 2022-12-01 on, and previews."""
    version = request.query_params.get("api-version")
    if not version:
        raise DataPlaneError("Missing required query parameter 'api-version'. Supported versions: "
                             + ", ".join(sorted(GA_VERSIONS)) + " and previews.", code="MissingApiVersionParameter")
    if version not in GA_VERSIONS and not _PREVIEW.match(version):
        raise DataPlaneError(f"The API version '{version[:40]}' is not supported. Supported versions: "
                             + ", ".join(sorted(GA_VERSIONS)) + " and previews.", code="UnsupportedApiVersion",
                             status=404)
    return version


def _account(request: Request, name: str) -> Account:
    account = _plane(request).index.account(name)
    if account is None:
        raise DataPlaneError("Resource not found", code="404", status=404)
    return account


def _authenticate(request: Request, account: Account, operation: str, *, v1: bool) -> None:
    auth.authenticate(account, request.headers, v1=v1, validator=request.app.state.validator,
                      access=request.app.state.access, data_action=ACTIONS[operation], route=ROUTES[operation])


def _headers(request: Request, extra: dict[str, str] | None = None) -> dict[str, str]:
    headers = {"apim-request-id": str(uuid.uuid4()), "x-ms-region": "local",
               "x-request-id": str(uuid.uuid4())}
    client_id = request.headers.get("x-ms-client-request-id")
    if client_id:
        headers["x-ms-client-request-id"] = client_id[:100]
    headers.update(extra or {})
    return headers


def _respond(request: Request, result: Answer | Stream) -> Response:
    if isinstance(result, Stream):
        return StreamingResponse(result.events, media_type="text/event-stream",
                                 headers=_headers(request, {**_STREAM_HEADERS, **result.headers}))
    return JSONResponse(result.body, headers=_headers(request, result.headers))


async def _run(request: Request, account_name: str, deployment_name: str, operation: str, *, v1: bool,
               version: str | None) -> Response:
    account = _account(request, account_name)
    _authenticate(request, account, operation, v1=v1)
    # Only an authenticated caller with the data action gets its body read, and only up to the limit.
    limit: int = request.app.state.settings.max_openai_body_bytes
    raw = await read_limited(request, limit, lambda: wire.too_large(limit))
    if nested_deeper_than(raw):
        raise wire.too_deep(MAX_JSON_DEPTH)
    body = wire.parse_body(raw)
    plane = _plane(request)
    if v1:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise wire.bad("'model' (the deployment name) is required.", "model")
        deployment_name = model
    deployment = plane.deployment(account, deployment_name)
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
    Starlette's StreamingResponse watches for the disconnect itself.)"""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
        if not task.done() and watcher.exception() is not None:
            await asyncio.wait((task,))  # receive() failed: a disconnect cannot be seen, so the work goes on
    finally:  # also when this handler is cancelled (the server stopping)
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait((task,))  # let the generation's cleanup run before the handler returns
    if task.cancelled():
        return None
    return task.result()


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
                      access=request.app.state.access, data_action=ACTIONS["models"], route="GET /openai/v1/models")
    data = [{"id": d.name, "object": "model", "created": _epoch(d.created_at), "owned_by": "organization-owner"}
            for d in sorted(account.deployments.values(), key=lambda d: d.name)]
    return JSONResponse({"object": "list", "data": data}, headers=_headers(request))


# ----------------------------------------------------------------------------- errors
def install_errors(app: FastAPI) -> None:
    @app.exception_handler(DataPlaneError)
    async def _dataplane(request: Request, exc: DataPlaneError) -> Response:
        headers = {"x-ms-error-code": exc.code, **_headers(request, exc.headers)}
        if isinstance(exc, BearerRejected):
            # Azure's gateway answers bearer failures without the `error` wrapper (azure-facts.md §2).
            return JSONResponse({"statusCode": 401, "message": exc.message}, status_code=401, headers=headers)
        error: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if exc.param is not None or exc.error_type is not None:
            error.update({"param": exc.param, "type": exc.error_type})
        return JSONResponse({"error": error}, status_code=exc.status, headers=headers)
