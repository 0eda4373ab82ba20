"""What the app factory wires when `--redis-url` is given: one client, the change feed, and the counters."""

from __future__ import annotations

from cielo.settings import Settings
from cielo.shared.connection import connect
from cielo.shared.feed import ChangeFeed, RedisGeneration
from cielo.shared.quota import RedisQuotaCounter
from cielo.shared.signin import RedisSignInFailures


class SharedState:
    def __init__(self, url: str, prefix: str = "cielo") -> None:
        self.url = url
        self.prefix = prefix
        self.client = connect(url)
        self.feed = ChangeFeed(self.client, url, prefix)

    @classmethod
    def from_settings(cls, settings: Settings) -> SharedState | None:
        """None without `redis_url`: the embedded default never needs Redis."""
        return cls(settings.redis_url, settings.redis_prefix) if settings.redis_url else None

    def marker(self, name: str) -> RedisGeneration:
        return self.feed.marker(name)

    def quota_counter(self) -> RedisQuotaCounter:
        return RedisQuotaCounter(self.client, self.url, self.prefix)

    def signin_failures(self, settings: Settings) -> RedisSignInFailures:
        horizon = max(settings.lockout_max_s, settings.signin_throttle_window_s) * 2
        return RedisSignInFailures(self.client, self.url, self.prefix, horizon)

    def close(self) -> None:
        self.feed.close()
        self.client.close()
