"""Reading `application/x-www-form-urlencoded` bodies strictly and within a size limit, client_secret_basic
credentials, and the base URL a request reached this server by: for the token service (api/oauth.py), the
managed-identity endpoint and the sign-in pages (web/)."""

from __future__ import annotations

import base64
import binascii
import functools
import re
from urllib.parse import parse_qsl, unquote_plus

from starlette.requests import Request

from cielo.errors import InvalidRequest, PayloadTooLarge
from cielo.http.bodies import read_limited

# A '%' must start a two-digit hex escape (WHATWG URL §1.3, RFC 3986 §2.1); Python's parser would
# otherwise keep `%ZZ` or a trailing `%` as literal text and hand it to the grant.
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


async def read_form(request: Request, limit: int) -> dict[str, str]:
    """RFC 6749 §3.2: form-encoded, each parameter at most once. Oversized bodies get 413."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidRequest(
            "Invalid request. The request body must be application/x-www-form-urlencoded.", aadsts=9002313
        )
    body = await read_limited(request, limit,
                              lambda: PayloadTooLarge("The request body is too large.", aadsts=9002313))
    try:
        text = body.decode("utf-8")
        if _BAD_ESCAPE.search(text):
            raise ValueError("invalid percent-encoding")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(body), errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest("Invalid request. Request is malformed or invalid.", aadsts=9002313) from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise InvalidRequest(f"The parameter '{name[:64]}' is duplicated.", aadsts=9002313)
        form[name] = value
    return form


def client_address(request: Request) -> str:
    """The TCP peer's address, for per-address sign-in throttling ("" when the server does not know it)."""
    return request.client.host if request.client else ""


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """RFC 6749 §2.3.1 client_secret_basic: both parts are form-url-encoded before base64."""
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidRequest("The Authorization header is malformed.", aadsts=9002313) from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidRequest("The Authorization header is malformed.", aadsts=9002313)
    return unquote_plus(client_id), unquote_plus(secret)


@functools.cache
def _served_bases(base_url: str, host: str, port: int, listen_443: bool, names: tuple[str, ...]) -> frozenset[str]:
    hosts = {"localhost", "127.0.0.1", "::1", *names}
    if host not in ("0.0.0.0", "::"):
        hosts.add(host)
    ports = {port, 443} if listen_443 else {port}
    bases = {base_url.lower()}
    for name in hosts:
        shown = f"[{name}]" if ":" in name else name
        for number in ports:
            bases.add(f"https://{shown}:{number}".lower())
            if number == 443:
                bases.add(f"https://{shown}".lower())
    return frozenset(bases)


def request_base(request: Request) -> str:
    """The scheme, host and port the client used, for endpoint URLs in discovery documents and the
    token endpoint URLs a client assertion may name as `aud`.

    The Host header is the client's to choose, so it is used only when it names this server (a name
    on its certificate, a port it listens on); otherwise the public base URL is. Trusting any Host
    would let a caller present an assertion minted for another token service, e.g. Entra's
    `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`, with that host in the header
    (RFC 7523 §3: the audience identifies this authorization server).
    """
    settings = request.app.state.settings
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    base = f"{request.url.scheme}://{host}"
    served = _served_bases(settings.base_url, settings.host, settings.port, settings.listen_443,
                           tuple(settings.tls_names))
    return base if base.lower() in served else str(settings.base_url)
