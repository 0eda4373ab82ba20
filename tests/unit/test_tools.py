"""Tool calling without a tool template (dataplane/toolcalls.py) and the validation of its parameters
(dataplane/tools.py): the JSON schema the embedded model is constrained by, the prompt, the history rendering,
reading an answer back into OpenAI's shapes, streaming it, and every 400."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cielo.dataplane import toolcalls, tools
from cielo.errors import DataPlaneError

WEATHER = {"name": "get_weather", "description": "The weather of a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
    "required": ["city", "unit"], "additionalProperties": False}}
ADD = {"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"]}}
TOOLS = [{"type": "function", "function": WEATHER}, {"type": "function", "function": ADD}]
ASK = [{"role": "user", "content": "Weather in Paris?"}]


def _body(**extra: Any) -> dict[str, Any]:
    return {"messages": list(ASK), "tools": TOOLS, **extra}


# ----------------------------------------------------------------------------- the constraint
def test_required_constrains_to_one_call_of_any_tool() -> None:
    plan = toolcalls.plan_for(_body(tool_choice="required"))
    assert plan is not None and plan.mode == "required" and plan.allowed == ("get_weather", "add")
    schema = plan.request["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["tool_call"] and schema["additionalProperties"] is False
    calls = schema["properties"]["tool_call"]["anyOf"]
    assert [c["properties"]["name"] for c in calls] == [{"const": "get_weather"}, {"const": "add"}]
    assert calls[0]["properties"]["arguments"] == WEATHER["parameters"]
    assert "tools" not in plan.request and "tool_choice" not in plan.request


def test_a_named_function_allows_that_one_only() -> None:
    plan = toolcalls.plan_for(_body(tool_choice={"type": "function", "function": {"name": "add"}}))
    assert plan is not None and plan.allowed == ("add",)
    call = plan.request["response_format"]["json_schema"]["schema"]["properties"]["tool_call"]
    assert call["properties"]["name"] == {"const": "add"} and call["properties"]["arguments"] == ADD["parameters"]
    assert "get_weather" not in plan.request["messages"][0]["content"]


def test_auto_allows_an_answer_and_parallel_a_list() -> None:
    plan = toolcalls.plan_for(_body(parallel_tool_calls=True))
    assert plan is not None and plan.mode == "auto" and plan.parallel
    branches = plan.request["response_format"]["json_schema"]["schema"]["anyOf"]
    assert branches[0]["properties"]["tool_calls"]["minItems"] == 1
    assert branches[1]["properties"] == {"response": {"type": "string"}}
    structured = toolcalls.plan_for(_body(response_format={"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "object", "properties": {"n": {"type": "integer"}}}}}))
    assert structured is not None and structured.structured
    answer = structured.request["response_format"]["json_schema"]["schema"]["anyOf"][1]
    assert answer["properties"]["response"]["properties"] == {"n": {"type": "integer"}}


def test_none_offers_no_tools_and_no_constraint() -> None:
    plan = toolcalls.plan_for(_body(tool_choice="none"))
    assert plan is not None and not plan.constrained
    assert "response_format" not in plan.request and plan.request["messages"] == ASK


def test_the_tools_join_the_system_message() -> None:
    plan = toolcalls.plan_for({**_body(), "messages": [{"role": "system", "content": "Be brief."}, *ASK]})
    assert plan is not None
    system = plan.request["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("Be brief.\n\nYou can call these tools:")
    assert '"get_weather"' in system["content"] and '"response"' in system["content"]
    assert plan.request["messages"][1:] == ASK


def test_a_request_without_tools_is_left_alone() -> None:
    assert toolcalls.plan_for({"messages": ASK, "temperature": 0}) is None


def test_legacy_functions_map_to_the_same_constraint() -> None:
    plan = toolcalls.plan_for({"messages": ASK, "functions": [WEATHER], "function_call": {"name": "get_weather"}})
    assert plan is not None and plan.legacy and plan.mode == "required" and plan.allowed == ("get_weather",)
    assert "functions" not in plan.request and "function_call" not in plan.request


# ----------------------------------------------------------------------------- history
def test_tool_results_are_rendered_as_user_messages_naming_the_call() -> None:
    messages = [*ASK, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather",
                                                          "arguments": '{"city":"Paris","unit":"c"}'}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "21 C"}]
    rendered = toolcalls.render_history(messages)
    assert rendered == [*ASK, {"role": "user", "content":
                               'Result of get_weather({"city": "Paris", "unit": "c"}): 21 C'}]
    legacy = toolcalls.render_history([*ASK, {"role": "assistant", "content": None, "function_call": {
        "name": "add", "arguments": '{"a": 1}'}}, {"role": "function", "name": "add", "content": "1"}])
    assert legacy[-1] == {"role": "user", "content": 'Result of add({"a": 1}): 1'}


# ----------------------------------------------------------------------------- reading back
def _choice(text: str, finish: str = "stop") -> dict[str, Any]:
    return {"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": text}}


def test_a_call_is_read_back_in_openai_shape() -> None:
    plan = toolcalls.plan_for(_body(tool_choice="required"))
    assert plan is not None
    out = toolcalls.read_choice(plan, _choice('{"tool_call": {"name": "get_weather", "arguments": '
                                              '{"city": "Paris", "unit": "c"}}}'))
    assert out["finish_reason"] == "tool_calls" and out["message"]["content"] is None
    (call,) = out["message"]["tool_calls"]
    assert call["id"].startswith("call_") and len(call["id"]) == 29 and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris", "unit": "c"}


def test_an_answer_a_legacy_call_and_a_cut_off_output() -> None:
    auto = toolcalls.plan_for(_body())
    assert auto is not None
    assert toolcalls.read_choice(auto, _choice('{"response": "Sunny."}'))["message"]["content"] == "Sunny."
    legacy = toolcalls.plan_for({"messages": ASK, "functions": [ADD]})
    assert legacy is not None
    out = toolcalls.read_choice(legacy, _choice('{"tool_call": {"name": "add", "arguments": {"a": 2}}}'))
    assert out["finish_reason"] == "function_call"
    assert out["message"]["function_call"] == {"name": "add", "arguments": '{"a":2}'}
    assert "tool_calls" not in out["message"]
    cut = toolcalls.read_choice(auto, _choice('{"tool_call": {"name": "ad', "length"))
    assert cut["finish_reason"] == "length" and cut["message"]["content"] == '{"tool_call": {"name": "ad'


def test_a_call_streams_as_openai_deltas_and_accumulates() -> None:
    plan = toolcalls.plan_for(_body(parallel_tool_calls=True, tool_choice="required"))
    assert plan is not None
    long_city = "x" * 100
    result = toolcalls.read_answer(plan, {"choices": [_choice(json.dumps({"tool_calls": [
        {"name": "get_weather", "arguments": {"city": long_city, "unit": "c"}},
        {"name": "add", "arguments": {"a": 1}}]}))], "usage": {"prompt_tokens": 3, "completion_tokens": 4}})
    chunks = list(toolcalls.stream_answer(result))
    assert chunks[-1] == {"object": "chat.completion.chunk", "choices": [], "usage": result["usage"]}
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "tool_calls"}
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant" and first["tool_calls"][0]["function"] == {"name": "get_weather",
                                                                                   "arguments": ""}
    accumulated: dict[int, str] = {}
    for chunk in chunks[:-2]:
        for call in chunk["choices"][0]["delta"]["tool_calls"]:
            accumulated[call["index"]] = accumulated.get(call["index"], "") + call["function"]["arguments"]
    assert json.loads(accumulated[0]) == {"city": long_city, "unit": "c"} and json.loads(accumulated[1]) == {"a": 1}
    assert len(chunks) > 6  # the long arguments came in fragments


def test_sample_values_satisfy_required_properties() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}, "s": {"type": "string"},
                                               "e": {"enum": ["x", "y"]}, "r": {"$ref": "#/$defs/R"},
                                               "opt": {"type": "string"}},
              "required": ["n", "s", "e", "r"], "$defs": {"R": {"type": "object", "properties": {
                  "b": {"type": "boolean"}}, "required": ["b"]}}}
    assert toolcalls.sample(schema) == {"n": 3, "s": "mock", "e": "x", "r": {"b": True}}


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(("extra", "param"), [
    ({"tools": []}, "tools"),
    ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
    ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "x" * 65}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]},
     "tools[0].function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}] * 2}, "tools[1].function.name"),
    ({"tools": [{"type": "function", "function": {"name": f"f{i}"}} for i in range(129)]}, "tools"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": TOOLS, "tool_choice": "always"}, "tool_choice"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"tools": TOOLS, "tool_choice": {"function": {"name": "add"}}}, "tool_choice"),
    ({"tools": TOOLS, "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
    ({"parallel_tool_calls": True}, "parallel_tool_calls"),
    ({"functions": [ADD], "function_call": "required"}, "function_call"),
    ({"functions": [ADD], "function_call": {"name": "get_weather"}}, "function_call"),
    ({"functions": [ADD], "tools": TOOLS}, "functions"),
    ({"response_format": {"type": "yaml"}}, "response_format"),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}, "response_format.json_schema.name"),
    ({"messages": [{"role": "tool", "content": "21"}]}, "messages[0].tool_call_id"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {
        "name": "f", "arguments": {"a": 1}}}]}]}, "messages[0].tool_calls[0].function.arguments"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"type": "function", "function": {
        "name": "f", "arguments": "{}"}}]}]}, "messages[0].tool_calls[0].id"),
])
def test_each_bad_parameter_is_a_400_naming_it(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(DataPlaneError) as info:
        tools.validate("chat", {"messages": ASK, **extra})
    assert info.value.status == 400 and info.value.param == param, info.value


def test_valid_parameters_pass() -> None:
    tools.validate("chat", _body(tool_choice={"type": "function", "function": {"name": "add"}},
                                 parallel_tool_calls=False, response_format={"type": "json_object"}))
    tools.validate("chat", {"messages": [*ASK, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "1"}], "functions": [ADD], "function_call": "none"})
    with pytest.raises(DataPlaneError) as info:
        tools.validate("completions", {"prompt": "x", "tools": TOOLS})
    assert info.value.param == "tools"


def test_malformed_schemas_and_answers_never_raise() -> None:
    assert toolcalls.sample({"type": "object", "properties": 5, "required": ["a", 3]}) == {"a": {}}
    assert toolcalls.sample({"type": "array", "minItems": 10**9, "items": {"type": "integer", "minimum": "x"}}) \
        == [1] * 8
    plan = toolcalls.plan_for(_body())
    assert plan is not None
    odd = toolcalls.read_choice(plan, _choice('{"tool_call": null}'))
    assert odd["message"]["content"] == '{"tool_call": null}' and "tool_calls" not in odd["message"]
