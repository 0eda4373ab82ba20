"""Reading `application/x-www-form-urlencoded` bodies strictly and within a size limit."""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import parse_qsl, unquote_plus

from starlette.requests import Request

from cielo.errors import InvalidRequest, PayloadTooLarge

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
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise PayloadTooLarge("The request body is too large.", aadsts=9002313)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge("The request body is too large.", aadsts=9002313)
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


def request_base(request: Request) -> str:
    """The scheme, host and port the client used, for endpoint URLs in discovery documents."""
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"
