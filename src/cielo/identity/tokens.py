"""Minting access tokens and id tokens with Entra's claim sets
(learn.microsoft.com/entra/identity-platform/access-token-claims-reference)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from cielo.core.ids import b64url, b64url_json
from cielo.identity import jwt
from cielo.identity.keys import KeyRing

# Global Administrator's role template id, carried in `wids` for directory administrators.
GLOBAL_ADMIN_ROLE = "62e90394-69f5-4237-9190-012177145e10"


def issuer_v1(base_url: str, tenant_id: str) -> str:
    return f"{base_url}/{tenant_id}/"


def issuer_v2(base_url: str, tenant_id: str) -> str:
    return f"{base_url}/{tenant_id}/v2.0"


@dataclass(frozen=True)
class Subject:
    """Who a token is about: a user (delegated token) or an application (app-only token)."""

    kind: str  # "user" | "app"
    object_id: str
    tenant_id: str
    upn: str | None = None
    name: str | None = None
    is_admin: bool = False
    extra_claims: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class MintedToken:
    token: str
    issued_at: int
    expires_at: int

    @property
    def expires_in(self) -> int:
        return self.expires_at - self.issued_at


def _uti() -> str:
    return b64url(secrets.token_bytes(16))[:22]


def pairwise_sub(object_id: str, app_id: str) -> str:
    """Entra's user `sub` is pairwise: stable per (user, application), unlinkable across apps."""
    return b64url(hashlib.sha256(f"{object_id}:{app_id}".encode()).digest())[:43]


class TokenMinter:
    def __init__(self, keys: KeyRing, base_url: str, lifetime_range: tuple[int, int]) -> None:
        self._keys = keys
        self._base_url = base_url
        self._lifetime_range = lifetime_range

    @property
    def base_url(self) -> str:
        return self._base_url

    def _lifetime(self) -> int:
        low, high = self._lifetime_range
        return low if high <= low else low + secrets.randbelow(high - low + 1)

    def _sign(self, claims: dict[str, object], *, with_x5t: bool) -> str:
        key = self._keys.signing_key()
        header: dict[str, object] = {"typ": "JWT", "alg": "RS256"}
        if with_x5t:
            header["x5t"] = key.kid
        header["kid"] = key.kid
        return jwt.encode(header, claims, key.private_key)

    def access_token(
        self,
        subject: Subject,
        *,
        audience: str,
        version: int,
        client_app_id: str,
        client_auth: str,
        scopes: Iterable[str] = (),
        now: float,
        lifetime_s: int | None = None,
    ) -> MintedToken:
        """`client_auth` is Entra's appidacr: "0" public client, "1" secret, "2" certificate/assertion."""
        iat = int(now)
        exp = iat + (lifetime_s or self._lifetime())
        tid = subject.tenant_id
        claims: dict[str, object] = {"aud": audience}
        if version == 2:
            claims["iss"] = issuer_v2(self._base_url, tid)
        else:
            claims["iss"] = issuer_v1(self._base_url, tid)
        claims.update({"iat": iat, "nbf": iat, "exp": exp, "aio": b64url(secrets.token_bytes(24))})
        if subject.kind == "user":
            claims.update({"acr": "1", "amr": ["pwd"]})
        if version == 2:
            claims.update({"azp": client_app_id, "azpacr": client_auth})
        else:
            claims.update({"appid": client_app_id, "appidacr": client_auth})
        if subject.kind == "app":
            claims["idp"] = issuer_v1(self._base_url, tid) if version == 1 else issuer_v2(self._base_url, tid)
        claims["idtyp"] = subject.kind
        if subject.kind == "user":
            claims["name"] = subject.name or subject.upn or ""
        claims["oid"] = subject.object_id
        claims["rh"] = "0." + b64url(secrets.token_bytes(18))
        if subject.kind == "user":
            claims["scp"] = " ".join(scopes) or "user_impersonation"
            claims["sub"] = pairwise_sub(subject.object_id, client_app_id)
        else:
            claims["sub"] = subject.object_id
        claims["tid"] = tid
        if subject.kind == "user":
            if version == 1:
                claims["unique_name"] = subject.upn
                claims["upn"] = subject.upn
            else:
                claims["preferred_username"] = subject.upn
        claims["uti"] = _uti()
        claims["ver"] = "2.0" if version == 2 else "1.0"
        if subject.is_admin:
            claims["wids"] = [GLOBAL_ADMIN_ROLE]
        for name, value in subject.extra_claims:
            claims[name] = value
        return MintedToken(self._sign(claims, with_x5t=version == 1), iat, exp)

    def id_token(
        self, subject: Subject, *, client_app_id: str, version: int, nonce: str | None, now: float
    ) -> str:
        iat = int(now)
        tid = subject.tenant_id
        claims: dict[str, object] = {
            "aud": client_app_id,
            "iss": issuer_v2(self._base_url, tid) if version == 2 else issuer_v1(self._base_url, tid),
            "iat": iat,
            "nbf": iat,
            "exp": iat + 3600,
            "name": subject.name or subject.upn or "",
            "oid": subject.object_id,
            "rh": "0." + b64url(secrets.token_bytes(18)),
            "sub": pairwise_sub(subject.object_id, client_app_id),
            "tid": tid,
            "uti": _uti(),
            "ver": "2.0" if version == 2 else "1.0",
        }
        if version == 2:
            claims["preferred_username"] = subject.upn
        else:
            claims.update({"upn": subject.upn, "unique_name": subject.upn, "amr": ["pwd"]})
        if nonce:
            claims["nonce"] = nonce
        return self._sign(claims, with_x5t=False)


def client_info(object_id: str, tenant_id: str) -> str:
    """MSAL's `client_info`: base64url JSON of the home account's uid and utid."""
    return b64url_json({"uid": object_id, "utid": tenant_id})
