"""Validating Cielo's own access tokens: signature, expiry, not-before, audience, issuer, tenant.

Validated tokens are cached by their SHA-256 until their `exp`, so a repeat costs a hash and a
dict lookup instead of an RSA verification and JSON parsing. The cache holds claims only; anything
that can be revoked (principals, role assignments) is checked by the caller on every request.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from cielo.core.clock import Clock
from cielo.core.ids import is_guid
from cielo.identity import jwt
from cielo.identity.keys import KeyRing
from cielo.identity.tokens import issuer_v1, issuer_v2


class TokenInvalid(ValueError):
    """Why a bearer token was refused. `reason` is a short code for logs and error messages."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class TokenPrincipal:
    """Who is calling, from a validated token. Not rbac.Principal, which is who an assignment names."""

    object_id: str
    tenant_id: str
    app_id: str
    kind: str  # "user" | "app"
    upn: str | None
    audience: str
    scopes: tuple[str, ...]
    claims: dict[str, Any]
    expires_at: int




def _norm(aud: str) -> str:
    return aud.rstrip("/").lower()


class TokenValidator:
    def __init__(
        self,
        keys: KeyRing,
        base_url: str,
        tenant_exists: Callable[[str], bool],
        clock: Clock,
        skew_s: int = 300,
        cache_size: int = 100_000,
    ) -> None:
        self._keys = keys
        self._base_url = base_url
        self._tenant_exists = tenant_exists
        self._clock = clock
        self._skew = skew_s
        self._cache: OrderedDict[str, TokenPrincipal] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def validate(self, token: str, audiences: Collection[str]) -> TokenPrincipal:
        """Return the principal, or raise TokenInvalid. `audiences` are compared without case or
        trailing slash, as Azure's services accept `https://cognitiveservices.azure.com` with or
        without the slash."""
        now = self._clock.now()
        digest = hashlib.sha256(token.encode()).hexdigest()
        cached = self._cache.get(digest)
        if cached is None:
            cached = self._verify(token, now)
            with self._lock:
                self._cache[digest] = cached
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        if cached.expires_at + self._skew < now:
            self._cache.pop(digest, None)
            raise TokenInvalid("expired", "The token is expired.")
        if _norm(cached.audience) not in {_norm(a) for a in audiences}:
            raise TokenInvalid("audience", f"The audience '{cached.audience}' is invalid.")
        if not self._tenant_exists(cached.tenant_id):
            raise TokenInvalid("tenant", "The token's tenant does not exist.")
        return cached

    def _verify(self, token: str, now: float) -> TokenPrincipal:
        if len(token) > 16384:
            raise TokenInvalid("malformed", "The token is too long.")
        try:
            header, claims, signing_input, signature = jwt.split(token)
        except jwt.JwtError as exc:
            raise TokenInvalid("malformed", "The token is malformed.") from exc
        if header.get("alg") != "RS256":
            raise TokenInvalid("alg", "The token's signing algorithm is not accepted.")
        key = self._keys.public_key(str(header.get("kid") or header.get("x5t") or ""), now)
        if key is None:
            raise TokenInvalid("signature", "The token is not signed by a known key.")
        try:
            jwt.verify_rs256(signing_input, signature, key)
        except jwt.JwtError as exc:
            raise TokenInvalid("signature", "The token's signature is invalid.") from exc
        exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat"))
        if not isinstance(exp, int | float) or exp + self._skew < now:
            raise TokenInvalid("expired", "The token is expired.")
        if nbf is not None and not isinstance(nbf, int | float):
            raise TokenInvalid("malformed", "The token's nbf claim is not a number.")
        if isinstance(nbf, int | float) and nbf - self._skew > now:
            raise TokenInvalid("not_yet_valid", "The token is not yet valid.")
        tid = claims.get("tid")
        # Cielo always mints the tenant's id in its canonical lower-case form; a domain name or another
        # spelling in `tid` is no token of Cielo's, whatever signed it.
        if not isinstance(tid, str) or tid != tid.lower() or not is_guid(tid):
            raise TokenInvalid("tenant", "The token has no valid tenant id.")
        if claims.get("iss") not in (issuer_v1(self._base_url, tid), issuer_v2(self._base_url, tid)):
            raise TokenInvalid("issuer", "The token's issuer is invalid.")
        aud = claims.get("aud")
        if not isinstance(aud, str) or not isinstance(claims.get("oid"), str):
            raise TokenInvalid("malformed", "The token lacks required claims.")
        scp = claims.get("scp")
        return TokenPrincipal(
            object_id=claims["oid"],
            tenant_id=tid,
            app_id=str(claims.get("appid") or claims.get("azp") or ""),
            kind="user" if claims.get("idtyp") == "user" or scp else "app",
            upn=claims.get("upn") or claims.get("preferred_username"),
            audience=aud,
            scopes=tuple(scp.split()) if isinstance(scp, str) else (),
            claims=claims,
            expires_at=int(exp),
        )
