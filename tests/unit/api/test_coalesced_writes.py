"""api/server.py's CoalescedWrites: what uvicorn writes in one turn of the event loop leaves as one write."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from cielo.api.server import CoalescedWrites, CoalescingHttpTools
from cielo.http.client_gone import WATCH_KEY


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


async def test_writes_in_one_turn_leave_as_one_write_after_it() -> None:
    inner = RecordingTransport()
    writes = CoalescedWrites(inner, asyncio.get_running_loop())
    writes.write(b"HTTP/1.1 200 OK\r\n\r\n")
    writes.write(b"body")
    assert inner.writes == []
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    writes.write(b"next")
    await asyncio.sleep(0)
    assert inner.writes[1:] == [b"next"]


async def test_close_flushes_first_and_a_closed_transport_gets_nothing() -> None:
    inner = RecordingTransport()
    writes = CoalescedWrites(inner, asyncio.get_running_loop())
    writes.write(b"last")
    writes.close()
    assert inner.writes == [b"last"] and inner.closed
    writes.write(b"late")
    await asyncio.sleep(0)
    assert inner.writes == [b"last"]
    assert writes.get_extra_info("peername") == ("127.0.0.1", 1)  # everything else is the transport's


async def _app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for part in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


async def _exchange(port: int, request: bytes, until: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    data = b""
    while until not in data:
        chunk = await asyncio.wait_for(reader.read(65536), 5)
        if not chunk:
            break
        data += chunk
    writer.close()
    return data


@contextlib.asynccontextmanager
async def _serving(app: Any) -> AsyncIterator[int]:
    """uvicorn with Cielo's protocol serving `app` on a free loopback port, for the block."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(uvicorn.Config(app, http=CoalescingHttpTools, lifespan="off", log_level="warning",
                                           access_log=False))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await serving


@pytest.mark.parametrize("close", [False, True])
async def test_uvicorn_serves_whole_answers_and_streams_through_it(close: bool) -> None:
    async with _serving(_app) as port:
        connection = b"Connection: close\r\n" if close else b""
        answer = await _exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n" + connection + b"\r\n", b"hello")
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\nhello")
        streamed = await _exchange(port, b"GET /stream HTTP/1.1\r\nHost: x\r\n" + connection + b"\r\n",
                                   b"0\r\n\r\n")
        assert b"transfer-encoding: chunked" in streamed
        assert streamed.endswith(b"4\r\none \r\n4\r\ntwo \r\n5\r\nthree\r\n0\r\n\r\n")


async def test_a_handler_that_watches_hears_its_client_leave() -> None:
    """http/client_gone.py: the scope's watch calls back when the connection is lost mid-request, at once for a
    connection already lost, and never after the handler stopped watching."""
    heard: list[str] = []
    registered = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        watch = scope[WATCH_KEY]
        if scope["path"] == "/answered":  # stops watching before it answers; the client leaves afterwards
            watch(lambda: heard.append("answered"))()
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        gone = asyncio.Event()
        watch(gone.set)
        registered.set()
        await asyncio.wait_for(gone.wait(), 5)
        heard.append("left")
        watch(lambda: heard.append("late"))  # the connection is gone already: called soon
        await asyncio.sleep(0.05)

    async with _serving(app) as port:
        assert (await _exchange(port, b"GET /answered HTTP/1.1\r\nHost: x\r\n\r\n", b"ok")).endswith(b"ok")
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(registered.wait(), 5)
        writer.close()
        for _ in range(100):
            if "late" in heard:
                break
            await asyncio.sleep(0.02)
        assert heard == ["left", "late"]
