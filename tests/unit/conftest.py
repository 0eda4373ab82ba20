"""The unit tier."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashes(cheap_password_hashes: object) -> None:
    """Passwords hashed in-process cost argon2's minimum here (tests/conftest.py says why)."""
