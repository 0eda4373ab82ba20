"""Per-deployment rate limits from the deployment's sku capacity (azure-facts.md §7).

Two fixed windows, as ARM's `rateLimits` states them: `request` (count per 10 s) and `token`
(capacity x 1,000 per 60 s). Tokens are charged at admission from the estimate (prompt + max_tokens),
so a large max_tokens uses headroom even when the answer is short, as in Azure. The counters live
in this process; with several workers each admits its share of the limits.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from cielo.core.clock import Clock


@dataclass
class _Window:
    start: float
    used: int


@dataclass(frozen=True)
class Admission:
    allowed: bool
    remaining_requests: int
    remaining_tokens: int
    retry_after_s: float = 0.0
    limit: str = ""  # "request" | "token" when refused


class QuotaLimiter:
    """`share` is this process's part of each limit: with N workers every worker admits 1/N of it (rounded up),
    so together they stay within the deployment's limits without sharing counters."""

    def __init__(self, clock: Clock, share: float = 1.0) -> None:
        self._clock = clock
        self._share = share
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], _Window] = {}

    def _window(self, key: str, kind: str, period: int, now: float) -> _Window:
        window = self._windows.get((key, kind))
        start = math.floor(now / period) * period
        if window is None or window.start != start:
            window = _Window(start, 0)
            self._windows[(key, kind)] = window
        return window

    def admit(self, deployment_key: str, rate_limits: list[dict[str, object]], tokens: int) -> Admission:
        now = self._clock.now()
        limits = {str(r["key"]): (int(r["count"]), int(r["renewalPeriod"])) for r in rate_limits}  # type: ignore[call-overload]
        req_count, req_period = limits.get("request", (10**9, 10))
        tok_count, tok_period = limits.get("token", (10**12, 60))
        req_count = math.ceil(req_count * self._share)
        tok_count = math.ceil(tok_count * self._share)
        with self._lock:
            requests = self._window(deployment_key, "request", req_period, now)
            token_window = self._window(deployment_key, "token", tok_period, now)
            if requests.used + 1 > req_count:
                return Admission(False, 0, max(0, tok_count - token_window.used),
                                 requests.start + req_period - now, "request")
            if tokens > tok_count:
                # A request larger than the whole budget could never pass: tell the client the full period.
                return Admission(False, req_count - requests.used, max(0, tok_count - token_window.used),
                                 float(tok_period), "token")
            if token_window.used + tokens > tok_count:
                return Admission(False, req_count - requests.used, max(0, tok_count - token_window.used),
                                 token_window.start + tok_period - now, "token")
            requests.used += 1
            token_window.used += tokens
            return Admission(True, req_count - requests.used, tok_count - token_window.used)
