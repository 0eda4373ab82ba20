"""Fetching the signing keys of trusted external issuers for workload identity federation.

Entra reads `{issuer}/.well-known/openid-configuration`, then its `jwks_uri`. Cielo does the same
over HTTPS (trusting the system CAs and Cielo's own CA), caches the keys for ten minutes, and
refetches once when a token names a key it has not seen (the issuer may have rotated).
Tokens issued by Cielo itself are checked against its own key ring without a network call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

_TTL_S = 600.0


class FederationError(ValueError):
    pass


class JwksFetcher:
    def __init__(self, ca_bundle: Path | None) -> None:
        self._verify: Any = str(ca_bundle) if ca_bundle and ca_bundle.exists() else True
        self._cache: dict[str, tuple[float, list[Mapping[str, Any]]]] = {}
        self._lock = threading.Lock()

    def keys(self, issuer: str, *, refresh: bool = False) -> Sequence[Mapping[str, Any]]:
        now = time.monotonic()
        cached = self._cache.get(issuer)
        if cached and not refresh and cached[0] > now:
            return cached[1]
        if not issuer.startswith("https://"):
            raise FederationError("the issuer must be an https URL")
        try:
            with httpx.Client(verify=self._verify, timeout=5.0) as client:
                config = client.get(issuer.rstrip("/") + "/.well-known/openid-configuration")
                config.raise_for_status()
                jwks_uri = config.json()["jwks_uri"]
                keys = client.get(jwks_uri)
                keys.raise_for_status()
                found = list(keys.json()["keys"])
        except (httpx.HTTPError, KeyError, ValueError, TypeError) as exc:
            raise FederationError(f"could not read the issuer's signing keys: {type(exc).__name__}") from exc
        with self._lock:
            self._cache[issuer] = (now + _TTL_S, found)
        return found
