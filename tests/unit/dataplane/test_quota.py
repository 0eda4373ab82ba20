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
    # More than the whole minute's budget can never pass: refused as such, and nothing is counted.
    too_big = limiter.admit("other", limits, 10_001)
    assert not too_big.allowed and too_big.limit == "size" and too_big.token_limit == 10_000
    exactly = limiter.admit("other", limits, 10_000)
    assert exactly.allowed and exactly.remaining_requests == 9 and exactly.remaining_tokens == 0
