"""The Responses API routes of an account's endpoint: `openai/v1/responses` (the deployment name as `model`) and
`openai/responses?api-version=2025-03-01-preview` (or a later preview), with retrieve, delete and input items.

Authentication is the data plane's (dataplane/auth.py), with Azure's data actions for responses:
`Microsoft.CognitiveServices/accounts/OpenAI/responses/write` to create one (the action Azure's PermissionDenied
names for `POST /openai/v1/responses`), `.../responses/read` to read one and `.../responses/delete` to delete one.
These routes are not in openai.py's hot-path dispatcher: its patterns do not match them, so FastAPI routes them.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import JSONResponse, Response

from cielo.api.openai import (
    CLIENT_CLOSED_REQUEST,
    _account,
    _headers,
    _respond,
    _unless_client_leaves,
    api_version,
    model_of,
    read_body,
)
from cielo.core.clock import Clock
from cielo.dataplane import auth, responses, wire
from cielo.dataplane.index import Account
from cielo.dataplane.responses_service import ResponsesService, ResponseStore
from cielo.dataplane.service import DataPlane
from cielo.errors import ApiVersionRequired, UnsupportedApiVersion

router = APIRouter(prefix="/accounts/{account_name}/openai")

_ACTION = "Microsoft.CognitiveServices/accounts/OpenAI/responses/"
FIRST_PREVIEW = "2025-03-01-preview"  # the first with the Responses API (learn.microsoft.com, "Responses API")


def install(app: FastAPI, store: ResponseStore, clock: Clock) -> None:
    """The routes, and the service they call (over the app's data plane and the given store)."""
    plane: DataPlane = app.state.dataplane
    app.state.responses = ResponsesService(plane, store, clock)
    app.include_router(router)


def _service(request: Request) -> ResponsesService:
    service: ResponsesService = request.app.state.responses
    return service


def _preview_version(request: Request) -> str:
    """The classic route's api-version: one the other data-plane routes accept (openai.api_version's table: missing
    is 400 MissingApiVersionParameter, unknown 404 UnsupportedApiVersion), and a preview from 2025-03-01-preview on."""
    if not request.query_params.get("api-version"):
        raise ApiVersionRequired(f"Missing required query parameter 'api-version'. The Responses API needs "
                                 f"{FIRST_PREVIEW} or a later preview.")
    version = api_version(request)
    if not version.endswith("-preview") or version < FIRST_PREVIEW:
        raise UnsupportedApiVersion(f"The API version '{version}' does not serve the Responses API: use "
                                    f"{FIRST_PREVIEW} or a later preview, or the v1 route (openai/v1/responses).")
    return version


def _caller(request: Request, account: Account, verb: str, *, v1: bool) -> str:
    """Authenticate for `verb` (write, read or delete); the owner name stored responses are kept under."""
    method = {"write": "POST", "read": "GET", "delete": "DELETE"}[verb]
    route = f"{method} /openai/{'v1/' if v1 else ''}responses{'' if verb == 'write' else '/{response_id}'}"
    plane: DataPlane = request.app.state.dataplane
    who = auth.authenticate(account, request.headers, v1=v1, validator=request.app.state.validator,
                            access=request.app.state.access, data_action=_ACTION + verb, route=route,
                            grants=plane.grants)
    return f"oid:{who.principal_id}" if who.method == "aad" and who.principal_id else "key"


async def _create(request: Request, account_name: str, *, v1: bool) -> Response:
    version = None if v1 else _preview_version(request)
    account = _account(request, account_name)
    owner = _caller(request, account, "write", v1=v1)
    _, body = await read_body(request)
    service = _service(request)
    deployment = service.plane.deployment(account, model_of(body))
    result = await _unless_client_leaves(request, service.create(account, deployment, owner, body, version))
    if result is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    return _respond(request, result)


def _read_query(request: Request) -> None:
    responses.check_include(request.query_params.getlist("include") + request.query_params.getlist("include[]"))
    for name in ("stream", "starting_after"):
        value = request.query_params.get(name)
        if value not in (None, "", "false"):
            raise wire.unsupported(f"'{name}' is not supported when retrieving a response.", name)


# ----------------------------------------------------------------------------- v1 routes
@router.post("/v1/responses")
async def v1_create(account_name: str, request: Request) -> Response:
    return await _create(request, account_name, v1=True)


@router.get("/v1/responses/{response_id}")
async def v1_retrieve(account_name: str, response_id: str, request: Request) -> Response:
    return await _retrieve(request, account_name, response_id, v1=True)


@router.delete("/v1/responses/{response_id}")
async def v1_delete(account_name: str, response_id: str, request: Request) -> Response:
    return await _delete(request, account_name, response_id, v1=True)


@router.get("/v1/responses/{response_id}/input_items")
async def v1_input_items(account_name: str, response_id: str, request: Request) -> Response:
    return await _input_items(request, account_name, response_id, v1=True)


# ----------------------------------------------------------------------------- preview routes
@router.post("/responses")
async def create(account_name: str, request: Request) -> Response:
    return await _create(request, account_name, v1=False)


@router.get("/responses/{response_id}")
async def retrieve(account_name: str, response_id: str, request: Request) -> Response:
    _preview_version(request)
    return await _retrieve(request, account_name, response_id, v1=False)


@router.delete("/responses/{response_id}")
async def delete(account_name: str, response_id: str, request: Request) -> Response:
    _preview_version(request)
    return await _delete(request, account_name, response_id, v1=False)


@router.get("/responses/{response_id}/input_items")
async def input_items(account_name: str, response_id: str, request: Request) -> Response:
    _preview_version(request)
    return await _input_items(request, account_name, response_id, v1=False)


# ----------------------------------------------------------------------------- the reads
async def _retrieve(request: Request, account_name: str, response_id: str, *, v1: bool) -> Response:
    account = _account(request, account_name)
    owner = _caller(request, account, "read", v1=v1)
    _read_query(request)
    return JSONResponse(await _service(request).retrieve(account, owner, response_id), headers=_headers(request))


async def _delete(request: Request, account_name: str, response_id: str, *, v1: bool) -> Response:
    account = _account(request, account_name)
    owner = _caller(request, account, "delete", v1=v1)
    return JSONResponse(await _service(request).delete(account, owner, response_id), headers=_headers(request))


async def _input_items(request: Request, account_name: str, response_id: str, *, v1: bool) -> Response:
    account = _account(request, account_name)
    owner = _caller(request, account, "read", v1=v1)
    page = await _service(request).input_items(account, owner, response_id, dict(request.query_params))
    return JSONResponse(page, headers=_headers(request))
