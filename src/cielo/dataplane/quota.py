"""Per-deployment rate limits from the deployment's sku capacity
(learn.microsoft.com/azure/ai-services/openai/how-to/quota).

Two fixed windows, as ARM's `rateLimits` states them: `request` (count per 10 s; 6 RPM per 1,000 TPM) and
`token` (capacity x 1,000 per 60 s). Tokens are charged at admission from the estimate (prompt + max_tokens
for each choice of each prompt), so a large max_tokens uses headroom even when the answer is short, as in
Azure. A request whose estimate exceeds the whole per-minute token limit could never be admitted: it is
refused as such (`limit="size"`), not told to retry. A chat request that leaves max_tokens open reserves the
model's context, and gives back what it did not generate when it ends (`QuotaLimiter.settle`, called by the data
plane), as Microsoft describes Azure's inferred reservation: "If max_tokens isn't provided, the maximum possible
value of the model context size will be inferred for the request's quota reservation ... extra TPM pressure will
be applied until the request finishes" (learn.microsoft.com/answers/questions/1381398). A request that names
max_tokens is charged its estimate for the window, as the quota page documents.

The windows live behind `QuotaCounter`, one atomic check-and-charge per request, so that every worker of a
server admits against the same numbers: `LocalQuotaCounter` for one process, `SharedQuotaCounter` (a
memory-mapped file, each deployment's slot under its own record lock) for the workers of one server, and
`cielo.shared.quota.RedisQuotaCounter` (`--redis-url`) for replicas on several hosts: one Lua script over the
same four numbers per deployment.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import math
import mmap
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cielo.core.clock import Clock

log = logging.getLogger("cielo")


@dataclass(frozen=True)
class Limits:
    requests: int
    request_period: int
    tokens: int
    token_period: int

    @classmethod
    def from_rate_limits(cls, rate_limits: list[dict[str, Any]]) -> Limits:
        rules = {str(r["key"]): (int(r["count"]), int(r["renewalPeriod"])) for r in rate_limits}
        requests, request_period = rules.get("request", (10**9, 10))
        tokens, token_period = rules.get("token", (10**12, 60))
        return cls(requests, request_period, tokens, token_period)


@dataclass(frozen=True)
class Admission:
    allowed: bool
    remaining_requests: int
    remaining_tokens: int
    retry_after_s: float = 0.0
    limit: str = ""  # "request" | "token" when refused for now; "size" when the request can never fit
    token_limit: int = 0
    charged: int = 0  # tokens reserved by an admitted request
    token_window: float = 0.0  # the start of the token window they were charged to


# One deployment's windows: (request window start, requests used, token window start, tokens used).
State = tuple[float, int, float, int]
EMPTY_STATE: State = (0.0, 0, 0.0, 0)


def decide(state: State, limits: Limits, tokens: int, now: float) -> tuple[State | None, Admission]:
    """The rule every counter applies atomically: count one request and `tokens` if both fit their current
    windows. Returns the new state (None when unchanged) and the answer. A window stored by a process whose
    clock read came later is kept (never reset to an earlier one), so racing readers cannot lose counts."""
    req_start, req_used, tok_start, tok_used = state
    start = math.floor(now / limits.request_period) * limits.request_period
    if start > req_start:
        req_start, req_used = float(start), 0
    start = math.floor(now / limits.token_period) * limits.token_period
    if start > tok_start:
        tok_start, tok_used = float(start), 0
    if req_used + 1 > limits.requests:
        return None, Admission(False, 0, max(0, limits.tokens - tok_used),
                               max(0.0, req_start + limits.request_period - now), "request", limits.tokens)
    if tok_used + tokens > limits.tokens:
        return None, Admission(False, limits.requests - req_used, max(0, limits.tokens - tok_used),
                               max(0.0, tok_start + limits.token_period - now), "token", limits.tokens)
    req_used += 1
    tok_used += tokens
    return (req_start, req_used, tok_start, tok_used), Admission(
        True, limits.requests - req_used, limits.tokens - tok_used, token_limit=limits.tokens, charged=tokens,
        token_window=tok_start)


def give_back(state: State, token_window: float, tokens: int) -> State | None:
    """`tokens` returned to the window they were charged to; None (nothing changes) once that window has ended."""
    req_start, req_used, tok_start, tok_used = state
    if tok_start != token_window or tokens <= 0:
        return None
    return req_start, req_used, tok_start, max(0, tok_used - tokens)


class QuotaCounter(Protocol):
    """Atomically: if one more request and `tokens` more tokens fit `key`'s current windows, count them."""

    def charge(self, key: str, limits: Limits, tokens: int, now: float) -> Admission: ...

    def refund(self, key: str, token_window: float, tokens: int) -> None:
        """Give back `tokens` charged to `key`'s token window starting at `token_window`, if it is still current."""

    def close(self) -> None: ...


class LocalQuotaCounter:
    """The windows in this process's memory: exact for a server with one worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, State] = {}

    def charge(self, key: str, limits: Limits, tokens: int, now: float) -> Admission:
        with self._lock:
            new, admission = decide(self._states.get(key, EMPTY_STATE), limits, tokens, now)
            if new is not None:
                self._states[key] = new
            return admission

    def refund(self, key: str, token_window: float, tokens: int) -> None:
        with self._lock:
            state = self._states.get(key)
            new = give_back(state, token_window, tokens) if state is not None else None
            if new is not None:
                self._states[key] = new

    def close(self) -> None:
        self._states.clear()


_MAGIC = b"CIELOQUOTA1\0"
_HEADER = 64
_DIGEST = 16
_SLOT_SIZE = 64  # a key digest, then the state
_STATE = struct.Struct("<dqdqd")  # request window start, used; token window start, used; both end at
_FREE = bytes(_DIGEST)


class SharedQuotaCounter:
    """The windows in a memory-mapped file that every worker of a server maps: exact across processes.

    Slots form an open-addressing table keyed by a BLAKE2b digest of the deployment key; a slot whose windows
    have both ended is reused by a new key, so deleted deployments do not fill the table. Locks are POSIX record
    locks on byte ranges of the file (the kernel drops them if the holder dies, so a killed worker cannot wedge
    the others): a charge locks only its key's 64-byte slot, so workers charging different deployments do not
    wait for each other (one lock for the whole file made them queue; docs/benchmarks.md). Finding or claiming
    a slot for a key a process has not used yet also takes the table lock (the header's bytes) first. Record
    locks belong to processes, so each process opens the file itself (after a fork too) and a thread lock
    orders the threads of one process.
    """

    _RETRIES = 16  # claims of a slot that came back to life while it was being claimed, before giving up

    def __init__(self, path: Path, slots: int = 16384) -> None:
        self._path = path
        self._slots = slots
        self._size = _HEADER + slots * _SLOT_SIZE
        self._lock = threading.Lock()
        self._pid = 0
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._where: dict[str, tuple[bytes, int]] = {}
        self._warned = False
        self._open()

    def _open(self) -> None:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        header = _MAGIC + self._slots.to_bytes(4, "little")
        fcntl.lockf(fd, fcntl.LOCK_EX, 0, 0)  # the whole file, however long it grows
        try:
            if os.fstat(fd).st_size < self._size:
                os.ftruncate(fd, self._size)  # grows with zeros: an empty table
            if os.pread(fd, len(header), 0) != header:
                os.pwrite(fd, bytes(self._size), 0)
                os.pwrite(fd, header, 0)
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 0, 0)
        self._map = mmap.mmap(fd, self._size)
        self._fd = fd
        self._pid = os.getpid()
        self._where = {}

    def charge(self, key: str, limits: Limits, tokens: int, now: float) -> Admission:
        with self._lock:
            if self._pid != os.getpid():  # a forked child: record locks are the process's, not its parent's
                self._open()
            assert self._map is not None
            cached = self._where.get(key)
            if cached is not None:
                digest, offset = cached
                fcntl.lockf(self._fd, fcntl.LOCK_EX, _SLOT_SIZE, offset)
                try:
                    if self._map[offset:offset + _DIGEST] == digest:
                        return self._charge_at(offset, limits, tokens, now)
                finally:
                    fcntl.lockf(self._fd, fcntl.LOCK_UN, _SLOT_SIZE, offset)
            fcntl.lockf(self._fd, fcntl.LOCK_EX, _HEADER, 0)
            try:
                found = self._slot(key, now)  # its slot lock is held
                if found is None:
                    return self._table_full(limits)
                try:
                    return self._charge_at(found, limits, tokens, now)
                finally:
                    fcntl.lockf(self._fd, fcntl.LOCK_UN, _SLOT_SIZE, found)
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, _HEADER, 0)

    def _charge_at(self, offset: int, limits: Limits, tokens: int, now: float) -> Admission:
        assert self._map is not None
        req_start, req_used, tok_start, tok_used, _ = _STATE.unpack_from(self._map, offset + _DIGEST)
        new, admission = decide((req_start, req_used, tok_start, tok_used), limits, tokens, now)
        if new is not None:
            expires = max(new[0] + limits.request_period, new[2] + limits.token_period)
            _STATE.pack_into(self._map, offset + _DIGEST, *new, expires)
        return admission

    def refund(self, key: str, token_window: float, tokens: int) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._open()
            assert self._map is not None
            cached = self._where.get(key)
            if cached is None:  # this process never charged it: nothing of its own to give back
                return
            digest, offset = cached
            fcntl.lockf(self._fd, fcntl.LOCK_EX, _SLOT_SIZE, offset)
            try:
                if self._map[offset:offset + _DIGEST] != digest:
                    return  # the slot went to another key: its window ended long ago
                *state, expires = _STATE.unpack_from(self._map, offset + _DIGEST)
                new = give_back((state[0], int(state[1]), state[2], int(state[3])), token_window, tokens)
                if new is not None:
                    _STATE.pack_into(self._map, offset + _DIGEST, *new, expires)
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, _SLOT_SIZE, offset)

    def _slot(self, key: str, now: float) -> int | None:
        """The offset of `key`'s slot (claimed if it has none), with the slot's lock taken; None if the table is
        full. Called with the table lock held: only a holder of it writes a slot's digest."""
        assert self._map is not None
        digest = hashlib.blake2b(key.encode(), digest_size=_DIGEST).digest()
        if digest == _FREE:
            digest = b"\1" + digest[1:]
        first = int.from_bytes(digest[:8], "little") % self._slots
        for _ in range(self._RETRIES):
            reusable: int | None = None
            target: int | None = None
            for step in range(self._slots):
                offset = _HEADER + (first + step) % self._slots * _SLOT_SIZE
                found = self._map[offset:offset + _DIGEST]
                if found == digest:
                    fcntl.lockf(self._fd, fcntl.LOCK_EX, _SLOT_SIZE, offset)
                    self._where[key] = (digest, offset)
                    return offset
                if found == _FREE:
                    target = offset if reusable is None else reusable
                    break
                if reusable is None and self._expires(offset) <= now:
                    reusable = offset
            target = target if target is not None else reusable
            if target is None:
                return None
            fcntl.lockf(self._fd, fcntl.LOCK_EX, _SLOT_SIZE, target)
            if self._map[target:target + _DIGEST] != _FREE and self._expires(target) > now:
                # its key charged it again between the look and the lock: look again
                fcntl.lockf(self._fd, fcntl.LOCK_UN, _SLOT_SIZE, target)
                continue
            self._map[target:target + _DIGEST] = digest
            _STATE.pack_into(self._map, target + _DIGEST, *EMPTY_STATE, 0.0)
            self._where[key] = (digest, target)
            return target
        return None

    def _expires(self, offset: int) -> float:
        assert self._map is not None
        expires: float = _STATE.unpack_from(self._map, offset + _DIGEST)[4]
        return expires

    def _table_full(self, limits: Limits) -> Admission:
        # More deployments active within one minute than slots: admit rather than refuse everyone.
        if not self._warned:
            log.warning("quota table %s is full: deployments beyond it are not rate limited", self._path)
            self._warned = True
        return Admission(True, limits.requests, limits.tokens, token_limit=limits.tokens)

    def close(self) -> None:
        with self._lock:
            if self._map is not None:
                self._map.close()
                self._map = None
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def counter_for(workers: int, data_dir: Path) -> QuotaCounter:
    """In this process for one worker; shared through the data directory for several."""
    if workers <= 1:
        return LocalQuotaCounter()
    return SharedQuotaCounter(data_dir / "quota-counters.bin")


class QuotaLimiter:
    """Admits data-plane requests against their deployment's `rateLimits`, through one `QuotaCounter`."""

    def __init__(self, clock: Clock, counter: QuotaCounter | None = None) -> None:
        self._clock = clock
        self._counter: QuotaCounter = counter or LocalQuotaCounter()
        # Parsed limits per deployment, kept while the index serves the same `rateLimits` list.
        self._limits: dict[str, tuple[list[dict[str, Any]], Limits]] = {}

    def admit(self, deployment_key: str, rate_limits: list[dict[str, Any]], tokens: int) -> Admission:
        cached = self._limits.get(deployment_key)
        if cached is None or cached[0] is not rate_limits:
            cached = (rate_limits, Limits.from_rate_limits(rate_limits))
            self._limits[deployment_key] = cached
        limits = cached[1]
        if tokens > limits.tokens:
            # Larger than the whole minute's budget: no wait would ever let it through (a 400, not a 429).
            return Admission(False, 0, 0, 0.0, "size", limits.tokens)
        return self._counter.charge(deployment_key, limits, tokens, self._clock.now())

    def settle(self, deployment_key: str, admission: Admission, used_tokens: int) -> None:
        """The request admitted with `admission` has ended having used `used_tokens` (prompt and completion):
        the rest of its reservation goes back to its window, if that window is still the current one."""
        if admission.allowed and used_tokens < admission.charged:
            self._counter.refund(deployment_key, admission.token_window, admission.charged - used_tokens)

    def close(self) -> None:
        self._counter.close()
