"""Checking a user name and password: the one password check of the ROPC grant and of the sign-in pages
(the authorize form, device login)."""

from __future__ import annotations

from cielo.identity.directory_view import DirectoryView
from cielo.identity.secrets import burn_password_time, verify_password
from cielo.identity.signin_guard import SignInGuard
from cielo.store.models import User


def find_and_verify(directory: DirectoryView, username: str, password: str) -> tuple[User | None, bool]:
    """The user the name belongs to (or None) and whether the password is theirs. An unknown name is checked
    against a dummy hash, so both answers cost one argon2 verification and cannot be told apart by timing."""
    user = directory.repo.find_user(username) if username else None
    if user is None:
        burn_password_time(password)
        return None, False
    return user, verify_password(user.password_hash, password)


def check_credentials(
    directory: DirectoryView, guard: SignInGuard, username: str, password: str, address: str
) -> User | None:
    """The user, or None for a wrong name or password (one path, one argon2 cost for both).

    Raises AccountLocked (AADSTS50053) while the name or the address is locked out or throttled.
    """
    name = username.strip()
    if name:
        guard.check(name, address)
    user, ok = find_and_verify(directory, name, password)
    if user is None or not ok:
        if name:
            guard.failed(name, address)
        return None
    if not user.account_enabled:
        return None
    guard.succeeded(name)
    return user
