"""The quota counters: the same windows in one process (LocalQuotaCounter) and across processes
(SharedQuotaCounter, a flock-locked memory-mapped file), exact under concurrent processes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from cielo.control.resources import rate_limits
from cielo.core.clock import FrozenClock
from cielo.dataplane.quota import (
    Limits,
    LocalQuotaCounter,
    QuotaCounter,
    QuotaLimiter,
    SharedQuotaCounter,
    counter_for,
)

NOW = 1_000_040.0  # 0 s into a 10 s window, 20 s into a 60 s one
FORK = multiprocessing.get_context("fork")


@pytest.fixture(params=["local", "shared"])
def make_counter(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], QuotaCounter]:
    if request.param == "local":
        return LocalQuotaCounter
    return lambda: SharedQuotaCounter(tmp_path / "quota.bin")


def test_limits_from_arm_rate_limits() -> None:
    assert Limits.from_rate_limits(rate_limits(1)) == Limits(2, 10, 1000, 60)
    assert Limits.from_rate_limits(rate_limits(60)) == Limits(60, 10, 60_000, 60)


def test_windows_refusals_and_reset(make_counter: Callable[[], QuotaCounter]) -> None:
    counter = make_counter()
    limits = Limits(2, 10, 100, 60)
    first = counter.charge("d", limits, 30, NOW)
    assert (first.allowed, first.remaining_requests, first.remaining_tokens) == (True, 1, 70)
    # Refused for tokens: neither the request nor its tokens are counted.
    refused = counter.charge("d", limits, 71, NOW + 1)
    assert (refused.allowed, refused.limit, refused.remaining_tokens) == (False, "token", 70)
    assert refused.retry_after_s == pytest.approx(39.0)
    second = counter.charge("d", limits, 70, NOW + 2)
    assert (second.allowed, second.remaining_requests, second.remaining_tokens) == (True, 0, 0)
    calls = counter.charge("d", limits, 0, NOW + 3)
    assert (calls.allowed, calls.limit) == (False, "request") and calls.retry_after_s == pytest.approx(7.0)
    # A new 10 s window gives calls back, not tokens; a new minute gives tokens back.
    assert counter.charge("d", limits, 0, NOW + 10).allowed
    assert not counter.charge("d", limits, 1, NOW + 11).allowed
    assert counter.charge("d", limits, 100, NOW + 40).allowed
    # Deployments are counted apart.
    assert counter.charge("other", limits, 100, NOW + 40).allowed
    counter.close()


def test_a_window_is_never_moved_back(make_counter: Callable[[], QuotaCounter]) -> None:
    """A worker whose clock reading predates another's (it waited for the lock) must not reset the window."""
    counter = make_counter()
    limits = Limits(1, 10, 100, 60)
    assert counter.charge("d", limits, 1, NOW + 10.0).allowed  # the next window, read first
    late = counter.charge("d", limits, 1, NOW + 9.99)
    assert not late.allowed and late.limit == "request"
    counter.close()


def _hammer(path: Path, limits: Limits, tokens: int, attempts: int, start: Barrier, admitted: list[int],
            index: int, shared: SharedQuotaCounter | None, keys: int = 1) -> None:
    counter = shared or SharedQuotaCounter(path)
    start.wait()
    admitted[index] = sum(counter.charge("deployment" if keys == 1 else f"deployment-{n % keys}", limits, tokens,
                                         NOW).allowed for n in range(attempts))


def _race(path: Path, limits: Limits, tokens: int, *, processes: int = 4, attempts: int = 1500,
          inherited: SharedQuotaCounter | None = None, keys: int = 1) -> list[int]:
    admitted = FORK.Array("i", processes)
    start = FORK.Barrier(processes)
    workers = [FORK.Process(target=_hammer, args=(path, limits, tokens, attempts, start, admitted, i, inherited,
                                                   keys))
               for i in range(processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    return list(admitted)


def test_requests_are_exact_across_processes(tmp_path: Path) -> None:
    admitted = _race(tmp_path / "quota.bin", Limits(4000, 10, 10**9, 60), 1)
    assert sum(admitted) == 4000, admitted


def test_tokens_are_exact_across_processes(tmp_path: Path) -> None:
    admitted = _race(tmp_path / "quota.bin", Limits(10**6, 10, 28_000, 60), 7)
    assert sum(admitted) == 4000, admitted
    last = SharedQuotaCounter(tmp_path / "quota.bin").charge("deployment", Limits(10**6, 10, 28_000, 60), 0, NOW)
    assert last.allowed and last.remaining_tokens == 0 and last.remaining_requests == 10**6 - 4001


def test_many_deployments_are_each_exact_across_processes(tmp_path: Path) -> None:
    """Each charge locks its own slot, and keys new to a process are claimed under the table lock: four processes
    charging 25 deployments at once admit exactly each one's limit."""
    admitted = _race(tmp_path / "quota.bin", Limits(100, 10, 10**9, 60), 1, attempts=2000, keys=25)
    assert sum(admitted) == 25 * 100, admitted
    counter = SharedQuotaCounter(tmp_path / "quota.bin")
    for n in range(25):
        assert not counter.charge(f"deployment-{n}", Limits(100, 10, 10**9, 60), 1, NOW).allowed


def test_a_counter_opened_before_fork_is_exact_in_the_children(tmp_path: Path) -> None:
    """Workers fork from a parent that opened the counter: each must take its own locks (record locks belong to
    the process that took them, so the parent's would let every child in at once)."""
    inherited = SharedQuotaCounter(tmp_path / "quota.bin")
    admitted = _race(tmp_path / "quota.bin", Limits(4000, 10, 10**9, 60), 1, inherited=inherited)
    assert sum(admitted) == 4000, admitted


def test_counts_survive_a_reopen_and_a_damaged_file_is_reset(tmp_path: Path) -> None:
    path = tmp_path / "quota.bin"
    limits = Limits(3, 10, 100, 60)
    first = SharedQuotaCounter(path)
    assert first.charge("d", limits, 10, NOW).allowed
    first.close()
    again = SharedQuotaCounter(path)  # a restarted server, within the same windows
    assert again.charge("d", limits, 10, NOW + 1).remaining_tokens == 80
    again.close()
    path.write_bytes(b"not a quota table")
    reset = SharedQuotaCounter(path)
    assert reset.charge("d", limits, 10, NOW + 2).remaining_tokens == 90


def test_slots_of_ended_windows_are_reused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "quota.bin"
    limits = Limits(5, 10, 100, 60)
    a, b = SharedQuotaCounter(path, slots=4), SharedQuotaCounter(path, slots=4)
    for key in ("k1", "k2", "k3", "k4"):
        assert a.charge(key, limits, 10, NOW).allowed
    # A full table of live windows: the fifth deployment is let through, uncounted, and it is logged.
    full = b.charge("k5", limits, 10, NOW)
    assert full.allowed and full.remaining_tokens == 100
    assert "quota table" in caplog.text
    # A minute later every window has ended: k5 takes a slot and is counted ...
    later = NOW + 60
    assert b.charge("k5", limits, 10, later).remaining_tokens == 90
    assert b.charge("k5", limits, 10, later).remaining_tokens == 80
    # ... and `a`, which remembers where k1 was, does not count k1 in a slot k5 may have taken.
    counted = [a.charge(key, limits, 1, later).remaining_tokens for key in ("k1", "k2", "k3")]
    assert counted == [99, 99, 99]
    assert b.charge("k5", limits, 10, later).remaining_tokens == 70


def test_the_limiter_refuses_what_can_never_fit_without_counting_it() -> None:
    limiter = QuotaLimiter(FrozenClock(NOW), LocalQuotaCounter())
    limits = rate_limits(1)
    never = limiter.admit("d", limits, 1001)
    assert (never.allowed, never.limit, never.token_limit) == (False, "size", 1000)
    fits = limiter.admit("d", limits, 1000)
    assert fits.allowed and fits.remaining_requests == 1 and fits.remaining_tokens == 0


def test_one_worker_counts_in_memory_several_share_a_file(tmp_path: Path) -> None:
    assert isinstance(counter_for(1, tmp_path), LocalQuotaCounter)
    shared = counter_for(2, tmp_path)
    assert isinstance(shared, SharedQuotaCounter)
    assert (tmp_path / "quota-counters.bin").stat().st_mode & 0o777 == 0o600
    shared.close()


def test_a_refund_gives_back_to_the_window_it_was_charged_to(make_counter: Callable[[], QuotaCounter]) -> None:
    """A request reserves its estimate and, when it ends, gives back what it did not use (Azure's reservation)."""
    counter = make_counter()
    limits = Limits(100, 10, 100, 60)
    first = counter.charge("d", limits, 80, NOW)
    assert (first.charged, first.token_window) == (80, NOW - 20)
    assert not counter.charge("d", limits, 30, NOW + 1).allowed  # 80 + 30 > 100 while it runs
    counter.refund("d", first.token_window, 70)  # it used 10 of its 80
    assert counter.charge("d", limits, 90, NOW + 2).allowed  # 10 + 90
    assert not counter.charge("d", limits, 1, NOW + 3).allowed
    # A refund never goes below zero, never reaches another key, and is dropped once its window has ended.
    counter.refund("d", first.token_window, 10_000)
    assert counter.charge("d", limits, 100, NOW + 4).allowed
    counter.refund("other", first.token_window, 50)
    late = counter.charge("d", limits, 100, NOW + 40)  # the next minute
    assert late.allowed and late.token_window == NOW + 40
    counter.refund("d", first.token_window, 100)  # for the ended window: nothing changes
    assert not counter.charge("d", limits, 1, NOW + 41).allowed
    counter.close()


def test_the_limiter_settles_a_request_with_its_real_usage() -> None:
    limiter = QuotaLimiter(FrozenClock(NOW))
    rules = rate_limits(10)  # 10 requests per 10 s, 10,000 tokens a minute
    admitted = limiter.admit("d", rules, 9000)
    assert admitted.allowed and not limiter.admit("d", rules, 2000).allowed
    limiter.settle("d", admitted, 1200)  # prompt and completion it really used
    assert limiter.admit("d", rules, 8000).allowed  # 1,200 + 8,000
    refused = limiter.admit("d", rules, 1000)
    assert not refused.allowed and refused.limit == "token"
    limiter.settle("d", refused, 0)  # a refused request reserved nothing: nothing is given back
    assert not limiter.admit("d", rules, 801).allowed
    assert limiter.admit("d", rules, 800).allowed
