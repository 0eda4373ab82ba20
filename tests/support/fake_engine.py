"""A fake OpenAI-compatible engine on a loopback port (aiohttp, its own thread), for the backend-pool tests: it
answers as `mode` says, and its answers name it, so a test sees which engine of a pool served a request.

Modes: "ok"; "500"; "429" (with `Retry-After` and `retry-after-ms` from `retry_after_ms`); "slow" (the answer, or a
stream's first event, only after `delay_s`); "drop" (a stream sends one event, then the connection is cut; a plain
answer is cut before its body); "400". `healthy` is what `GET /v1/models` answers (200 or 503). `requests` counts
the completions it was asked for, `probes` the health checks."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from aiohttp import web

from support.threaded_app import ThreadedApp


class FakeEngine(ThreadedApp):
    def __init__(self, name: str, mode: str = "ok") -> None:
        super().__init__()
        self.name = name
        self.mode = mode
        self.healthy = True
        self.delay_s = 2.0
        self.retry_after_ms = 1500
        self.requests = 0
        self.probes = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._complete)
        app.router.add_post("/v1/completions", self._complete)
        app.router.add_post("/v1/embeddings", self._embed)
        app.router.add_get("/v1/models", self._models)

    async def _models(self, request: web.Request) -> web.Response:
        self.probes += 1
        if not self.healthy:
            return web.json_response({"error": {"message": "loading"}}, status=503)
        return web.json_response({"object": "list", "data": [{"id": self.name, "object": "model"}]})

    async def _embed(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests += 1
        failed = await self._fault(request, stream=False)
        if failed is not None:
            return failed
        return web.json_response({"object": "list", "model": self.name, "usage": {"prompt_tokens": 3,
                                                                                  "total_tokens": 3},
                                  "data": [{"object": "embedding", "index": i, "embedding": [float(len(self.name))]}
                                           for i, _ in enumerate(body["input"])]})

    async def _fault(self, request: web.Request, *, stream: bool) -> web.StreamResponse | None:
        if self.mode == "500":
            return web.json_response({"error": {"message": f"{self.name} exploded"}}, status=500)
        if self.mode == "400":
            return web.json_response({"error": {"message": "bad request", "code": "invalid"}}, status=400)
        if self.mode == "429":
            return web.json_response({"error": {"code": "429", "message": f"{self.name} says slow down"}}, status=429,
                                     headers={"Retry-After": str(max(1, self.retry_after_ms // 1000)),
                                              "retry-after-ms": str(self.retry_after_ms)})
        if self.mode == "slow":
            await asyncio.sleep(self.delay_s)
        if self.mode == "drop" and not stream:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        return None

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests += 1
        chat = request.path.endswith("chat/completions")
        stream = bool(body.get("stream"))
        failed = await self._fault(request, stream=stream)
        if failed is not None:
            return failed
        if not stream:
            return web.json_response(answer(chat, f"from {self.name}"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(event(chunk(chat, f"from {self.name}")))
        if self.mode == "drop":
            await asyncio.sleep(0.05)  # the first event goes out on its own
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write(event(chunk(chat, " and more", finish="stop")))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def answer(chat: bool, text: str) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
    choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
    return {"id": "x", "object": "chat.completion" if chat else "text_completion", "created": 0, "model": "fake",
            "choices": [choice], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}


def chunk(chat: bool, text: str, finish: str | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
    choice.update({"delta": {"content": text}} if chat else {"text": text})
    return {"id": "x", "object": "chat.completion.chunk" if chat else "text_completion", "created": 0,
            "model": "fake", "choices": [choice]}


def event(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


def refused_url() -> str:
    """A loopback URL nothing listens on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return f"http://127.0.0.1:{port}/v1"
