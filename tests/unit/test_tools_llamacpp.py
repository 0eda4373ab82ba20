"""The embedded backend's tool path with llama.cpp replaced by a fake handler (no model loaded): what it is asked
(tools as a system message and a JSON schema, no `tools` field), how its JSON is read back, streamed, and how a
schema llama.cpp cannot turn into a grammar is refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cielo.backends.base import BackendError
from cielo.backends.llamacpp import LlamaCppBackend

TOOLS = [{"type": "function", "function": {"name": "add", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}]
ASK = [{"role": "user", "content": "one plus nothing?"}]
ANSWER = '{"tool_call": {"name": "add", "arguments": {"a": 1}}}'


def _backend(seen: list[dict[str, Any]], text: str = ANSWER, fail: str | None = None) -> LlamaCppBackend:
    """A backend whose llama.cpp answers `text` in three chunks, then the usage (or raises `fail`)."""
    backend = LlamaCppBackend(Path("/nonexistent.gguf"), n_parallel=1)

    def handle(body: dict[str, Any], on_chunk: Callable[[dict[str, Any]], bool]) -> None:
        seen.append(body)
        if fail:
            raise RuntimeError(fail)
        third = len(text) // 3
        for piece in (text[:third], text[third:2 * third], text[2 * third:]):
            on_chunk({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        on_chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        on_chunk({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}})

    backend._handler = lambda kind: handle  # type: ignore[method-assign]
    return backend


async def test_llama_cpp_is_asked_for_json_and_the_call_is_read_back() -> None:
    seen: list[dict[str, Any]] = []
    answer = await _backend(seen).complete("chat", {"messages": ASK, "tools": TOOLS, "tool_choice": "required"})
    (sent,) = seen
    assert "tools" not in sent and "tool_choice" not in sent
    assert sent["messages"][0]["role"] == "system" and '"add"' in sent["messages"][0]["content"]
    assert sent["response_format"]["type"] == "json_schema"
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a":1}'}
    assert answer["usage"]["completion_tokens"] == 4


async def test_a_tool_stream_is_sent_as_call_deltas_then_usage() -> None:
    chunks = [c async for c in _backend([]).stream("chat", {"messages": ASK, "tools": TOOLS})]
    head = chunks[0]["choices"][0]["delta"]["tool_calls"][0]
    assert head["function"] == {"name": "add", "arguments": ""} and head["id"].startswith("call_")
    arguments = "".join(d["function"]["arguments"] for c in chunks[1:] for ch in c["choices"]
                        for d in ch["delta"].get("tool_calls", []))
    assert json.loads(arguments) == {"a": 1}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1] == {"object": "chat.completion.chunk", "choices": [],
                          "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}}


async def test_without_tools_nothing_changes() -> None:
    seen: list[dict[str, Any]] = []
    answer = await _backend(seen, "hello").complete("chat", {"messages": ASK, "temperature": 0})
    assert seen[0]["messages"] == ASK and "response_format" not in seen[0]
    assert answer["choices"][0]["message"]["content"] == "hello"


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": ASK, "tools": TOOLS}, "tools"),
    ({"messages": ASK, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}},
     "response_format"),
])
async def test_a_schema_llama_cpp_cannot_use_is_a_400(body: dict[str, Any], param: str) -> None:
    backend = _backend([], fail="JSON schema error at #/properties/x: unsupported $ref https://example.com/s.json")
    with pytest.raises(BackendError) as info:
        await backend.complete("chat", body)
    assert (info.value.status, info.value.code, info.value.param) == (400, "BadRequest", param)
