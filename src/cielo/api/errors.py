"""One exception handler per error envelope (OAuth, ARM/Graph)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from cielo.errors import AccountLocked, ArmError, CieloError, OAuthError

log = logging.getLogger("cielo.api")

NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


def oauth_body(exc: OAuthError, correlation_id: str | None, base_url: str) -> dict[str, object]:
    """Entra's error envelope (azure-facts.md §4.3): the AADSTS code leads the description."""
    now = dt.datetime.now(dt.UTC)
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    trace_id = str(uuid.uuid4())
    correlation = correlation_id or str(uuid.uuid4())
    description = (
        f"AADSTS{exc.aadsts}: {exc.message}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation}"
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


def oauth_response(exc: OAuthError, request: Request) -> Response:
    base = request.app.state.settings.base_url
    body = oauth_body(exc, request.headers.get("client-request-id"), base)
    headers = dict(NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="cielo"'
    if isinstance(exc, AccountLocked):
        headers["Retry-After"] = str(exc.retry_after)
    return Response(json.dumps(body), status_code=exc.status, media_type="application/json", headers=headers)


def arm_response(exc: ArmError, request: Request) -> Response:
    error: dict[str, object] = {"code": exc.code, "message": exc.message}
    if exc.target:
        error["target"] = exc.target
    headers = {"x-ms-failure-cause": "gateway"} if exc.status == 401 else {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = (
            f'Bearer authorization_uri="{request.app.state.settings.base_url}/common/oauth2/authorize", '
            'error="invalid_token", error_description="The access token is invalid."'
        )
    return JSONResponse({"error": error}, status_code=exc.status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(OAuthError)
    async def _oauth(request: Request, exc: OAuthError) -> Response:
        return oauth_response(exc, request)

    @app.exception_handler(ArmError)
    async def _arm(request: Request, exc: ArmError) -> Response:
        return arm_response(exc, request)

    @app.exception_handler(CieloError)
    async def _other(request: Request, exc: CieloError) -> Response:
        return JSONResponse({"error": {"code": "InternalServerError", "message": exc.message}},
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
