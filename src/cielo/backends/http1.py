"""A small HTTP/1.1 client for one upstream origin: pooled keep-alive connections, httptools' parser.

It does one thing: send a request with a body and return the whole answer (status, headers, body). That is
what a non-streamed completion needs, and aiohttp spends about as much CPU per request on its general
machinery (cookies, tracing, payload objects, stream readers) as Cielo spends on everything else
(docs/benchmarks.md). Streams stay on aiohttp (backends/openai_compat.py).

The caller bounds the whole exchange with its own deadline; cancelling it (the deadline, or the client
leaving) closes the connection, which an engine takes as the signal to stop generating. A connection is only
pooled again after an answer read to its end that allows keep-alive. Nothing is retried: a POST may have
started a generation.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections import deque
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools


class ConnectFailed(OSError):
    """No connection could be made (refused, unreachable, or no answer within the connect timeout)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class ExchangeFailed(OSError):
    """The connection broke, or the answer was not HTTP, before the whole answer arrived."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes
    truncated: bool  # the body was longer than the caller's limit: the rest was not read

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.open = False
        self._parser = httptools.HttpResponseParser(self)
        self._done: asyncio.Future[None] | None = None
        self._limit = self._error_limit = 0
        self._headers: dict[str, str] = {}
        self._body = bytearray()
        self._truncated = False
        self._complete = self._headers_done = self._keep_alive = False

    # ---------------------------------------------------------------- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but they are ones.
        self.transport = cast(asyncio.Transport, transport)
        self.open = True

    def data_received(self, data: bytes) -> None:
        if self._done is None or self._done.done():
            self.close()  # bytes nobody asked for: the connection is out of step
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ExchangeFailed("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(ExchangeFailed(f"the upstream's answer is not HTTP/1.1 ({exc})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if self._done is not None and not self._done.done():
            if self._headers_done and "content-length" not in self._headers and "chunked" not in self._headers.get(
                    "transfer-encoding", "").lower():
                self._finish()  # an answer with neither a length nor chunks ends with its connection (RFC 9112 §6.3)
            else:
                self._fail(ExchangeFailed("the upstream closed the connection before its answer was complete"))

    # ---------------------------------------------------------------- httptools callbacks
    def on_message_begin(self) -> None:
        if self._complete:
            # A second answer in the same read as the first: nobody asked for it, so the connection is out of
            # step. Raising stops the parser here (feed_data raises HttpParserCallbackError), before the extra
            # answer's headers or body reach this one's, and the connection is closed, never pooled.
            raise ExchangeFailed("the upstream sent an answer nobody asked for")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._headers_done = True
        if self._parser.get_status_code() != 200:
            self._limit = min(self._limit, self._error_limit)

    def on_body(self, body: bytes) -> None:
        if self._truncated:
            return
        room = self._limit - len(self._body)
        if len(body) > room:
            self._body += body[:room]
            self._truncated = True
            self._finish()
            self.close()  # the rest is not read: this connection cannot be reused
        else:
            self._body += body

    def on_message_complete(self) -> None:
        self._complete = True
        self._keep_alive = self._parser.should_keep_alive()  # llhttp forgets it once feed_data returns
        self._finish()

    # ---------------------------------------------------------------- the exchange
    async def exchange(self, request: bytes, limit: int, error_limit: int) -> Answer:
        if self.transport is None or not self.open:
            raise ExchangeFailed("the connection is closed")
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self._limit, self._error_limit = limit, error_limit
        self._headers, self._body = {}, bytearray()
        self._truncated = self._complete = self._headers_done = self._keep_alive = False
        self.transport.write(request)
        try:
            await self._done
        except BaseException:
            self.close()  # cancelled (a deadline, or the client left) or broken: never reused
            raise
        return Answer(self._parser.get_status_code(), self._headers, bytes(self._body), self._truncated)

    @property
    def reusable(self) -> bool:
        return self.open and self._complete and self._keep_alive and not self._truncated

    def _finish(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def _fail(self, exc: Exception) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.open = False
        if self.transport is not None:
            self.transport.close()


class Http1Pool:
    """Keep-alive connections to one origin (`scheme://host:port`): at most `limit` in use at once, and at most
    `limit` idle ones kept."""

    def __init__(self, base_url: str, *, ssl: ssl_module.SSLContext | None = None, connect_s: float = 10.0,
                 limit: int = 256) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = (ssl or ssl_module.create_default_context()) if parts.scheme == "https" else None
        default_port = self._port == (443 if parts.scheme == "https" else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._authority = (host if default_port else f"{host}:{self._port}").encode("ascii")
        self._prefix = parts.path.rstrip("/")
        self._connect_s = connect_s
        self._limit = limit
        self._idle: deque[_Connection] = deque()
        # At most `limit` exchanges at once (as aiohttp's connector limit did); the others wait their turn.
        self._slots = asyncio.Semaphore(limit)

    async def post(self, path: str, body: bytes, headers: dict[str, str], *, limit: int,
                   error_limit: int) -> Answer:
        """POST `body` to the base URL's path + `path`; the answer's body is cut at `limit` bytes (`error_limit`
        when its status is not 200)."""
        for name, value in headers.items():
            if any(c in name or c in value for c in "\r\n\0"):
                raise ValueError(f"the header {name!r} holds a line break")
        head = [b"POST ", (self._prefix + path).encode("ascii"), b" HTTP/1.1\r\nHost: ", self._authority,
                b"\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: ",
                str(len(body)).encode("ascii"), b"\r\n"]
        for name, value in headers.items():
            head += [name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n"]
        head.append(b"\r\n")
        request = b"".join(head) + body
        async with self._slots:
            connection = await self._acquire()
            answer = await connection.exchange(request, limit, error_limit)
            if connection.reusable and len(self._idle) < self._limit:
                self._idle.append(connection)
            else:
                connection.close()
        return answer

    async def _acquire(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if connection.open:
                return connection
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_s):
                _, connection = await loop.create_connection(
                    _Connection, self._host, self._port, ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None)
        except TimeoutError as exc:
            raise ConnectFailed(f"no connection within {self._connect_s:g} s", timed_out=True) from exc
        except OSError as exc:
            raise ConnectFailed(type(exc).__name__) from exc
        return connection

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
