"""Compact JWS (RFC 7515) signing and verification for Cielo's own RS256 tokens.

Hand-rolled on `cryptography` because PyJWT's decode costs several times the RSA work inside it
(ARCHITECTURE.md, "The hot path"). Only RS256 is produced or accepted here; client assertions
from other parties go through identity.assertions.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cielo.core.ids import b64url, b64url_decode

_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


class JwtError(ValueError):
    """A token that is not a well-formed, correctly signed JWT of ours."""


def encode(header: dict[str, Any], claims: dict[str, Any], key: rsa.RSAPrivateKey) -> str:
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    signature = key.sign(signing_input.encode("ascii"), _PKCS1, _SHA256)
    return signing_input + "." + b64url(signature)


def split(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Parse without verifying: (header, claims, signing input, signature)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtError("not a compact JWT")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except (ValueError, UnicodeDecodeError) as exc:
        raise JwtError("malformed JWT") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JwtError("malformed JWT")
    return header, claims, (parts[0] + "." + parts[1]).encode("ascii"), signature


def verify_rs256(signing_input: bytes, signature: bytes, key: rsa.RSAPublicKey) -> None:
    try:
        key.verify(signature, signing_input, _PKCS1, _SHA256)
    except InvalidSignature as exc:
        raise JwtError("signature verification failed") from exc
