"""An upstream engine that misbehaves: every fault reaches the client as Azure would answer it, never as a
hang, a plain-text 500 or a silent success (docs/data-plane.md, "Upstream faults").

The upstream is a fake OpenAI-compatible engine on loopback (aiohttp, in a thread of this process) that
misbehaves as each request's last message says ("hang", "429", "html", ...). Cielo runs with short
upstream timeouts: connect 1 s, first byte 3 s, idle 1.5 s. Clients: the real openai SDK (AzureOpenAI with
an API key, no retries) and raw httpx for status, envelope and headers.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web
from openai import AzureOpenAI

from support.server import CieloServer, start_server
from support.threaded_app import ThreadedApp

pytestmark = pytest.mark.e2e

ACCOUNT = "cielo-openai"
API_VERSION = "2024-10-21"
CONNECT_S, FIRST_BYTE_S, IDLE_S = 1.0, 3.0, 1.5
RATE_HEADERS = {"Retry-After": "7", "retry-after-ms": "6500", "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-remaining-tokens": "12"}


# ----------------------------------------------------------------------------- the fake upstream
class FakeUpstream(ThreadedApp):
    """`/v1/chat/completions` and `/v1/completions`, misbehaving as the last message (or prompt) says.
    `left[tag]` is how many seconds after a request arrived its client (Cielo) closed the connection."""

    def __init__(self) -> None:
        super().__init__()
        self.left: dict[str, float] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/v1/completions", self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        chat = request.path.endswith("chat/completions")
        mode = body["messages"][-1]["content"] if chat else body["prompt"]
        fault, _, tag = mode.partition("#")
        arrived = time.monotonic()
        stream = bool(body.get("stream"))
        if fault == "429":
            return web.json_response({"error": {"code": "rate_limit_exceeded", "message": "Upstream says slow down"}},
                                     status=429, headers=RATE_HEADERS)
        if fault == "500":
            return web.json_response({"error": {"message": "engine exploded"}}, status=500)
        if fault == "html":
            return web.Response(text="<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html")
        if fault == "badjson":
            return web.Response(text='{"choices": [', content_type="application/json")
        if fault == "wrongshape":
            return web.json_response({"result": "fine"})
        if fault == "empty" and not stream:
            return web.Response(body=b"", content_type="application/json")
        if fault == "hang":
            await self._until_gone(request, tag, arrived)
            return web.json_response({})
        if not stream:
            return web.json_response(_answer(chat))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if fault == "empty":
            await response.write_eof()
            return response
        await response.write(_event(_chunk(chat, "fi")))
        if fault == "badchunk":
            await response.write(b"data: {oops\n\n")
        elif fault == "errorchunk":
            await response.write(_event({"error": {"message": "the engine ran out of memory",
                                                   "type": "server_error"}}))
        elif fault == "hangmid":
            await self._until_gone(request, tag, arrived)
            return response
        elif fault == "drop":
            assert request.transport is not None
            request.transport.close()  # mid chunked body: the answer is cut off
            return response
        elif fault == "slow":
            try:
                for _ in range(300):
                    await asyncio.sleep(0.1)
                    await response.write(_event(_chunk(chat, " more")))
            except (ConnectionError, RuntimeError):
                self.left[tag] = time.monotonic() - arrived
            return response
        elif fault != "nodone":
            await response.write(_event(_chunk(chat, "ne", finish="stop")))
            await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _until_gone(self, request: web.Request, tag: str, arrived: float) -> None:
        for _ in range(600):
            if request.transport is None or request.transport.is_closing():
                self.left[tag] = time.monotonic() - arrived
                return
            await asyncio.sleep(0.05)


def _answer(chat: bool) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
    choice.update({"message": {"role": "assistant", "content": "fine"}} if chat else {"text": "fine"})
    return {"id": "x", "object": "chat.completion" if chat else "text_completion", "created": 0, "model": "fake",
            "choices": [choice], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def _chunk(chat: bool, text: str, finish: str | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
    choice.update({"delta": {"content": text}} if chat else {"text": text})
    return {"id": "x", "object": "chat.completion.chunk" if chat else "text_completion", "created": 0,
            "model": "fake", "choices": [choice]}


def _event(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


# ----------------------------------------------------------------------------- Cielo in front of it
class Front:
    def __init__(self, server: CieloServer, key: str) -> None:
        self.server = server
        self.key = key
        self.endpoint = f"{server.base_url}/accounts/{ACCOUNT}/"

    def sdk(self, timeout: float = 30) -> AzureOpenAI:
        return AzureOpenAI(azure_endpoint=self.endpoint, api_version=API_VERSION, api_key=self.key, max_retries=0,
                           timeout=timeout, http_client=httpx.Client(verify=self.server.bundle))

    def post(self, mode: str, *, deployment: str = "fake", stream: bool = False, timeout: float = 30,
             chat: bool = True) -> httpx.Response:
        body: dict[str, Any] = {"messages": [{"role": "user", "content": mode}]} if chat else {"prompt": mode}
        if stream:
            body["stream"] = True
        operation = "chat/completions" if chat else "completions"
        with httpx.Client(verify=self.server.bundle, timeout=timeout) as http:
            return http.post(f"{self.endpoint}openai/deployments/{deployment}/{operation}",
                             params={"api-version": API_VERSION}, json=body, headers={"api-key": self.key})


def _arm(server: CieloServer, method: str, path: str, body: object = None) -> dict[str, Any]:
    with server.http() as client:
        response = client.request(method, path, params={"api-version": "2023-05-01"}, json=body, headers={
            "Authorization": f"Bearer {server.admin_token('https://management.core.windows.net/')}"})
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.fixture(scope="module")
def stuck_port() -> Iterator[int]:
    """A loopback port whose accept queue is full: connections to it are never completed (SYNs dropped)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    held = []
    for _ in range(5):
        held.append(socket.socket())
        held[-1].setblocking(False)
        held[-1].connect_ex(("127.0.0.1", port))
    yield port
    for sock in held:
        sock.close()
    listener.close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def front(upstream: FakeUpstream, stuck_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    server = start_server(tmp_path_factory.mktemp("faults") / "data",
                          extra_args=("--upstream", f"fake=http://127.0.0.1:{upstream.port}/v1",
                                      "--upstream", f"stuck=http://127.0.0.1:{stuck_port}/v1"),
                          env={"CIELO_UPSTREAM_CONNECT_TIMEOUT_S": str(CONNECT_S),
                               "CIELO_UPSTREAM_FIRST_BYTE_TIMEOUT_S": str(FIRST_BYTE_S),
                               "CIELO_UPSTREAM_IDLE_TIMEOUT_S": str(IDLE_S)})
    try:
        account = (f"/subscriptions/{server.subscription_id}/resourceGroups/cielo-rg/providers/"
                   f"Microsoft.CognitiveServices/accounts/{ACCOUNT}")
        for name in ("fake", "stuck"):
            _arm(server, "PUT", f"{account}/deployments/{name}", {
                "sku": {"name": "Standard", "capacity": 100},
                "properties": {"model": {"format": "OpenAI-Compatible", "name": name, "version": "1"}}})
        yield Front(server, _arm(server, "POST", f"{account}/listKeys")["key1"])
    finally:
        server.stop()


def _azure_error(response: httpx.Response, status: int, code: str, says: str) -> dict[str, Any]:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, response.text
    assert says in error["message"], response.text
    assert response.headers["x-ms-error-code"] == code
    assert response.headers["apim-request-id"]
    return error


def _stream_events(response: httpx.Response) -> list[Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events: list[Any] = []
    for block in response.text.split("\n\n"):
        if block.strip():
            assert block.startswith("data: "), block
            events.append(block[6:] if block[6:] == "[DONE]" else json.loads(block[6:]))
    return events


# ----------------------------------------------------------------------------- a healthy upstream still works
def test_a_healthy_upstream_answers_and_streams_to_done(front: Front) -> None:
    client = front.sdk()
    answer = client.chat.completions.create(model="fake", messages=[{"role": "user", "content": "ok"}])
    assert answer.choices[0].message.content == "fine"
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="fake", stream=True, messages=[{"role": "user", "content": "ok"}]) if c.choices)
    assert text == "fine"
    assert _stream_events(front.post("ok", stream=True))[-1] == "[DONE]"


# ----------------------------------------------------------------------------- before the answer starts
def test_an_upstream_that_never_answers_is_azures_408_after_the_first_byte_timeout(front: Front) -> None:
    for stream in (False, True):
        started = time.monotonic()
        response = front.post("hang", stream=stream)
        elapsed = time.monotonic() - started
        _azure_error(response, 408, "Timeout", "The operation was timeout.")
        assert FIRST_BYTE_S - 0.2 < elapsed < FIRST_BYTE_S + 2, elapsed
    with pytest.raises(openai.APIStatusError) as info:
        front.sdk().chat.completions.create(model="fake", messages=[{"role": "user", "content": "hang"}])
    assert info.value.status_code == 408


def test_an_upstream_that_accepts_no_connection_is_a_504_after_the_connect_timeout(front: Front) -> None:
    started = time.monotonic()
    response = front.post("ok", deployment="stuck")
    elapsed = time.monotonic() - started
    _azure_error(response, 504, "GatewayTimeout", "connect")
    assert CONNECT_S - 0.2 < elapsed < CONNECT_S + 2, elapsed


def test_an_upstream_429_stays_a_429_with_its_retry_headers(front: Front) -> None:
    for stream in (False, True):
        response = front.post("429", stream=stream)
        _azure_error(response, 429, "429", "Upstream says slow down")
        assert response.headers["retry-after"] == "7"
        assert response.headers["retry-after-ms"] == "6500"
        assert response.headers["x-ratelimit-remaining-requests"] == "0"
        assert response.headers["x-ratelimit-remaining-tokens"] == "12"
    with pytest.raises(openai.RateLimitError) as info:
        front.sdk().chat.completions.create(model="fake", messages=[{"role": "user", "content": "429"}])
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after-ms"] == "6500"


@pytest.mark.parametrize(("fault", "says"), [
    ("html", "HTML page"),
    ("badjson", "invalid JSON"),
    ("empty", "empty"),
    ("wrongshape", "no 'choices'"),
    ("500", "answered 500: engine exploded"),
])
def test_a_malformed_or_failed_answer_is_a_502_in_azures_envelope(front: Front, fault: str, says: str) -> None:
    _azure_error(front.post(fault), 502, "UpstreamError", says)
    _azure_error(front.post(fault, chat=False), 502, "UpstreamError", says)
    with pytest.raises(openai.InternalServerError) as info:
        front.sdk().chat.completions.create(model="fake", messages=[{"role": "user", "content": fault}])
    assert info.value.status_code == 502


@pytest.mark.parametrize("fault", ["html", "badjson", "empty", "500"])
def test_a_stream_that_never_starts_properly_is_a_502_not_an_empty_success(front: Front, fault: str) -> None:
    _azure_error(front.post(fault, stream=True), 502, "UpstreamError", "upstream")
    with pytest.raises(openai.InternalServerError):
        for _ in front.sdk().chat.completions.create(model="fake", stream=True,
                                                     messages=[{"role": "user", "content": fault}]):
            pass


# ----------------------------------------------------------------------------- after the stream started
@pytest.mark.parametrize(("fault", "code", "says"), [
    ("badchunk", "UpstreamError", "malformed event"),
    ("errorchunk", "UpstreamError", "the engine ran out of memory"),
    ("nodone", "UpstreamError", "without [DONE]"),
    ("drop", "UpstreamError", "broke off"),
    ("hangmid", "Timeout", f"nothing for {IDLE_S:g} s"),
])
def test_a_fault_mid_stream_ends_it_with_an_error_event_not_done(front: Front, fault: str, code: str,
                                                                 says: str) -> None:
    for chat in (True, False):
        started = time.monotonic()
        events = _stream_events(front.post(fault, stream=True, chat=chat))
        # The prompt annotation, the text that came before the fault, then the error, and nothing after it.
        assert events[0]["prompt_filter_results"] and events[0]["choices"] == []
        first = events[1]["choices"][0]
        assert (first["delta"]["content"] if chat else first["text"]) == "fi"
        assert "[DONE]" not in events
        assert set(events[-1]) == {"error"}, events[-1]
        assert events[-1]["error"]["code"] == code
        assert says in events[-1]["error"]["message"]
        if fault == "hangmid":
            assert IDLE_S - 0.2 < time.monotonic() - started < IDLE_S + 2
    received: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in front.sdk().chat.completions.create(model="fake", stream=True,
                                                         messages=[{"role": "user", "content": fault}]):
            received.extend(c.delta.content for c in chunk.choices if c.delta.content)
    assert received == ["fi"]
    assert says in info.value.message


# ----------------------------------------------------------------------------- the client leaves
def test_a_client_that_leaves_closes_the_upstream_request(front: Front, upstream: FakeUpstream) -> None:
    # Not streamed: the client gives up after 0.5 s, well before Cielo's first-byte timeout would end it.
    with pytest.raises(httpx.ReadTimeout):
        front.post("hang#plain", timeout=0.5)
    # Streamed: the client reads two events and leaves; the upstream would go on for 30 s.
    with httpx.Client(verify=front.server.bundle, timeout=30) as http, http.stream(
            "POST", f"{front.endpoint}openai/deployments/fake/chat/completions", params={"api-version": API_VERSION},
            json={"messages": [{"role": "user", "content": "slow#stream"}], "stream": True},
            headers={"api-key": front.key}) as response:
        assert response.status_code == 200
        for count, _line in enumerate(line for line in response.iter_lines() if line.startswith("data: {")):
            if count == 2:
                break
    deadline = time.monotonic() + 10
    while not {"plain", "stream"} <= set(upstream.left) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert upstream.left.get("plain", 99) < FIRST_BYTE_S - 1, upstream.left
    assert upstream.left.get("stream", 99) < 3, upstream.left
