"""A pool of backends serving one model: priorities and weights, health checks, failover, circuit breaking.

`PoolBackend` implements the `ModelBackend` protocol over several members (OpenAI-compatible upstreams:
vLLM, llama.cpp's server, Ollama, another Cielo, Azure OpenAI), so the data plane does not know it is
talking to a pool (docs/backend-pools.md).

Which member serves a request: among the members that are available (their last health check passed and
their circuit is closed), those of the lowest `priority` number; among those, one drawn at random in
proportion to its `weight`. When a member fails in a way that is its own fault, the request goes to the next
member drawn the same way from those not yet tried, until one answers or none is left:

- failed over: no connection (refused, reset, not made in time), a 5xx or any other answer that is not an
  OpenAI answer (502 UpstreamError), no answer in the first-byte time (408), a 429, a refused credential,
  a member that could not be created (its secret unset);
- not failed over: a 400 (the request's own fault: an over-long prompt, a bad schema; every member would say
  the same), a client that left (cancellation), and anything in a stream once its first chunk has come back
  (the data plane sends the client its 200 and first events then: a second answer cannot be spliced in).

Circuit breaking, per member: a 429 takes the member out for its `retry-after-ms` / `retry-after` (or
`cooldown_s` without one); a refused or timed-out connection takes it out for `cooldown_s` at once; other
failures do after `failures` in a row. When the time is up the member is tried again; one more failure takes
it out again. Any answer (a 400 too) resets its count.

Health checks, per member: every `health_interval_s`, one cheap request (by default `GET {url}/models` with
the member's credential); a member whose check fails (no 2xx in `health_timeout_s`) is marked down and
gets no requests until a check passes again.

When no member is available: 429 with the soonest `retry-after` when every member is rate limited, else
`503 ModelUnavailable` (with `retry-after` when a circuit will close). When every member tried failed: a 429
(the soonest retry-after) if one of them was rate limited, else the last failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cielo.backends.base import BackendError, ModelBackend, UpstreamUnreachable

log = logging.getLogger("cielo.pool")
Probe = Callable[[], Awaitable[None]]
T = TypeVar("T")
MAX_RETRY_AFTER_S = 3600.0  # a longer retry-after is taken as this (a misconfigured upstream must not park a member)


@dataclass(frozen=True)
class PoolPolicy:
    cooldown_s: float = 30.0
    failures: int = 3
    health_interval_s: float = 10.0  # 0: no health checks
    health_timeout_s: float = 5.0


@dataclass
class Member:
    """One backend of a pool and what the pool knows of it. `label` names it in the server's log (its URL, no
    credential); clients are told its position only."""

    label: str
    backend: ModelBackend
    priority: int = 0
    weight: float = 1.0
    probe: Probe | None = None
    healthy: bool = True
    open_until: float = 0.0  # circuit open (no requests) until this time (the pool's clock)
    throttled: bool = False  # the circuit opened for a 429
    failures: int = 0  # in a row
    last_error: str = field(default="", repr=False)


class NoBackendAvailable(BackendError):
    """503: every member of the pool is down or cooling down."""

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        headers = _retry_headers(retry_after_s) if retry_after_s is not None else None
        super().__init__(message, status=503, code="ModelUnavailable", headers=headers)


class UnavailableBackend:
    """A member that could not be created (e.g. its secret is unset): every call raises that error, so the pool
    fails over to the others, and its health check fails."""

    def __init__(self, error: BackendError) -> None:
        self.error = error

    async def complete(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        raise self.error

    async def stream(self, kind: str, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        raise self.error
        yield {}  # pragma: no cover  (makes this an async generator)

    async def embed(self, inputs: list[str]) -> tuple[list[list[float]], int]:
        raise self.error

    async def probe(self) -> None:
        raise self.error

    async def close(self) -> None:
        return None


def retryable(exc: BackendError) -> bool:
    """Whether another member may serve the request: everything but the request's own fault (a 400)."""
    return exc.status != 400


class PoolBackend:
    def __init__(self, name: str, members: list[Member], policy: PoolPolicy | None = None, *,
                 clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None) -> None:
        if not members:
            raise ValueError("a pool needs at least one backend")
        self.name = name
        self.members = members
        self.policy = policy or PoolPolicy()
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 (spreading load, not a secret)
        self._health_task: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- choosing
    def available(self, member: Member, now: float) -> bool:
        return member.healthy and now >= member.open_until

    def pick(self, tried: list[Member]) -> Member | None:
        """The next member to try: available, not tried yet, of the lowest priority number, drawn by weight."""
        now = self._clock()
        candidates = [m for m in self.members if m not in tried and self.available(m, now)]
        if not candidates:
            return None
        best = min(m.priority for m in candidates)
        group = [m for m in candidates if m.priority == best]
        if len(group) == 1:
            return group[0]
        return self._rng.choices(group, weights=[m.weight for m in group])[0]

    # ----------------------------------------------------------------- what happened
    def succeeded(self, member: Member) -> None:
        member.failures = 0
        member.throttled = False

    def failed(self, member: Member, exc: BackendError) -> None:
        now = self._clock()
        member.failures += 1
        member.last_error = exc.message
        if exc.status == 429:
            self._open(member, now + (retry_after_s(exc.headers) or self.policy.cooldown_s), throttled=True)
        elif isinstance(exc, UpstreamUnreachable) or member.failures >= self.policy.failures:
            self._open(member, now + self.policy.cooldown_s, throttled=False)
        else:
            log.warning("pool %s: backend %s failed (%d in a row): %s", self.name, member.label, member.failures,
                        exc.message)

    def _open(self, member: Member, until: float, *, throttled: bool) -> None:
        member.open_until = until
        member.throttled = throttled
        log.warning("pool %s: backend %s is out for %.1f s (%s): %s", self.name, member.label,
                    until - self._clock(), "rate limited" if throttled else f"{member.failures} failure(s)",
                    member.last_error)

    def _exhausted(self, tried: list[Member], last: BackendError | None) -> BackendError:
        now = self._clock()
        if last is None:  # nothing was available to try
            waiting = [m for m in self.members if m.healthy and m.open_until > now]
            soonest = min((m.open_until - now for m in waiting), default=None)
            if waiting and len(waiting) == len(self.members) and all(m.throttled for m in waiting):
                assert soonest is not None
                return BackendError(f"Every backend of the model '{self.name}' is rate limiting requests; please "
                                    f"retry after {max(1, round(soonest))} seconds.", status=429, code="429",
                                    headers=_retry_headers(soonest))
            down = sum(1 for m in self.members if not m.healthy)
            return NoBackendAvailable(
                f"No backend of the model '{self.name}' is available: {down} of {len(self.members)} failed their "
                f"health check, {len(waiting)} are cooling down after failures. Please retry later.", soonest)
        throttled = [m for m in tried if m.throttled and m.open_until > now]
        if throttled:
            soonest = min(m.open_until - now for m in throttled)
            return BackendError(f"Every backend of the model '{self.name}' that was tried failed or is rate limiting "
                                f"requests; please retry after {max(1, round(soonest))} seconds.", status=429,
                                code="429", headers=_retry_headers(soonest))
        if len(tried) == 1:
            return last
        return BackendError(f"All {len(tried)} backends of the model '{self.name}' that were tried failed; the last "
                            f"one: {last.message}", status=last.status, code=last.code, param=last.param,
                            headers=last.headers)

    # ----------------------------------------------------------------- the ModelBackend protocol
    async def _run(self, call: Callable[[ModelBackend], Awaitable[T]]) -> T:
        self._ensure_health_checks()
        tried: list[Member] = []
        last: BackendError | None = None
        while (member := self.pick(tried)) is not None:
            tried.append(member)
            try:
                result = await call(member.backend)
            except BackendError as exc:
                if not retryable(exc):
                    self.succeeded(member)  # it answered: the request is at fault, not the backend
                    raise
                self.failed(member, exc)
                last = exc
                continue
            self.succeeded(member)
            return result
        raise self._exhausted(tried, last)

    async def complete(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._run(lambda backend: backend.complete(kind, body))

    async def embed(self, inputs: list[str]) -> tuple[list[list[float]], int]:
        return await self._run(lambda backend: backend.embed(inputs))

    async def stream(self, kind: str, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """Fails over until a member's first chunk is in; from then on the answer is that member's, and a failure
        ends the stream (counted against the member, never retried)."""
        self._ensure_health_checks()
        tried: list[Member] = []
        last: BackendError | None = None
        while True:
            member = self.pick(tried)
            if member is None:
                raise self._exhausted(tried, last)
            tried.append(member)
            chunks = member.backend.stream(kind, body)
            try:
                first = await anext(chunks)
            except StopAsyncIteration:
                self.succeeded(member)
                return
            except BackendError as exc:
                await chunks.aclose()
                if not retryable(exc):
                    self.succeeded(member)
                    raise
                self.failed(member, exc)
                last = exc
                continue
            except BaseException:
                await chunks.aclose()
                raise
            break
        self.succeeded(member)
        try:
            yield first
            async for chunk in chunks:
                yield chunk
        except BackendError as exc:
            self.failed(member, exc)
            raise
        finally:
            await chunks.aclose()

    # ----------------------------------------------------------------- health checks
    def _ensure_health_checks(self) -> None:
        """Started with the first request, on its event loop (again on a new loop if the old one is gone)."""
        if self.policy.health_interval_s <= 0 or not any(m.probe for m in self.members):
            return
        loop = asyncio.get_running_loop()
        task = self._health_task
        if task is None or task.done() or task.get_loop() is not loop:
            self._health_task = loop.create_task(self._health_loop(), name=f"pool-health-{self.name}")

    async def _health_loop(self) -> None:
        while True:
            await self.check_health()
            await asyncio.sleep(self.policy.health_interval_s)

    async def check_health(self) -> None:
        """One round of health checks, all members at once."""
        await asyncio.gather(*(self._check(m) for m in self.members if m.probe is not None))

    async def _check(self, member: Member) -> None:
        assert member.probe is not None
        try:
            async with asyncio.timeout(self.policy.health_timeout_s):
                await member.probe()
        except Exception as exc:  # any failure marks it down; what failed goes to the log
            if member.healthy:
                log.warning("pool %s: backend %s is down (health check: %s)", self.name, member.label,
                            _describe(exc))
            member.healthy = False
            return
        if not member.healthy:
            log.warning("pool %s: backend %s is up again (health check passed)", self.name, member.label)
        member.healthy = True

    async def close(self) -> None:
        task, self._health_task = self._health_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                if task.get_loop() is asyncio.get_running_loop():
                    await task
        for member in self.members:
            await member.backend.close()


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds from `retry-after-ms` (Azure OpenAI's) or `retry-after` (RFC 9110 §10.2.3: seconds or an
    HTTP date), at most an hour; None without either."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        if "retry-after-ms" in lowered:
            return min(max(float(lowered["retry-after-ms"]) / 1000, 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        pass
    value = lowered.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), MAX_RETRY_AFTER_S)


def _retry_headers(seconds: float) -> dict[str, str]:
    return {"retry-after": str(max(1, int(seconds + 0.999))), "retry-after-ms": str(max(1, int(seconds * 1000)))}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BackendError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}"[:200]
