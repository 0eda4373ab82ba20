#!/usr/bin/env python3
"""An OpenAI-compatible upstream that answers at once: what a gateway benchmark puts behind the gateway.

Every answer is a small fixed body, encoded once at start:

  POST .../chat/completions   a chat.completion whose message is "ok"
  POST .../completions        a text_completion
  POST .../embeddings         one 8-dimension embedding
  GET  .../models             one model
  GET  /, /health, /healthz   {"status": "ok"}
  anything else               404 in OpenAI's error shape

Only the end of the path counts and the query string is ignored, so `/v1/chat/completions` and
`/openai/deployments/NAME/chat/completions?api-version=...` are the same route.

It is a bare asyncio protocol speaking just enough HTTP/1.1 (keep-alive, pipelined requests,
Content-Length or chunked bodies; `Connection: close` and HTTP/1.0 close after the answer), on uvloop
when that is importable. No framework and no per-request objects beyond the parsed request line, so
this process costs little CPU and a benchmark measures the gateway rather than its upstream.
Standard library only. It listens on loopback only.

  python benchmarks/null_upstream.py --port 8901
  python benchmarks/null_upstream.py --port 0               # any free port; the first line names it
  python benchmarks/null_upstream.py --port 8901 --delay-ms 50   # pretend the model takes 50 ms

The first line on stdout is `null_upstream listening on http://HOST:PORT (pid P, LOOP)`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any, cast

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
HEAD_LIMIT = 64 * 1024  # a request head larger than this is refused
BODY_LIMIT = 16 * 1024 * 1024
CREATED = 1_700_000_000
USAGE = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}


def encode(status: str, document: dict[str, Any]) -> bytes:
    """One complete HTTP/1.1 response, headers and JSON body, ready to write."""
    body = json.dumps(document, separators=(",", ":")).encode()
    head = (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "x-request-id: null-upstream\r\n\r\n")
    return head.encode() + body


CHAT = encode("200 OK", {
    "id": "chatcmpl-null", "object": "chat.completion", "created": CREATED, "model": "null-model",
    "system_fingerprint": "fp_null",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "logprobs": None,
                 "finish_reason": "stop"}],
    "usage": USAGE,
})
COMPLETION = encode("200 OK", {
    "id": "cmpl-null", "object": "text_completion", "created": CREATED, "model": "null-model",
    "choices": [{"index": 0, "text": "ok", "logprobs": None, "finish_reason": "stop"}],
    "usage": USAGE,
})
EMBEDDING = encode("200 OK", {
    "object": "list", "model": "null-model",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.0] * 8}],
    "usage": {"prompt_tokens": 5, "total_tokens": 5},
})
MODELS = encode("200 OK", {"object": "list", "data": [
    {"id": "null-model", "object": "model", "created": CREATED, "owned_by": "null"}]})
HEALTHY = encode("200 OK", {"status": "ok"})
NOT_FOUND = encode("404 Not Found", {"error": {"code": "404", "message": "Resource not found"}})
BAD_REQUEST = encode("400 Bad Request", {"error": {"code": "400", "message": "Bad request"}})

POST_ROUTES = ((b"/chat/completions", CHAT), (b"/completions", COMPLETION), (b"/embeddings", EMBEDDING))


def answer(method: bytes, target: bytes) -> bytes:
    path = target.split(b"?", 1)[0].rstrip(b"/")
    if method == b"POST":
        for suffix, response in POST_ROUTES:  # chat/completions before completions: order matters
            if path.endswith(suffix):
                return response
    elif method in (b"GET", b"HEAD"):
        if path.endswith(b"/models"):
            return MODELS
        if path in (b"", b"/health", b"/healthz"):
            return HEALTHY
    return NOT_FOUND


def chunked_body_end(buffer: bytearray, position: int) -> int | None:
    """Where a chunked body that starts at `position` ends: None while incomplete, -1 when malformed."""
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        try:
            size = int(bytes(buffer[position:line_end]).split(b";", 1)[0], 16)
        except ValueError:
            return -1
        position = line_end + 2
        if size == 0:  # the last chunk; then optional trailer lines and an empty line
            while True:
                line_end = buffer.find(b"\r\n", position)
                if line_end < 0:
                    return None
                if line_end == position:
                    return position + 2
                position = line_end + 2
        if len(buffer) < position + size + 2:
            return None
        position += size + 2


class Request:
    """The parts of a request head the server acts on."""

    __slots__ = ("chunked", "close", "length", "method", "target")

    def __init__(self, head: bytes) -> None:
        request_line, *header_lines = head.split(b"\r\n")
        self.method, self.target, version = request_line.split(b" ")  # ValueError when malformed
        self.length = 0
        self.chunked = False
        self.close = version == b"HTTP/1.0"
        for line in header_lines:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                self.length = int(value)
            elif name == b"transfer-encoding":
                self.chunked = b"chunked" in value.lower()
            elif name == b"connection":
                token = value.strip().lower()
                self.close = token == b"close" or (self.close and token != b"keep-alive")


class NullUpstream(asyncio.Protocol):
    """One connection: parse every complete request in the buffer and answer each in order."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                if len(self.buffer) > HEAD_LIMIT:
                    self.reply(BAD_REQUEST, close=True)
                return
            try:
                request = Request(bytes(self.buffer[:head_end]))
            except ValueError:
                self.reply(BAD_REQUEST, close=True)
                return
            body_start = head_end + 4
            if request.chunked:
                body_end = chunked_body_end(self.buffer, body_start)
                if body_end is None:
                    return
            else:
                body_end = body_start + request.length if 0 <= request.length <= BODY_LIMIT else -1
                if body_end > len(self.buffer):
                    return
            if body_end < 0:
                self.reply(BAD_REQUEST, close=True)
                return
            del self.buffer[:body_end]
            response = answer(request.method, request.target)
            if request.method == b"HEAD":
                response = response[: response.index(b"\r\n\r\n") + 4]
            if self.delay_s > 0:
                asyncio.get_running_loop().call_later(self.delay_s, self.reply, response, request.close)
            else:
                self.reply(response, request.close)
            if request.close:
                return

    def reply(self, response: bytes, close: bool) -> None:
        if self.transport is None:
            return
        self.transport.write(response)
        if close:
            self.transport.close()
            self.transport = None


async def serve(host: str, port: int, delay_s: float, backlog: int, loop_name: str) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: NullUpstream(delay_s), host, port, backlog=backlog,
                                      reuse_address=True)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    bound = server.sockets[0].getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"null_upstream listening on http://{shown}:{bound} (pid {os.getpid()}, {loop_name})", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=int, default=8901, help="port (0: any free port, named on stdout)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="answer after this long (default at once)")
    parser.add_argument("--no-uvloop", action="store_true", help="use the standard asyncio event loop")
    parser.add_argument("--backlog", type=int, default=1024)
    args = parser.parse_args()
    if args.host not in LOOPBACK_HOSTS:
        sys.exit("null_upstream listens on loopback only")
    loop_name = "asyncio"
    if not args.no_uvloop:
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            loop_name = f"uvloop {uvloop.__version__}"
        except ImportError:
            pass
    asyncio.run(serve(args.host, args.port, args.delay_ms / 1000, args.backlog, loop_name))


if __name__ == "__main__":
    main()
