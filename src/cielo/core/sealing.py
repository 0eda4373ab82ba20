"""Encryption at rest for secrets that must be shown again (account keys, as listKeys does).

Fernet (AES-128-CBC + HMAC-SHA256) with a key kept in the data directory, mode 0600. Secrets that
only need verifying are hashed instead (identity/secrets.py).
"""

from __future__ import annotations

import binascii
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from cielo.errors import DataDirectoryError


class Sealer:
    def __init__(self, key_path: Path) -> None:
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
