"""GUIDs, random secrets and the encodings Entra uses."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import string
import uuid
from typing import Any

_SECRET_ALPHABET = string.ascii_letters + string.digits + "_.~-"
_USER_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_guid() -> str:
    return str(uuid.uuid4())


def is_guid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 4648 §5; RFC 7515 §2): JWS segments, JWK members, x5t, PKCE."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    """The inverse of `b64url`, padded or not. Lenient: characters outside the alphabet are dropped by
    `base64`, and a bad length raises `binascii.Error` (a ValueError). Where the exact encoding is part of
    the check (client assertions) identity/assertions.py validates the text first."""
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def b64url_json(obj: Any) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def pkce_s256(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier (RFC 7636 §4.2): BASE64URL(SHA256(ASCII(verifier)))."""
    return b64url(hashlib.sha256(verifier.encode()).digest())


def new_client_secret() -> str:
    """A 40-character secret shaped like Entra's (`abc8Q~...`): 3 hint characters, `8Q~`, 34 random."""
    hint = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(3))
    return hint + "8Q~" + "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(34))


def new_password() -> str:
    """A generated password that satisfies Entra's complexity rules."""
    alphabet = string.ascii_letters + string.digits
    core = "".join(secrets.choice(alphabet) for _ in range(16))
    return core + secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") + secrets.choice("23456789") + "!x"


def new_opaque_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def new_user_code() -> str:
    """A nine-character device-flow user code, like Entra's (`FYKJK5DPS`)."""
    return "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(9))


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
