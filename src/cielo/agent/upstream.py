"""The agent's side of the conversation with Cielo: tokens for the host's identities, cached.

A cached token is served only after Cielo confirms (without minting) that the host credential is
still valid and the identity still attached, so revocations apply at once; it is refreshed when
less than a quarter of its life (at least 5 minutes) remains.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

from cielo.agent.credential import HostCredentialFile

REFRESH_MARGIN_S = 300


@dataclass
class Failure(Exception):
    status: int
    error: str
    description: str


class TokenSource:
    def __init__(self, credential: HostCredentialFile) -> None:
        self._credential = credential
        verify: Any = credential.ca_bundle or True
        self._http = httpx.AsyncClient(base_url=credential.endpoint, verify=verify, timeout=15.0)
        self._cache: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}

    async def close(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        try:
            response = await self._http.post(path, data=form,
                                             headers={"Authorization": f"HostCredential {self._credential.credential}"})
        except httpx.HTTPError as exc:
            raise Failure(500, "unknown", f"Failed to reach Cielo at {self._credential.endpoint}: "
                          f"{type(exc).__name__}") from exc
        body: dict[str, Any] = response.json() if response.content else {}
        if response.status_code != 200:
            raise Failure(response.status_code, str(body.get("error", "unknown")),
                          str(body.get("error_description", "The token request failed.")))
        return body

    async def token(self, resource: str, selector: tuple[str, str] | None) -> dict[str, Any]:
        form = {"resource": resource}
        if selector is not None:
            form[selector[0]] = selector[1]
        # The exact resource: a token's `aud` (and `resource`) is the resource as requested, with or without
        # its trailing slash, so two spellings are two tokens.
        key = (resource, *(selector or ("", "")))
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._cache.get(key)
            now = time.time()
            if cached is not None:
                lifetime = int(cached["expires_in"])
                margin = max(REFRESH_MARGIN_S, lifetime // 4)
                if int(cached["expires_on"]) - margin > now:
                    try:
                        checked = await self._post("/cielo/managed-identity/check", form)
                    except Failure:
                        self._cache.pop(key, None)
                        raise
                    # The same request may now select another identity (the system identity was removed and
                    # one user-assigned identity is left, the default): the cached token is served only for
                    # the identity Cielo selects now.
                    if (checked.get("object_id"), checked.get("client_id")) == (cached.get("object_id"),
                                                                               cached.get("client_id")):
                        return cached
            fresh = await self._post("/cielo/managed-identity/token", form)
            self._cache[key] = fresh
            return fresh
