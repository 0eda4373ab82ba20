"""Tools, structured outputs and stream usage through an upstream OpenAI-compatible engine.

The upstream is a fake engine on loopback (aiohttp, in a thread of this process) that records each request and
answers with a tool call (streamed in fragments, or whole), as vLLM or OpenAI would. The client is the real
openai SDK (AzureOpenAI with an API key) against a real `cielo up`.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from openai import AzureOpenAI

from support.server import CieloServer, start_server
from support.threaded_app import ThreadedApp

pytestmark = pytest.mark.e2e

ACCOUNT = "cielo-openai"
TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather of a city", "strict": True,
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False}}}]
ARGUMENTS = '{"city":"Paris"}'


class RecordingUpstream(ThreadedApp):
    """`/v1/chat/completions` answering every request with a call of get_weather; `requests` holds the bodies.
    Its streams never carry usage, even when asked (Cielo then counts it)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        call = {"id": "call_upstream1", "type": "function",
                "function": {"name": "get_weather", "arguments": ARGUMENTS}}
        if not body.get("stream"):
            return web.json_response({
                "id": "x", "object": "chat.completion", "created": 1, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "tool_calls",
                             "message": {"role": "assistant", "content": None, "tool_calls": [call]}}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        head = {**call, "index": 0, "function": {"name": "get_weather", "arguments": ""}}
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": None, "tool_calls": [head]}]
        deltas += [{"tool_calls": [{"index": 0, "function": {"arguments": piece}}]} for piece in
                   (ARGUMENTS[:6], ARGUMENTS[6:])]
        for delta in [*deltas, {}]:
            chunk = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
                     "choices": [{"index": 0, "delta": delta, "finish_reason": None if delta else "tool_calls"}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingUpstream]:
    fake = RecordingUpstream().start()
    yield fake
    fake.stop()


def _arm(server: CieloServer, method: str, path: str, body: object = None) -> dict[str, Any]:
    with server.http() as client:
        response = client.request(method, path, params={"api-version": "2023-05-01"}, json=body, headers={
            "Authorization": f"Bearer {server.admin_token('https://management.core.windows.net/')}"})
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.fixture(scope="module")
def client(upstream: RecordingUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureOpenAI]:
    server = start_server(tmp_path_factory.mktemp("tools-upstream") / "data",
                          extra_args=("--upstream", f"engine=http://127.0.0.1:{upstream.port}/v1,model=m"))
    try:
        account = (f"/subscriptions/{server.subscription_id}/resourceGroups/cielo-rg/providers/"
                   f"Microsoft.CognitiveServices/accounts/{ACCOUNT}")
        _arm(server, "PUT", f"{account}/deployments/engine", {
            "sku": {"name": "Standard", "capacity": 100},
            "properties": {"model": {"format": "OpenAI-Compatible", "name": "engine", "version": "1"}}})
        key = _arm(server, "POST", f"{account}/listKeys")["key1"]
        tls = ssl.create_default_context(cafile=server.bundle)
        with AzureOpenAI(azure_endpoint=f"{server.base_url}/accounts/{ACCOUNT}/", api_version="2024-10-21",
                         api_key=key, max_retries=0, http_client=httpx.Client(verify=tls)) as azure:
            yield azure
    finally:
        server.stop()


def test_tools_pass_through_and_the_call_comes_back(client: AzureOpenAI, upstream: RecordingUpstream) -> None:
    answer = client.chat.completions.create(
        model="engine", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, parallel_tool_calls=False,
        response_format={"type": "json_object"})
    sent = upstream.requests[-1]
    assert sent["tools"] == TOOLS and sent["model"] == "m"
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False and sent["response_format"] == {"type": "json_object"}
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert choice.message.refusal is None
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert (call.id, call.function.name, call.function.arguments) == ("call_upstream1", "get_weather", ARGUMENTS)


def test_legacy_functions_pass_through(client: AzureOpenAI, upstream: RecordingUpstream) -> None:
    client.chat.completions.create(model="engine", messages=[{"role": "user", "content": "x"}],
                                   functions=[TOOLS[0]["function"]], function_call="auto")
    sent = upstream.requests[-1]
    assert sent["functions"] == [TOOLS[0]["function"]] and sent["function_call"] == "auto"


def test_a_streamed_call_accumulates_and_usage_is_counted(client: AzureOpenAI, upstream: RecordingUpstream) -> None:
    chunks = list(client.chat.completions.create(
        model="engine", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=TOOLS, stream=True,
        stream_options={"include_usage": True}))
    assert upstream.requests[-1]["stream_options"] == {"include_usage": True}
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                got = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                got["id"] += delta.id or ""
                got["name"] += (delta.function.name or "") if delta.function else ""
                got["arguments"] += (delta.function.arguments or "") if delta.function else ""
    assert calls == {0: {"id": "call_upstream1", "name": "get_weather", "arguments": ARGUMENTS}}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]
    # The upstream sent no usage: Cielo counted it, in one chunk of its own at the end.
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens > 0 and chunks[-1].usage.completion_tokens > 0
    assert [c for c in chunks[:-1] if c.usage is not None] == []


def test_the_sdks_stream_helper_accumulates_the_call(client: AzureOpenAI) -> None:
    with client.beta.chat.completions.stream(model="engine", tools=TOOLS,
                                             messages=[{"role": "user", "content": "Weather in Paris?"}]) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    tool_calls = final.choices[0].message.tool_calls
    assert tool_calls is not None and tool_calls[0].function.arguments == ARGUMENTS
    assert tool_calls[0].function.parsed_arguments == {"city": "Paris"}  # strict: the SDK parsed them
