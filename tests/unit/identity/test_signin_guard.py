from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from cielo.errors import AccountLocked
from cielo.identity.signin_guard import SignInGuard
from cielo.settings import Settings
from cielo.shared.state import SharedState
from cielo.store.signin import SignInFailureRepo, signin_failures
from support.shared_redis import prefix_in, redis_or_skip


class FrozenClock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def now(self) -> float:
        return self.t


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, lockout_threshold=3, lockout_duration_s=60, lockout_max_s=200,
                    signin_throttle_failures=10, signin_throttle_window_s=60)


@pytest.fixture()
def guard_and_clock(tmp_path: Path) -> tuple[SignInGuard, FrozenClock]:
    settings = _settings(tmp_path)
    clock = FrozenClock()
    engine = create_engine(f"sqlite:///{tmp_path / 'g.db'}")
    signin_failures.create(engine)  # a cielo.db gets it from the migrations
    repo = SignInFailureRepo(engine)
    return SignInGuard(repo, settings, clock), clock  # type: ignore[arg-type]


@pytest.fixture(params=["database", "redis"])
def any_guard(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[SignInGuard, FrozenClock]]:
    """The same rules whether the counts are in the database (default) or in Redis (replicas, --redis-url)."""
    if request.param == "database":
        yield request.getfixturevalue("guard_and_clock")
        return
    url = redis_or_skip()
    with prefix_in(url) as prefix:
        settings = _settings(tmp_path)
        clock = FrozenClock()
        shared = SharedState(url, prefix)
        yield SignInGuard(shared.signin_failures(settings), settings, clock), clock  # type: ignore[arg-type]
        shared.close()


def test_lockout_after_threshold_then_growing(any_guard: tuple[SignInGuard, FrozenClock]) -> None:
    guard, clock = any_guard
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


def test_address_throttle_counts_across_names(any_guard: tuple[SignInGuard, FrozenClock]) -> None:
    guard, clock = any_guard
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


def test_redis_counts_expire_after_the_horizon(tmp_path: Path) -> None:
    """In Redis a count is forgotten by expiry, twice the longest lockout or window after its last failure (what
    `forget_stale` does in the database)."""
    url = redis_or_skip()
    with prefix_in(url) as prefix:
        shared = SharedState(url, prefix)
        guard = SignInGuard(shared.signin_failures(_settings(tmp_path)), _settings(tmp_path), FrozenClock())  # type: ignore[arg-type]
        guard.failed("carol@x", "10.0.0.1")
        ttls = [shared.client.ttl(key) for key in shared.client.scan_iter(match=f"{prefix}:signin:*")]
        assert len(ttls) == 2 and all(390 <= t <= 400 for t in ttls), ttls  # 2 x lockout_max_s (200)
        shared.close()
