"""`cielo up --workers N` replaces a worker that dies (docs/deployment.md): kill -9 of one worker and the server is
back to N workers, all of them answering; workers that die as they start make the server stop, exiting non-zero,
rather than fork for ever.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from support.processes import children, listening
from support.server import CieloServer, start_server

pytestmark = pytest.mark.e2e


def _live_children(pid: int) -> set[int]:
    return set(children(pid, live_only=True))


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"{what} within {timeout_s} s")


@pytest.fixture()
def two_workers(tmp_path: Path) -> Iterator[CieloServer]:
    server = start_server(tmp_path / "data", extra_args=("--workers", "2"))
    try:
        yield server
    finally:
        seen = _live_children(server.process.pid)
        server.stop()
        for pid in seen:  # should a test fail with workers orphaned, they must not outlive it
            try:
                if str(tmp_path) in Path(f"/proc/{pid}/cmdline").read_text():
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def test_a_killed_worker_is_replaced(two_workers: CieloServer) -> None:
    parent = two_workers.process.pid
    workers = _live_children(parent)
    assert len(workers) == 2, workers
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)

    snapshots: list[set[int]] = []

    def back_to_two() -> bool:
        # One look at /proc per try: the victim may still look alive to a first look and be a zombie by a second.
        snapshots.append(_live_children(parent))
        return len(snapshots[-1]) == 2 and victim not in snapshots[-1]

    _wait_for(back_to_two, 30, "the server did not get back to 2 workers")
    now = snapshots[-1]
    assert len(now - workers) == 1 and (workers - {victim}) <= now, (workers, now)
    assert two_workers.process.poll() is None
    warning = re.search(rf"WARNING.*worker \d+ \(pid {victim}\) exited with signal SIGKILL; starting a replacement",
                        two_workers.log_text())
    assert warning, two_workers.log_text()

    # Every new connection is answered: the kernel spreads them over both workers' sockets, and none of them is a
    # socket of the dead worker still open in another process with nobody accepting on it.
    with httpx.Client(base_url=two_workers.base_url, verify=two_workers.bundle, timeout=10,
                      limits=httpx.Limits(max_keepalive_connections=0)) as client:
        statuses = [client.get("/healthz").status_code for _ in range(50)]
    assert statuses == [200] * 50
    users = two_workers.graph("GET", "/users")
    assert any(user["userPrincipalName"] == "admin@cielo.local" for user in users["value"])
    assert _live_children(parent) == now


def test_workers_dying_as_they_start_stop_the_server(two_workers: CieloServer) -> None:
    """A data directory a new worker cannot open (its quota counters file replaced by a directory) makes every
    replacement die at start: after a few tries the server gives up, stops its other worker, and exits non-zero."""
    parent = two_workers.process.pid
    workers = _live_children(parent)
    assert len(workers) == 2, workers
    counters = two_workers.data_dir / "quota-counters.bin"
    assert counters.is_file()
    counters.rename(counters.with_name("quota-counters.moved"))  # the running workers keep their open file
    counters.mkdir()
    os.kill(min(workers), signal.SIGKILL)

    try:
        code = two_workers.process.wait(60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server still runs 60 s after its workers started dying:\n{two_workers.log_text()}")
    log = two_workers.log_text()
    assert code == 1, log
    assert re.search(r"ERROR.*more than 5 worker restarts within 60 s: workers die as they start; not starting "
                     r"another, stopping the server", log), log
    assert len(re.findall(r"WARNING.*exited with .*; starting a replacement", log)) == 5, log
    assert "Cielo stopped." not in log
    _wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), 10,
              "the surviving worker outlived the server")
    assert not listening(two_workers.port)
