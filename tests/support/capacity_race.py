"""Deployment PUTs racing for one subscription's per-model capacity quota (QUOTA_CAPACITY_PER_MODEL), through the
real `ResourceService` on a real database: threads of one process, several engines (replicas) in one process, or
several processes (workers), each with engines of their own. Used by tests/unit/store/test_capacity_lock.py
(SQLite) and tests/postgres/test_pg_capacity_lock.py.

`WideWindowService` sleeps between reading the capacity in use and returning it, so that without the lock every
racer would read the same total and all of them would pass the check: the tests fail then (see the report in
test_capacity_lock.py's docstring for how that was checked)."""

from __future__ import annotations

import base64
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable
from multiprocessing.synchronize import Barrier as ProcessBarrier
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from cielo.control.resources import DEPLOYMENT_TYPE, QUOTA_CAPACITY_PER_MODEL, ResourceService, ResourceWriter
from cielo.core.arm_ids import ResourceId
from cielo.core.clock import FrozenClock
from cielo.core.sealing import Sealer
from cielo.errors import InsufficientQuota
from cielo.store.db import open_engine
from cielo.store.resources import ResourceRepo

SUB = "11111111-1111-4111-8111-111111111111"
GROUP = "rg"
ACCOUNT = "acct"
LOCATION = "eastus"
MODEL = {"format": "HuggingFace", "name": "SmolLM2-135M-Instruct", "version": "1"}
CAPACITY = 200
FIT = QUOTA_CAPACITY_PER_MODEL // CAPACITY  # how many of the racers' deployments the quota holds
RACERS = FIT + 3  # more than the quota holds
WRITER = ResourceWriter("tester", "User")
WINDOW_S = 0.02  # the sleep between reading the capacity in use and checking it: a race's window, held open
SEALING_KEY = base64.urlsafe_b64encode(bytes(range(32)))  # a Fernet key, for the tests only


class WideWindowService(ResourceService):
    """The service, with the window between the read of the capacity in use and the write held open."""

    def capacity_used(self, subscription: str, location: str, exclude_key: str | None = None) -> dict[str, int]:
        used = super().capacity_used(subscription, location, exclude_key)
        time.sleep(WINDOW_S)
        return used


def service(engine: Engine) -> ResourceService:
    return WideWindowService(ResourceRepo(engine), Sealer(key=SEALING_KEY), FrozenClock(1_000.0), "https://cielo.test")


def make_account(engine: Engine, location: str = LOCATION, group: str = GROUP, account: str = ACCOUNT) -> None:
    svc = service(engine)
    svc.put_group(SUB, group, {"location": location}, WRITER)
    svc.put_account(ResourceId(SUB, group, "Microsoft.CognitiveServices", ("accounts",), (account,)),
                    {"location": location, "kind": "OpenAI", "sku": {"name": "S0"}, "properties": {}}, WRITER)


def deployment_id(name: str, group: str = GROUP, account: str = ACCOUNT) -> ResourceId:
    return ResourceId(SUB, group, "Microsoft.CognitiveServices", ("accounts", "deployments"), (account, name))


def put(svc: ResourceService, name: str, capacity: int = CAPACITY, *, group: str = GROUP,
        account: str = ACCOUNT) -> str:
    """One deployment PUT: "ok", or the code of the error it raised."""
    try:
        svc.put_deployment(deployment_id(name, group, account),
                           {"sku": {"name": "Standard", "capacity": capacity}, "properties": {"model": MODEL}},
                           WRITER)
    except InsufficientQuota as exc:
        return exc.code
    return "ok"


def race(actions: list[Callable[[], str]]) -> list[str]:
    """The actions in threads started together; their results (an exception other than the quota's is re-raised)."""
    barrier = threading.Barrier(len(actions))
    results: list[Any] = [None] * len(actions)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = actions[i]()
        except BaseException as exc:  # handed to the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(actions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


def race_engines(engine: Engine, open_other: Callable[[], Engine], count: int = 3) -> list[str]:
    """RACERS PUTs spread over `engine` and `count - 1` more engines from `open_other` (as the workers of one server,
    or as replicas): the engines share no process-local lock, only the database's."""
    others = [open_other() for _ in range(count - 1)]
    try:
        services = [service(e) for e in (engine, *others)]
        return race([lambda i=i: put(services[i % count], f"d{i}") for i in range(RACERS)])  # type: ignore[misc]
    finally:
        for other in others:
            other.dispose()


def stored_capacity(engine: Engine, location: str = LOCATION) -> int:
    """The capacity the subscription's deployments of the model hold in `location`, as stored."""
    repo = ResourceRepo(engine)
    return sum(int((d.sku or {}).get("capacity", 0))
               for d in repo.list_resources(subscription_id=SUB, type_=DEPLOYMENT_TYPE) if d.location == location)


# ----------------------------------------------------------------------------- several processes
def _worker(database: str, index: int, threads: int, barrier: ProcessBarrier,
            results: multiprocessing.Queue[list[str]]) -> None:
    """A worker process: an engine of its own on the shared database, `threads` PUTs racing from it."""
    engine = open_engine(Path(database.removeprefix("sqlite:")) if database.startswith("sqlite:") else database)
    try:
        svc = service(engine)
        actions: list[Callable[[], str]] = [
            lambda n=f"p{index}t{t}": put(svc, n) for t in range(threads)]  # type: ignore[misc]
        barrier.wait()
        results.put(race(actions))
    finally:
        engine.dispose()


def race_processes(database: str, processes: int, threads: int) -> list[str]:
    """`processes` forked workers, each with its own engine on `database` ("sqlite:{path}" or a server URL) and
    `threads` racing PUTs; every PUT's result."""
    fork = multiprocessing.get_context("fork")
    barrier = fork.Barrier(processes)
    results: multiprocessing.Queue[list[str]] = fork.Queue()
    workers = [fork.Process(target=_worker, args=(database, i, threads, barrier, results)) for i in range(processes)]
    for w in workers:
        w.start()
    collected: list[str] = []
    try:
        for _ in workers:
            while True:
                try:
                    collected += results.get(timeout=0.5)
                    break
                except queue.Empty:
                    failed = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
                    assert not failed, f"a worker failed: exit codes {failed}"
    finally:
        for w in workers:
            w.join(timeout=30)
    assert all(w.exitcode == 0 for w in workers), [w.exitcode for w in workers]
    return collected
