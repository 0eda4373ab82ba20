"""Anti-CSRF tokens for the sign-in and consent forms (double-submit cookie).

A page that shows a form sets a random token in a cookie (Secure, HttpOnly, SameSite=Strict) and in a
hidden field; a POST is accepted only when both are present and equal. Another site can make a
browser post a form here, but cannot read or set this cookie, so it cannot forge a sign-in into the
attacker's account (login CSRF) or approve a device code on the victim's behalf. The token is
stateless, so it works across workers and restarts.
"""

from __future__ import annotations

import hmac
import re
import secrets

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "cielo_csrf"
FIELD = "csrf_token"
_SHAPE = re.compile(r"[A-Za-z0-9_-]{32,64}")


def page_token(request: Request) -> str:
    """The token for a page: the browser's current one if it has a well-formed one, else a new one."""
    current = request.cookies.get(COOKIE, "")
    return current if _SHAPE.fullmatch(current) else secrets.token_urlsafe(32)


def set_cookie(response: Response, token: str) -> None:
    response.set_cookie(COOKIE, token, secure=True, httponly=True, samesite="strict", path="/")


def valid(request: Request, form: dict[str, str]) -> bool:
    cookie = request.cookies.get(COOKIE, "")
    sent = form.get(FIELD, "")
    return bool(_SHAPE.fullmatch(cookie)) and hmac.compare_digest(cookie.encode(), sent.encode())
