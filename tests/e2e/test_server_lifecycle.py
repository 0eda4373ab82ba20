"""A server's workers live and die with it, and `cielo up` never shares a port with anything else
(docs/configuration.md, Workers): kill -9 of the parent takes its workers down within a couple of seconds, and
a second `cielo up` on a port something listens on already (a running server, an unrelated program, even
one with SO_REUSEPORT that the kernel would let us bind beside) exits non-zero naming the holder.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cielo.api import server as server_module
from support.processes import alive, children, listening
from support.server import ADMIN_PASSWORD, CieloServer, free_port, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture()
def two_workers(tmp_path: Path) -> Iterator[CieloServer]:
    server = start_server(tmp_path / "data", extra_args=("--workers", "2"))
    workers = children(server.process.pid)
    yield server
    server.stop()
    for pid in workers:  # should a test fail with the workers orphaned, they must not outlive it
        try:
            if str(tmp_path) in Path(f"/proc/{pid}/cmdline").read_text():
                os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _up_again(tmp_path: Path, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    """A second `cielo up` (its own data directory) on `port`: it must refuse, and quickly."""
    env = {**os.environ, "CIELO_ADMIN_PASSWORD": ADMIN_PASSWORD}
    command = [sys.executable, "-m", "cielo.cli.main", "up", "--data-dir", str(tmp_path / "second"),
               "--port", str(port), "--workers", "2", *args]
    out_path, err_path = tmp_path / "second.out", tmp_path / "second.err"
    # Files, not pipes: workers of a server that did start would hold a pipe open after their parent died.
    with open(out_path, "w") as out, open(err_path, "w") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        for pid in [*children(process.pid), process.pid]:
            os.kill(pid, signal.SIGKILL)
        process.wait()
        pytest.fail(f"a second cielo up started on a held port:\n{out_path.read_text()}\n{err_path.read_text()}")
    return subprocess.CompletedProcess(command, process.returncode, out_path.read_text(), err_path.read_text())


def test_kill_9_of_the_parent_takes_the_workers_down(two_workers: CieloServer) -> None:
    workers = children(two_workers.process.pid)
    assert len(workers) == 2, workers
    assert listening(two_workers.port)
    two_workers.process.send_signal(signal.SIGKILL)
    two_workers.process.wait(10)
    deadline = time.monotonic() + 2.5
    # A worker's sockets close a moment after its main thread is a zombie: wait for both.
    while time.monotonic() < deadline and (any(alive(pid) for pid in workers) or listening(two_workers.port)):
        time.sleep(0.05)
    assert not [pid for pid in workers if alive(pid)], "workers outlived their parent"
    assert not listening(two_workers.port), "the port is still served after the server was killed"


def test_a_second_server_on_a_held_port_names_the_holder(two_workers: CieloServer, tmp_path: Path) -> None:
    result = _up_again(tmp_path, two_workers.port)
    assert result.returncode != 0
    assert "Cielo is running" not in result.stdout
    # The listening sockets belong to the workers (the parent closed its copies after forking them).
    named = {int(pid) for pid in re.findall(r"pid (\d+)", result.stderr)}
    assert named and named <= {two_workers.process.pid, *children(two_workers.process.pid)}, result.stderr
    assert f"127.0.0.1:{two_workers.port}" in result.stderr and "cielo.cli.main up" in result.stderr, result.stderr
    # The first server still serves, alone.
    with two_workers.http() as client:
        assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(("address", "reuse_port"), [
    ("127.0.0.1", False),
    ("127.0.0.1", True),  # the kernel would let a SO_REUSEPORT server of the same user bind beside it
    ("0.0.0.0", True),  # a wildcard listener takes 127.0.0.1 too
])
def test_a_port_held_by_another_program_is_refused(tmp_path: Path, address: str, reuse_port: bool) -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        if reuse_port:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind((address, port))
        holder.listen()
        result = _up_again(tmp_path, port)
    assert result.returncode != 0
    assert "Cielo is running" not in result.stdout
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use by pid {os.getpid()} (" in result.stderr, \
        result.stderr
    assert "pytest" in result.stderr or sys.executable in result.stderr, result.stderr


def test_an_orphaned_worker_ends_without_the_death_signal(tmp_path: Path) -> None:
    """The watchdog alone (no prctl, as on systems without it): a worker whose parent is killed exits."""
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:  # the "server": forks a "worker" that watches it, then waits to be killed
        os.close(read_end)
        worker = os.fork()
        if worker == 0:
            try:
                server_module._watch_parent(os.getppid())
            finally:
                os._exit(3)
        os.close(write_end)
        time.sleep(60)
        os._exit(0)
    os.close(write_end)
    time.sleep(1.5)
    os.set_blocking(read_end, False)
    with pytest.raises(BlockingIOError):
        os.read(read_end, 1)  # the worker watches, alive, while its parent lives
    os.kill(middle, signal.SIGKILL)
    os.waitpid(middle, 0)
    killed_at = time.monotonic()
    # The worker holds the pipe's write end: EOF here means it is gone.
    while time.monotonic() - killed_at < 3.0:
        try:
            if os.read(read_end, 1) == b"":
                break
        except BlockingIOError:
            time.sleep(0.05)
    else:
        pytest.fail("the orphaned worker is still running 3 s after its parent died")
    os.close(read_end)
    assert time.monotonic() - killed_at <= 2.5
