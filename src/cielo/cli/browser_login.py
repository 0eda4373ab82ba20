"""Browser sign-in: authorization code + PKCE with a loopback redirect (RFC 8252), as az does."""

from __future__ import annotations

import http.server
import secrets
import threading
import webbrowser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from cielo.cli.common import CliError
from cielo.client.http import ApiError, CieloClient
from cielo.core.ids import pkce_s256
from cielo.core.resources import AZURE_CLI_CLIENT_ID

_PAGE = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Cielo sign-in</title>"
         "<style>body{{font-family:system-ui,sans-serif;background:#f3f2f1;margin:0}}main{{max-width:32rem;"
         "margin:4rem auto;background:#fff;padding:2rem;border-radius:6px;box-shadow:0 1px 4px #0002}}"
         "h1{{font-size:1.25rem;margin-top:0}}</style></head><body><main><h1>{title}</h1><p>{text}</p></main>"
         "</body></html>")
_DONE_PAGE = _PAGE.format(title="Authentication complete",
                          text="You can close this window and return to the command line.").encode()
_FAILED_PAGE = _PAGE.format(title="Sign-in did not complete",
                            text="The command line shows why. You can close this window.").encode()
# Where the browser is sent once the redirect has delivered the code: a page without it in its address (the code
# does not stay in the address bar or the browser's history).
_PAGES = {"/done": _DONE_PAGE, "/failed": _FAILED_PAGE}


class _Handler(http.server.BaseHTTPRequestHandler):
    result: dict[str, str] = {}
    shown: list[str] = []  # the pages served after the redirect

    def do_GET(self) -> None:  # http.server's naming
        parts = urlsplit(self.path)
        page = _PAGES.get(parts.path)
        if page is not None and not parts.query:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(page)
            type(self).shown.append(parts.path)
            return
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if "code" not in query and "error" not in query:
            self.send_response(404)
            self.end_headers()
            return
        type(self).result.update(query)
        self.send_response(303)
        self.send_header("Location", "/failed" if "error" in query else "/done")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # silenced: the URLs carry codes
        return


def browser_available() -> bool:
    import os
    import sys

    if os.environ.get("BROWSER"):
        return True
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def browser_login(client: CieloClient, tenant: str, scope: str, timeout_s: float = 300) -> dict[str, Any]:
    handler: type[_Handler] = type("Handler", (_Handler,), {"result": {}, "shown": []})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    port = server.server_address[1]
    redirect_uri = f"http://localhost:{port}"
    verifier = secrets.token_urlsafe(48)
    challenge = pkce_s256(verifier)
    state = secrets.token_urlsafe(16)
    full_scope = f"{scope} offline_access openid profile"
    query = urlencode({
        "client_id": AZURE_CLI_CLIENT_ID, "response_type": "code", "redirect_uri": redirect_uri,
        "scope": full_scope, "state": state, "code_challenge": challenge, "code_challenge_method": "S256",
        "prompt": "select_account",
    })
    url = f"{client.endpoint}/{tenant}/oauth2/v2.0/authorize?{query}"
    thread = threading.Thread(target=_serve_until_result, args=(server, handler, timeout_s), daemon=True)
    thread.start()
    import sys

    print(f"A web browser has been opened at {client.endpoint}/{tenant}/oauth2/v2.0/authorize. Please continue "
          "the login in the web browser.", file=sys.stderr)
    if not webbrowser.open(url):
        print(f"Open this URL in a browser to sign in: {url}", file=sys.stderr)
    thread.join(timeout_s + 1)
    server.server_close()
    result = handler.result
    if not result:
        raise CliError("Timed out waiting for the browser sign-in.")
    if result.get("error"):
        raise CliError(f"{result['error']}: {result.get('error_description', '')}")
    if result.get("state") != state:
        raise CliError("The sign-in response's state does not match; refusing it.")
    try:
        return client.token(tenant, {
            "client_id": AZURE_CLI_CLIENT_ID, "grant_type": "authorization_code", "code": result["code"],
            "redirect_uri": redirect_uri, "code_verifier": verifier, "scope": full_scope, "client_info": "1",
        })
    except ApiError as exc:
        raise CliError(exc.message) from exc


def _serve_until_result(server: http.server.HTTPServer, handler: type[_Handler], timeout_s: float) -> None:
    import time

    deadline = time.time() + timeout_s
    server.timeout = 0.5
    while not handler.result and time.time() < deadline:
        server.handle_request()
    # The browser follows the redirect to the page without the code: served for a moment more.
    server.timeout = 0.2
    after = time.time() + 2
    while handler.result and not handler.shown and time.time() < after:
        server.handle_request()
