"""The portal's plumbing: one way to declare a page, to render it in the layout, to read a form (anti-CSRF), and
to show an API's refusal. A page handler takes a `Portal` (the request, the session, the API client) and returns a
response; it never sees a token.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from cielo.http.forms import read_form
from cielo.web import csrf
from cielo.web.portal import session as sessions
from cielo.web.portal.client import Api, ApiError, SignedOut
from cielo.web.portal.ids import blades_for, crumbs_for, type_label

router = APIRouter()
templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "templates"))
templates.env.globals.update(type_label=type_label)
templates.env.filters["q"] = lambda s: quote(str(s), safe="/")

SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}
FLASH = "cielo_portal_flash"
_LOCAL_PATH = re.compile(r"/(?![/\\])[\x21-\x7e]*")


class BadForm(Exception):
    """A form without a valid anti-CSRF token (stale, or posted from another site)."""


def local_path(value: str | None, default: str = "/") -> str:
    """A path on this site only (never `//host` or a scheme): where the portal may send the browser back to."""
    return value if value and _LOCAL_PATH.fullmatch(value) and "\\" not in value else default


@dataclass
class Portal:
    request: Request
    session: sessions.Session
    api: Api
    csrf_token: str
    flash: str | None = None
    cookies: list[tuple[str, str]] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.request.url.path

    def query(self, name: str, default: str = "") -> str:
        return self.request.query_params.get(name, default)

    async def form(self, limit: int = 64 * 1024) -> dict[str, str]:
        form = await read_form(self.request, limit)
        if not csrf.valid(self.request, form):
            raise BadForm()
        return form

    def render(self, name: str, *, title: str, status: int = 200, scope: str | None = None, blade: str = "",
               **context: Any) -> Response:
        if status == 200 and isinstance(context.get("error"), ApiError):
            status = context["error"].status  # a refused action shows the API's error, with its status
        return templates.TemplateResponse(self.request, name, {
            **context, "title": title, "session": self.session, "csrf_token": self.csrf_token,
            "flash": self.flash, "scope": scope, "blade": blade,
            "crumbs": crumbs_for(scope) if scope else context.get("crumbs", []),
            "blades": blades_for(scope, context.get("resource")) if scope else [],
        }, status_code=status)

    def redirect(self, url: str, flash: str | None = None) -> Response:
        response = RedirectResponse(local_path(url), status_code=303)
        if flash:
            response.set_cookie(FLASH, quote(flash[:300]), max_age=60, secure=True, httponly=True,
                                samesite="strict", path="/")
        return response


Handler = Callable[[Portal], Awaitable[Response]]


def page(path: str, methods: tuple[str, ...] = ("GET",)) -> Callable[[Handler], Handler]:
    """Declare a portal page: signed-in only; a refusal from the API is shown as the API put it."""
    def register(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            return await _serve(request, handler)
        endpoint.__name__ = f"portal_{handler.__name__}"
        router.add_api_route(path, endpoint, methods=list(methods), include_in_schema=False)
        return handler
    return register


def _signin_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = "/"
    return RedirectResponse("/portal/signin?next=" + quote(local_path(target), safe=""), status_code=303)


async def _serve(request: Request, handler: Handler) -> Response:
    session = sessions.load(request)
    if session is None:
        response = _signin_redirect(request)
        sessions.clear(request, response)
        return with_headers(response)
    token = csrf.page_token(request)
    from urllib.parse import unquote

    flash = request.cookies.get(FLASH)
    portal = Portal(request, session, Api(request, session), token, unquote(flash) if flash else None)
    try:
        response = await handler(portal)
    except SignedOut:
        response = _signin_redirect(request)
        sessions.clear(request, response)
        return with_headers(response)
    except BadForm:
        response = portal.render("portal/problem.html", title="This form has expired", status=400,
                                 message="This form has expired or did not come from this portal. Go back, reload "
                                         "the page and try again.")
    except ApiError as exc:
        response = portal.render("portal/problem.html", title="The request was refused", status=exc.status,
                                 error=exc)
    if session.changed:
        sessions.save(request, response, session)
    csrf.set_cookie(response, token)
    if flash and not any(c.startswith(FLASH + "=") for c in response.headers.getlist("set-cookie")):
        response.delete_cookie(FLASH, path="/", secure=True, httponly=True, samesite="strict")
    return with_headers(response)


def with_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
