"""The per-subscription, per-location, per-model deployment capacity quota holds under concurrent PUTs on SQLite:
the quota check and the write run under `ResourceRepo.capacity_lock`, so racers from threads, from several engines
on one file and from several worker processes cannot together hold more than QUOTA_CAPACITY_PER_MODEL.

Every race goes through `WideWindowService` (tests/support/capacity_race.py), which holds the window between the
read of the capacity in use and the write open: with `capacity_lock` replaced by a no-op, each of these races lets
every racer through (8 of 8 in threads, 9 of 9 across processes) and the tests fail."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

from cielo.control.resources import QUOTA_CAPACITY_PER_MODEL
from cielo.store.datadir import open_database
from cielo.store.db import open_engine
from cielo.store.resources import ResourceRepo, sqlite_lock_path
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
def engine(tmp_path: Path) -> Engine:
    engine, _ = open_database(tmp_path, tmp_path / "cielo.db")
    make_account(engine)
    return engine


def test_the_racers_assume_a_quota_they_can_overrun() -> None:
    assert FIT * CAPACITY == QUOTA_CAPACITY_PER_MODEL and RACERS > FIT


def test_threads_racing_get_exactly_what_the_quota_holds(engine: Engine) -> None:
    svc = service(engine)
    actions: list[Callable[[], str]] = [lambda n=f"d{i}": put(svc, n) for i in range(RACERS)]  # type: ignore[misc]
    results = race(actions)
    assert results.count("ok") == FIT
    assert results.count("InsufficientQuota") == RACERS - FIT
    assert stored_capacity(engine) == QUOTA_CAPACITY_PER_MODEL


def test_updates_racing_new_deployments_never_exceed_the_quota(engine: Engine) -> None:
    """Deployments that grow race new ones: whatever order they are served in, the total stays within the
    quota and nothing that fits is refused."""
    svc = service(engine)
    for name in ("grow-a", "grow-b"):
        assert put(svc, name) == "ok"  # 400 of 1000
    actions: list[Callable[[], str]] = [
        lambda: put(svc, "grow-a", 400), lambda: put(svc, "grow-b", 400),  # +400 together
        *[lambda n=f"n{i}": put(svc, n) for i in range(4)],  # type: ignore[misc]  # +800 together
    ]
    results = race(actions)
    # Each PUT asks for 200 more, 1,200 in all against the 600 left: exactly three are served, in any order.
    assert results.count("ok") == 3 and results.count("InsufficientQuota") == 3
    assert stored_capacity(engine) == QUOTA_CAPACITY_PER_MODEL


def test_engines_on_one_file_racing_get_exactly_what_the_quota_holds(engine: Engine, tmp_path: Path) -> None:
    """Several engines on one database file (as the workers of one server): their threads do not share a
    process-local lock, only the lock file beside the database."""
    results = race_engines(engine, lambda: open_engine(tmp_path / "cielo.db"))
    assert results.count("ok") == FIT
    assert stored_capacity(engine) == QUOTA_CAPACITY_PER_MODEL


def test_worker_processes_racing_get_exactly_what_the_quota_holds(engine: Engine, tmp_path: Path) -> None:
    results = race_processes(f"sqlite:{tmp_path / 'cielo.db'}", processes=3, threads=3)
    assert len(results) == 9
    assert results.count("ok") == FIT
    assert results.count("InsufficientQuota") == 9 - FIT
    assert stored_capacity(engine) == QUOTA_CAPACITY_PER_MODEL


def test_the_lock_file_is_beside_the_database_and_private(engine: Engine, tmp_path: Path) -> None:
    assert put(service(engine), "one") == "ok"
    lock = tmp_path / "cielo.db-capacity.lock"
    assert sqlite_lock_path(engine) == lock
    assert lock.exists() and lock.stat().st_mode & 0o077 == 0


def test_an_in_memory_database_needs_no_lock_file() -> None:
    engine = open_engine("sqlite://")
    assert sqlite_lock_path(engine) is None
    assert sqlite_lock_path(open_engine("sqlite:///file::memory:?uri=true")) is None
    with ResourceRepo(engine).capacity_lock(SUB, "eastus"):
        pass


def test_the_lock_is_released_when_the_check_fails(engine: Engine) -> None:
    """A refused PUT (InsufficientQuota raised inside the lock) leaves the lock free for the next one."""
    svc = service(engine)
    assert put(svc, "big", QUOTA_CAPACITY_PER_MODEL) == "ok"
    assert put(svc, "more") == "InsufficientQuota"
    done = threading.Event()

    def take() -> None:
        with ResourceRepo(engine).capacity_lock(SUB, "eastus"):
            done.set()

    t = threading.Thread(target=take, daemon=True)
    t.start()
    t.join(timeout=30)
    assert done.is_set()
