"""The Responses API with the mock model, in-process: the response object, refusals naming the parameter,
previous_response_id chains, stored responses seen only by their caller, retrieve/delete/input items, the
event stream's order, and the data actions Azure checks for responses.

`alice` holds Cognitive Services OpenAI User (whose `…/OpenAI/responses/*` lets her create, read and delete
responses), `bob` Cognitive Services User."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from inproc import (
    ACCOUNT,
    COG_RESOURCE,
    MOCK_DEPLOYMENT,
    World,
    arm_call,
    assign,
    bearer,
    error_of,
    new_principal,
    sp_token,
)

V1 = f"/accounts/{ACCOUNT}/openai/v1/responses"
PREVIEW = f"/accounts/{ACCOUNT}/openai/responses"
VERSION = {"api-version": "2025-03-01-preview"}


OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"  # Cognitive Services OpenAI User: Azure grants it responses/*


def _principal(world: World, role: str | None) -> str:
    async def make() -> str:
        async with world.client() as client:
            who = await new_principal(client, world)
            if role == "Cognitive Services OpenAI User":
                answer = await arm_call(client, world, "PUT", f"{world.account_path()}/providers/"
                                        f"Microsoft.Authorization/roleAssignments/{uuid.uuid4()}", {"properties": {
                                            "roleDefinitionId": f"{world.sub_path}/providers/Microsoft.Authorization/"
                                            f"roleDefinitions/{OPENAI_USER}", "principalId": who.sp_id}})
                assert answer.status_code == 201, answer.text
            elif role:
                await assign(client, world, role, who.sp_id, world.account_path())
            return await sp_token(client, world, who, COG_RESOURCE)

    return asyncio.run(make())


@pytest.fixture(scope="module")
def alice(world: World) -> dict[str, str]:
    return bearer(_principal(world, "Cognitive Services OpenAI User"))


@pytest.fixture(scope="module")
def bob(world: World) -> dict[str, str]:
    return bearer(_principal(world, "Cognitive Services User"))


def _key(world: World) -> dict[str, str]:
    return {"api-key": world.api_key}


async def _create(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    answer = await client.post(V1, json={"model": MOCK_DEPLOYMENT, **body}, headers=headers)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


# ----------------------------------------------------------------------------- create
async def test_create_answers_a_response_object(client: httpx.AsyncClient, world: World,
                                                alice: dict[str, str]) -> None:
    answer = await client.post(V1, json={"model": MOCK_DEPLOYMENT, "input": "hello there", "instructions": "be brief",
                                         "metadata": {"k": "v"}, "temperature": 0.5},
                               headers={**alice, "x-ms-client-request-id": "r-1"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-ms-client-request-id"] == "r-1" and answer.headers["apim-request-id"]
    assert int(answer.headers["x-ratelimit-remaining-tokens"]) >= 0
    body = answer.json()
    assert body["id"].startswith("resp_") and body["object"] == "response" and body["status"] == "completed"
    assert isinstance(body["created_at"], int) and body["model"] == "mock"
    assert body["instructions"] == "be brief" and body["metadata"] == {"k": "v"} and body["temperature"] == 0.5
    assert body["store"] is True and body["previous_response_id"] is None and body["incomplete_details"] is None
    assert body["tools"] == [] and body["tool_choice"] == "auto" and body["text"] == {"format": {"type": "text"}}
    [message] = body["output"]
    assert message["type"] == "message" and message["role"] == "assistant" and message["id"].startswith("msg_")
    assert message["status"] == "completed"
    assert message["content"] == [{"type": "output_text", "text": "echo: hello there", "annotations": []}]
    usage = body["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    assert usage["input_tokens_details"] == {"cached_tokens": 0}
    assert usage["output_tokens_details"] == {"reasoning_tokens": 0}
    assert "output_text" not in body  # the SDK computes it


async def test_preview_route_with_api_version_and_message_items(client: httpx.AsyncClient, world: World) -> None:
    items = [{"role": "developer", "content": "be brief"},
             {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hi"}]},
             {"role": "user", "content": [{"type": "input_text", "text": "first"},
                                          {"type": "input_text", "text": " second"}]}]
    answer = await client.post(PREVIEW, params=VERSION, json={"model": MOCK_DEPLOYMENT, "input": items},
                               headers=_key(world))
    assert answer.status_code == 200, answer.text
    assert answer.json()["output"][0]["content"][0]["text"] == "echo: first second"


@pytest.mark.parametrize(("params", "status", "code"), [
    ({}, 400, "MissingApiVersionParameter"),
    ({"api-version": "2024-10-21"}, 404, "UnsupportedApiVersion"),
    ({"api-version": "2025-01-01-preview"}, 404, "UnsupportedApiVersion"),
])
async def test_preview_route_needs_a_preview_with_responses(client: httpx.AsyncClient, world: World,
                                                            params: dict[str, str], status: int, code: str) -> None:
    answer = await client.post(PREVIEW, params=params, json={"model": MOCK_DEPLOYMENT, "input": "x"},
                               headers=_key(world))
    error_of(answer, status, code)


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "x"}, "model"),
    ({"model": MOCK_DEPLOYMENT}, "input"),
    ({"model": MOCK_DEPLOYMENT, "input": []}, "input"),
    ({"model": MOCK_DEPLOYMENT, "input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
    ({"model": MOCK_DEPLOYMENT, "input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
    ({"model": MOCK_DEPLOYMENT, "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
     "input[0].content[0]"),
    ({"model": MOCK_DEPLOYMENT, "input": "x", "tools": [{"type": "web_search_preview"}]}, "tools[0].type"),
    ({"model": MOCK_DEPLOYMENT, "input": "x", "tools": [{"type": "file_search", "vector_store_ids": []}]},
     "tools[0].type"),
    ({"model": MOCK_DEPLOYMENT, "input": "x", "tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
    ({"model": MOCK_DEPLOYMENT, "input": "x", "reasoning": {"effort": "high"}}, "reasoning"),
    ({"model": MOCK_DEPLOYMENT, "input": "x", "background": True}, "background"),
    ({"model": MOCK_DEPLOYMENT, "input": "x", "include": ["message.output_text.logprobs"]}, "include"),
    ({"model": MOCK_DEPLOYMENT, "input": "x", "truncation": "auto"}, "truncation"),
    ({"model": MOCK_DEPLOYMENT, "input": "x", "conversation": "conv_1"}, "conversation"),
    ({"model": MOCK_DEPLOYMENT, "input": "x", "stream": True, "stream_options": {"include_obfuscation": True}},
     "stream_options"),
    ({"model": MOCK_DEPLOYMENT, "input": "x", "frequency_penalty": 1}, "frequency_penalty"),
    ({"model": MOCK_DEPLOYMENT, "input": "x", "max_output_tokens": 8}, "max_output_tokens"),
    ({"model": MOCK_DEPLOYMENT, "input": "x", "temperature": 3}, "temperature"),
    ({"model": MOCK_DEPLOYMENT, "input": "x", "store": "yes"}, "store"),
    ({"model": MOCK_DEPLOYMENT, "input": "x", "metadata": {"k": 1}}, "metadata"),
    ({"model": MOCK_DEPLOYMENT, "input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}},
     "text.format.schema"),
    ({"model": MOCK_DEPLOYMENT, "input": "x", "text": {"format": {"type": "grammar"}}}, "text.format.type"),
])
async def test_refusals_name_the_parameter(client: httpx.AsyncClient, world: World, body: dict[str, Any],
                                           param: str) -> None:
    answer = await client.post(V1, json=body, headers=_key(world))
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error", error
    assert param.split("[")[0].split(".")[0] in error["message"], error


async def test_neutral_values_of_unserved_fields_are_accepted(client: httpx.AsyncClient, world: World) -> None:
    body = await _create(client, _key(world), input="x", truncation="disabled", include=[], background=False,
                         reasoning=None, service_tier="auto", store=False,
                         stream_options={"include_obfuscation": False})
    assert body["status"] == "completed" and body["store"] is False


async def test_unknown_deployment_is_404(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(V1, json={"model": "no-such", "input": "x"}, headers=_key(world))
    error_of(answer, 404, "DeploymentNotFound")


# ----------------------------------------------------------------------------- data actions
async def test_creating_needs_the_responses_write_data_action(client: httpx.AsyncClient, world: World) -> None:
    token = bearer(_principal_async_free(world, "Reader"))
    answer = await client.post(V1, json={"model": MOCK_DEPLOYMENT, "input": "x"}, headers=token)
    error = error_of(answer, 401, "PermissionDenied")
    assert "Microsoft.CognitiveServices/accounts/OpenAI/responses/write" in error["message"]
    assert "POST /openai/v1/responses" in error["message"]
    answer = await client.get(f"{V1}/resp_x", headers=token)
    assert "Microsoft.CognitiveServices/accounts/OpenAI/responses/read" in error_of(answer, 401,
                                                                                    "PermissionDenied")["message"]
    answer = await client.delete(f"{PREVIEW}/resp_x", params=VERSION, headers=token)
    error = error_of(answer, 401, "PermissionDenied")
    assert "responses/delete" in error["message"] and "DELETE /openai/responses/{response_id}" in error["message"]


def _principal_async_free(world: World, role: str) -> str:
    """A principal made on a worker thread: this test's own event loop is running."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(_principal, world, role).result()


async def test_a_wrong_key_is_refused(client: httpx.AsyncClient) -> None:
    answer = await client.post(V1, json={"model": MOCK_DEPLOYMENT, "input": "x"}, headers={"api-key": "wrong"})
    error_of(answer, 401, "401")


# ----------------------------------------------------------------------------- stored responses
async def test_previous_response_id_continues_the_conversation(client: httpx.AsyncClient, world: World,
                                                               alice: dict[str, str]) -> None:
    first = await _create(client, alice, input="one", instructions="only for the first")
    second = await _create(client, alice, input=[{"role": "user", "content": "two"}],
                           previous_response_id=first["id"])
    assert second["previous_response_id"] == first["id"] and second["instructions"] is None
    assert second["output"][0]["content"][0]["text"] == "echo: two"
    # The stored conversation is what the model read: its prompt grew by the first turn (input and answer).
    assert second["usage"]["input_tokens"] >= 1
    items = await client.get(f"{V1}/{second['id']}/input_items", headers=alice)
    assert items.status_code == 200, items.text
    page = items.json()
    assert page["object"] == "list" and page["has_more"] is False
    assert [i["content"][0]["text"] for i in page["data"]] == ["two"]
    assert page["first_id"] == page["last_id"] == page["data"][0]["id"]


async def test_stored_responses_are_visible_only_to_their_caller(client: httpx.AsyncClient, world: World,
                                                                 alice: dict[str, str], bob: dict[str, str]) -> None:
    made = await _create(client, alice, input="mine")
    answer = await client.get(f"{V1}/{made['id']}", headers=alice)
    assert answer.status_code == 200 and answer.json() == made
    for headers in (bob, _key(world)):
        error_of(await client.get(f"{V1}/{made['id']}", headers=headers), 404, "NotFound")
        error_of(await client.delete(f"{V1}/{made['id']}", headers=headers), 404, "NotFound")
        chained = await client.post(V1, json={"model": MOCK_DEPLOYMENT, "input": "x",
                                              "previous_response_id": made["id"]}, headers=headers)
        error = error_of(chained, 404, "previous_response_not_found")
        assert error["param"] == "previous_response_id"
    assert (await client.get(f"{V1}/{made['id']}", headers=alice)).status_code == 200  # still there


async def test_key_callers_share_the_accounts_responses(client: httpx.AsyncClient, world: World) -> None:
    made = await _create(client, _key(world), input="by key")
    answer = await client.get(f"{PREVIEW}/{made['id']}", params=VERSION, headers={"Authorization": "Bearer x",
                                                                                   **_key(world)})
    assert answer.status_code == 200 and answer.json()["id"] == made["id"]


async def test_retrieve_delete_and_404(client: httpx.AsyncClient, world: World, alice: dict[str, str]) -> None:
    made = await _create(client, alice, input="to delete")
    gone = await client.delete(f"{V1}/{made['id']}", headers=alice)
    assert gone.status_code == 200 and gone.json() == {"id": made["id"], "object": "response", "deleted": True}
    error = error_of(await client.get(f"{V1}/{made['id']}", headers=alice), 404, "NotFound")
    assert made["id"] in error["message"]
    error_of(await client.delete(f"{V1}/{made['id']}", headers=alice), 404, "NotFound")
    error_of(await client.get(f"{V1}/resp_unknown/input_items", headers=alice), 404, "NotFound")


async def test_unstored_responses_cannot_be_found(client: httpx.AsyncClient, world: World,
                                                  alice: dict[str, str]) -> None:
    made = await _create(client, alice, input="forget me", store=False)
    error_of(await client.get(f"{V1}/{made['id']}", headers=alice), 404, "NotFound")


async def test_stored_responses_expire_after_30_days(client: httpx.AsyncClient, world: World,
                                                     moved_clock: Any) -> None:
    key = _key(world)  # a key does not expire as the tokens do
    made = await _create(client, key, input="old")
    moved_clock.advance(30 * 86400 - 60)
    assert (await client.get(f"{V1}/{made['id']}", headers=key)).status_code == 200
    moved_clock.advance(120)
    error_of(await client.get(f"{V1}/{made['id']}", headers=key), 404, "NotFound")


async def test_input_items_pages(client: httpx.AsyncClient, world: World, alice: dict[str, str]) -> None:
    made = await _create(client, alice, input=[{"role": "user", "content": t} for t in ("a", "b", "c")])
    url = f"{V1}/{made['id']}/input_items"
    first = (await client.get(url, params={"limit": 2, "order": "asc"}, headers=alice)).json()
    assert [i["content"][0]["text"] for i in first["data"]] == ["a", "b"] and first["has_more"] is True
    rest = (await client.get(url, params={"limit": 2, "order": "asc", "after": first["last_id"]},
                             headers=alice)).json()
    assert [i["content"][0]["text"] for i in rest["data"]] == ["c"] and rest["has_more"] is False
    newest = (await client.get(url, headers=alice)).json()
    assert [i["content"][0]["text"] for i in newest["data"]] == ["c", "b", "a"]
    bad = await client.get(url, params={"limit": 0}, headers=alice)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"


# ----------------------------------------------------------------------------- streaming
def _events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        data = json.loads(lines["data"])
        assert data["type"] == lines["event"]
        events.append((lines["event"], data))
    return events


async def test_stream_tells_the_documented_events_in_order(client: httpx.AsyncClient, world: World,
                                                           alice: dict[str, str]) -> None:
    answer = await client.post(V1, json={"model": MOCK_DEPLOYMENT, "input": "streamed words here", "stream": True},
                               headers=alice)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = _events(answer.text)
    kinds = [kind for kind, _ in events]
    deltas = kinds.count("response.output_text.delta")
    assert deltas >= 2
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * deltas,
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.completed"]
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    text = "".join(data["delta"] for kind, data in events if kind == "response.output_text.delta")
    assert text == "echo: streamed words here"
    assert events[0][1]["response"]["status"] == "in_progress" and events[0][1]["response"]["output"] == []
    final = events[-1][1]["response"]
    assert final["status"] == "completed" and final["output"][0]["content"][0]["text"] == text
    assert events[-2][1]["item"] == final["output"][0]
    stored = await client.get(f"{V1}/{final['id']}", headers=alice)
    assert stored.status_code == 200 and stored.json() == final


# ----------------------------------------------------------------------------- tools and structured output
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city.", "strict": True,
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                          "additionalProperties": False}}


async def test_function_tools_answer_function_call_items(client: httpx.AsyncClient, world: World,
                                                         alice: dict[str, str]) -> None:
    made = await _create(client, alice, input="weather in Paris?", tools=[WEATHER], tool_choice="required")
    assert made["tools"] == [WEATHER] and made["tool_choice"] == "required"
    [call] = made["output"]
    assert call["type"] == "function_call" and call["name"] == "get_weather" and call["status"] == "completed"
    assert call["id"].startswith("fc_") and call["call_id"]
    assert isinstance(json.loads(call["arguments"])["city"], str)
    # The tool's result goes back as a function_call_output item, the conversation kept by the server.
    answer = await _create(client, alice, previous_response_id=made["id"], tools=[WEATHER],
                           input=[{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}])
    assert answer["output"][0]["type"] == "message"
    assert answer["output"][0]["content"][0]["text"] == "echo: sunny"
    # Or kept by the client: the call and its output in the input itself.
    again = await _create(client, _key(world), tools=[WEATHER], input=[
        {"role": "user", "content": "weather in Paris?"},
        {"type": "function_call", "call_id": call["call_id"], "name": "get_weather", "arguments": call["arguments"]},
        {"type": "function_call_output", "call_id": call["call_id"], "output": "rainy"}])
    assert again["output"][0]["content"][0]["text"] == "echo: rainy"


async def test_a_named_tool_choice(client: httpx.AsyncClient, world: World) -> None:
    other = {**WEATHER, "name": "get_time"}
    made = await _create(client, _key(world), input="x", tools=[WEATHER, other],
                         tool_choice={"type": "function", "name": "get_time"})
    assert [item["name"] for item in made["output"]] == ["get_time"]


async def test_structured_output_with_a_json_schema(client: httpx.AsyncClient, world: World) -> None:
    fmt = {"type": "json_schema", "name": "city", "strict": True,
           "schema": {"type": "object", "properties": {"name": {"type": "string"}, "country": {"type": "string"}},
                      "required": ["name", "country"], "additionalProperties": False}}
    made = await _create(client, _key(world), input="a city", text={"format": fmt})
    assert made["text"] == {"format": fmt}
    value = json.loads(made["output"][0]["content"][0]["text"])
    assert set(value) == {"name", "country"}


async def test_stream_of_a_function_call(client: httpx.AsyncClient, world: World, alice: dict[str, str]) -> None:
    answer = await client.post(V1, json={"model": MOCK_DEPLOYMENT, "input": "weather?", "tools": [WEATHER],
                                         "tool_choice": "required", "stream": True}, headers=alice)
    assert answer.status_code == 200, answer.text
    events = _events(answer.text)
    kinds = [kind for kind, _ in events]
    deltas = kinds.count("response.function_call_arguments.delta")
    assert deltas >= 1
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     *["response.function_call_arguments.delta"] * deltas, "response.function_call_arguments.done",
                     "response.output_item.done", "response.completed"]
    added, done, final = events[2][1]["item"], events[-2][1]["item"], events[-1][1]["response"]
    assert added["type"] == "function_call" and added["arguments"] == "" and added["status"] == "in_progress"
    arguments = "".join(data["delta"] for kind, data in events if kind == "response.function_call_arguments.delta")
    assert events[-3][1]["arguments"] == arguments == done["arguments"] and json.loads(arguments)["city"]
    assert done["status"] == "completed" and final["output"] == [done] and final["usage"]["output_tokens"] > 0


async def test_a_stream_that_fails_ends_with_error_and_response_failed() -> None:
    """A backend fault after the stream started (DataPlane's chat stream then ends with an error event): the
    Responses stream ends with `error` and `response.failed`, never `response.completed`, and nothing is kept."""
    from cielo.dataplane import responses
    from cielo.dataplane.response_events import retell

    async def chat() -> Any:
        yield b'data: {"choices":[],"prompt_filter_results":[]}\n\n'
        yield b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}\n\n'
        yield b'data: {"error":{"code":"UpstreamError","message":"the upstream went away"}}\n\n'

    kept: list[dict[str, Any]] = []
    start = responses.skeleton({"input": "x"}, "resp_x", 0, "m")
    async def keep(response: dict[str, Any]) -> None:
        kept.append(response)

    events = _events(b"".join([event async for event in retell(chat(), start, keep)]).decode())
    assert [kind for kind, _ in events] == ["response.created", "response.in_progress", "response.output_item.added",
                                            "response.content_part.added", "response.output_text.delta", "error",
                                            "response.failed"]
    assert events[-2][1]["code"] == "UpstreamError" and events[-2][1]["message"] == "the upstream went away"
    failed = events[-1][1]["response"]
    assert failed["status"] == "failed" and failed["error"]["message"] == "the upstream went away"
    assert kept == []


async def test_a_message_and_its_calls_are_one_assistant_turn(client: httpx.AsyncClient, world: World) -> None:
    """Items of one earlier output (a message, then function calls) sent back by the client: one assistant turn
    with its tool_calls, each answered by a tool message."""
    from cielo.dataplane import responses

    items = [{"role": "user", "content": "weather in Paris and Rome?"},
             {"role": "assistant", "content": "Let me look."},
             {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
             {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": '{"city": "Rome"}'},
             {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
             {"type": "function_call_output", "call_id": "c2", "output": "cloudy"}]
    chat = responses.chat_body({"instructions": "be brief"}, responses.input_items(items))["messages"]
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "tool", "tool"]
    assert chat[2]["content"] == "Let me look."
    assert [c["id"] for c in chat[2]["tool_calls"]] == ["c1", "c2"]
    assert [(m["tool_call_id"], m["content"]) for m in chat[3:]] == [("c1", "sunny"), ("c2", "cloudy")]
    body = await _create(client, _key(world), tools=[WEATHER], input=items)
    assert body["output"][0]["content"][0]["text"] == "echo: cloudy"
