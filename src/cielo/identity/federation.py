"""Fetching the signing keys of trusted external issuers for workload identity federation.

Entra reads `{issuer}/.well-known/openid-configuration`, then its `jwks_uri`. Cielo does the same
over HTTPS (trusting the system CAs and Cielo's own CA). The keys are held by one PyJWT `PyJWKClient`
per issuer: its JWK-set cache with a ten-minute lifespan, PyJWT's parsing into `PyJWK`s (keys it cannot
use are skipped); the discovery document is read again when that client is ten minutes old. A token
naming a key not in the set refetches the set once (the issuer may have rotated). Tokens issued by Cielo
itself are checked against its own key ring without a network call (identity/clients.py).

Every call here may wait on the network (up to 5 s a request): it is made off the event loop (the token
endpoint runs a grant with a client assertion on a worker thread, api/oauth.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import jwt

_TTL_S = 600.0
_TIMEOUT_S = 5.0


class FederationError(ValueError):
    pass


class _IssuerKeys(jwt.PyJWKClient):
    """PyJWT's JWKS client for one `jwks_uri`, reading it with httpx so that Cielo's CA bundle is trusted
    (and redirects are not followed) as on every other outbound call; caching and parsing are PyJWT's."""

    def __init__(self, uri: str, verify: Any) -> None:
        super().__init__(uri, cache_jwk_set=True, lifespan=_TTL_S, timeout=_TIMEOUT_S)
        self._verify = verify

    def fetch_data(self) -> Any:
        with httpx.Client(verify=self._verify, timeout=self.timeout) as client:
            answer = client.get(self.uri)
            answer.raise_for_status()
            data = answer.json()
        if not isinstance(data, dict):
            raise jwt.PyJWKClientError("The JWKS endpoint did not return a JSON object")
        if self.jwk_set_cache is not None:  # as PyJWKClient.fetch_data does
            self.jwk_set_cache.put(data)
        return data


class JwksFetcher:
    def __init__(self, ca_bundle: Path | None) -> None:
        self._verify: Any = str(ca_bundle) if ca_bundle and ca_bundle.exists() else True
        self._clients: dict[str, tuple[float, _IssuerKeys]] = {}
        self._lock = threading.Lock()

    def keys(self, issuer: str, *, refresh: bool = False) -> Sequence[jwt.PyJWK]:
        """The issuer's signing keys, from the cache unless `refresh` or ten minutes have passed.
        Blocking: call it off the event loop. Raises `FederationError` saying what failed."""
        if not issuer.startswith("https://"):
            raise FederationError("the issuer must be an https URL")
        try:
            return list(self._client(issuer).get_jwk_set(refresh=refresh).keys)
        except (httpx.HTTPError, jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
            raise FederationError(f"could not read the issuer's signing keys: {type(exc).__name__}") from exc

    def _client(self, issuer: str) -> _IssuerKeys:
        now = time.monotonic()
        with self._lock:
            cached = self._clients.get(issuer)
        if cached is not None and cached[0] > now:
            return cached[1]
        with httpx.Client(verify=self._verify, timeout=_TIMEOUT_S) as client:
            config = client.get(issuer.rstrip("/") + "/.well-known/openid-configuration")
            config.raise_for_status()
            jwks_uri = config.json()["jwks_uri"]
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
            raise ValueError("the discovery document's jwks_uri is not an https URL")
        keys = _IssuerKeys(jwks_uri, self._verify)
        with self._lock:
            self._clients[issuer] = (now + _TTL_S, keys)
        return keys
