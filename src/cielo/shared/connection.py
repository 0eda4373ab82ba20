"""The Redis client replicas share, and what a Redis failure becomes: `SharedStateUnavailable` (a 503 in the
request's surface's envelope), never an admission or a decision made without the shared state."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import redis

from cielo.errors import SharedStateUnavailable

log = logging.getLogger("cielo.shared")

# Seconds to wait on Redis before answering 503: a request never hangs on it for long.
SOCKET_TIMEOUT_S = 1.0


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


def connect(url: str) -> redis.Redis:
    """A client for `url` (redis://, rediss://, unix://) with short timeouts. Connections open on first use."""
    return redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S,
                                health_check_interval=30)


def unavailable(url: str) -> SharedStateUnavailable:
    return SharedStateUnavailable(
        f"Cielo cannot reach the Redis server its replicas share ({redacted(url)}): the request is refused "
        "rather than answered without the shared quota, sign-in and cache state. Retry once Redis is back.")


@contextmanager
def guarded(url: str, what: str) -> Iterator[None]:
    """Redis errors inside the block become `SharedStateUnavailable`, logged once per failure (without secrets)."""
    try:
        yield
    except (redis.RedisError, OSError) as exc:
        log.warning("Redis (%s) failed during %s: %s", redacted(url), what, type(exc).__name__)
        raise unavailable(url) from exc
