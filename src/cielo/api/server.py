"""Running the HTTPS server: one or more worker processes sharing pre-bound sockets."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import errno
import ipaddress
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import os
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from cielo.api.app import create_app
from cielo.errors import PortInUse
from cielo.http.client_gone import WATCH_KEY
from cielo.identity.pki import TlsFiles
from cielo.logging_setup import flush_batched
from cielo.settings import Settings

log = logging.getLogger("cielo")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_TCP_LISTEN = "0A"  # include/net/tcp_states.h: TCP_LISTEN = 10


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted sockets that say so, and
    # without it Nagle's algorithm and delayed ACKs add 40 ms to every TLS response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def listen(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """`bind`, refusing an address something else already listens on. With SO_REUSEPORT the kernel would let
    this server bind beside an earlier one of the same user (its orphaned workers, say), so the check is
    explicit: before binding, and again after (closing the race with a server starting at the same time)."""
    holder = port_holder(host, port)
    if holder:
        raise PortInUse(f"cannot listen on {host}:{port}: the port is in use by {holder}")
    try:
        sock = bind(host, port, reuse_port=reuse_port)
    except OSError as exc:
        holder = port_holder(host, port) if exc.errno == errno.EADDRINUSE else None
        if holder:
            raise PortInUse(f"cannot listen on {host}:{port}: the port is in use by {holder}") from exc
        raise
    holder = port_holder(host, sock.getsockname()[1], ignore={os.fstat(sock.fileno()).st_ino})
    if holder:
        sock.close()
        raise PortInUse(f"cannot listen on {host}:{port}: the port is in use by {holder}")
    return sock


def port_holder(host: str, port: int, ignore: Collection[int] = ()) -> str | None:
    """Who listens on `port` at an address that clashes with `host`, in words ("pid 123 (python -m ...)"), or
    None. Linux: LISTEN sockets from /proc/net/tcp{,6}, their inodes traced to processes through /proc/*/fd
    (other users' processes cannot be traced: "another process"). Elsewhere: a connection attempt."""
    try:
        ours = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM)}
    except (OSError, ValueError):
        ours = set()
    try:
        inodes = _listening_inodes(port, ours)
    except OSError:
        return _answers_connect(host, port)
    inodes -= set(ignore)
    if not inodes:
        return None
    holders = _processes_holding(inodes)
    if not holders:
        return "another process"
    return ", ".join(f"pid {pid} ({command})" for pid, command in sorted(holders.items()))


def _listening_inodes(port: int, ours: set[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> set[int]:
    found: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue  # no IPv6 in this kernel
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            address, _, port_hex = local.partition(":")
            if state != _TCP_LISTEN or int(port_hex, 16) != port or inode == 0:
                continue
            if _clashes(_proc_address(address), ours):
                found.add(inode)
    return found


def _proc_address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """/proc/net/tcp prints addresses as 32-bit words in host byte order."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i:i + 4][::-1] if sys.byteorder == "little" else raw[i:i + 4] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(words)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _clashes(theirs: ipaddress.IPv4Address | ipaddress.IPv6Address,
             ours: set[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> bool:
    # A wildcard on either side takes every address (a dual-stack "::" listener takes IPv4 too).
    return not ours or theirs.is_unspecified or any(a.is_unspecified or a == theirs for a in ours)


def _processes_holding(inodes: set[int]) -> dict[int, str]:
    wanted = {f"socket:[{inode}]" for inode in inodes}
    holders: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue  # another user's process, or gone meanwhile
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue  # this descriptor was closed meanwhile: the process's others still count
            if target in wanted:
                holders[int(entry.name)] = _command(entry)
                break
    return holders


def _command(proc: Path) -> str:
    try:
        words = (proc / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        command = " ".join(w.decode(errors="replace") for w in words) or (proc / "comm").read_text().strip()
    except OSError:
        return "?"
    return command if len(command) <= 160 else command[:157] + "..."


def _answers_connect(host: str, port: int) -> str | None:
    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    try:
        with socket.create_connection((target, port), timeout=1):
            return "another process"
    except OSError:
        return None


class CoalescedWrites:
    """A connection's transport whose writes within one turn of the event loop go out as one write: uvicorn writes
    a response's status line and headers, then its body, each with its own `transport.write`, so every answer
    cost two TLS records and two `send` calls. Here the first write of a turn schedules the flush at the end of
    the turn (`call_soon`), and what was written meanwhile joins it. Closing flushes first. Flow control is the
    wrapped transport's: its buffer fills, and `pause_writing` comes, when the flushed writes do."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        pending = self._pending
        if pending:
            self._pending = []
            if not self._transport.is_closing():
                self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through `CoalescedWrites`, and telling the handlers that watch for it
    when their connection is lost (http/client_gone.py)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[arg-type]
        self.transport = CoalescedWrites(transport, self.loop)  # type: ignore[arg-type, assignment]
        self._gone_watchers: set[Callable[[], None]] = set()
        self._lost = False

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self.scope[WATCH_KEY] = self._watch  # type: ignore[literal-required]  # the request just parsed

    def _watch(self, callback: Callable[[], None]) -> Callable[[], None]:
        if self._lost:
            self.loop.call_soon(callback)
            return _nothing
        watchers = self._gone_watchers
        watchers.add(callback)
        return lambda: watchers.discard(callback)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._lost = True
        watchers, self._gone_watchers = self._gone_watchers, set()
        for callback in watchers:
            callback()


def _nothing() -> None:
    pass


class FlushingServer(uvicorn.Server):
    """uvicorn's server, writing the batched log lines (logging_setup.BatchedLines) once it has shut down: uvicorn
    re-raises the SIGTERM or SIGINT it caught as `run()` returns, which ends the process before any code after
    `run()` or an atexit hook could write them."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().shutdown(sockets)
        finally:
            flush_batched()


def _serve(settings: Settings, tls: TlsFiles, sockets: Sequence[socket.socket]) -> None:
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        http=CoalescingHttpTools,
        ssl_certfile=str(tls.server_cert),
        ssl_keyfile=str(tls.server_key),
        ssl_version=ssl.PROTOCOL_TLS_SERVER,
        log_level=settings.log_level,
        access_log=False,  # Cielo writes its own access log (observability/http.py): one line per request
        timeout_keep_alive=30,
        # Idle keep-alive connections must not hold a shutdown up.
        timeout_graceful_shutdown=3,
        lifespan="off",
    )
    server = FlushingServer(config)
    server.run(sockets=list(sockets))  # uvicorn picks uvloop when it is installed
    if multiprocessing.parent_process() is not None:
        flush_batched()  # the last access lines: os._exit runs no atexit hook
        os._exit(0)  # a worker: do not wait for model threads still generating (see cli/up.py)


def _worker(settings: Settings, tls: TlsFiles, sockets: Sequence[socket.socket], parent: int) -> None:
    # A replacement is forked from the supervisor after it took SIGTERM and SIGINT: a worker answers them as the
    # first workers did (uvicorn installs its own handlers when it starts serving).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _die_with_parent(parent)
    try:
        _serve(settings, tls, sockets)
    finally:
        flush_batched()  # the access log's last lines, if serving failed: a forked worker ends without atexit hooks


def _die_with_parent(parent: int) -> None:
    """A worker must not outlive its server (kill -9 of the parent would leave it serving the port): the
    kernel sends it SIGTERM when the parent dies (Linux prctl PR_SET_PDEATHSIG), and a watchdog thread,
    for other systems and as a fallback, notices the parent gone within a second."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
                log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        except (OSError, AttributeError) as exc:
            log.warning("prctl(PR_SET_PDEATHSIG) unavailable: %s", exc)
    if os.getppid() != parent:
        os._exit(0)  # the parent died before the death signal was armed
    threading.Thread(target=_watch_parent, args=(parent,), name="cielo-parent-watch", daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful shutdown, as for the death signal
    time.sleep(5.0)
    flush_batched()
    os._exit(1)


RESTART_LIMIT = 5  # workers replaced within RESTART_WINDOW_S, at most: more means they die as they start
RESTART_WINDOW_S = 60.0


class RestartBudget:
    """Whether a worker that died may be replaced: at most `limit` replacements within any `window_s` seconds.
    Workers dying faster than that die as they start (a broken model library, a data directory they cannot open),
    and forking more would loop for ever."""

    def __init__(self, limit: int = RESTART_LIMIT, window_s: float = RESTART_WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._restarts: collections.deque[float] = collections.deque()

    def allow(self, now: float) -> bool:
        """Whether to replace a worker that died at `now` (a monotonic clock); an allowed one is counted."""
        while self._restarts and self._restarts[0] <= now - self.window_s:
            self._restarts.popleft()
        if len(self._restarts) >= self.limit:
            return False
        self._restarts.append(now)
        return True


def describe_exit(exitcode: int | None) -> str:
    """A process's end in words, from `multiprocessing.Process.exitcode` (minus the signal that killed it)."""
    if exitcode is None:
        return "an unknown status"
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


class _Supervisor:
    """The parent of the workers: it serves nothing, replaces a worker that dies (each replacement listens on its
    own new SO_REUSEPORT sockets), and forwards SIGTERM/SIGINT to the workers, then waits for them."""

    def __init__(self, settings: Settings, tls: TlsFiles, addresses: Sequence[tuple[str, int]]) -> None:
        self.settings = settings
        self.tls = tls
        self.addresses = list(addresses)
        self.parent = os.getpid()
        self.ctx = multiprocessing.get_context("fork")
        self.workers: dict[int, multiprocessing.process.BaseProcess] = {}
        self.stopping = False
        self.failed = False
        self.budget = RestartBudget()

    def start(self, number: int, own: Sequence[socket.socket]) -> None:
        """Fork worker `number` serving `own`, which this process closes then: each worker must hold only its own
        listening sockets, or a dead worker's would stay open in its siblings and take connections nobody accepts."""
        child = self.ctx.Process(target=_worker, args=(self.settings, self.tls, own, self.parent),
                                 name=f"cielo-worker-{number}", daemon=False)
        try:
            child.start()
        finally:
            for sock in own:
                sock.close()
        self.workers[number] = child
        if self.stopping:  # the stop signal came while it was forked
            self._terminate(child)

    def stop(self, signum: int, _frame: object) -> None:
        if os.getpid() != self.parent:  # a worker forked a moment ago, its own handlers not set yet
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.stopping = True
        for child in list(self.workers.values()):
            self._terminate(child)

    @staticmethod
    def _terminate(child: multiprocessing.process.BaseProcess) -> None:
        if child.pid and child.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)

    def supervise(self) -> None:
        """Until every worker has ended: wait for one to end, and replace it unless the server is stopping."""
        from cielo.observability.metrics import worker_exited

        while self.workers:
            ready = set(multiprocessing.connection.wait([child.sentinel for child in self.workers.values()]))
            for number, child in list(self.workers.items()):
                if child.sentinel not in ready:
                    continue
                child.join()
                del self.workers[number]
                if child.pid:
                    worker_exited(child.pid)
                if not self.stopping:
                    self._replace(number, child)
        if self.failed or not self.stopping:
            raise SystemExit(1)

    def _replace(self, number: int, dead: multiprocessing.process.BaseProcess) -> None:
        ended = f"worker {number} (pid {dead.pid}) exited with {describe_exit(dead.exitcode)}"
        if not self.budget.allow(time.monotonic()):
            log.error("%s, more than %d worker restarts within %g s: workers die as they start; not starting "
                      "another, stopping the server", ended, self.budget.limit, self.budget.window_s)
            self.failed = True
            self.stop(signal.SIGTERM, None)
            return
        try:
            own = [bind(host, port, reuse_port=True) for host, port in self.addresses]
        except OSError as exc:
            log.error("%s; cannot replace it: cannot listen on %s: %s (%d workers left)", ended,
                      ", ".join(f"{host}:{port}" for host, port in self.addresses), exc, len(self.workers))
            return
        log.warning("%s; starting a replacement", ended)
        self.start(number, own)


def run(settings: Settings, tls: TlsFiles, sockets: Sequence[socket.socket]) -> None:
    """Serve until SIGINT/SIGTERM.

    With workers > 1 each worker gets its own listening sockets bound with SO_REUSEPORT (the caller
    binds the first set that way), so the kernel spreads connections across workers. With one shared
    socket, the first event loop to wake accepts a whole burst of connections and the other workers idle.
    The parent supervises them: a worker that dies (kill -9, the OOM killer, a crash in a model library) is
    replaced, unless they die faster than `RestartBudget` allows: then the server stops, exiting 1.
    """
    if settings.workers <= 1:
        _serve(settings, tls, sockets)
        return
    addresses = [(str(s.getsockname()[0]), int(s.getsockname()[1])) for s in sockets]
    supervisor = _Supervisor(settings, tls, addresses)
    # Each set is bound just before its worker is forked and closed here just after, so no worker inherits
    # another's sockets.
    try:
        supervisor.start(1, list(sockets))
        for number in range(2, settings.workers + 1):
            supervisor.start(number, [bind(host, port, reuse_port=True) for host, port in addresses])
    except BaseException:
        supervisor.stop(signal.SIGTERM, None)  # the workers started already must not serve on alone
        for child in supervisor.workers.values():
            child.join()
        raise
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    supervisor.supervise()
