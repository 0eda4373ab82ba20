"""Sign-in pages: the device-code verification page and the authorize endpoint's sign-in form."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import RedirectResponse, Response

from cielo.api.forms import read_form
from cielo.core.resources import FIRST_PARTY_PUBLIC_CLIENTS
from cielo.errors import CieloError
from cielo.identity.grants.authorization_code import issue_code, redirect_allowed
from cielo.identity.service import TokenService
from cielo.identity.signin import check_credentials

router = APIRouter()
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

_AUTHORIZE_PARAMS = ("client_id", "response_type", "redirect_uri", "scope", "state", "code_challenge",
                     "code_challenge_method", "nonce", "response_mode", "prompt", "login_hint", "resource")
_BAD_LOGIN = "Your account or password is incorrect."
_FRAME = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'",
          "Cache-Control": "no-store"}


def _service(request: Request) -> TokenService:
    service: TokenService = request.app.state.token_service
    return service


def _page(request: Request, name: str, status: int = 200, **context: object) -> Response:
    return templates.TemplateResponse(request, name, context, status_code=status, headers=_FRAME)


def _message(request: Request, title: str, message: str, status: int = 200, code: int | None = None) -> Response:
    return _page(request, "message.html", status, title=title, message=message, code=code)


# ----------------------------------------------------------------------------- device code
@router.get("/devicelogin")
async def device_page(request: Request) -> Response:
    return _page(request, "device.html", title="Enter code", action="/devicelogin", user_code="",
                 username="", error=None)


@router.post("/devicelogin")
async def device_submit(request: Request) -> Response:
    service = _service(request)
    form = await read_form(request, 16 * 1024)
    user_code = form.get("user_code", "").strip().upper().replace("-", "")
    username = form.get("username", "")

    def again(error: str) -> Response:
        return _page(request, "device.html", 400, title="Enter code", action="/devicelogin",
                     user_code=user_code, username=username, error=error)

    record = service.ctx.grants.find_user_code(user_code) if user_code else None
    if record is None or record.status != "pending" or record.expires_at < time.time():
        return again("That code didn't work. Check the code and try again.")
    user = check_credentials(service.ctx.directory, username, form.get("password", ""))
    if user is None:
        return again(_BAD_LOGIN)
    if record.tenant_id is not None and record.tenant_id != user.tenant_id:
        return again("This account does not belong to the tenant the device asked for.")
    approve = form.get("decision", "approve") == "approve"
    service.ctx.grants.decide_device_code(user_code, "approved" if approve else "declined",
                                         user.object_id if approve else None)
    if approve:
        return _message(request, "You're signed in",
                        "You have signed in on your device. You may now close this window.")
    return _message(request, "Request denied", "You declined the sign-in request. You may close this window.")


# ----------------------------------------------------------------------------- authorize
def _authorize_error(request: Request, message: str, code: int) -> Response:
    return _message(request, "Sorry, but we're having trouble signing you in.", message, 400, code)


def _check_authorize(request: Request, tenant_segment: str, params: dict[str, str]) -> Response | str:
    """Validate the request; a problem with the client or redirect URI is shown, never redirected."""
    service = _service(request)
    try:
        tenant = service.resolve_tenant(tenant_segment)
    except CieloError as exc:
        return _authorize_error(request, exc.message, 90002)
    client_id = params.get("client_id", "").lower()
    app = service.ctx.directory.application(client_id) if client_id else None
    if client_id not in FIRST_PARTY_PUBLIC_CLIENTS and (app is None or (tenant and app.tenant_id != tenant.id)):
        return _authorize_error(request, f"Application with identifier '{client_id}' was not found in the "
                                "directory.", 700016)
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_allowed(client_id, app, redirect_uri):
        return _authorize_error(request, "The redirect URI specified in the request does not match the "
                                "redirect URIs configured for the application.", 50011)
    if params.get("response_type") != "code":
        return _redirect_error(request, redirect_uri, params, "unsupported_response_type",
                               "AADSTS700054: response_type must be 'code'.")
    method = params.get("code_challenge_method")
    if method and method not in ("S256", "plain"):
        return _redirect_error(request, redirect_uri, params, "invalid_request",
                               "AADSTS501491: Invalid code_challenge_method.")
    if params.get("prompt") == "none":
        return _redirect_error(request, redirect_uri, params, "login_required",
                               "AADSTS50058: A silent sign-in request was sent but no user is signed in.")
    return FIRST_PARTY_PUBLIC_CLIENTS.get(client_id) or (app.display_name if app else client_id)


def _respond(request: Request, redirect_uri: str, params: dict[str, str], values: dict[str, str]) -> Response:
    """Hand the result to the client as its `response_mode` asks (OAuth 2.0 Multiple Response Type
    Encoding Practices; Form Post Response Mode): query (the default for code), fragment, or an
    auto-submitting form that POSTs to the redirect URI, as Entra does for web apps."""
    if params.get("state"):
        values = {**values, "state": params["state"]}
    mode = params.get("response_mode", "query")
    if mode == "form_post" and redirect_uri.lower().startswith(("https://", "http://")):
        return _page(request, "form_post.html", action=redirect_uri, fields=list(values.items()))
    if mode == "fragment":
        return RedirectResponse(redirect_uri.partition("#")[0] + "#" + urlencode(values), status_code=302)
    sep = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(redirect_uri + sep + urlencode(values), status_code=302)


def _redirect_error(
    request: Request, redirect_uri: str, params: dict[str, str], error: str, description: str
) -> Response:
    return _respond(request, redirect_uri, params, {"error": error, "error_description": description})


@router.get("/{tenant}/oauth2/v2.0/authorize")
@router.get("/{tenant}/oauth2/authorize")
async def authorize_page(tenant: str, request: Request) -> Response:
    params = {k: v for k, v in request.query_params.items() if k in _AUTHORIZE_PARAMS}
    checked = _check_authorize(request, tenant, params)
    if isinstance(checked, Response):
        return checked
    hidden = sorted((k, v) for k, v in params.items() if k != "login_hint")
    return _page(request, "signin.html", title="Sign in", action=str(request.url.path), hidden=hidden,
                 app_name=checked, tenant_name=None, username=params.get("login_hint", ""), error=None)


@router.post("/{tenant}/oauth2/v2.0/authorize")
@router.post("/{tenant}/oauth2/authorize")
async def authorize_submit(tenant: str, request: Request) -> Response:
    form = await read_form(request, 16 * 1024)
    params = {k: v for k, v in form.items() if k in _AUTHORIZE_PARAMS}
    checked = _check_authorize(request, tenant, params)
    if isinstance(checked, Response):
        return checked
    service = _service(request)
    user = check_credentials(service.ctx.directory, form.get("username", ""), form.get("password", ""))
    tenant_record = service.resolve_tenant(tenant)
    if user is None or (tenant_record is not None and tenant_record.id != user.tenant_id):
        hidden = sorted(params.items())
        return _page(request, "signin.html", 400, title="Sign in", action=str(request.url.path), hidden=hidden,
                     app_name=checked, tenant_name=None, username=form.get("username", ""), error=_BAD_LOGIN)
    scope = params.get("scope") or "openid profile offline_access"
    if request.url.path.endswith("/oauth2/authorize") and params.get("resource"):
        # v1 names a resource; it travels through the sign-in form as a hidden field.
        scope = f"{params['resource']}/.default openid offline_access"
    code = issue_code(
        service.ctx,
        tenant_id=user.tenant_id,
        client_id=params["client_id"].lower(),
        user_id=user.object_id,
        redirect_uri=params["redirect_uri"],
        scope=scope,
        code_challenge=params.get("code_challenge"),
        code_challenge_method=params.get("code_challenge_method"),
        nonce=params.get("nonce"),
    )
    return _respond(request, params["redirect_uri"], params, {"code": code, "session_state": user.object_id})
