"""Checking a user name and password typed into a sign-in page (the authorize form, device login)."""

from __future__ import annotations

from cielo.identity.directory_view import DirectoryView
from cielo.identity.secrets import burn_password_time, verify_password
from cielo.identity.signin_guard import SignInGuard
from cielo.store.models import User


def check_credentials(
    directory: DirectoryView, guard: SignInGuard, username: str, password: str, address: str
) -> User | None:
    """The user, or None for a wrong name or password (one path, one argon2 cost for both).

    Raises AccountLocked (AADSTS50053) while the name or the address is locked out or throttled.
    """
    name = username.strip()
    if name:
        guard.check(name, address)
    user = directory.repo.find_user(name) if name else None
    if user is None:
        burn_password_time(password)
        ok = False
    else:
        ok = verify_password(user.password_hash, password)
    if user is None or not ok:
        if name:
            guard.failed(name, address)
        return None
    if not user.account_enabled:
        return None
    guard.succeeded(name)
    return user
