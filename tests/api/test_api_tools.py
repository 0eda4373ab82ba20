"""Tool calls, legacy function calls, structured outputs and the usage chunk of streams, in-process with the mock
model (its tool calls are deterministic: see cielo.backends.mock), on the deployment and v1 routes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from inproc import ACCOUNT, World, bearer, error_of

WEATHER = {"name": "get_weather", "description": "The weather of a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 2}},
    "required": ["city", "days"]}}
ADD = {"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"]}}
TOOLS = [{"type": "function", "function": WEATHER}, {"type": "function", "function": ADD}]
ASK = [{"role": "user", "content": "Weather in Paris?"}]


def _key(world: World) -> dict[str, str]:
    return {"api-key": world.api_key}


async def _chat(client: httpx.AsyncClient, world: World, body: dict[str, Any]) -> dict[str, Any]:
    answer = await client.post(world.openai_url("chat/completions"), json=body, headers=_key(world))
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _events(answer: httpx.Response) -> list[Any]:
    assert answer.status_code == 200, answer.text
    events = [line[len("data: "):] for line in answer.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


async def test_required_yields_a_call_whose_arguments_satisfy_the_schema(client: httpx.AsyncClient,
                                                                          world: World) -> None:
    body = await _chat(client, world, {"messages": ASK, "tools": TOOLS, "tool_choice": "required"})
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None and message["refusal"] is None and message["role"] == "assistant"
    (call,) = message["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "mock", "days": 2}


async def test_a_named_function_auto_and_none(client: httpx.AsyncClient, world: World) -> None:
    named = await _chat(client, world, {"messages": ASK, "tools": TOOLS,
                                        "tool_choice": {"type": "function", "function": {"name": "add"}}})
    assert named["choices"][0]["message"]["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a":1.0}'}
    auto = await _chat(client, world, {"messages": ASK, "tools": TOOLS})
    assert auto["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    none = await _chat(client, world, {"messages": ASK, "tools": TOOLS, "tool_choice": "none"})
    assert none["choices"][0]["message"] == {"role": "assistant", "content": "echo: Weather in Paris?",
                                             "refusal": None}
    assert none["choices"][0]["finish_reason"] == "stop"


async def test_parallel_calls_and_a_tool_result_round_trip(client: httpx.AsyncClient, world: World) -> None:
    both = await _chat(client, world, {"messages": ASK, "tools": TOOLS, "tool_choice": "required",
                                       "parallel_tool_calls": True})
    calls = both["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "add"] and calls[0]["id"] != calls[1]["id"]
    followed = [*ASK, {"role": "assistant", "content": None, "tool_calls": calls[:1]},
                {"role": "tool", "tool_call_id": calls[0]["id"], "content": "21 degrees"}]
    answer = await _chat(client, world, {"messages": followed, "tools": TOOLS})
    assert answer["choices"][0]["message"]["content"] == "echo: 21 degrees"
    assert answer["choices"][0]["finish_reason"] == "stop"


async def test_legacy_functions_answer_in_the_legacy_shape(client: httpx.AsyncClient, world: World) -> None:
    body = await _chat(client, world, {"messages": ASK, "functions": [WEATHER, ADD],
                                       "function_call": {"name": "add"}})
    choice = body["choices"][0]
    assert choice["finish_reason"] == "function_call"
    assert choice["message"]["function_call"] == {"name": "add", "arguments": '{"a":1.0}'}
    assert "tool_calls" not in choice["message"] and choice["message"]["content"] is None
    followed = [*ASK, {"role": "assistant", "content": None, "function_call": choice["message"]["function_call"]},
                {"role": "function", "name": "add", "content": "3"}]
    answer = await _chat(client, world, {"messages": followed, "functions": [ADD]})
    assert answer["choices"][0]["message"]["content"] == "echo: 3"


async def test_structured_outputs(client: httpx.AsyncClient, world: World) -> None:
    obj = await _chat(client, world, {"messages": ASK, "response_format": {"type": "json_object"}})
    assert json.loads(obj["choices"][0]["message"]["content"]) == {"echo": "echo: Weather in Paris?"}
    schema = {"type": "object", "properties": {"answer": {"type": "string"}, "n": {"type": "integer"}},
              "required": ["answer", "n"], "additionalProperties": False}
    typed = await _chat(client, world, {"messages": ASK, "response_format": {
        "type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": True}}})
    assert json.loads(typed["choices"][0]["message"]["content"]) == {"answer": "mock", "n": 1}


async def test_a_streamed_call_accumulates_and_ends_with_tool_calls(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(world.openai_url("chat/completions"), headers=_key(world), json={
        "messages": ASK, "tools": TOOLS, "tool_choice": "required", "stream": True})
    chunks = _events(answer)[1:]
    assert all(c["usage"] is None for c in chunks)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0]["role"] == "assistant" and deltas[0]["tool_calls"][0]["id"].startswith("call_")
    assert deltas[0]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ""}
    arguments = "".join(call["function"]["arguments"] for d in deltas for call in d.get("tool_calls", []))
    assert json.loads(arguments) == {"city": "mock", "days": 2}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("op", ["chat/completions", "completions"])
async def test_include_usage_adds_one_usage_chunk_before_done(client: httpx.AsyncClient, world: World,
                                                              op: str) -> None:
    body: dict[str, Any] = {"messages": ASK} if op == "chat/completions" else {"prompt": "once upon a time"}
    plain = _events(await client.post(world.openai_url(op), headers=_key(world), json={**body, "stream": True}))
    assert all(not c.get("usage") for c in plain)
    counted = _events(await client.post(world.openai_url(op), headers=_key(world), json={
        **body, "stream": True, "stream_options": {"include_usage": True}}))
    last = counted[-1]
    assert last["choices"] == [] and last["id"] == counted[1]["id"]
    usage = last["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert all(c["usage"] is None for c in counted[:-1])
    assert counted[-2]["choices"][0]["finish_reason"] == "stop"


async def test_include_usage_on_v1_with_tools(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(f"/accounts/{ACCOUNT}/openai/v1/chat/completions", headers=bearer(world.api_key),
                               json={"model": "mock", "messages": ASK, "tools": TOOLS, "stream": True,
                                     "stream_options": {"include_usage": True}})
    chunks = _events(answer)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert sum(1 for c in chunks if c.get("usage")) == 1


@pytest.mark.parametrize(("extra", "param"), [
    ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools[0].function.name"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "other"}}}, "tool_choice"),
    ({"tools": TOOLS, "parallel_tool_calls": 1}, "parallel_tool_calls"),
    ({"functions": [ADD], "function_call": "required"}, "function_call"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}, "response_format.json_schema.name"),
    ({"messages": [*ASK, {"role": "tool", "content": "x"}]}, "messages[1].tool_call_id"),
])
async def test_bad_tool_parameters_are_400s_naming_them(client: httpx.AsyncClient, world: World,
                                                        extra: dict[str, Any], param: str) -> None:
    answer = await client.post(world.openai_url("chat/completions"), headers=_key(world),
                               json={"messages": ASK, **extra})
    error = error_of(answer, 400, "BadRequest")
    assert error["param"] == param and error["type"] == "invalid_request_error"


async def test_tools_are_refused_on_completions(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(world.openai_url("completions"), headers=_key(world),
                               json={"prompt": "x", "tools": TOOLS})
    assert error_of(answer, 400, "BadRequest")["param"] == "tools"
