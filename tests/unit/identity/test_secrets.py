from __future__ import annotations

import pytest

from cielo.core.ids import new_client_secret, new_password
from cielo.identity import secrets
from cielo.identity.secrets import hash_password, hash_secret, secret_matches, verify_password


@pytest.fixture(autouse=True)
def _production_hasher(cheap_password_hashes: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """This module is about the hashing itself: it runs with the production hasher, not the cheap one."""
    monkeypatch.setattr(secrets, "_hasher", cheap_password_hashes)


def test_password_hash_is_argon2id_and_verifies() -> None:
    hashed = hash_password("Correct-Horse-9")
    assert hashed.startswith("$argon2id$") and "Correct-Horse-9" not in hashed
    assert verify_password(hashed, "Correct-Horse-9")
    assert not verify_password(hashed, "correct-horse-9")
    assert not verify_password("not-a-hash", "x")


def test_client_secret_shape_and_hash() -> None:
    secret = new_client_secret()
    assert len(secret) == 40 and secret[3:6] == "8Q~"
    digest = hash_secret(secret)
    assert secret not in digest and secret_matches(digest, secret) and not secret_matches(digest, secret + "x")


def test_generated_password_meets_complexity() -> None:
    password = new_password()
    assert len(password) >= 16
    assert any(c.isupper() for c in password) and any(c.isdigit() for c in password)
    assert any(not c.isalnum() for c in password)
