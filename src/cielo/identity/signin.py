"""Checking a user name and password typed into a sign-in page."""

from __future__ import annotations

from cielo.identity.directory_view import DirectoryView
from cielo.identity.secrets import burn_password_time, verify_password
from cielo.store.models import User


def check_credentials(directory: DirectoryView, username: str, password: str) -> User | None:
    user = directory.repo.find_user(username.strip()) if username.strip() else None
    if user is None:
        burn_password_time(password)
        return None
    if not verify_password(user.password_hash, password) or not user.account_enabled:
        return None
    return user
