"""The machine's Redis for tests of the state replicas share (`--redis-url`): skipped, with the reason, where none
answers. Each test gets its own key prefix (other tests, and other people's runs, share the server) and its keys
are deleted afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

REDIS_URL = os.environ.get("CIELO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_or_skip() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
    except (redis.RedisError, OSError) as exc:
        pytest.skip(f"no Redis answers at {REDIS_URL} (set CIELO_TEST_REDIS_URL): {type(exc).__name__}")
    return REDIS_URL


@contextmanager
def prefix_in(url: str) -> Iterator[str]:
    """A fresh key prefix; every key under it is deleted at the end."""
    prefix = f"cielo-test-{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
