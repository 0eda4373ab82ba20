"""The deployment capacity quota on PostgreSQL, the database replicas share: the quota check and the write run under
a transaction-level advisory lock per subscription and location, so racers from threads, from several engines
(replicas) and from several processes cannot together hold more than QUOTA_CAPACITY_PER_MODEL; a lock that cannot
be had in time fails the PUT, which writes nothing; other locations do not wait. Races go through
`WideWindowService` (tests/support/capacity_race.py), which holds the check's window open."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine

from cielo.control.resources import QUOTA_CAPACITY_PER_MODEL
from cielo.errors import AnotherOperationInProgress
from cielo.store import resources as resource_store
from cielo.store.datadir import open_server_database
from cielo.store.db import open_engine
from cielo.store.resources import ResourceRepo
from postgres.database import temporary_database
from support.capacity_race import (
    CAPACITY,
    FIT,
    RACERS,
    SUB,
    make_account,
    put,
    race,
    race_engines,
    race_processes,
    service,
    stored_capacity,
)


@pytest.fixture()
def database() -> Iterator[tuple[str, Engine]]:
    with temporary_database("cielo_capacity") as url:
        engine, _ = open_server_database(url)
        make_account(engine)
        yield url, engine
        engine.dispose()


def test_threads_racing_get_exactly_what_the_quota_holds(database: tuple[str, Engine]) -> None:
    _, engine = database
    svc = service(engine)
    actions: list[Callable[[], str]] = [lambda n=f"d{i}": put(svc, n) for i in range(RACERS)]  # type: ignore[misc]
    results = race(actions)
    assert results.count("ok") == FIT
    assert results.count("InsufficientQuota") == RACERS - FIT
    assert stored_capacity(engine) == QUOTA_CAPACITY_PER_MODEL


def test_replicas_racing_get_exactly_what_the_quota_holds(database: tuple[str, Engine]) -> None:
    """Three engines (as three replicas): only the advisory lock is shared between them."""
    url, engine = database
    results = race_engines(engine, lambda: open_engine(url))
    assert results.count("ok") == FIT
    assert stored_capacity(engine) == QUOTA_CAPACITY_PER_MODEL


def test_processes_racing_get_exactly_what_the_quota_holds(database: tuple[str, Engine]) -> None:
    url, engine = database
    results = race_processes(url, processes=3, threads=3)
    assert len(results) == 9
    assert results.count("ok") == FIT
    assert stored_capacity(engine) == QUOTA_CAPACITY_PER_MODEL


def test_a_lock_not_had_in_time_fails_the_put_and_writes_nothing(database: tuple[str, Engine],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    url, engine = database
    monkeypatch.setattr(resource_store, "CAPACITY_LOCK_TIMEOUT_MS", 200)
    replica = open_engine(url)
    try:
        # Another replica is checking this location (the names compare case-insensitively).
        with ResourceRepo(engine).capacity_lock(SUB, "EastUS"), \
                pytest.raises(AnotherOperationInProgress, match="retry in a few seconds") as refused:
            put(service(replica), "waits")
        assert (refused.value.status, refused.value.code) == (409, "AnotherOperationInProgress")
        assert stored_capacity(engine) == 0
        assert put(service(replica), "waits") == "ok"  # released with its transaction
        assert stored_capacity(engine) == CAPACITY
    finally:
        replica.dispose()


def test_other_locations_and_subscriptions_do_not_wait(database: tuple[str, Engine]) -> None:
    url, engine = database
    replica = open_engine(url)
    entered: list[str] = []

    def take(subscription: str, location: str) -> None:
        with ResourceRepo(replica).capacity_lock(subscription, location):
            entered.append(f"{subscription}/{location}")

    try:
        with ResourceRepo(engine).capacity_lock(SUB, "eastus"):
            threads = [threading.Thread(target=take, args=args, daemon=True)
                       for args in ((SUB, "westus"), ("22222222-2222-4222-8222-222222222222", "eastus"))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
            assert set(entered) == {"22222222-2222-4222-8222-222222222222/eastus", f"{SUB}/westus"}
    finally:
        replica.dispose()
