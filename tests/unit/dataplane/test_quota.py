from __future__ import annotations

from cielo.control.resources import rate_limits
from cielo.core.clock import FrozenClock
from cielo.dataplane.quota import QuotaLimiter


def test_request_window_and_reset() -> None:
    clock = FrozenClock(1000.0)
    limiter = QuotaLimiter(clock)
    limits = rate_limits(1)  # 2 requests per 10 s, 1,000 tokens per 60 s
    assert limiter.admit("d", limits, 10).allowed
    second = limiter.admit("d", limits, 10)
    assert second.allowed and second.remaining_requests == 0 and second.remaining_tokens == 980
    third = limiter.admit("d", limits, 10)
    assert not third.allowed and third.limit == "request" and 0 < third.retry_after_s <= 10
    clock.advance(10)
    assert limiter.admit("d", limits, 10).allowed


def test_token_limit_and_requests_larger_than_the_budget() -> None:
    clock = FrozenClock(1200.0)
    limiter = QuotaLimiter(clock)
    limits = rate_limits(10)  # 10 per 10 s, 10,000 tokens per minute
    assert limiter.admit("d", limits, 9_000).allowed
    refused = limiter.admit("d", limits, 2_000)
    assert not refused.allowed and refused.limit == "token" and refused.remaining_tokens == 1_000
    too_big = limiter.admit("other", limits, 20_000)
    assert not too_big.allowed and too_big.retry_after_s == 60.0


def test_each_worker_admits_its_share() -> None:
    limiter = QuotaLimiter(FrozenClock(2000.0), share=0.5)
    limits = rate_limits(3)  # 3 per 10 s -> 2 for each of two workers (rounded up)
    assert [limiter.admit("d", limits, 1).allowed for _ in range(3)] == [True, True, False]
