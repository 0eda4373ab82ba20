"""backends/pool.py with scripted members and a hand-moved clock: which member serves, what is failed over and
what is not, circuit breaking (429 for its Retry-After, connect errors at once, other failures after N in a row),
health checks, what the client gets when nothing is left, and streams (failover only before the first chunk)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from cielo.backends.base import (
    BackendError,
    BadUpstreamAnswer,
    ContextLengthExceeded,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from cielo.backends.pool import Member, NoBackendAvailable, PoolBackend, PoolPolicy, UnavailableBackend, retry_after_s


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Scripted:
    """A member that answers with its name, or raises what `errors` holds next (a stream: before or after its
    first chunk, as `mid_stream` says)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.errors: list[BackendError] = []
        self.mid_stream: BackendError | None = None
        self.calls = 0
        self.closed_streams = 0
        self.closed = False

    def _next_error(self) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)

    async def complete(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        self._next_error()
        return {"by": self.name}

    async def stream(self, kind: str, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        try:
            self._next_error()
            yield {"by": self.name, "n": 1}
            if self.mid_stream is not None:
                raise self.mid_stream
            yield {"by": self.name, "n": 2}
        finally:
            self.closed_streams += 1

    async def embed(self, inputs: list[str]) -> tuple[list[list[float]], int]:
        self._next_error()
        return [[float(len(self.name))]], 1

    async def close(self) -> None:
        self.closed = True


def pool(*specs: tuple[str, int, float], policy: PoolPolicy | None = None,
         seed: int = 7) -> tuple[PoolBackend, dict[str, Scripted], Clock]:
    clock = Clock()
    backends = {name: Scripted(name) for name, _, _ in specs}
    members = [Member(f"http://{name}", backends[name], priority, weight) for name, priority, weight in specs]
    return PoolBackend("m", members, policy or PoolPolicy(health_interval_s=0), clock=clock,
                       rng=random.Random(seed)), backends, clock


def rate_limited(ms: int) -> BackendError:
    return BackendError("slow down", status=429, code="429", headers={"retry-after": "9", "retry-after-ms": str(ms)})


async def test_the_lowest_priority_number_serves_while_it_is_available() -> None:
    p, _, _ = pool(("a", 1, 1), ("b", 0, 1), ("c", 2, 1))
    assert [(await p.complete("chat", {}))["by"] for _ in range(20)] == ["b"] * 20


async def test_members_of_one_priority_share_requests_by_weight() -> None:
    p, _, _ = pool(("a", 0, 1), ("b", 0, 3), ("spare", 1, 100))
    served = Counter([(await p.complete("chat", {}))["by"] for _ in range(4000)])
    assert served["spare"] == 0
    assert 0.70 < served["b"] / 4000 < 0.80  # 3/4, drawn from a seeded generator


@pytest.mark.parametrize("error", [
    UpstreamUnreachable("refused"), UpstreamUnreachable("no connection in time", timed_out=True),
    BadUpstreamAnswer("answered 500"), UpstreamTimeout("no answer"),
    BackendError("credential refused", status=502, code="UpstreamAuthenticationFailed"),
    BackendError("secret unset", status=503, code="ModelUnavailable"), rate_limited(2000)])
async def test_a_backend_fault_fails_over_to_the_next(error: BackendError) -> None:
    p, b, _ = pool(("a", 0, 1), ("b", 1, 1))
    b["a"].errors = [error]
    assert (await p.complete("chat", {}))["by"] == "b"
    p, b, _ = pool(("a", 0, 1), ("bb", 1, 1))
    b["a"].errors = [error]
    assert (await p.embed(["x"]))[0] == [[2.0]]  # bb's answer
    assert b["a"].calls == 1


@pytest.mark.parametrize("error", [ContextLengthExceeded("too long"),
                                   BackendError("bad schema", status=400, code="BadRequest")])
async def test_the_requests_own_fault_is_not_failed_over(error: BackendError) -> None:
    p, b, _ = pool(("a", 0, 1), ("b", 1, 1))
    b["a"].errors = [error]
    with pytest.raises(BackendError) as raised:
        await p.complete("chat", {})
    assert raised.value is error
    assert b["b"].calls == 0


async def test_a_429_takes_the_member_out_for_its_retry_after_ms() -> None:
    p, b, clock = pool(("a", 0, 1), ("b", 1, 1))
    b["a"].errors = [rate_limited(2500)]
    assert (await p.complete("chat", {}))["by"] == "b"
    clock.now += 2.4
    assert (await p.complete("chat", {}))["by"] == "b"
    assert b["a"].calls == 1
    clock.now += 0.2
    assert (await p.complete("chat", {}))["by"] == "a"


async def test_a_refused_connection_opens_the_circuit_at_once_for_the_cooldown() -> None:
    p, b, clock = pool(("a", 0, 1), ("b", 1, 1), policy=PoolPolicy(cooldown_s=30, health_interval_s=0))
    b["a"].errors = [UpstreamUnreachable("refused")]
    await p.complete("chat", {})
    clock.now += 29
    assert (await p.complete("chat", {}))["by"] == "b"
    clock.now += 2
    assert (await p.complete("chat", {}))["by"] == "a"  # half-open: tried again


async def test_other_failures_open_the_circuit_after_n_in_a_row_and_an_answer_resets_the_count() -> None:
    p, b, clock = pool(("a", 0, 1), ("b", 1, 1), policy=PoolPolicy(failures=3, cooldown_s=10, health_interval_s=0))
    b["a"].errors = [BadUpstreamAnswer("500"), BadUpstreamAnswer("500")]
    await p.complete("chat", {})
    await p.complete("chat", {})
    assert (await p.complete("chat", {}))["by"] == "a"  # two failures, then an answer: the count starts again
    b["a"].errors = [BadUpstreamAnswer("500")] * 3
    for _ in range(3):
        assert (await p.complete("chat", {}))["by"] == "b"
    calls = b["a"].calls
    assert (await p.complete("chat", {}))["by"] == "b"
    assert b["a"].calls == calls  # out for the cooldown
    clock.now += 10
    b["a"].errors = [BadUpstreamAnswer("500")]
    assert (await p.complete("chat", {}))["by"] == "b"  # half-open: one more failure takes it out again
    assert (await p.complete("chat", {}))["by"] == "b"
    assert b["a"].calls == calls + 1


async def test_every_member_rate_limited_is_a_429_with_the_soonest_retry_after() -> None:
    p, b, clock = pool(("a", 0, 1), ("b", 1, 1))
    b["a"].errors = [rate_limited(4000)]
    b["b"].errors = [rate_limited(1500)]
    with pytest.raises(BackendError) as raised:
        await p.complete("chat", {})
    assert (raised.value.status, raised.value.code) == (429, "429")
    assert raised.value.headers == {"retry-after": "2", "retry-after-ms": "1500"}
    clock.now += 1
    with pytest.raises(BackendError) as raised:  # nothing tried: both still out
        await p.complete("chat", {})
    assert raised.value.status == 429 and raised.value.headers["retry-after-ms"] == "500"
    assert b["a"].calls == b["b"].calls == 1


async def test_one_rate_limited_and_one_failing_member_is_still_a_429() -> None:
    p, b, _ = pool(("a", 0, 1), ("b", 1, 1))
    b["a"].errors = [rate_limited(3000)]
    b["b"].errors = [BadUpstreamAnswer("500")]
    with pytest.raises(BackendError) as raised:
        await p.complete("chat", {})
    assert raised.value.status == 429 and raised.value.headers["retry-after"] == "3"


async def test_every_member_failing_is_the_last_failure_naming_the_pool() -> None:
    p, b, _ = pool(("a", 0, 1), ("b", 1, 1))
    b["a"].errors = [UpstreamUnreachable("refused")]
    b["b"].errors = [BadUpstreamAnswer("The upstream model server answered 500: boom")]
    with pytest.raises(BackendError) as raised:
        await p.complete("chat", {})
    assert (raised.value.status, raised.value.code) == (502, "UpstreamError")
    assert raised.value.message == ("All 2 backends of the model 'm' that were tried failed; the last one: "
                                    "The upstream model server answered 500: boom")
    assert "http://" not in raised.value.message  # the members' URLs stay in the server's log


async def test_no_member_available_is_a_503_with_when_to_retry() -> None:
    p, b, clock = pool(("a", 0, 1), ("b", 1, 1), policy=PoolPolicy(cooldown_s=20, health_interval_s=0))
    b["a"].errors = [UpstreamUnreachable("refused")]
    b["b"].errors = [UpstreamUnreachable("refused")]
    with pytest.raises(BackendError):
        await p.complete("chat", {})
    clock.now += 5
    with pytest.raises(NoBackendAvailable) as raised:
        await p.complete("chat", {})
    assert (raised.value.status, raised.value.code) == (503, "ModelUnavailable")
    assert raised.value.headers["retry-after"] == "15"
    assert "0 of 2 failed their health check, 2 are cooling down" in raised.value.message


async def test_a_member_that_could_not_be_created_is_failed_over() -> None:
    broken = UnavailableBackend(BackendError("secret unset", status=503, code="ModelUnavailable"))
    ok = Scripted("ok")
    p = PoolBackend("m", [Member("x", broken, 0), Member("y", ok, 1)], PoolPolicy(health_interval_s=0))
    assert (await p.complete("chat", {}))["by"] == "ok"
    assert [c["by"] async for c in p.stream("chat", {})] == ["ok", "ok"]


# ----------------------------------------------------------------------------- streams
async def test_a_stream_fails_over_before_its_first_chunk() -> None:
    p, b, _ = pool(("a", 0, 1), ("b", 1, 1))
    b["a"].errors = [BadUpstreamAnswer("500")]
    chunks = [c async for c in p.stream("chat", {})]
    assert chunks == [{"by": "b", "n": 1}, {"by": "b", "n": 2}]
    assert b["a"].closed_streams == 1  # the failed one's generator was closed, not left to the collector


async def test_a_stream_is_never_retried_once_its_first_chunk_is_out() -> None:
    p, b, _ = pool(("a", 0, 1), ("b", 1, 1), policy=PoolPolicy(failures=1, health_interval_s=0))
    b["a"].mid_stream = BadUpstreamAnswer("The upstream model server's stream broke off")
    got = []
    with pytest.raises(BadUpstreamAnswer):
        async for c in p.stream("chat", {}):
            got.append(c)
    assert got == [{"by": "a", "n": 1}]
    assert b["b"].calls == 0
    assert (await p.complete("chat", {}))["by"] == "b"  # the drop counted against a (failures=1: out)


async def test_a_consumer_that_leaves_closes_the_members_stream() -> None:
    p, b, _ = pool(("a", 0, 1))
    stream = p.stream("chat", {})
    assert (await anext(stream))["by"] == "a"
    await stream.aclose()
    assert b["a"].closed_streams == 1


# ----------------------------------------------------------------------------- health checks
async def test_a_failed_health_check_marks_the_member_down_and_a_passing_one_up() -> None:
    answers = {"a": True}

    async def probe() -> None:
        if not answers["a"]:
            raise OSError("connection refused")

    a, b = Scripted("a"), Scripted("b")
    p = PoolBackend("m", [Member("x", a, 0, probe=probe), Member("y", b, 1)], PoolPolicy(health_interval_s=0))
    answers["a"] = False
    await p.check_health()
    assert not p.members[0].healthy
    assert (await p.complete("chat", {}))["by"] == "b"
    answers["a"] = True
    await p.check_health()
    assert (await p.complete("chat", {}))["by"] == "a"


async def test_a_health_check_that_hangs_is_a_failure_after_its_timeout() -> None:
    import asyncio

    async def hang() -> None:
        await asyncio.sleep(30)

    p = PoolBackend("m", [Member("x", Scripted("a"), 0, probe=hang)],
                    PoolPolicy(health_interval_s=0, health_timeout_s=0.05))
    await p.check_health()
    assert not p.members[0].healthy
    with pytest.raises(NoBackendAvailable, match="1 of 1 failed their health check"):
        await p.complete("chat", {})


async def test_health_checks_run_periodically_once_the_pool_is_used_and_stop_when_it_closes() -> None:
    import asyncio

    probes = 0

    async def probe() -> None:
        nonlocal probes
        probes += 1

    p = PoolBackend("m", [Member("x", Scripted("a"), 0, probe=probe)], PoolPolicy(health_interval_s=0.02))
    await asyncio.sleep(0.05)
    assert probes == 0  # not before the first request
    await p.complete("chat", {})
    await asyncio.sleep(0.15)
    assert probes >= 3
    await p.close()
    seen = probes
    await asyncio.sleep(0.06)
    assert probes == seen
    assert p.members[0].backend.closed  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- Retry-After
@pytest.mark.parametrize(("headers", "seconds"), [
    ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5), ({"Retry-After": "7"}, 7.0), ({}, None),
    ({"retry-after": "soon"}, None), ({"retry-after": "999999"}, 3600.0), ({"retry-after-ms": "-5"}, 0.0),
    ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0)])
def test_retry_after_is_read_as_azure_and_rfc_9110_write_it(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_s(headers) == seconds
