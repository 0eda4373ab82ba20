"""The quota windows in Redis (RedisQuotaCounter): the same answers as the in-process counter for any sequence,
exact under concurrent processes, and a 503 (never an admission) when Redis cannot be reached."""

from __future__ import annotations

import multiprocessing
import random
from multiprocessing.synchronize import Barrier

import pytest

from cielo.core.clock import FrozenClock
from cielo.dataplane.quota import Limits, LocalQuotaCounter, QuotaLimiter
from cielo.errors import SharedStateUnavailable
from cielo.shared.connection import connect
from cielo.shared.quota import RedisQuotaCounter
from support.server import free_port

NOW = 1_000_040.0
FORK = multiprocessing.get_context("fork")


def counter(url: str, prefix: str) -> RedisQuotaCounter:
    return RedisQuotaCounter(connect(url), url, prefix)


def test_same_answers_as_the_in_process_counter(redis_url: str, prefix: str) -> None:
    """Random charges, refunds and clock steps (sometimes backwards, as a late clock read): every admission equal,
    field by field, to LocalQuotaCounter's, which implements `decide` directly."""
    rng = random.Random(7)
    redis_counter, local = counter(redis_url, prefix), LocalQuotaCounter()
    limits = [Limits(5, 10, 300, 60), Limits(3, 10, 10**12, 60), Limits(10**9, 10, 50, 60)]
    now = NOW
    admitted: dict[str, list[tuple[float, int]]] = {}
    for step in range(600):
        key = f"d{rng.randrange(3)}"
        if admitted.get(key) and rng.random() < 0.2:
            window, charged = admitted[key].pop()
            back = rng.randrange(charged + 1)
            redis_counter.refund(key, window, back)
            local.refund(key, window, back)
            continue
        now += rng.choice([0.0, 0.3, 1.7, 6.0, -0.5])
        tokens = rng.randrange(0, 60)
        got = redis_counter.charge(key, limits[int(key[1])], tokens, now)
        want = local.charge(key, limits[int(key[1])], tokens, now)
        assert got == want, (step, got, want)
        if got.allowed and got.charged:
            admitted.setdefault(key, []).append((got.token_window, got.charged))


def test_windows_refusals_and_refunds(redis_url: str, prefix: str) -> None:
    c = counter(redis_url, prefix)
    limits = Limits(2, 10, 100, 60)
    first = c.charge("d", limits, 80, NOW)
    assert (first.allowed, first.remaining_requests, first.remaining_tokens, first.token_window) == \
        (True, 1, 20, NOW - 20)
    refused = c.charge("d", limits, 21, NOW + 1)
    assert (refused.allowed, refused.limit) == (False, "token") and refused.retry_after_s == pytest.approx(39.0)
    c.refund("d", first.token_window, 70)  # it used 10 of its 80
    assert c.charge("d", limits, 90, NOW + 2).allowed
    calls = c.charge("d", limits, 0, NOW + 3)
    assert (calls.allowed, calls.limit) == (False, "request") and calls.retry_after_s == pytest.approx(7.0)
    c.refund("d", first.token_window - 60, 50)  # an ended window: nothing changes
    assert c.charge("d", limits, 0, NOW + 10).remaining_tokens == 0


def test_the_limiter_settles_through_redis(redis_url: str, prefix: str) -> None:
    limiter = QuotaLimiter(FrozenClock(NOW), counter(redis_url, prefix))
    rules = [{"key": "request", "renewalPeriod": 10, "count": 10}, {"key": "token", "renewalPeriod": 60,
                                                                    "count": 10_000}]
    admitted = limiter.admit("d", rules, 9000)
    assert admitted.allowed and not limiter.admit("d", rules, 2000).allowed
    limiter.settle("d", admitted, 1200)
    assert limiter.admit("d", rules, 8800).allowed
    assert not limiter.admit("d", rules, 1).allowed


def _hammer(url: str, prefix: str, limits: Limits, tokens: int, attempts: int, start: Barrier,
            admitted: list[int], index: int) -> None:
    c = counter(url, prefix)  # a replica of its own: its own client and connections
    start.wait()
    admitted[index] = sum(c.charge("deployment", limits, tokens, NOW).allowed for _ in range(attempts))


@pytest.mark.parametrize(("limits", "tokens"), [(Limits(1000, 10, 10**9, 60), 1), (Limits(10**6, 10, 7000, 60), 7)])
def test_exact_across_processes(redis_url: str, prefix: str, limits: Limits, tokens: int) -> None:
    processes, attempts = 4, 400
    admitted = FORK.Array("i", processes)
    start = FORK.Barrier(processes)
    workers = [FORK.Process(target=_hammer, args=(redis_url, prefix, limits, tokens, attempts, start, admitted, i))
               for i in range(processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    counts = [int(admitted[i]) for i in range(processes)]
    assert sum(counts) == 1000, counts


def test_redis_unreachable_refuses_and_a_refund_is_dropped() -> None:
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"
    c = counter(url, "cielo")
    with pytest.raises(SharedStateUnavailable) as refused:
        c.charge("d", Limits(10, 10, 100, 60), 1, NOW)
    assert refused.value.status == 503 and "secret" not in refused.value.message
    assert "127.0.0.1" in refused.value.message
    c.refund("d", NOW - 20, 5)  # only ever gives back: logged, not raised
