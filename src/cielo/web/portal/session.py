"""The portal's session: a sealed cookie, so that any worker can serve the next request.

The browser holds the signed-in user's refresh token and access tokens (ARM, Graph, Cognitive Services), sealed
with Fernet under a key derived (HKDF) from the data directory's sealing key, in HttpOnly, Secure, SameSite=Lax
cookies split into chunks (a browser keeps at most ~4 KB per cookie). Nothing about a session lives in a worker's
memory; what a worker keeps (web/portal/tokens.py) is a cache only.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.requests import Request
from starlette.responses import Response

from cielo.core.sealing import Sealer

COOKIE = "cielo_portal"
AUTH_COOKIE = "cielo_portal_auth"  # the PKCE verifier, state and nonce of a sign-in under way
_CHUNK = 3800
_MAX_CHUNKS = 8
SESSION_TTL_S = 12 * 3600  # a sealed session older than this is not opened (sign in again)
AUTH_TTL_S = 600


@dataclass
class Session:
    user_id: str
    tenant_id: str
    name: str
    upn: str
    refresh_token: str
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # kind -> (access token, expires at)
    changed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"oid": self.user_id, "tid": self.tenant_id, "name": self.name, "upn": self.upn,
                "rt": self.refresh_token, "at": {k: list(v) for k, v in self.tokens.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Session:
        return cls(str(data["oid"]), str(data["tid"]), str(data["name"]), str(data["upn"]), str(data["rt"]),
                   {str(k): (str(v[0]), float(v[1])) for k, v in dict(data.get("at") or {}).items()})


class SessionSealer:
    """Fernet under HKDF(data directory's sealing key, info="cielo portal session")."""

    def __init__(self, data_dir: Path) -> None:
        key_path = data_dir / "sealing.key"
        Sealer(key_path)  # creates the key if this data directory has none yet, checks its shape otherwise
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=b"cielo portal session v1").derive(key_path.read_bytes().strip())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, data: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(data, separators=(",", ":")).encode()).decode("ascii")

    def open(self, sealed: str, ttl: int) -> dict[str, Any] | None:
        try:
            value = json.loads(self._fernet.decrypt(sealed.encode("ascii"), ttl=ttl))
        except (InvalidToken, ValueError, UnicodeError):
            return None
        return value if isinstance(value, dict) else None


def sealer(request: Request) -> SessionSealer:
    state = request.app.state
    found: SessionSealer | None = getattr(state, "portal_sealer", None)
    if found is None:
        found = SessionSealer(state.settings.data_dir)
        state.portal_sealer = found
    return found


def _set(response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, secure=True, httponly=True, samesite="lax", path="/")


def load(request: Request) -> Session | None:
    parts = []
    for index in range(_MAX_CHUNKS):
        part = request.cookies.get(f"{COOKIE}{index}")
        if part is None:
            break
        parts.append(part)
    if not parts:
        return None
    data = sealer(request).open("".join(parts), SESSION_TTL_S)
    try:
        return Session.from_json(data) if data else None
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def save(request: Request, response: Response, session: Session) -> None:
    sealed = sealer(request).seal(session.to_json())
    chunks = [sealed[i:i + _CHUNK] for i in range(0, len(sealed), _CHUNK)]
    if len(chunks) > _MAX_CHUNKS:
        raise ValueError("the portal session does not fit in its cookies")
    for index in range(_MAX_CHUNKS):
        if index < len(chunks):
            _set(response, f"{COOKIE}{index}", chunks[index])
        elif f"{COOKIE}{index}" in request.cookies:
            response.delete_cookie(f"{COOKIE}{index}", path="/", secure=True, httponly=True, samesite="lax")


def clear(request: Request, response: Response) -> None:
    for index in range(_MAX_CHUNKS):
        if f"{COOKIE}{index}" in request.cookies:
            response.delete_cookie(f"{COOKIE}{index}", path="/", secure=True, httponly=True, samesite="lax")


def save_auth(request: Request, response: Response, data: dict[str, Any]) -> None:
    _set(response, AUTH_COOKIE, sealer(request).seal({**data, "t": time.time()}), AUTH_TTL_S)


def load_auth(request: Request) -> dict[str, Any] | None:
    sealed = request.cookies.get(AUTH_COOKIE)
    return sealer(request).open(sealed, AUTH_TTL_S) if sealed else None


def clear_auth(response: Response) -> None:
    response.delete_cookie(AUTH_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
