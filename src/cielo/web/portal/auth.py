"""Signing in to the portal as Azure's portal does: the authorization-code flow with PKCE (RFC 7636), as the
first-party public client `c44b4083-…` (Azure Portal), at Cielo's own authorize and token endpoints.

The code comes back with `response_mode=form_post`, so it is never in a URL (history, logs, Referer). The
verifier, state and nonce wait in a sealed cookie; the tokens (ARM, then Graph and Cognitive Services through
the refresh token) go into the sealed session cookie (web/portal/session.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from cielo.core.resources import PORTAL_CLIENT_ID, PORTAL_REDIRECT_PATH
from cielo.http.forms import read_form
from cielo.web import csrf
from cielo.web.portal import session as sessions
from cielo.web.portal.client import RESOURCES, ApiError, forget, token_request
from cielo.web.portal.web import local_path, router, templates, with_headers

_SCOPE = f"{RESOURCES['arm'].rstrip('/')}/.default openid profile offline_access"


def _redirect_uri(request: Request) -> str:
    return str(request.app.state.settings.base_url) + PORTAL_REDIRECT_PATH


def _claims(jwt: str) -> dict[str, Any]:
    """The id token's claims. It came straight from this app's token endpoint (in-process), not from the browser."""
    payload = jwt.split(".")[1]
    value = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return value if isinstance(value, dict) else {}


def _problem(request: Request, title: str, message: str, status: int = 400) -> Response:
    token = csrf.page_token(request)
    response = templates.TemplateResponse(request, "portal/signed_out.html", {
        "title": title, "message": message, "csrf_token": token, "session": None}, status_code=status)
    return with_headers(response)


@router.get("/portal/signin", include_in_schema=False)
async def signin(request: Request) -> Response:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    query = urlencode({
        "client_id": PORTAL_CLIENT_ID, "response_type": "code", "redirect_uri": _redirect_uri(request),
        "scope": _SCOPE, "state": state, "nonce": nonce, "code_challenge": challenge,
        "code_challenge_method": "S256", "response_mode": "form_post",
    })
    response = RedirectResponse(f"/organizations/oauth2/v2.0/authorize?{query}", status_code=303)
    sessions.save_auth(request, response, {"v": verifier, "s": state, "n": nonce,
                                           "next": local_path(request.query_params.get("next"))})
    return with_headers(response)


@router.post(PORTAL_REDIRECT_PATH, include_in_schema=False)
async def signin_callback(request: Request) -> Response:
    form = await read_form(request, 16 * 1024)
    pending = sessions.load_auth(request)
    if pending is None or not hmac.compare_digest(str(pending.get("s", "")).encode(), form.get("state", "").encode()):
        return _problem(request, "Sign-in expired", "This sign-in did not start here or took too long. "
                                                    "Sign in again.")
    if form.get("error"):
        return _problem(request, "Sign-in failed", f"{form.get('error')}: {form.get('error_description', '')}")
    try:
        body = await token_request(request, "organizations", {
            "grant_type": "authorization_code", "code": form.get("code", ""), "redirect_uri": _redirect_uri(request),
            "code_verifier": str(pending["v"]), "scope": _SCOPE})
        claims = _claims(str(body["id_token"]))
        if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), str(pending["n"]).encode()):
            return _problem(request, "Sign-in failed", "The sign-in answer does not match this request.")
        session = sessions.Session(str(claims["oid"]), str(claims["tid"]), str(claims.get("name") or ""),
                                   str(claims.get("preferred_username") or ""), str(body["refresh_token"]))
        session.tokens["arm"] = (str(body["access_token"]), time.time() + float(body.get("expires_in", 0)))
        for kind in ("graph", "cog"):
            more = await token_request(request, session.tenant_id, {
                "grant_type": "refresh_token", "refresh_token": session.refresh_token,
                "scope": f"{RESOURCES[kind].rstrip('/')}/.default offline_access"})
            session.refresh_token = str(more["refresh_token"])
            session.tokens[kind] = (str(more["access_token"]), time.time() + float(more.get("expires_in", 0)))
    except ApiError as exc:
        return _problem(request, "Sign-in failed", f"{exc.code}: {exc.message}")
    response = RedirectResponse(local_path(str(pending.get("next") or "/")), status_code=303)
    sessions.save(request, response, session)
    sessions.clear_auth(response)
    return with_headers(response)


@router.post("/portal/signout", include_in_schema=False)
async def signout(request: Request) -> Response:
    form = await read_form(request, 16 * 1024)
    if not csrf.valid(request, form):
        return _problem(request, "This form has expired", "Reload the page and try again.")
    session = sessions.load(request)
    if session is not None:
        forget(session.refresh_token)
    response = RedirectResponse("/portal/signedout", status_code=303)
    sessions.clear(request, response)
    return with_headers(response)


@router.get("/portal/signedout", include_in_schema=False)
async def signed_out(request: Request) -> Response:
    return _problem(request, "You signed out", "You have signed out of the Cielo portal.", 200)
