"""Smart lockout and per-address throttling for every password sign-in.

Entra's smart lockout locks an account for a minute after about ten failed sign-ins, and after that
locks it again on each further failure, for longer each time (AADSTS50053, "IdsLocked"); it also blocks
addresses that send many failed sign-ins. Cielo does the same on all three password paths — the ROPC
grant, the authorize endpoint's sign-in form and the device-login page — with the thresholds in
Settings (`lockout_*`, `signin_throttle_*`).

Failures are counted per user name as typed (lower-cased), whether or not the account exists, so a
lockout never tells an attacker which names are real. While locked, the password is not checked at all:
a locked account answers the same whether the password was right or wrong. A successful sign-in clears
the user's count. Unlike Entra, Cielo does not tell familiar from unfamiliar locations, nor skip counting a
repeated identical wrong password (docs/security.md).
"""

from __future__ import annotations

import math

from cielo.core.clock import Clock
from cielo.core.ids import sha256_hex
from cielo.errors import AccountLocked
from cielo.settings import Settings
from cielo.store.signin import FailureCounts

LOCKED_MESSAGE = ("Your account is locked because the user tried to sign in too many times with an incorrect "
                  "user ID or password.")
THROTTLED_MESSAGE = ("Sign-in was blocked because it came from an IP address with too many failed sign-in "
                     "attempts. Try again later.")


_NEVER = 1e12  # seconds: a window that never closes


def _user_key(username: str) -> str:
    return "user:" + sha256_hex(username.strip().lower())


def _address_key(address: str) -> str:
    return "addr:" + sha256_hex(address)


class SignInGuard:
    def __init__(self, repo: FailureCounts, settings: Settings, clock: Clock) -> None:
        self._repo = repo
        self._settings = settings
        self._clock = clock

    def check(self, username: str, address: str) -> None:
        """Raise AccountLocked (AADSTS50053, with Retry-After) if this user or address may not try now."""
        now = self._clock.now()
        user = self._repo.get(_user_key(username))
        if user is not None and user.locked_until > now:
            raise AccountLocked(LOCKED_MESSAGE, retry_after=max(1, math.ceil(user.locked_until - now)))
        if address:
            window = self._settings.signin_throttle_window_s
            seen = self._repo.get(_address_key(address))
            if (seen is not None and seen.failures >= self._settings.signin_throttle_failures
                    and seen.window_start > now - window):
                raise AccountLocked(THROTTLED_MESSAGE, retry_after=max(1, math.ceil(seen.window_start + window - now)))

    def failed(self, username: str, address: str) -> None:
        """Count a wrong password; lock the user at the threshold, and on every failure after a lockout."""
        settings = self._settings
        now = self._clock.now()
        if address:
            self._repo.record_failure(_address_key(address), now, settings.signin_throttle_window_s)
        key = _user_key(username)
        # The user's count never expires by window: only success or `forget_stale` clears it.
        count = self._repo.record_failure(key, now, _NEVER)
        if count.lockouts > 0 or count.failures >= settings.lockout_threshold:
            duration = min(settings.lockout_max_s, settings.lockout_duration_s * 2 ** count.lockouts)
            self._repo.lock(key, now + duration, count.lockouts + 1)

    def forget_stale(self) -> None:
        """Drop counts untouched for twice the longest lockout or window (run with the periodic grant purge)."""
        horizon = max(self._settings.lockout_max_s, self._settings.signin_throttle_window_s) * 2
        self._repo.forget_before(self._clock.now() - horizon)

    def succeeded(self, username: str) -> None:
        self._repo.clear(_user_key(username))
