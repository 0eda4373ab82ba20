"""Signing keys: RS256 keys on disk (mode 0600), published in JWKS with kid and x5t.

`kid` equals `x5t` (base64url SHA-1 of the key's certificate), as in Entra. A rotation adds a key
and makes it the signing key; a retired key stays in the JWKS until the last token it signed has
expired, then it is removed.

Replicas sharing a database (`--database-url`) keep the keys there instead, sealed with the key-encryption key
(store/keystore.py): every replica signs with the same key, and each checks the keys' version at most once a
second (and at once for a token naming a kid it does not know), so a rotation on one is seen by all.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cielo.core.certs import self_signed_certificate
from cielo.core.ids import b64url
from cielo.errors import DataDirectoryError
from cielo.store.generation import Generation
from cielo.store.keystore import SIGNING, KeyStore, StoredKey

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from cielo.core.sealing import KeyEncryptionKey, Sealer
    from cielo.settings import Settings

# How often a replica asks the shared database whether the keys changed (and at most how often a token naming an
# unknown kid makes it ask at once).
SHARED_CHECK_S = 1.0
UNKNOWN_KID_CHECK_S = 0.1


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


def _new_key(now: float) -> tuple[str, bytes, bytes]:
    """A new RSA key: (kid, its self-signed certificate in DER, the private key in PEM)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert_der = _self_signed(private, now)
    digest = hashes.Hash(hashes.SHA1())  # noqa: S303 - x5t is defined as a SHA-1 thumbprint (RFC 7515 §4.1.7)
    digest.update(cert_der)
    kid = b64url(digest.finalize())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return kid, cert_der, pem


class KeyRing:
    """The keys in `keys_dir`, reloaded when another process rotates them; or, given a `store`, the keys in the
    shared database, reloaded when another replica rotates them."""

    def __init__(self, keys_dir: Path, max_token_lifetime_s: float, store: KeyStore | None = None) -> None:
        self._dir = keys_dir
        self._max_lifetime = max_token_lifetime_s
        self._store = store
        self._lock = threading.Lock()
        self._seen: tuple[int, int] = (-1, -1)
        self._checked = -1e18  # when the shared version was last read (monotonic)
        self._keys: list[SigningKey] = []
        self._by_kid: dict[str, SigningKey] = {}
        self._jwks: dict[str, Any] = {"keys": []}
        if store is None:
            self._dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self._dir, 0o700)
            self._generation = Generation(self._dir / "generation")

    # ----------------------------------------------------------------- loading
    def _load(self) -> None:
        if self._store is not None:
            keys = [self._from_row(row) for row in self._store.keys(SIGNING)]
        else:
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

    def _from_row(self, row: StoredKey) -> SigningKey:
        try:
            private = serialization.load_pem_private_key(row.secret, None)
            cert_der = base64.b64decode(row.public, validate=True)
        except (ValueError, TypeError) as exc:
            raise DataDirectoryError(self._store.where if self._store else self._dir,
                                     f"the signing key {row.name} is not an RSA key with its certificate") from exc
        if not isinstance(private, rsa.RSAPrivateKey):
            raise DataDirectoryError(self._store.where if self._store else self._dir,
                                     f"the signing key {row.name} is not an RSA key")
        return SigningKey(row.name, private, private.public_key(), cert_der, row.created_at, row.retire_at)

    def _token(self, within: float) -> tuple[int, int] | None:
        """The keys' change marker; None when a shared one was read less than `within` seconds ago."""
        if self._store is None:
            return self._generation.token()
        now = time.monotonic()
        if now - self._checked < within:
            return None
        self._checked = now
        return (self._store.version(SIGNING), 0)

    def _fresh(self, within: float = SHARED_CHECK_S) -> None:
        token = self._token(within)
        if token is not None and token != self._seen:
            with self._lock:
                if token != self._seen:
                    self._load()
                    self._seen = token

    def reload(self) -> None:
        """Read the keys again now (after a rotation elsewhere)."""
        self._fresh(within=0.0)

    # ----------------------------------------------------------------- changes
    def ensure_key(self, now: float) -> None:
        self._fresh(within=0.0)
        if self.active_keys(now):
            return
        if self._store is not None:
            kid, cert_der, pem = _new_key(now)
            # Replicas starting together on an empty database: the first adds a key, the others find it.
            self._store.add_signing_key(kid, base64.b64encode(cert_der).decode(), pem, now,
                                        now + self._max_lifetime + 300, only_if_none_current=True)
            self._fresh(within=0.0)
            return
        self.rotate(now)

    def rotate(self, now: float) -> SigningKey:
        """Add a new signing key; the previous ones retire once their last token can have expired."""
        self._fresh(within=0.0)
        kid, cert_der, pem = _new_key(now)
        if self._store is not None:
            self._store.add_signing_key(kid, base64.b64encode(cert_der).decode(), pem, now,
                                        now + self._max_lifetime + 300)
            self._fresh(within=0.0)
            return self._by_kid[kid]
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
        self._fresh(within=0.0)
        removed = [k.kid for k in self._keys if k.retire_at is not None and k.retire_at < now]
        if self._store is not None:
            self._store.remove(SIGNING, removed)
            self._fresh(within=0.0)
            return removed
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
        if key is None and self._store is not None:  # perhaps another replica's new key: ask now (rate-limited)
            self._fresh(within=UNKNOWN_KID_CHECK_S)
            key = self._by_kid.get(kid)
        if key is None or (key.retire_at is not None and key.retire_at < now):
            return None
        return key.public_key

    def jwks(self) -> dict[str, Any]:
        self._fresh()
        return self._jwks


# ----------------------------------------------------------------------------- replicas sharing a database
def key_encryption_key(settings: Settings) -> KeyEncryptionKey:
    """The KEK from CIELO_KEY_ENCRYPTION_KEY or --key-encryption-key-file (exactly one); `ConfigError` saying what
    to give when there is none."""
    from cielo.core.sealing import KeyEncryptionKey
    from cielo.errors import ConfigError

    if settings.key_encryption_key is not None and settings.key_encryption_key_file is not None:
        raise ConfigError("give the key-encryption key one way, not both CIELO_KEY_ENCRYPTION_KEY and "
                          "--key-encryption-key-file")
    if settings.key_encryption_key is not None:
        return KeyEncryptionKey.parse(settings.key_encryption_key, "CIELO_KEY_ENCRYPTION_KEY")
    if settings.key_encryption_key_file is not None:
        path = settings.key_encryption_key_file
        try:
            text = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the key-encryption key from {path}: {exc}") from exc
        return KeyEncryptionKey.parse(text, str(path))
    raise ConfigError("--database-url needs a key-encryption key to seal the signing keys, the sealing key and the "
                      "CA it keeps: set CIELO_KEY_ENCRYPTION_KEY or --key-encryption-key-file (32 random bytes in "
                      "base64, e.g. `openssl rand -base64 32`; every replica gets the same one)")


def shared_store(settings: Settings, engine: Engine, now: float) -> KeyStore | None:
    """The database's key store when the database is shared (`--database-url`), its KEK checked; else None (keys
    are files in the data directory)."""
    if settings.database_url is None:
        return None
    store = KeyStore(engine, key_encryption_key(settings))
    store.check_kek(now)
    return store


def open_keys(settings: Settings, engine: Engine, now: float) -> tuple[KeyRing, Sealer]:
    """The signing keys and the sealer of account keys: files in the data directory (the embedded default), or
    rows in the shared database sealed with the KEK."""
    from cielo.core.sealing import Sealer

    store = shared_store(settings, engine, now)
    if store is None:
        return (KeyRing(settings.keys_dir, settings.token_lifetime_max_s),
                Sealer(settings.data_dir / "sealing.key"))
    from cryptography.fernet import Fernet

    from cielo.store.keystore import SEALING

    sealing = store.get_or_create(SEALING, "sealing", lambda: ("", Fernet.generate_key()), now)
    return KeyRing(settings.keys_dir, settings.token_lifetime_max_s, store), Sealer(key=sealing.secret)


def share_ca(settings: Settings, engine: Engine, now: float) -> None:
    """Replicas sharing a database share one CA (clients trust it once): the one in the database is written into
    this replica's `tls/` (which then issues its own server certificate from it); when the database has none yet,
    this replica's CA (or a new one) is stored there first."""
    from cielo.identity import pki
    from cielo.store.keystore import CA

    store = shared_store(settings, engine, now)
    if store is None:
        return
    local = pki.read_ca(settings.tls_dir)
    stored = store.get_or_create(CA, "ca", lambda: local or pki.new_ca(), now)
    pki.install_ca(settings.tls_dir, stored.public, stored.secret)
