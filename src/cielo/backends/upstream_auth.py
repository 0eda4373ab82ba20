"""Credentials Cielo presents to an upstream engine: a fixed API key, a service principal's token
(OAuth2 client credentials against Entra ID or another Cielo), or this host's managed identity.

Tokens are cached until five minutes before they expire. The caller's own credential is never
forwarded upstream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from cielo.backends.base import BackendError
from cielo.core.managed_identity import token_request

TokenProvider = Callable[[], Awaitable[str]]
RENEW_BEFORE_S = 300


class _CachedToken:
    def __init__(self, fetch: Callable[[aiohttp.ClientSession], Awaitable[tuple[str, float]]], ssl: Any) -> None:
        self._fetch = fetch
        self._ssl = ssl
        self._token = ""
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def __call__(self) -> str:
        async with self._lock:
            if time.time() < self._expires_at - RENEW_BEFORE_S:
                return self._token
            connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True)
            try:
                async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
                    self._token, self._expires_at = await self._fetch(http)
            except aiohttp.ClientError as exc:
                raise BackendError(f"Could not get a token for the upstream: {type(exc).__name__}", status=502,
                                   code="UpstreamAuthenticationFailed") from exc
            return self._token


def client_credentials(token_url: str, client_id: str, secret: str, scope: str, ssl: Any = None) -> TokenProvider:
    async def fetch(http: aiohttp.ClientSession) -> tuple[str, float]:
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, "scope": scope}
        async with http.post(token_url, data=form) as response:
            body = await response.json(content_type=None)
            if response.status != 200 or "access_token" not in body:
                raise BackendError(f"The upstream's token service refused Cielo's credential: "
                                   f"{str(body.get('error_description', body))[:200]}", status=502,
                                   code="UpstreamAuthenticationFailed")
            return str(body["access_token"]), time.time() + int(body.get("expires_in", 3600))

    return _CachedToken(fetch, ssl)


def managed_identity(resource: str, client_id: str | None = None) -> TokenProvider:
    """This host's managed identity (see core.managed_identity for where it is asked)."""

    async def fetch(http: aiohttp.ClientSession) -> tuple[str, float]:
        url, params, headers = token_request(resource, client_id)
        request = http.get(url, params=params, headers=headers)
        async with request as response:
            body = await response.json(content_type=None)
            if response.status != 200 or "access_token" not in body:
                raise BackendError(f"The managed identity endpoint refused: {str(body)[:200]}", status=502,
                                   code="UpstreamAuthenticationFailed")
            return str(body["access_token"]), float(body["expires_on"])

    return _CachedToken(fetch, None)
