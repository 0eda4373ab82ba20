"""Change markers for replicas: a counter per marker in Redis, pushed to every process over pub/sub.

`RedisGeneration.bump()` increments the marker's counter and publishes the new value in one script (one round
trip). Each process keeps the values it has seen in memory, fed by its subscription to the change channel, so
`token()` — which caches call on every request, several times — costs no round trip: it polls the subscription's
socket without waiting (one `poll` system call) and reads what has arrived before answering. The writer follows
its bump with a PING: Redis answers that only after it has written the change to every subscriber's socket, so a
request that reaches any replica after the write was answered sees it: a role change applies to the next request
everywhere, not "soon" (over a network, the change is then in flight to the replica ahead of the writer's
answer to its client). A listener
thread reads the subscription between requests too, and compares every value with Redis each `reconcile_s` (one
MGET), which bounds how late a lost message can make a change.

Failing closed: while the listener is not subscribed (Redis down, the connection lost), `token()` raises
`SharedStateUnavailable`, so no request is answered from a cache that might have missed a change (a revoked role,
a disabled user). On reconnecting, the listener reads every counter again and starts a new epoch (the second half
of the token), so every cache reloads once whatever it missed. A bump that could not reach Redis is remembered and
sent again by the listener before it calls itself connected: a change written to the database is always announced.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from typing import Any

import redis

from cielo.errors import SharedStateUnavailable
from cielo.shared.connection import redacted, unavailable

log = logging.getLogger("cielo.shared")

# KEYS[1]: the marker's counter. ARGV: the change channel, the marker's name. Returns the new value.
BUMP = """
local value = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2] .. ' ' .. value)
return value
"""


class ChangeFeed:
    """The markers of one process, and the listener thread that keeps them current."""

    def __init__(self, client: redis.Redis, url: str, prefix: str, *, reconcile_s: float = 1.0,
                 first_wait_s: float = 3.0) -> None:
        self._client = client
        self._url = url
        self._prefix = prefix
        self._channel = f"{prefix}:changes"
        self._reconcile_s = reconcile_s
        self._first_wait_s = first_wait_s
        self._bump = client.register_script(BUMP)
        self._lock = threading.Lock()
        self._markers: dict[str, RedisGeneration] = {}
        self._values: dict[str, int] = {}
        self._pending: set[str] = set()
        self._epoch = 0
        self._connected = False
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._pid = 0
        self._thread: threading.Thread | None = None
        # The subscription, shared by the listener and every reader (under `_sub_lock`), and its socket's descriptor.
        self._sub_lock = threading.Lock()
        self._pubsub: Any = None
        self._fd = -1
        self._local = threading.local()  # a poll object per thread (one may not be polled by two threads at once)

    # ----------------------------------------------------------------- markers
    def marker(self, name: str) -> RedisGeneration:
        with self._lock:
            found = self._markers.get(name)
            if found is None:
                found = self._markers[name] = RedisGeneration(self, name)
            return found

    def _key(self, name: str) -> str:
        return f"{self._prefix}:gen:{name}"

    def token(self, name: str) -> tuple[int, int]:
        if not self._connected or self._pid != os.getpid():
            self._wait_connected()
        # Under the subscription's lock even when nothing waits on the socket: the listener thread may have read the
        # change off the socket already and not applied it yet; taking the lock waits for it to finish.
        with self._sub_lock:
            try:
                if self._announced():
                    self._drain_locked()
            except (redis.RedisError, OSError, ValueError) as exc:
                with self._lock:
                    self._connected = False
                raise unavailable(self._url) from exc
            if not self._connected:
                raise unavailable(self._url)
        return (self._values.get(name, 0), self._epoch)

    def _announced(self) -> bool:
        """Whether the subscription's socket has something to read (a change, or its end), without waiting."""
        fd = self._fd
        if fd < 0:
            return False
        local = self._local
        if getattr(local, "fd", -1) != fd:
            local.poller = select.poll()
            local.poller.register(fd, select.POLLIN)
            local.fd = fd
        return bool(local.poller.poll(0))

    def _drain(self) -> None:
        """Apply every message the subscription holds (raises when its connection has failed)."""
        with self._sub_lock:
            self._drain_locked()

    def _drain_locked(self) -> None:
        pubsub = self._pubsub
        while pubsub is not None:
            message = pubsub.get_message(timeout=0.0)
            if message is None:
                return
            if message.get("type") == "message":
                self._apply(message["data"])

    def bump(self, name: str) -> None:
        try:
            value = int(self._bump(keys=[self._key(name)], args=[self._channel, name]))
            # A second round trip: Redis answers it only after it has written the change to every subscriber's
            # socket (it writes replies and messages before it reads the next command), so once this returns, the
            # change waits on every replica's subscription before the writer's client hears back.
            self._client.ping()
        except (redis.RedisError, OSError) as exc:
            with self._lock:
                self._pending.add(name)  # announced by the listener once Redis answers again
                self._connected = False
            log.warning("Redis (%s): the change of %s could not be announced yet: %s", redacted(self._url), name,
                        type(exc).__name__)
            raise unavailable(self._url) from exc
        with self._lock:
            if value > self._values.get(name, 0):
                self._values[name] = value

    # ----------------------------------------------------------------- the listener
    def _wait_connected(self) -> None:
        started = False
        with self._lock:
            if self._pid != os.getpid():  # first use in this process (a forked worker starts its own)
                self._pid = os.getpid()
                self._connected = False
                self._ready = threading.Event()
                self._stop = threading.Event()
                self._thread = threading.Thread(target=self._listen, name="cielo-change-feed", daemon=True)
                self._thread.start()
                started = True
        if started:
            self._ready.wait(self._first_wait_s)
        if not self._connected:
            raise unavailable(self._url)

    def _listen(self) -> None:
        down_since: float | None = None
        while not self._stop.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self._channel)
                connection: Any = pubsub.connection
                fd = connection._sock.fileno()  # redis-py keeps the socket private; it is only polled here
                waiter = select.poll()
                waiter.register(fd, select.POLLIN)
                with self._sub_lock:
                    self._pubsub, self._fd = pubsub, fd
                self._drain()
                self._sync(reconnected=True)
                if down_since is not None:
                    log.warning("Redis (%s) is reachable again after %.1f s", redacted(self._url),
                                time.monotonic() - down_since)
                    down_since = None
                last = time.monotonic()
                while not self._stop.is_set():
                    wait_ms = max(0, int((last + self._reconcile_s - time.monotonic()) * 1000))
                    if waiter.poll(wait_ms):
                        self._drain()
                    if self._pending or time.monotonic() - last >= self._reconcile_s:
                        self._sync(reconnected=False)
                        last = time.monotonic()
            except (redis.RedisError, OSError, ValueError, AttributeError) as exc:
                with self._lock:
                    self._connected = False
                with self._sub_lock:
                    self._pubsub, self._fd = None, -1
                if down_since is None:
                    down_since = time.monotonic()
                    log.warning("Redis (%s) is unreachable (%s): requests that need the shared state answer 503 "
                                "until it is back", redacted(self._url), type(exc).__name__)
                self._stop.wait(0.2)
            finally:
                with contextlib.suppress(redis.RedisError, OSError):
                    pubsub.close()

    def _sync(self, *, reconnected: bool) -> None:
        """Announce what could not be announced, then read every counter: after a reconnection, as a new epoch."""
        with self._lock:
            pending = sorted(self._pending)
        for name in pending:
            self._bump(keys=[self._key(name)], args=[self._channel, name])
            with self._lock:
                self._pending.discard(name)
        with self._lock:
            names = sorted(self._markers)
        read = self._client.mget([self._key(n) for n in names]) if names else []
        fresh = {n: int(v) if v is not None else 0 for n, v in zip(names, read, strict=True)}
        with self._lock:
            lower = any(fresh[n] < self._values.get(n, 0) for n in names)  # Redis lost its data (a restart)
            if reconnected or lower:
                self._values = fresh
                self._epoch += 1
            else:
                for n, v in fresh.items():
                    if v > self._values.get(n, 0):
                        self._values[n] = v
            self._connected = True
        self._ready.set()

    def _apply(self, data: bytes | str) -> None:
        text = data.decode() if isinstance(data, bytes) else data
        name, _, value = text.rpartition(" ")
        number = int(value)
        with self._lock:
            if number > self._values.get(name, 0):
                self._values[name] = number

    def close(self) -> None:
        self._stop.set()


class RedisGeneration:
    """`cielo.store.generation.ChangeMarker` over the change feed."""

    def __init__(self, feed: ChangeFeed, name: str) -> None:
        self._feed = feed
        self.name = name

    def bump(self) -> None:
        self._feed.bump(self.name)

    def token(self) -> tuple[int, int]:
        return self._feed.token(self.name)


__all__ = ["ChangeFeed", "RedisGeneration", "SharedStateUnavailable"]
