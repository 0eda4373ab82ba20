"""Which Azure host names intercept mode serves, and the ASGI middleware that routes a request by its Host.

The proxy (intercept/proxy.py) decides what it tunnels by these rules; the middleware decides what the app
does with a request that names one of these hosts. Both read the same table, so a host is either served
end to end or refused at the proxy."""

from __future__ import annotations

import re
from typing import Any

# Entra's public-cloud authority and the aliases MSAL knows for it (msal/authority.py WELL_KNOWN_AUTHORITY_HOSTS
# and the instance-discovery metadata Entra returns): all of them are Cielo's token service.
LOGIN_HOSTS = frozenset({"login.microsoftonline.com", "login.microsoft.com", "login.windows.net",
                         "sts.windows.net"})
EXACT_HOSTS = LOGIN_HOSTS | {"management.azure.com", "graph.microsoft.com"}
# An account's endpoint: `{customSubDomainName}.openai.azure.com` or `.cognitiveservices.azure.com`.
ACCOUNT_SUFFIXES = (".openai.azure.com", ".cognitiveservices.azure.com")
SERVED_PATTERNS: tuple[str, ...] = (*sorted(EXACT_HOSTS), *(f"*{s}" for s in ACCOUNT_SUFFIXES))

# One DNS label (RFC 1123): a custom subdomain is exactly one label under the suffix.
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def host_name(host: str) -> str:
    """`Host` or CONNECT authority without its port, lower case (IPv6 literals are never served)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def account_subdomain(host: str) -> str | None:
    """The custom subdomain an account host names (`contoso` for `contoso.openai.azure.com`), else None."""
    name = host_name(host)
    for suffix in ACCOUNT_SUFFIXES:
        if name.endswith(suffix):
            label = name[: -len(suffix)]
            return label if _LABEL.match(label) else None
    return None


def is_served(host: str) -> bool:
    name = host_name(host)
    return name in EXACT_HOSTS or account_subdomain(name) is not None


class HostRouting:
    """Pure ASGI middleware: a request for `{sub}.openai.azure.com/openai/...` (or cognitiveservices) is served
    as `/accounts/{sub}/openai/...`, the path Cielo's data plane answers on; the data plane finds the account
    by its custom subdomain, case-insensitively. The token service, ARM and Graph hosts need no rewriting:
    Cielo serves their paths at its root already."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope.get("path", "")
            if path.startswith("//"):  # openai 0.28 with api_base "https://NAME.openai.azure.com/" sends `//openai/...`
                path = "/" + path.lstrip("/")
            if path == "/openai" or path.startswith("/openai/"):
                sub = _header_subdomain(scope)
                if sub is not None:
                    path = f"/accounts/{sub}{path}"
                    scope = dict(scope, path=path, raw_path=path.encode())
        await self.app(scope, receive, send)


def _header_subdomain(scope: Any) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == b"host":
            return account_subdomain(value.decode("latin-1"))
    return None
