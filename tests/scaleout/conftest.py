"""Replicas on this machine (tests/scaleout): three `cielo up --workers 1` on loopback ports sharing one new
PostgreSQL database and the machine's Redis. Skipped, saying why, where either does not answer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from replicas import Cluster, cluster, postgres_database, postgres_unavailable

from support.shared_redis import redis_or_skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/scaleout/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    redis_url = redis_or_skip()
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(reason)
    with postgres_database() as database_url, \
            cluster(tmp_path_factory.mktemp("scaleout"), 3, database_url, redis_url,
                    extra_env={"CIELO_ENABLE_MOCK_MODEL": "true"}) as running:
        yield running
