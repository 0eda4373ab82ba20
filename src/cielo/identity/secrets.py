"""Secrets at rest: passwords hashed with argon2id; client secrets (high entropy) with SHA-256.

A generated client secret carries 34 random characters (about 200 bits), so a fast hash is as
safe as a slow one and keeps client-credential grants cheap. Passwords are chosen by people and
get argon2id.
"""

from __future__ import annotations

import hashlib
import hmac

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return str(_hasher.hash(password))


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(password_hash, password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


_DUMMY_HASH = hash_password("cielo-dummy-password-for-timing")


def burn_password_time(password: str) -> None:
    """Spend the time of one verification, so unknown user names are not told apart by timing."""
    verify_password(_DUMMY_HASH, password)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret_hash: str, secret: str) -> bool:
    return hmac.compare_digest(secret_hash, hash_secret(secret))
