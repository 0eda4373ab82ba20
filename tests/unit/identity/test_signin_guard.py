from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine

from cielo.errors import AccountLocked
from cielo.identity.signin_guard import SignInGuard
from cielo.settings import Settings
from cielo.store.signin import SignInFailureRepo, signin_failures


class FrozenClock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def now(self) -> float:
        return self.t


@pytest.fixture()
def guard_and_clock(tmp_path: Path) -> tuple[SignInGuard, FrozenClock]:
    settings = Settings(data_dir=tmp_path, lockout_threshold=3, lockout_duration_s=60, lockout_max_s=200,
                        signin_throttle_failures=10, signin_throttle_window_s=60)
    clock = FrozenClock()
    engine = create_engine(f"sqlite:///{tmp_path / 'g.db'}")
    signin_failures.create(engine)  # a cielo.db gets it from the migrations
    repo = SignInFailureRepo(engine)
    return SignInGuard(repo, settings, clock), clock  # type: ignore[arg-type]


def test_lockout_after_threshold_then_growing(guard_and_clock: tuple[SignInGuard, FrozenClock]) -> None:
    guard, clock = guard_and_clock
    for _ in range(2):
        guard.check("Alice@x", "a")
        guard.failed("Alice@x", "a")
    guard.check("alice@X", "b")  # two failures: not yet
    guard.failed("alice@x", "b")
    with pytest.raises(AccountLocked) as locked:
        guard.check("ALICE@X", "c")
    assert locked.value.retry_after == 60 and locked.value.aadsts == 50053
    clock.t += 61
    guard.check("alice@x", "c")
    guard.failed("alice@x", "c")  # one failure after a lockout locks again, twice as long
    with pytest.raises(AccountLocked) as again:
        guard.check("alice@x", "c")
    assert again.value.retry_after == 120
    clock.t += 121
    guard.failed("alice@x", "c")
    with pytest.raises(AccountLocked) as capped:
        guard.check("alice@x", "c")
    assert capped.value.retry_after == 200  # lockout_max_s
    clock.t += 201
    guard.succeeded("alice@x")
    guard.failed("alice@x", "c")
    guard.check("alice@x", "c")  # success cleared the history


def test_address_throttle_counts_across_names(guard_and_clock: tuple[SignInGuard, FrozenClock]) -> None:
    guard, clock = guard_and_clock
    for n in range(10):
        guard.failed(f"user{n}@x", "10.0.0.9")
    with pytest.raises(AccountLocked) as throttled:
        guard.check("someone-else@x", "10.0.0.9")
    assert throttled.value.retry_after == 60
    guard.check("someone-else@x", "10.0.0.10")  # another address is unaffected
    clock.t += 61
    guard.check("someone-else@x", "10.0.0.9")  # the window has passed


def test_stale_counts_are_forgotten(guard_and_clock: tuple[SignInGuard, FrozenClock]) -> None:
    guard, clock = guard_and_clock
    for _ in range(3):
        guard.failed("bob@x", "a")
    clock.t += 61
    guard.forget_stale()  # 61 s is within the horizon (twice lockout_max_s): the lockout history stays
    guard.failed("bob@x", "a")
    with pytest.raises(AccountLocked):
        guard.check("bob@x", "a")
    clock.t += 2 * 200 + 1
    guard.forget_stale()
    guard.failed("bob@x", "a")  # a fresh count: one failure locks nothing
    guard.check("bob@x", "a")
