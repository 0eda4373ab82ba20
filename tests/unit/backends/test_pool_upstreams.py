"""A pool of real upstream backends (OpenAICompatBackend, built by the data plane's BackendRegistry from
`--upstream` specs) in front of fake engines on loopback ports that fail in each way an engine fails: connection
refused, 500, 429 with Retry-After, a slow first byte, a stream cut in its middle, a failing health check."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from cielo.backends.base import BackendError, UpstreamTimeouts
from cielo.backends.pool import PoolBackend
from cielo.dataplane.backends import BackendRegistry
from cielo.dataplane.catalogue import upstream_entries
from support.fake_engine import FakeEngine, refused_url

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def engines() -> Iterator[tuple[FakeEngine, FakeEngine]]:
    a, b = FakeEngine("a").start(), FakeEngine("b").start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture()
def fresh(engines: tuple[FakeEngine, FakeEngine]) -> tuple[FakeEngine, FakeEngine]:
    for engine in engines:
        engine.mode, engine.healthy, engine.requests, engine.probes = "ok", True, 0, 0
    return engines


async def make_pool(*specs: str, first_byte_s: float = 10.0) -> AsyncIterator[PoolBackend]:
    registry = BackendRegistry(upstream_timeouts=UpstreamTimeouts(connect_s=2, first_byte_s=first_byte_s, idle_s=5))
    [entry] = upstream_entries(specs)
    backend = registry.for_model(entry)
    assert isinstance(backend, PoolBackend)
    try:
        yield backend
    finally:
        await registry.close()


@pytest.fixture()
async def pool(fresh: tuple[FakeEngine, FakeEngine]) -> AsyncIterator[PoolBackend]:
    a, b = fresh
    async for p in make_pool(f"m={a.url},priority=0", f"m={b.url},priority=1"):
        yield p


def text(answer: dict[str, object]) -> str:
    return answer["choices"][0]["message"]["content"]  # type: ignore[index,no-any-return]


async def test_the_first_priority_serves(pool: PoolBackend, fresh: tuple[FakeEngine, FakeEngine]) -> None:
    assert text(await pool.complete("chat", CHAT)) == "from a"
    assert fresh[1].requests == 0


async def test_a_refused_connection_fails_over(fresh: tuple[FakeEngine, FakeEngine]) -> None:
    async for p in make_pool(f"m={refused_url()},priority=0", f"m={fresh[1].url},priority=1"):
        assert text(await p.complete("chat", CHAT)) == "from b"
        assert p.members[0].open_until > time.monotonic()  # out at once, for the cooldown


async def test_a_500_fails_over(pool: PoolBackend, fresh: tuple[FakeEngine, FakeEngine]) -> None:
    fresh[0].mode = "500"
    assert text(await pool.complete("chat", CHAT)) == "from b"
    assert fresh[0].requests == 1
    assert "a exploded" in pool.members[0].last_error


async def test_a_429_fails_over_and_its_retry_after_is_honoured(pool: PoolBackend,
                                                                fresh: tuple[FakeEngine, FakeEngine]) -> None:
    a = fresh[0]
    a.mode, a.retry_after_ms = "429", 400
    assert text(await pool.complete("chat", CHAT)) == "from b"
    a.mode = "ok"
    assert text(await pool.complete("chat", CHAT)) == "from b"  # a is out for its 0.4 s
    assert a.requests == 1
    await asyncio.sleep(0.45)
    assert text(await pool.complete("chat", CHAT)) == "from a"


async def test_every_engine_at_429_is_a_429_with_the_soonest_retry_after(
        pool: PoolBackend, fresh: tuple[FakeEngine, FakeEngine]) -> None:
    a, b = fresh
    a.mode, a.retry_after_ms = "429", 5000
    b.mode, b.retry_after_ms = "429", 2000
    with pytest.raises(BackendError) as raised:
        await pool.complete("chat", CHAT)
    assert raised.value.status == 429
    assert raised.value.headers["retry-after"] == "2"
    assert 1900 <= int(raised.value.headers["retry-after-ms"]) <= 2000


async def test_a_slow_first_byte_fails_over_after_the_first_byte_timeout(fresh: tuple[FakeEngine, FakeEngine]) -> None:
    a, b = fresh
    a.mode, a.delay_s = "slow", 3.0
    async for p in make_pool(f"m={a.url},priority=0", f"m={b.url},priority=1", first_byte_s=0.3):
        started = time.monotonic()
        assert text(await p.complete("chat", CHAT)) == "from b"
        chunks = [c async for c in p.stream("chat", CHAT)]
        assert chunks[0]["choices"][0]["delta"]["content"] == "from b"
        assert time.monotonic() - started < 2.5


async def test_a_stream_fails_over_before_its_first_event(pool: PoolBackend,
                                                          fresh: tuple[FakeEngine, FakeEngine]) -> None:
    fresh[0].mode = "500"
    chunks = [c async for c in pool.stream("chat", CHAT)]
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == ["from b", " and more"]


async def test_a_stream_cut_after_its_first_event_is_not_retried(pool: PoolBackend,
                                                                 fresh: tuple[FakeEngine, FakeEngine]) -> None:
    a, b = fresh
    a.mode = "drop"
    got = []
    with pytest.raises(BackendError) as raised:
        async for c in pool.stream("chat", CHAT):
            got.append(c["choices"][0]["delta"]["content"])
    assert got == ["from a"]
    assert raised.value.code == "UpstreamError"
    assert b.requests == 0


async def test_embeddings_fail_over(fresh: tuple[FakeEngine, FakeEngine]) -> None:
    a, b = fresh
    a.mode = "500"
    async for p in make_pool(f"e={a.url},embeddings", f"e={b.url},embeddings,priority=1"):
        vectors, used = await p.embed(["x", "y"])
        assert vectors == [[1.0], [1.0]] and used == 3  # from b (its name's length)


async def test_health_checks_ask_each_engine_for_its_models(pool: PoolBackend,
                                                            fresh: tuple[FakeEngine, FakeEngine]) -> None:
    a, b = fresh
    a.healthy = False
    await pool.check_health()
    assert (a.probes, b.probes) == (1, 1)
    assert [m.healthy for m in pool.members] == [False, True]
    assert text(await pool.complete("chat", CHAT)) == "from b"
    assert a.requests == 0
    a.healthy = True
    await pool.check_health()
    assert text(await pool.complete("chat", CHAT)) == "from a"


async def test_a_refused_health_check_marks_the_engine_down(fresh: tuple[FakeEngine, FakeEngine]) -> None:
    async for p in make_pool(f"m={refused_url()}", f"m={fresh[1].url},priority=1"):
        await p.check_health()
        assert [m.healthy for m in p.members] == [False, True]


async def test_health_checks_send_the_engines_credential(fresh: tuple[FakeEngine, FakeEngine],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from aiohttp import web

    seen: list[str | None] = []

    class Keyed(FakeEngine):
        async def _models(self, request: web.Request) -> web.Response:
            seen.append(request.headers.get("Authorization"))
            return await super()._models(request)

    keyed = Keyed("k").start()
    monkeypatch.setenv("POOL_TEST_KEY", "sekrit")
    try:
        async for p in make_pool(f"m={keyed.url},api-key-env=POOL_TEST_KEY", f"m={fresh[1].url},health-path=/nope"):
            await p.check_health()
            assert seen == ["Bearer sekrit"]
            assert [m.healthy for m in p.members] == [True, False]  # /v1/nope is a 404
    finally:
        keyed.stop()


async def test_a_member_whose_secret_is_unset_is_skipped(fresh: tuple[FakeEngine, FakeEngine]) -> None:
    spec = f"m={fresh[0].url},token-url=http://127.0.0.1:1/token,client-id=c,client-secret-env=POOL_UNSET_SECRET"
    async for p in make_pool(spec, f"m={fresh[1].url},priority=1"):
        assert text(await p.complete("chat", CHAT)) == "from b"
        await p.check_health()
        assert [m.healthy for m in p.members] == [False, True]
