from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.shared_redis import prefix_in, redis_or_skip


@pytest.fixture()
def redis_url() -> str:
    return redis_or_skip()


@pytest.fixture()
def prefix(redis_url: str) -> Iterator[str]:
    with prefix_in(redis_url) as value:
        yield value
