"""The change feed (RedisGeneration): a bump on one replica changes the marker on every other within
milliseconds; a lost message is made up by the periodic comparison; while Redis cannot be reached every marker
refuses (503) rather than let a cache serve what may have changed; a bump made meanwhile is announced later."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
import redis

from cielo.errors import SharedStateUnavailable
from cielo.shared.connection import connect
from cielo.shared.feed import ChangeFeed
from support.server import free_port


def feed(url: str, prefix: str, **kwargs: float) -> ChangeFeed:
    return ChangeFeed(connect(url), url, prefix, **kwargs)


def eventually(check: Callable[[], bool], within_s: float) -> float:
    """Seconds until `check()` held; fails after `within_s`."""
    start = time.monotonic()
    while time.monotonic() - start < within_s:
        try:
            if check():
                return time.monotonic() - start
        except SharedStateUnavailable:
            pass
        time.sleep(0.001)
    raise AssertionError(f"not within {within_s} s")


def test_a_bump_reaches_another_replica(redis_url: str, prefix: str) -> None:
    a, b = feed(redis_url, prefix), feed(redis_url, prefix)
    rbac_a, rbac_b, dir_b = a.marker("rbac"), b.marker("rbac"), b.marker("directory")
    seen_a, seen_b, seen_dir = rbac_a.token(), rbac_b.token(), dir_b.token()
    assert seen_a == seen_b
    delays = []
    for _ in range(20):
        rbac_a.bump()
        assert rbac_a.token() != seen_a  # the writer's own next request sees it at once
        seen_a = rbac_a.token()
        delays.append(eventually(lambda: rbac_b.token() == seen_a, 1.0))
    assert dir_b.token() == seen_dir  # other markers are left alone
    assert max(delays) < 0.5, delays
    a.close()
    b.close()


def test_the_next_read_after_a_bump_sees_it(redis_url: str, prefix: str) -> None:
    """No waiting: Redis writes the change to every subscriber before it answers the writer, and a read polls the
    subscription first, so the very next read on another replica (here: another client in this process, with its
    listener thread idle) sees it, every time."""
    a, b = feed(redis_url, prefix, reconcile_s=30), feed(redis_url, prefix, reconcile_s=30)
    writer, reader = a.marker("rbac"), b.marker("rbac")
    reader.token()
    for _ in range(300):
        before = reader.token()
        writer.bump()
        assert reader.token() != before
    a.close()
    b.close()


def test_a_lost_message_is_made_up_by_the_comparison(redis_url: str, prefix: str) -> None:
    b = feed(redis_url, prefix, reconcile_s=0.2)
    marker = b.marker("resources")
    before = marker.token()
    redis.Redis.from_url(redis_url).incr(f"{prefix}:gen:resources")  # changed, never published
    eventually(lambda: marker.token() != before, 2.0)
    b.close()


def test_unreachable_at_start_refuses() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    marker = feed(url, "cielo", first_wait_s=0.05).marker("rbac")
    with pytest.raises(SharedStateUnavailable):
        marker.token()
    with pytest.raises(SharedStateUnavailable):
        marker.bump()


class Proxy:
    """A TCP relay to Redis that the test can cut and restore, as a network failure or a Redis restart would."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        assert self._listener is not None
        self._listener.close()
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self._sockets.clear()


@pytest.fixture()
def proxy(redis_url: str) -> Iterator[Proxy]:
    parsed = urlsplit(redis_url)
    relay = Proxy((parsed.hostname or "127.0.0.1", parsed.port or 6379))
    relay.start()
    yield relay
    relay.cut()


def test_fails_closed_while_redis_is_away_then_recovers(redis_url: str, prefix: str, proxy: Proxy) -> None:
    away = f"redis://127.0.0.1:{proxy.port}/0"
    cut_off, other = feed(away, prefix, reconcile_s=0.2), feed(redis_url, prefix)
    marker, watcher = cut_off.marker("rbac"), other.marker("rbac")
    before = marker.token()
    proxy.cut()
    eventually(lambda: _refuses(marker.token), 3.0)  # no cache may trust what it holds now
    with pytest.raises(SharedStateUnavailable):
        marker.bump()  # a role change stored in the database meanwhile: announced once Redis answers
    watched = watcher.token()
    proxy.start()
    eventually(lambda: marker.token() != before, 5.0)  # a new epoch: every cache reloads once
    eventually(lambda: watcher.token() != watched, 2.0)  # the pending bump reached the other replica
    cut_off.close()
    other.close()


def _refuses(read: Callable[[], object]) -> bool:
    try:
        read()
    except SharedStateUnavailable:
        return True
    return False
