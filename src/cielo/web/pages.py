"""Sign-in pages: the device-code verification page and the authorize endpoint's sign-in form.

Every form carries an anti-CSRF token (web/csrf.py); every password typed here goes through smart
lockout and per-address throttling (identity/signin_guard.py); redirect URIs are matched strictly and
the browser is only ever sent to a URI rebuilt from its parsed parts (identity/redirects.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from cielo.core.resources import FIRST_PARTY_PUBLIC_CLIENTS, PORTAL_CLIENT_ID, PORTAL_REDIRECT_PATH
from cielo.errors import AccountLocked, CieloError
from cielo.http.forms import client_address, read_form
from cielo.identity.grants.authorization_code import issue_code
from cielo.identity.redirects import RedirectUri, allowed_redirect, parse_redirect_uri
from cielo.identity.service import TokenService
from cielo.identity.signin import check_credentials
from cielo.settings import Settings
from cielo.store.models import Application, DeviceCode, User
from cielo.web import aadsts, csrf

router = APIRouter()
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

_AUTHORIZE_PARAMS = ("client_id", "response_type", "redirect_uri", "scope", "state", "code_challenge",
                     "code_challenge_method", "nonce", "response_mode", "prompt", "login_hint", "resource")
_BAD_LOGIN = "Your account or password is incorrect."
_BAD_CODE = "That code didn't work. Check the code and try again."
_STALE_FORM = "This sign-in page has expired or did not come from Cielo. Please try again."
_FRAME = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'",
          "Cache-Control": "no-store"}


def _service(request: Request) -> TokenService:
    service: TokenService = request.app.state.token_service
    return service


def _page(request: Request, name: str, status: int = 200, headers: dict[str, str] | None = None,
          **context: object) -> Response:
    token = csrf.page_token(request)
    response = templates.TemplateResponse(request, name, {**context, "csrf_token": token}, status_code=status,
                                          headers={**_FRAME, **(headers or {})})
    csrf.set_cookie(response, token)
    return response


def _message(request: Request, title: str, message: str, status: int = 200, code: int | None = None) -> Response:
    return _page(request, "message.html", status, title=title, message=message, code=code)


async def _sign_in(request: Request, username: str, password: str) -> User | AccountLocked | None:
    """Check a password on a worker thread: argon2 must not stall the event loop (see api/oauth.py)."""
    service = _service(request)
    try:
        return await run_in_threadpool(check_credentials, service.ctx.directory, service.ctx.signin, username,
                                       password, client_address(request))
    except AccountLocked as locked:
        return locked


def _app_name(request: Request, client_id: str) -> str:
    app = _service(request).ctx.directory.application(client_id) if client_id else None
    return FIRST_PARTY_PUBLIC_CLIENTS.get(client_id) or (app.display_name if app else client_id)


# ----------------------------------------------------------------------------- error_uri
@router.get("/error")
async def error_page(request: Request) -> Response:
    """Where an OAuth error's `error_uri` points (`{base_url}/error?code=AADSTS…`): what the code means."""
    raw = request.query_params.get("code", "").upper().removeprefix("AADSTS")
    code = int(raw) if raw.isdigit() and len(raw) <= 9 else None
    known = aadsts.CODES.get(code) if code is not None else None
    if known is None:
        return _page(request, "error_code.html", 404 if code is not None else 400, title="Unknown error code",
                     code=code, code_name=None, meaning="Cielo's token service does not answer with this code.")
    return _page(request, "error_code.html", title=f"AADSTS{code}: {known[0]}", code=code, code_name=known[0],
                 meaning=known[1])


# ----------------------------------------------------------------------------- device code
def _device_code_page(request: Request, status: int = 200, user_code: str = "", error: str | None = None,
                      headers: dict[str, str] | None = None) -> Response:
    return _page(request, "device.html", status, headers, title="Enter code", action="/devicelogin",
                 user_code=user_code, error=error)


def _consent_page(request: Request, record: DeviceCode, status: int = 200, username: str = "",
                  error: str | None = None, headers: dict[str, str] | None = None) -> Response:
    """Step two: who is asking, for what, then sign in. Enter approves (the first button); Deny is second."""
    return _page(request, "device_consent.html", status, headers, title="Sign in", action="/devicelogin",
                 user_code=record.user_code, app_name=_app_name(request, record.client_id),
                 scopes=record.scope.split(), username=username, error=error)


@router.get("/devicelogin")
async def device_page(request: Request) -> Response:
    return _device_code_page(request)


@router.post("/devicelogin")
async def device_submit(request: Request) -> Response:
    service = _service(request)
    form = await read_form(request, 16 * 1024)
    user_code = form.get("user_code", "").strip().upper().replace("-", "")
    if not csrf.valid(request, form):
        return _device_code_page(request, 400, user_code, _STALE_FORM)
    record = service.ctx.grants.find_user_code(user_code) if user_code else None
    if record is None or record.status != "pending" or record.expires_at < service.ctx.clock.now():
        return _device_code_page(request, 400, user_code, _BAD_CODE)
    if form.get("decision") == "deny":
        service.ctx.grants.decide_device_code(user_code, "declined", None)
        return _message(request, "Request denied", "You declined the sign-in request. You may close this window.")
    if "username" not in form:
        return _consent_page(request, record)
    username = form.get("username", "")
    user = await _sign_in(request, username, form.get("password", ""))
    if isinstance(user, AccountLocked):
        return _consent_page(request, record, 429, username, f"{user.message} (AADSTS{user.aadsts})",
                             {"Retry-After": str(user.retry_after)})
    if user is None:
        return _consent_page(request, record, 400, username, _BAD_LOGIN)
    if record.tenant_id is not None and record.tenant_id != user.tenant_id:
        return _consent_page(request, record, 400, username,
                             "This account does not belong to the tenant the device asked for.")
    service.ctx.grants.decide_device_code(user_code, "approved", user.object_id)
    return _message(request, "You're signed in", "You have signed in on your device. You may now close this window.")


# ----------------------------------------------------------------------------- authorize
@dataclass(frozen=True)
class _Checked:
    app_name: str
    redirect: RedirectUri


def _authorize_error(request: Request, message: str, code: int) -> Response:
    return _message(request, "Sorry, but we're having trouble signing you in.", message, 400, code)


def _check_authorize(request: Request, tenant_segment: str, params: dict[str, str]) -> Response | _Checked:
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
    redirect = _client_redirect(request, client_id, app, params.get("redirect_uri", ""))
    if redirect is None:
        return _authorize_error(request, "The redirect URI specified in the request does not match the "
                                "redirect URIs configured for the application.", 50011)
    if params.get("response_type") != "code":
        return _redirect_error(redirect, params, "unsupported_response_type",
                               "AADSTS700054: response_type must be 'code'.", request)
    method = params.get("code_challenge_method")
    if method and method not in ("S256", "plain"):
        return _redirect_error(redirect, params, "invalid_request",
                               "AADSTS501491: Invalid code_challenge_method.", request)
    if params.get("prompt") == "none":
        return _redirect_error(redirect, params, "login_required",
                               "AADSTS50058: A silent sign-in request was sent but no user is signed in.", request)
    return _Checked(_app_name(request, client_id), redirect)


def _client_redirect(request: Request, client_id: str, app: Application | None,
                     redirect_uri: str) -> RedirectUri | None:
    """Where this application (`app`, as the directory has it) may be sent (authorization answers, logout): the
    portal's one page, or its registered URIs (loopback for first-party public clients); None for anything else."""
    if client_id == PORTAL_CLIENT_ID:
        return _portal_redirect(request, redirect_uri)
    return allowed_redirect(client_id, app.redirect_uris if app else None, redirect_uri)


def _portal_redirect(request: Request, redirect_uri: str) -> RedirectUri | None:
    """The portal's client id receives codes at one URI only: its own sign-in page on this server."""
    settings: Settings = request.app.state.settings
    return parse_redirect_uri(redirect_uri) if redirect_uri == settings.base_url + PORTAL_REDIRECT_PATH else None


def _respond(request: Request, redirect: RedirectUri, params: dict[str, str], values: dict[str, str]) -> Response:
    """Hand the result to the client as its `response_mode` asks (OAuth 2.0 Multiple Response Type
    Encoding Practices; Form Post Response Mode): query (the default for code), fragment, or an
    auto-submitting form that POSTs to the redirect URI, as Entra does for web apps. The target is always
    the URI rebuilt from its parsed parts."""
    if params.get("state"):
        values = {**values, "state": params["state"]}
    target = redirect.url()
    mode = params.get("response_mode", "query")
    if mode == "form_post":
        return _page(request, "form_post.html", action=target, fields=list(values.items()))
    if mode == "fragment":
        return RedirectResponse(target + "#" + urlencode(values), status_code=302)
    sep = "&" if redirect.query is not None else "?"
    return RedirectResponse(target + sep + urlencode(values), status_code=302)


def _redirect_error(
    redirect: RedirectUri, params: dict[str, str], error: str, description: str, request: Request
) -> Response:
    return _respond(request, redirect, params, {"error": error, "error_description": description})


def _sign_in_page(request: Request, checked: _Checked, params: dict[str, str], status: int = 200,
                  username: str = "", error: str | None = None, headers: dict[str, str] | None = None) -> Response:
    hidden = sorted((k, v) for k, v in params.items() if k != "login_hint")
    return _page(request, "signin.html", status, headers, title="Sign in", action=str(request.url.path),
                 hidden=hidden, app_name=checked.app_name, tenant_name=None, username=username, error=error)


@router.get("/{tenant}/oauth2/v2.0/authorize")
@router.get("/{tenant}/oauth2/authorize")
async def authorize_page(tenant: str, request: Request) -> Response:
    params = {k: v for k, v in request.query_params.items() if k in _AUTHORIZE_PARAMS}
    checked = _check_authorize(request, tenant, params)
    if isinstance(checked, Response):
        return checked
    return _sign_in_page(request, checked, params, username=params.get("login_hint", ""))


@router.post("/{tenant}/oauth2/v2.0/authorize")
@router.post("/{tenant}/oauth2/authorize")
async def authorize_submit(tenant: str, request: Request) -> Response:
    form = await read_form(request, 16 * 1024)
    params = {k: v for k, v in form.items() if k in _AUTHORIZE_PARAMS}
    checked = _check_authorize(request, tenant, params)
    if isinstance(checked, Response):
        return checked
    username = form.get("username", "")
    if not csrf.valid(request, form):
        return _sign_in_page(request, checked, params, 400, username, _STALE_FORM)
    service = _service(request)
    user = await _sign_in(request, username, form.get("password", ""))
    if isinstance(user, AccountLocked):
        return _sign_in_page(request, checked, params, 429, username, f"{user.message} (AADSTS{user.aadsts})",
                             {"Retry-After": str(user.retry_after)})
    tenant_record = service.resolve_tenant(tenant)
    if user is None or (tenant_record is not None and tenant_record.id != user.tenant_id):
        return _sign_in_page(request, checked, params, 400, username, _BAD_LOGIN)
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
    # session_state is opaque (OpenID Connect Session Management §2): never the user's object id.
    return _respond(request, checked.redirect, params, {"code": code, "session_state": str(uuid.uuid4())})


@router.get("/{tenant}/oauth2/v2.0/logout")
@router.get("/{tenant}/oauth2/logout")
async def logout_page(tenant: str, request: Request) -> Response:
    """The `end_session_endpoint` the discovery documents name (OpenID Connect RP-Initiated Logout 1.0): MSAL's
    logout URL and the portal's sign-out land here. Cielo's sign-in pages keep no session in the browser (each
    sign-in asks for the password), so there is no browser session to end; tokens already issued stay valid until
    they expire or their grant is revoked. With `post_logout_redirect_uri` and `client_id` naming a URI that the
    application may receive redirects at, the browser is sent there (with `state`); a URI it may not use is not
    followed, and the page says so."""
    service = _service(request)
    try:
        service.resolve_tenant(tenant)
    except CieloError as exc:
        return _message(request, "Sign out", exc.message, 400, 90002)
    target = request.query_params.get("post_logout_redirect_uri", "")
    if not target:
        return _message(request, "You signed out of your account", "It's a good idea to close all browser windows.")
    client_id = request.query_params.get("client_id", "").lower()
    app = service.ctx.directory.application(client_id) if client_id else None
    redirect = _client_redirect(request, client_id, app, target) if client_id else None
    if redirect is None:
        return _message(request, "You signed out of your account",
                        "The post_logout_redirect_uri was not followed: it is not a redirect URI registered for the "
                        "application named by client_id.", 400, 50011)
    state = request.query_params.get("state")
    url = redirect.url()
    if state:
        url += ("&" if redirect.query is not None else "?") + urlencode({"state": state})
    return RedirectResponse(url, status_code=302)
