"""Redirect URIs: strict parsing, exact matching, and the URL the browser is sent to.

Entra compares a request's `redirect_uri` with the registered ones exactly, except that a loopback URI
may name any port (RFC 8252 §7.3, "Loopback Interface Redirection"). Python's `urlsplit` and browsers
disagree on odd URLs: `http://evil.example:10450\\@localhost/` is host `localhost` to `urlsplit` and
host `evil.example` to a browser (WHATWG URL treats `\\` as `/` in special schemes). So a URI is accepted
only when it is in a plain form both read the same way, and what Cielo sends the browser to is rebuilt
from the parsed parts, never the string the client sent (AADSTS50011 otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from cielo.core.resources import FIRST_PARTY_PUBLIC_CLIENTS

NATIVE_CLIENT = "https://login.microsoftonline.com/common/oauth2/nativeclient"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")

# scheme://host[:port][/path][?query] — no userinfo, no fragment (RFC 6749 §3.1.2), no backslash, no
# whitespace or control characters, no percent-escapes in the host. Path and query keep to RFC 3986's
# characters; a '%' there must start an escape.
_URI = re.compile(
    r"(?P<scheme>https?)://"
    r"(?P<host>[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*|\[::1\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<path>/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*)?"
    r"(?:\?(?P<query>(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*))?"
)


@dataclass(frozen=True)
class RedirectUri:
    scheme: str
    host: str
    port: int | None
    path: str
    query: str | None

    @property
    def is_loopback(self) -> bool:
        return self.scheme == "http" and self.host in LOOPBACK_HOSTS

    def url(self) -> str:
        """The URI rebuilt from its parts: the only form Cielo ever puts in a Location or a form action."""
        port = f":{self.port}" if self.port is not None else ""
        query = f"?{self.query}" if self.query is not None else ""
        return f"{self.scheme}://{self.host}{port}{self.path}{query}"


def parse_redirect_uri(uri: str) -> RedirectUri | None:
    """The parts of an http(s) redirect URI in plain form, or None. Plain means: it rebuilds to itself."""
    match = _URI.fullmatch(uri)
    if match is None:
        return None
    port_text = match["port"]
    port = int(port_text) if port_text is not None else None
    if port is not None and not (1 <= port <= 65535 and str(port) == port_text):
        return None
    parsed = RedirectUri(match["scheme"], match["host"], port, match["path"] or "", match["query"])
    if parsed.scheme == "http" and not parsed.is_loopback:
        return None  # Entra accepts plain http only for loopback addresses
    return parsed if parsed.url() == uri else None


def allowed_redirect(client_id: str, registered: Sequence[str] | None, redirect_uri: str) -> RedirectUri | None:
    """The redirect URI to use if the application may receive codes there, else None (AADSTS50011).

    First-party public clients (the Azure CLI, PowerShell) may use any loopback URI and the native
    client page; other applications the URIs registered for them, exactly, with any port on loopback.
    """
    parsed = parse_redirect_uri(redirect_uri)
    if client_id in FIRST_PARTY_PUBLIC_CLIENTS:
        if redirect_uri == NATIVE_CLIENT:
            return parsed
        return parsed if parsed is not None and parsed.is_loopback else None
    if parsed is None or registered is None:
        return None
    for candidate in registered:
        if candidate == redirect_uri:
            return parsed
        known = parse_redirect_uri(candidate)
        if (known is not None and known.is_loopback and parsed.is_loopback and known.host == parsed.host
                and known.path == parsed.path and known.query == parsed.query):
            return parsed
    return None
