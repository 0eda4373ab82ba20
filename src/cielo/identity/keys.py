"""Signing keys: RS256 keys on disk (mode 0600), published in JWKS with kid and x5t.

`kid` equals `x5t` (base64url SHA-1 of the key's certificate), as in Entra. A rotation adds a key
and makes it the signing key; a retired key stays in the JWKS until the last token it signed has
expired, then it is removed.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cielo.core.certs import self_signed_certificate
from cielo.core.ids import b64url
from cielo.errors import DataDirectoryError
from cielo.store.generation import Generation


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    public_key: rsa.RSAPublicKey
    cert_der: bytes
    created_at: float
    retire_at: float | None

    def jwk(self) -> dict[str, Any]:
        numbers = self.public_key.public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
            "x5c": [base64.b64encode(self.cert_der).decode("ascii")],
        }


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _self_signed(key: rsa.RSAPrivateKey, now: float) -> bytes:
    cert = self_signed_certificate(key, "Cielo token signing", dt.datetime.fromtimestamp(now, dt.UTC),
                                   dt.timedelta(days=3650))
    return cert.public_bytes(serialization.Encoding.DER)


class KeyRing:
    """The keys in `keys_dir`, reloaded when another process rotates them."""

    def __init__(self, keys_dir: Path, max_token_lifetime_s: float) -> None:
        self._dir = keys_dir
        self._max_lifetime = max_token_lifetime_s
        self._dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self._dir, 0o700)
        self._generation = Generation(self._dir / "generation")
        self._lock = threading.Lock()
        self._seen: tuple[int, int] = (-1, -1)
        self._keys: list[SigningKey] = []
        self._by_kid: dict[str, SigningKey] = {}
        self._jwks: dict[str, Any] = {"keys": []}

    # ----------------------------------------------------------------- loading
    def _load(self) -> None:
        keys = [self._load_one(meta_path) for meta_path in sorted(self._dir.glob("*.json"))]
        keys.sort(key=lambda k: k.created_at)
        self._keys = keys
        self._by_kid = {k.kid: k for k in keys}
        self._jwks = {"keys": [k.jwk() for k in reversed(keys)]}

    def _load_one(self, meta_path: Path) -> SigningKey:
        """One key from its metadata and PEM files; `DataDirectoryError` naming the file that is damaged."""
        try:
            meta = json.loads(meta_path.read_text())
            kid = meta["kid"]
            cert_der = base64.b64decode(meta["x5c"], validate=True)
            created_at = float(meta["created_at"])
            retire_at = meta.get("retire_at")
            if not isinstance(kid, str) or not kid or "/" in kid or (
                    retire_at is not None and not isinstance(retire_at, int | float)):
                raise ValueError("kid or retire_at has the wrong type")
        except OSError as exc:
            raise DataDirectoryError(meta_path, f"cannot be read ({exc.strerror or exc})") from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # binascii.Error is a ValueError
            raise DataDirectoryError(meta_path, "is not signing key metadata (JSON with kid, x5c and created_at)"
                                     ) from exc
        key_path = self._dir / f"{kid}.key"
        try:
            private = serialization.load_pem_private_key(key_path.read_bytes(), None)
        except OSError as exc:
            raise DataDirectoryError(key_path, f"cannot be read ({exc.strerror or exc}); its metadata is "
                                               f"{meta_path.name}") from exc
        except (ValueError, TypeError) as exc:
            raise DataDirectoryError(key_path, "is not a PEM private key (truncated or overwritten?)") from exc
        if not isinstance(private, rsa.RSAPrivateKey):
            raise DataDirectoryError(key_path, "is not an RSA private key")
        return SigningKey(kid, private, private.public_key(), cert_der, created_at,
                          float(retire_at) if retire_at is not None else None)

    def _fresh(self) -> None:
        token = self._generation.token()
        if token != self._seen:
            with self._lock:
                if token != self._seen:
                    self._load()
                    self._seen = token

    # ----------------------------------------------------------------- changes
    def ensure_key(self, now: float) -> None:
        self._fresh()
        if not self.active_keys(now):
            self.rotate(now)

    def rotate(self, now: float) -> SigningKey:
        """Add a new signing key; the previous ones retire once their last token can have expired."""
        self._fresh()
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert_der = _self_signed(private, now)
        digest = hashes.Hash(hashes.SHA1())  # noqa: S303 - x5t is defined as a SHA-1 thumbprint (RFC 7515 §4.1.7)
        digest.update(cert_der)
        kid = b64url(digest.finalize())
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(self._dir / f"{kid}.key", pem)
        for old in self._keys:
            if old.retire_at is None:
                self._write_meta(old.kid, old.cert_der, old.created_at, now + self._max_lifetime + 300)
        self._write_meta(kid, cert_der, now, None)
        self._generation.bump()
        self._fresh()
        return self._by_kid[kid]

    def _write_meta(self, kid: str, cert_der: bytes, created_at: float, retire_at: float | None) -> None:
        meta = {
            "kid": kid,
            "x5c": base64.b64encode(cert_der).decode(),
            "created_at": created_at,
            "retire_at": retire_at,
        }
        tmp = self._dir / f".{kid}.json.tmp"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, self._dir / f"{kid}.json")

    def prune(self, now: float) -> list[str]:
        """Delete retired keys whose tokens have all expired. Returns the removed kids."""
        self._fresh()
        removed = [k.kid for k in self._keys if k.retire_at is not None and k.retire_at < now]
        for kid in removed:
            (self._dir / f"{kid}.json").unlink(missing_ok=True)
            (self._dir / f"{kid}.key").unlink(missing_ok=True)
        if removed:
            self._generation.bump()
            self._fresh()
        return removed

    # ----------------------------------------------------------------- reads (hot path)
    def active_keys(self, now: float) -> list[SigningKey]:
        self._fresh()
        return [k for k in self._keys if k.retire_at is None or k.retire_at >= now]

    def signing_key(self) -> SigningKey:
        self._fresh()
        current = [k for k in self._keys if k.retire_at is None]
        if not current:
            raise RuntimeError("no signing key; call ensure_key first")
        return current[-1]

    def public_key(self, kid: str, now: float) -> rsa.RSAPublicKey | None:
        self._fresh()
        key = self._by_kid.get(kid)
        if key is None or (key.retire_at is not None and key.retire_at < now):
            return None
        return key.public_key

    def jwks(self) -> dict[str, Any]:
        self._fresh()
        return self._jwks
