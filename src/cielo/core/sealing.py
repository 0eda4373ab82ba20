"""Encryption at rest for secrets that must be shown again (account keys, as listKeys does).

Fernet (AES-128-CBC + HMAC-SHA256) with a key kept in the data directory, mode 0600, or, for replicas sharing a
database, in the database sealed with their key-encryption key (`KeyEncryptionKey`, AES-256-GCM). Secrets that
only need verifying are hashed instead (identity/secrets.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cielo.errors import ConfigError, DataDirectoryError


class Sealer:
    def __init__(self, key_path: Path | None = None, *, key: bytes | None = None) -> None:
        """The sealing key from `key_path` (made there, 0600, when missing), or `key` itself (replicas sharing a
        database keep it there, sealed with their key-encryption key)."""
        if key is not None:
            self._fernet = Fernet(key)
            return
        if key_path is None:
            raise TypeError("Sealer needs a key file or a key")
        if not key_path.exists():
            key_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
        try:
            self._fernet = Fernet(key_path.read_bytes().strip())
        except (ValueError, binascii.Error) as exc:  # truncated, emptied or overwritten
            raise DataDirectoryError(key_path, "is not a sealing key (32 url-safe base64-encoded bytes): the "
                                               "account keys sealed with it cannot be read") from exc
        except OSError as exc:
            raise DataDirectoryError(key_path, f"cannot be read ({exc.strerror or exc})") from exc

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except InvalidToken as exc:
            raise ValueError("a sealed secret could not be decrypted with this data directory's key") from exc


class KeyEncryptionKey:
    """The key-encryption key (KEK) of replicas that share a database: it seals the keys they keep there (signing
    keys, the sealing key, the CA's key) with AES-256-GCM, each bound to what it is (`context`: a row's kind and
    name, as associated data), so a sealed value moved to another row does not open.

    Given as 32 random bytes in base64 (`openssl rand -base64 32`), standard or URL-safe, by the environment
    (`CIELO_KEY_ENCRYPTION_KEY`) or a file (`--key-encryption-key-file`)."""

    PREFIX = "kek1."

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a key-encryption key is 32 bytes")
        self._aead = AESGCM(key)
        self.fingerprint = hashlib.sha256(b"cielo kek fingerprint\0" + key).hexdigest()[:16]

    @classmethod
    def parse(cls, text: str, source: str) -> KeyEncryptionKey:
        """The KEK written in `text` (surrounding whitespace ignored); `ConfigError` naming `source` otherwise."""
        value = text.strip()
        try:
            raw = base64.b64decode(value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4),
                                   validate=True)
        except (ValueError, binascii.Error):
            raw = b""
        if len(raw) != 32:
            raise ConfigError(f"{source} is not a key-encryption key: it must be 32 random bytes in base64 (e.g. "
                              "`openssl rand -base64 32`)")
        return cls(raw)

    def seal(self, plaintext: bytes, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext, context.encode())
        return self.PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, context: str) -> bytes:
        """The plaintext; `ValueError` when this KEK did not seal it for `context` (or it was changed)."""
        if not sealed.startswith(self.PREFIX):
            raise ValueError("not a value sealed with a key-encryption key")
        try:
            data = base64.b64decode(sealed[len(self.PREFIX):], validate=True)
            return self._aead.decrypt(data[:12], data[12:], context.encode())
        except (InvalidTag, ValueError, binascii.Error) as exc:
            raise ValueError(f"{context}: cannot be opened with this key-encryption key") from exc
