"""Tool calls, structured outputs and stream usage with the real openai SDK against the embedded SmolLM2-135M.

SmolLM2's chat template knows no tools; Cielo constrains its output with a JSON schema (llama.cpp grammar), so
a forced call always parses and its arguments follow the function's schema, whatever a 135M model makes of the
question (docs/tools-and-structured-outputs.md). Requests are deterministic (temperature 0, a seed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from azure.identity import ClientSecretCredential, get_bearer_token_provider
from conftest_dataplane import API_VERSION, CHAT, COGNITIVE_SCOPE, DataPlane
from openai import AzureOpenAI
from pydantic import BaseModel

pytest_plugins = ("conftest_dataplane",)
pytestmark = pytest.mark.e2e

WEATHER: Any = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city", "strict": True,
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "The city"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"], "additionalProperties": False}}}
ADD: Any = {"type": "function", "function": {
    "name": "add", "description": "Add two integers",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                   "required": ["a", "b"], "additionalProperties": False}}}
ASK: Any = [{"role": "user", "content": "What is the weather like in Paris today?"}]
SAME: Any = {"temperature": 0, "seed": 7, "max_tokens": 200}


@pytest.fixture()
def client(dataplane: DataPlane, dp_env: dict[str, str]) -> Iterator[AzureOpenAI]:
    credential = ClientSecretCredential(dataplane.server.tenant_id, dataplane.app["appId"], dataplane.app["secret"],
                                        authority=dataplane.server.base_url, disable_instance_discovery=True)
    provider = get_bearer_token_provider(credential, COGNITIVE_SCOPE)
    with AzureOpenAI(azure_endpoint=dataplane.endpoint, api_version=API_VERSION, azure_ad_token_provider=provider,
                     max_retries=0) as azure:
        yield azure
    credential.close()


def _check_weather(arguments: str) -> dict[str, Any]:
    """The arguments parse and follow get_weather's schema: both required keys, a string, an enum value, no more."""
    value: dict[str, Any] = json.loads(arguments)
    assert set(value) == {"city", "unit"}, value
    assert isinstance(value["city"], str) and value["unit"] in ("celsius", "fahrenheit"), value
    return value


def test_required_yields_a_call_that_follows_the_schema(client: AzureOpenAI) -> None:
    answer = client.chat.completions.create(model=CHAT, messages=ASK, tools=[WEATHER, ADD],
                                            tool_choice="required", **SAME)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert choice.message.tool_calls, choice
    for call in choice.message.tool_calls:
        assert call.id.startswith("call_") and call.type == "function"
        assert call.function.name in ("get_weather", "add")
        if call.function.name == "get_weather":
            _check_weather(call.function.arguments)
        else:
            added = json.loads(call.function.arguments)
            assert set(added) == {"a", "b"} and all(isinstance(v, int) for v in added.values())
    assert answer.usage is not None and answer.usage.prompt_tokens > 50  # the tools are in the prompt


def test_a_named_function_is_the_one_called(client: AzureOpenAI) -> None:
    answer = client.chat.completions.create(model=CHAT, messages=ASK, tools=[WEATHER, ADD],
                                            tool_choice={"type": "function", "function": {"name": "add"}}, **SAME)
    (call,) = answer.choices[0].message.tool_calls or []
    assert call.function.name == "add"
    added = json.loads(call.function.arguments)
    assert set(added) == {"a", "b"} and all(isinstance(v, int) for v in added.values())


def test_a_streamed_call_accumulates_with_the_sdks_helper(client: AzureOpenAI) -> None:
    with client.beta.chat.completions.stream(model=CHAT, messages=ASK, tools=[WEATHER],
                                             tool_choice="required", stream_options={"include_usage": True},
                                             **SAME) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls"
    (call,) = final.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather" and call.id.startswith("call_")
    assert call.function.parsed_arguments == _check_weather(call.function.arguments)  # strict: parsed by the SDK
    assert final.usage is not None and final.usage.completion_tokens > 0


def test_a_tool_result_round_trip(client: AzureOpenAI) -> None:
    first = client.chat.completions.create(model=CHAT, messages=ASK, tools=[WEATHER],
                                           tool_choice="required", **SAME)
    message = first.choices[0].message
    (call,) = message.tool_calls or []
    history: list[Any] = [*ASK, message.model_dump(exclude_none=True),
                          {"role": "tool", "tool_call_id": call.id, "content": "21 degrees celsius and sunny"}]
    second = client.chat.completions.create(model=CHAT, messages=history, tools=[WEATHER],
                                            tool_choice="none", **SAME)
    text = second.choices[0].message.content
    assert second.choices[0].finish_reason == "stop" and not second.choices[0].message.tool_calls
    assert text and "21" in text, text  # the tool's result reached the model


def test_legacy_functions(client: AzureOpenAI) -> None:
    answer = client.chat.completions.create(model=CHAT, messages=ASK,
                                            functions=[WEATHER["function"]],
                                            function_call={"name": "get_weather"}, **SAME)
    choice = answer.choices[0]
    assert choice.finish_reason == "function_call" and choice.message.function_call is not None
    assert choice.message.function_call.name == "get_weather" and not choice.message.tool_calls
    _check_weather(choice.message.function_call.arguments)


class City(BaseModel):
    name: str
    country: str
    population: int


def test_json_schema_strict_parses_into_a_pydantic_model(client: AzureOpenAI) -> None:
    parsed = client.beta.chat.completions.parse(
        model=CHAT, messages=[{"role": "user", "content": "Describe the city of Paris."}], response_format=City,
        **SAME)
    message = parsed.choices[0].message
    assert message.refusal is None and isinstance(message.parsed, City), message
    assert json.loads(message.content or "") == message.parsed.model_dump()


def test_json_object_parses(client: AzureOpenAI) -> None:
    answer = client.chat.completions.create(
        model=CHAT, response_format={"type": "json_object"}, **SAME,
        messages=[{"role": "system", "content": "Answer in JSON."},
                  {"role": "user", "content": 'What is the capital of France? Answer as {"capital": "..."}.'}])
    assert answer.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(answer.choices[0].message.content or ""), dict)


@pytest.mark.parametrize("kind", ["chat", "completions"])
def test_include_usage_ends_with_a_usage_chunk(client: AzureOpenAI, kind: str) -> None:
    if kind == "chat":
        chunks: list[Any] = list(client.chat.completions.create(
            model=CHAT, messages=[{"role": "user", "content": "Say hello."}], stream=True, max_tokens=8,
            temperature=0, stream_options={"include_usage": True}))
    else:
        chunks = list(client.completions.create(model=CHAT, prompt="The sky is", stream=True, max_tokens=8,
                                                temperature=0, stream_options={"include_usage": True}))
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.prompt_tokens > 0 and 0 < last.usage.completion_tokens <= 8
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert [c for c in chunks[:-1] if c.usage is not None] == []
    assert any(c.choices and c.choices[0].finish_reason for c in chunks[:-1])
