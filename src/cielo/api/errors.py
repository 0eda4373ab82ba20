"""One exception handler per error envelope (OAuth, ARM/Graph), and one catch-all for what nothing else handled.

The catch-all answers in the envelope of the surface the request's path belongs to (`surface_of`), with status
500 and a request id, and logs the traceback once, redacted. It is a pure ASGI middleware rather than a handler
for `Exception`: Starlette's ServerErrorMiddleware re-raises after its handler has answered, so the server would
log the traceback a second time, unredacted. When the response had already started (a stream that fails after
its headers went out) no second answer is sent: the server closes the connection, so the client sees a cut-off
response rather than a complete-looking one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Scope

from cielo.errors import (
    AccountLocked,
    ArmError,
    ArmServiceUnavailable,
    AuthorizationFailed,
    CieloError,
    DataPlaneError,
    DataPlaneServiceUnavailable,
    GraphServiceNotAvailable,
    OAuthError,
    ServerError,
    SharedStateUnavailable,
    SignInStateUnavailable,
)
from cielo.http.failures import CatchAll, log_denial, log_failure
from cielo.http.surfaces import Surface, surface_of

log = logging.getLogger("cielo.api")

NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
# An error message may quote what the client sent; a lone surrogate in it would make the envelope itself fail
# to encode (a 500 in place of the 400). It is shown as U+FFFD.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _encodable(text: str) -> str:
    return text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text)


def oauth_body(exc: OAuthError, correlation_id: str | None, base_url: str,
               trace_id: str | None = None) -> dict[str, object]:
    """Entra's error envelope (learn.microsoft.com/entra/identity-platform/reference-error-codes): the AADSTS code
    leads the description."""
    now = dt.datetime.now(dt.UTC)
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    trace_id = trace_id or str(uuid.uuid4())
    correlation = correlation_id or str(uuid.uuid4())
    description = (
        f"AADSTS{exc.aadsts}: {_encodable(exc.message)}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation}"
        f"\r\nTimestamp: {now.strftime('%Y-%m-%d %H:%M:%S')}Z"
    )
    return {
        "error": exc.error,
        "error_description": description,
        "error_codes": [exc.aadsts],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation,
        "error_uri": f"{base_url}/error?code={exc.aadsts}",
    }


def oauth_response(exc: OAuthError, request: Request, trace_id: str | None = None) -> Response:
    base = request.app.state.settings.base_url
    body = oauth_body(exc, request.headers.get("client-request-id"), base, trace_id)
    headers = dict(NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="cielo"'
    if isinstance(exc, AccountLocked):
        headers["Retry-After"] = str(exc.retry_after)
    return Response(json.dumps(body), status_code=exc.status, media_type="application/json", headers=headers)


def arm_response(exc: ArmError, request: Request) -> Response:
    error: dict[str, object] = {"code": exc.code, "message": _encodable(exc.message)}
    if exc.target:
        error["target"] = _encodable(exc.target)
    headers = {"x-ms-failure-cause": "gateway"} if exc.status == 401 else {}
    if isinstance(exc, AuthorizationFailed) and exc.reason is not None:
        # RBAC's reason for the denial, for the operator (never sent): logged with a request id that the
        # answer names in x-ms-request-id, as ARM's responses carry one.
        request_id = str(uuid.uuid4())
        headers["x-ms-request-id"] = request_id
        log_denial(request.scope, "AuthorizationFailed", request_id, exc.reason)
    if exc.status == 401:
        headers["WWW-Authenticate"] = (
            f'Bearer authorization_uri="{request.app.state.settings.base_url}/common/oauth2/authorize", '
            'error="invalid_token", error_description="The access token is invalid."'
        )
    return JSONResponse({"error": error}, status_code=exc.status, headers=headers)


# ----------------------------------------------------------------------------- 500, per surface
def internal_error_response(request: Request, request_id: str) -> Response:
    """Status 500 in the envelope of the request's surface, naming `request_id` (also in the log line)."""
    surface = surface_of(request.scope.get("path", "/"))
    if surface is Surface.OAUTH:
        # Entra's AADSTS50000 TokenIssuanceError, "There's an issue with the sign-in service"
        # (learn.microsoft.com/entra/identity-platform/reference-error-codes); `server_error` is RFC 6749
        # §4.1.2.1's code for an unexpected condition. The request id is the trace id, as Entra's is.
        exc = ServerError("There was an error issuing a token or an issue with our sign-in service.")
        return oauth_response(exc, request, trace_id=request_id)
    if surface is Surface.GRAPH:
        # learn.microsoft.com/graph/errors: `generalException` "An unspecified error has occurred.", with
        # `innerError` {date, request-id, client-request-id} and the same ids in the headers.
        graph_client_id = _echo(request.headers.get("client-request-id")) or request_id
        date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return JSONResponse({"error": {"code": "generalException", "message": "An unspecified error has occurred.",
                                       "innerError": {"date": date, "request-id": request_id,
                                                      "client-request-id": graph_client_id}}},
                            status_code=500, headers={"request-id": request_id, "client-request-id": graph_client_id})
    if surface is Surface.DATA_PLANE:
        # Azure OpenAI's 500: type `server_error` and the request id in the message (observed:
        # Azure-Samples/azure-search-openai-demo#1390, Azure/azure-sdk-for-python#40812). Cielo's data-plane
        # errors always carry a code (Azure.Core ErrorResponse requires one) and x-ms-error-code.
        headers = {"apim-request-id": request_id, "x-request-id": request_id, "x-ms-region": "local",
                   "x-ms-error-code": "InternalServerError"}
        client_id = _echo(request.headers.get("x-ms-client-request-id"))
        if client_id:
            headers["x-ms-client-request-id"] = client_id
        message = ("The server had an error while processing your request. You can retry it; if the error "
                   f"persists, give the server's administrator the request ID {request_id}.")
        return JSONResponse({"error": {"code": "InternalServerError", "message": message, "param": None,
                                       "type": "server_error"}}, status_code=500, headers=headers)
    # ARM's InternalServerError, with the request id as ARM's x-ms-request-id.
    correlation = _echo(request.headers.get("x-ms-correlation-request-id")) or request_id
    return JSONResponse({"error": {"code": "InternalServerError",
                                   "message": f"Encountered an internal server error. (request id {request_id})"}},
                        status_code=500, headers={"x-ms-request-id": request_id,
                                                  "x-ms-correlation-request-id": correlation})


async def shared_state_response(request: Request, exc: SharedStateUnavailable) -> Response:
    """Redis (`--redis-url`) is unreachable: 503 in the envelope of the request's surface."""
    surface = surface_of(request.scope.get("path", "/"))
    if surface is Surface.OAUTH:
        return oauth_response(SignInStateUnavailable(exc.message), request)
    if surface is Surface.GRAPH:
        return arm_response(GraphServiceNotAvailable(exc.message), request)
    if surface is Surface.DATA_PLANE:
        handler = request.app.exception_handlers[DataPlaneError]  # installed by api/openai.py
        response: Response = await handler(request, DataPlaneServiceUnavailable(exc.message))
        return response
    return arm_response(ArmServiceUnavailable(exc.message), request)


def _echo(value: str | None) -> str | None:
    """A client's request id, echoed only when it is short printable ASCII (it goes into a header)."""
    if value and len(value) <= 100 and value.isascii() and value.isprintable():
        return value
    return None


def _internal_error_app(scope: Scope, request_id: str) -> ASGIApp:
    return internal_error_response(Request(scope), request_id)


def install(app: FastAPI) -> None:
    @app.exception_handler(OAuthError)
    async def _oauth(request: Request, exc: OAuthError) -> Response:
        return oauth_response(exc, request)

    @app.exception_handler(ArmError)
    async def _arm(request: Request, exc: ArmError) -> Response:
        return arm_response(exc, request)

    @app.exception_handler(SharedStateUnavailable)
    async def _shared_state(request: Request, exc: SharedStateUnavailable) -> Response:
        return await shared_state_response(request, exc)

    @app.exception_handler(CieloError)
    async def _other(request: Request, exc: CieloError) -> Response:
        if exc.status >= 500:  # a typed error that is still the server's fault: as the catch-all answers
            request_id = str(uuid.uuid4())
            log_failure(request.scope, exc, request_id, started=False)
            return internal_error_response(request, request_id)
        return JSONResponse({"error": {"code": "InternalServerError", "message": _encodable(exc.message)}},
                            status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse(
            {"error": {"code": "BadRequest", "message": f"Invalid request: {where}: {first.get('msg', '')}"}},
            status_code=400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "BadRequest")
        return JSONResponse(
            {"error": {"code": code, "message": str(exc.detail)}}, status_code=exc.status_code
        )

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> Response:
        # Only what fails outside CatchAll reaches Starlette's ServerErrorMiddleware (which then re-raises).
        request_id = str(uuid.uuid4())
        log_failure(request.scope, exc, request_id, started=False)
        return internal_error_response(request, request_id)

    # Added before the app factory's own middleware (CollapseSlashes), so CatchAll sits inside it and sees
    # the collapsed path.
    app.add_middleware(CatchAll, answer=_internal_error_app)

