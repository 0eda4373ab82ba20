"""backends/http1.py, the pooled HTTP/1.1 client, against a scripted asyncio server on loopback: what it sends,
the bodies it reads (Content-Length, chunked, to the end of the connection), which connections it keeps for the
next request, and how a broken, cut or hijacked exchange fails. No sleeps: every wait is on an event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from cielo.backends import http1
from cielo.backends.http1 import Answer, ConnectFailed, ExchangeFailed, Http1Pool

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 2\r\n\r\n{}"


@dataclass
class Request:
    head: bytes
    body: bytes

    @property
    def line(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0]

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.decode("latin-1").partition(":")
            if key.lower() == name.lower():
                return value.strip()
        return None


class Close(bytes):
    """An answer after which the server closes the connection."""


# What the server does with one request on one connection: the bytes it answers (None: it closes the connection
# without a word; b"": it answers nothing and waits; Close(...): it answers and closes).
Script = Callable[[Request], bytes | None]


@dataclass
class Upstream:
    """Each connection reads requests and answers each with the next script; `connections` counts accepts."""

    scripts: list[Script]
    connections: int = 0
    requests: list[Request] = field(default_factory=list)
    received: asyncio.Event = field(default_factory=asyncio.Event)
    closed_by_client: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            pass  # the test's event loop is closing
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if True:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    self.closed_by_client.set()
                    return
                request = Request(head, b"")
                request.body = await reader.readexactly(int(request.header("content-length") or 0))
                self.requests.append(request)
                self.received.set()
                answer = self.scripts.pop(0)(request)
                if answer is None:
                    return
                if answer == b"":
                    if not await reader.read(1):
                        self.closed_by_client.set()
                    return
                writer.write(answer)
                await writer.drain()
                if isinstance(answer, Close):
                    return


@pytest.fixture()
async def upstream() -> AsyncIterator[Upstream]:
    server_state = Upstream([])
    server = await asyncio.start_server(server_state.handle, "127.0.0.1", 0)
    server_state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield server_state
        server.close()


def answer(raw: bytes) -> Script:
    return lambda _request: raw


def pool_for(upstream: Upstream, path: str = "", **kwargs: float) -> Http1Pool:
    return Http1Pool(f"http://127.0.0.1:{upstream.port}{path}", **kwargs)  # type: ignore[arg-type]


async def post(pool: Http1Pool, body: bytes = b'{"a":1}', headers: dict[str, str] | None = None, *,
               limit: int = 1000, error_limit: int = 100) -> Answer:
    return await pool.post("/chat/completions", body, headers or {}, limit=limit, error_limit=error_limit)


async def test_the_request_names_the_origin_the_path_and_the_body(upstream: Upstream) -> None:
    upstream.scripts = [answer(OK)]
    pool = pool_for(upstream, "/v1/")
    got = await post(pool, b'{"prompt":"hi"}', {"Authorization": "Bearer k"})
    assert (got.status, got.body, got.truncated, got.content_type) == (200, b"{}", False, "application/json")
    sent = upstream.requests[0]
    assert sent.line == b"POST /v1/chat/completions HTTP/1.1"
    assert sent.header("host") == f"127.0.0.1:{upstream.port}"
    assert sent.header("content-type") == "application/json"
    assert sent.header("content-length") == "15"
    assert sent.header("authorization") == "Bearer k"
    assert sent.body == b'{"prompt":"hi"}'
    pool.close()


@pytest.mark.parametrize(("url", "authority"), [
    ("https://models.example", "models.example"),
    ("https://models.example:443/x", "models.example"),
    ("http://models.example:80", "models.example"),
    ("http://models.example:8080", "models.example:8080"),
    ("http://[::1]:9000", "[::1]:9000"),
    ("http://[::1]", "[::1]"),
])
async def test_the_host_header_leaves_out_the_default_port(url: str, authority: str) -> None:
    sent: list[bytes] = []

    class Recorder:
        def write(self, data: bytes) -> None:
            sent.append(data)

        def close(self) -> None:
            pass

    connection = http1._Connection()
    connection.connection_made(Recorder())  # type: ignore[arg-type]

    async def give() -> http1._Connection:
        return connection

    pool = Http1Pool(url)
    pool._acquire = give  # type: ignore[method-assign]
    task = asyncio.create_task(post(pool))
    while not sent:
        await asyncio.sleep(0)
    assert f"\r\nHost: {authority}\r\n".encode() in sent[0]
    connection.data_received(OK)
    assert (await task).body == b"{}"


@pytest.mark.parametrize("url", ["ftp://models.example", "models.example:80", "http://", "file:///tmp/x"])
def test_only_http_urls_make_a_pool(url: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        Http1Pool(url)


@pytest.mark.parametrize("header", [{"X-A": "1\r\nX-Injected: 1"}, {"X-A\n": "1"}, {"X-A": "a\0b"}])
async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(upstream: Upstream,
                                                                            header: dict[str, str]) -> None:
    pool = pool_for(upstream)
    with pytest.raises(ValueError, match="line break"):
        await post(pool, headers=header)
    assert upstream.connections == 0


async def test_a_keep_alive_connection_serves_the_next_request(upstream: Upstream) -> None:
    upstream.scripts = [answer(OK), answer(OK), answer(OK)]
    pool = pool_for(upstream)
    for _ in range(3):
        assert (await post(pool)).status == 200
    assert (upstream.connections, len(upstream.requests)) == (1, 3)
    pool.close()


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    # bytes after the answer: the connection is out of step and is not used again
    OK + b"garbage",
])
async def test_a_connection_that_cannot_be_reused_is_not(upstream: Upstream, raw: bytes) -> None:
    upstream.scripts = [answer(raw), answer(OK)]
    pool = pool_for(upstream)
    assert (await post(pool)).body == b"{}"
    assert (await post(pool)).body == b"{}"
    assert upstream.connections == 2
    pool.close()


async def test_a_second_answer_in_the_same_read_is_not_taken_into_the_first(upstream: Upstream) -> None:
    upstream.scripts = [answer(OK + b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Second: 1\r\n\r\nmore"),
                        answer(OK)]
    pool = pool_for(upstream)
    got = await post(pool)
    assert (got.body, "x-second" in got.headers) == (b"{}", False)
    await post(pool)
    assert upstream.connections == 2
    pool.close()


async def test_a_chunked_body_is_joined(upstream: Upstream) -> None:
    upstream.scripts = [answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Request-Id: a\r\nx-request-id: b"
                               b"\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n"), answer(OK)]
    pool = pool_for(upstream)
    got = await post(pool)
    assert got.body == b'{"a":1}'
    assert got.headers["x-request-id"] == "b"  # lower-case names; a repeated header keeps its last value
    await post(pool)
    assert upstream.connections == 1
    pool.close()


async def test_a_body_without_length_or_chunks_ends_with_the_connection(upstream: Upstream) -> None:
    upstream.scripts = [answer(Close(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"whole\": 1}")),
                        answer(OK)]
    pool = pool_for(upstream)
    got = await post(pool)
    assert (got.status, got.body, got.truncated) == (200, b'{"whole": 1}', False)
    assert (await post(pool)).status == 200
    assert upstream.connections == 2
    pool.close()


@pytest.mark.parametrize(("raw", "limit", "error_limit", "body"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", 4, 100, b"0123"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n4\r\n6789\r\n0\r\n\r\n", 8, 100,
     b"01234567"),
    # an error's body is cut at the (smaller) error limit
    (b"HTTP/1.1 500 Oops\r\nContent-Length: 10\r\n\r\n0123456789", 100, 3, b"012"),
])
async def test_an_oversize_answer_is_cut_at_the_limit_and_its_connection_dropped(
        upstream: Upstream, raw: bytes, limit: int, error_limit: int, body: bytes) -> None:
    upstream.scripts = [answer(raw), answer(OK)]
    pool = pool_for(upstream)
    got = await post(pool, limit=limit, error_limit=error_limit)
    assert (got.body, got.truncated) == (body, True)
    assert (await post(pool)).truncated is False
    assert upstream.connections == 2
    pool.close()


async def test_an_error_answer_within_its_limit_is_whole(upstream: Upstream) -> None:
    upstream.scripts = [answer(b"HTTP/1.1 429 Too Many\r\nRetry-After: 3\r\nContent-Length: 4\r\n\r\nslow")]
    got = await post(pool_for(upstream), error_limit=4)
    assert (got.status, got.body, got.truncated, got.headers["retry-after"]) == (429, b"slow", False, "3")


@pytest.mark.parametrize(("raw", "message"), [
    (None, "closed the connection before its answer was complete"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234", "closed the connection before"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n", "closed the connection before"),
    (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not HTTP/1.1"),
])
async def test_a_broken_or_foreign_answer_fails_the_exchange(upstream: Upstream, raw: bytes | None,
                                                            message: str) -> None:
    upstream.scripts = [answer(Close(raw)) if raw is not None else (lambda _r: None)]
    pool = pool_for(upstream)
    with pytest.raises(ExchangeFailed, match=message):
        await post(pool)
    # A failed connection is never pooled: the next request opens another one.
    upstream.scripts.append(answer(OK))
    assert (await post(pool)).status == 200
    assert upstream.connections == 2


async def test_a_switch_of_protocols_is_not_an_answer_and_ends_the_connection(upstream: Upstream) -> None:
    upstream.scripts = [answer(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket"
                               b"\r\n\r\n\x81\x00"), answer(OK)]
    pool = pool_for(upstream)
    try:
        status = (await post(pool)).status
    except ExchangeFailed as exc:
        assert "switched protocols" in str(exc)
    else:
        assert status == 101  # the caller refuses any status but 200
    assert (await post(pool)).status == 200
    assert upstream.connections == 2
    pool.close()


async def test_a_connection_the_upstream_closed_while_idle_is_not_used(upstream: Upstream) -> None:
    upstream.scripts = [answer(Close(OK)), answer(OK)]  # keep-alive allowed, and yet the upstream hangs up
    pool = pool_for(upstream)
    assert (await post(pool)).status == 200
    while pool._idle and pool._idle[0].open:  # the idle connection learns of the end from the event loop
        await asyncio.sleep(0)
    assert (await post(pool)).status == 200
    assert upstream.connections == 2
    pool.close()


async def test_cancelling_an_exchange_closes_its_connection(upstream: Upstream) -> None:
    upstream.scripts = [answer(b"")]  # never answers; tells us when the client hangs up
    pool = pool_for(upstream)
    task = asyncio.create_task(post(pool))
    await upstream.received.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await upstream.closed_by_client.wait()  # the engine sees the connection end: its signal to stop generating
    assert not pool._idle


async def test_a_refused_connection_is_connect_failed(upstream: Upstream) -> None:
    server = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(ConnectFailed) as caught:
        await post(Http1Pool(f"http://127.0.0.1:{port}"))
    assert caught.value.timed_out is False
    assert "ConnectionRefusedError" in str(caught.value)


async def test_no_connection_within_the_connect_timeout_is_a_timed_out_connect_failed(upstream: Upstream) -> None:
    with pytest.raises(ConnectFailed, match="no connection within 0 s") as caught:
        await post(pool_for(upstream, connect_s=0))
    assert caught.value.timed_out is True


async def test_at_most_limit_exchanges_run_at_once(upstream: Upstream) -> None:
    gate = asyncio.Event()

    async def slow_handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream.connections += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await reader.readexactly(7)
                upstream.received.set()
                await gate.wait()
                writer.write(OK)
                await writer.drain()
        except asyncio.IncompleteReadError:
            writer.close()

    server = await asyncio.start_server(slow_handle, "127.0.0.1", 0)
    pool = Http1Pool(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", limit=1)
    first = asyncio.create_task(post(pool))
    second = asyncio.create_task(post(pool))
    await upstream.received.wait()
    assert upstream.connections == 1  # the second waits for the first's slot
    gate.set()
    assert [a.status for a in await asyncio.gather(first, second)] == [200, 200]
    pool.close()
    server.close()


async def test_bytes_on_an_idle_connection_close_it_and_a_closed_one_takes_no_request() -> None:
    closed: list[bool] = []

    class Transport:
        def write(self, data: bytes) -> None:
            raise AssertionError("nothing may be sent on a closed connection")

        def close(self) -> None:
            closed.append(True)

    connection = http1._Connection()
    connection.connection_made(Transport())  # type: ignore[arg-type]
    connection.data_received(b"HTTP/1.1 200 OK\r\n")  # nobody asked: the connection is out of step
    assert (connection.open, closed, connection.reusable) == (False, [True], False)
    with pytest.raises(ExchangeFailed, match="closed"):
        await connection.exchange(b"POST / HTTP/1.1\r\n\r\n", 10, 10)
