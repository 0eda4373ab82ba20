"""The data plane's request contract in-process (mock model): each case the outside review with schemathesis
found, in both directions — what Azure's inference specs allow is answered, what they forbid is a 400 in
Azure's envelope naming the parameter, never a 500 — per route and api-version; fields Cielo does not honour
refused by name; embeddings from token arrays."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from inproc import ACCOUNT, World

from cielo.dataplane import tokens

CHAT: dict[str, Any] = {"messages": [{"role": "user", "content": "hello there"}]}


def _key(world: World) -> dict[str, str]:
    return {"api-key": world.api_key}


def _refused(answer: httpx.Response, param: str | None, code: str = "BadRequest") -> dict[str, Any]:
    assert answer.status_code == 400, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert error["code"] == code and answer.headers["x-ms-error-code"] == code, error
    assert error["type"] == "invalid_request_error" and error["message"], error
    assert error.get("param") == param, error
    return error


@pytest.mark.parametrize("role", [["user"], {"a": 1}, 7, None])
async def test_a_role_that_is_not_a_string_is_a_400_naming_it(client: httpx.AsyncClient, world: World,
                                                              role: Any) -> None:
    answer = await client.post(world.openai_url("chat/completions"),
                               json={"messages": [{"role": role, "content": "x"}]}, headers=_key(world))
    _refused(answer, "messages[0].role")


@pytest.mark.parametrize(("op", "body"), [
    ("completions", {"prompt": "x", "max_tokens": 0}),
    ("chat/completions", {**CHAT, "max_tokens": 0}),
    ("completions", {"prompt": None}),
    ("completions", {"prompt": []}),
    ("completions", {"prompt": "x", "best_of": 2, "n": 2}),
    ("completions", {"prompt": "x", "echo": True}),
    ("chat/completions", {**CHAT, "top_logprobs": 2}),
    ("chat/completions", {**CHAT, "stream_options": {"include_usage": True}}),
    ("chat/completions", {**CHAT, "logit_bias": {"50256": -100}, "user": "user-1234", "seed": 7}),
    ("embeddings", {"input": ""}),
    ("embeddings", {"input": "x", "dimensions": 384, "user": "u"}),
])
async def test_bodies_the_spec_allows_are_answered(client: httpx.AsyncClient, world: World, op: str,
                                                   body: dict[str, Any]) -> None:
    answer = await client.post(world.openai_url(op), json=body, headers=_key(world))
    assert answer.status_code == 200, answer.text


async def test_a_null_prompt_is_the_specs_default(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(world.openai_url("completions"), json={"prompt": None}, headers=_key(world))
    assert answer.json()["choices"][0]["text"] == "echo: <|endoftext|>"  # the mock echoes its prompt
    old = await client.post(world.openai_url("completions", api_version="2023-05-15"), json={"max_tokens": 3},
                            headers=_key(world))
    assert old.status_code == 200, old.text  # optional before 2024
    _refused(await client.post(world.openai_url("completions"), json={"max_tokens": 3}, headers=_key(world)),
             "prompt")


@pytest.mark.parametrize(("op", "body", "param", "code"), [
    ("completions", {"prompt": "x", "best_of": 21}, "best_of", "invalid_value"),
    ("chat/completions", {**CHAT, "stop": []}, "stop", "BadRequest"),
    ("completions", {"prompt": "x", "stop": []}, "stop", "BadRequest"),
    ("chat/completions", {**CHAT, "logit_bias": {"50256": 0.5}}, "logit_bias", "BadRequest"),
    ("chat/completions", {**CHAT, "logit_bias": {"50256": 200}}, "logit_bias", "BadRequest"),
    ("chat/completions", {**CHAT, "user": 5}, "user", "BadRequest"),
    ("embeddings", {"input": "x", "user": 5}, "user", "BadRequest"),
    ("chat/completions", {**CHAT, "max_tokens": -1}, "max_tokens", "invalid_value"),
    ("chat/completions", {"messages": [{"role": "user"}]}, "messages[0].content", "BadRequest"),
    ("chat/completions", {"messages": [{"role": "user", "content": []}]}, "messages[0].content", "BadRequest"),
    ("chat/completions", {**CHAT, "data_sources": [{"parameters": {}}]}, "data_sources", "unsupported_parameter"),
    ("chat/completions", {**CHAT, "data_sources": [{"type": "azure_search", "parameters": {
        "endpoint": "https://x.search.windows.net", "index_name": "i", "authentication": {"type": "api_key"}}}]},
     "data_sources", "unsupported_parameter"),
    ("completions", {"prompt": "x", "suffix": "end"}, "suffix", "unsupported_parameter"),
    ("completions", {"prompt": ["a", "b"], "echo": True}, "echo", "unsupported_value"),
    ("completions", {"prompt": "x", "best_of": 3}, "best_of", "unsupported_value"),
    ("embeddings", {"input": "x", "input_type": "query"}, "input_type", "unsupported_parameter"),
    ("embeddings", {"input": [""]}, "input", "BadRequest"),
    ("embeddings", {"input": None}, "input", "BadRequest"),
    ("embeddings", {"input": [100265]}, "input", "BadRequest"),
    ("embeddings", {"input": [[1], []]}, "input[1]", "BadRequest"),
])
async def test_bodies_the_spec_forbids_or_cielo_does_not_serve_are_400s_naming_the_field(
        client: httpx.AsyncClient, world: World, op: str, body: dict[str, Any], param: str, code: str) -> None:
    error = _refused(await client.post(world.openai_url(op), json=body, headers=_key(world)), param, code)
    if param == "data_sources":
        assert "On Your Data" in error["message"]


async def test_dimensions_other_than_the_models_own(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(world.openai_url("embeddings"), json={"input": "x", "dimensions": 1536},
                               headers=_key(world))
    assert _refused(answer, "dimensions")["message"] == "This model does not support specifying dimensions."


@pytest.mark.parametrize(("version", "allowed"), [("2024-10-21", False), ("2024-06-01", False),
                                                 ("2023-05-15", False), ("2024-12-01-preview", True),
                                                 ("2025-03-01-preview", True)])
async def test_developer_messages_per_api_version(client: httpx.AsyncClient, world: World, version: str,
                                                  allowed: bool) -> None:
    body = {"messages": [{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hi"}]}
    answer = await client.post(world.openai_url("chat/completions", api_version=version), json=body,
                               headers=_key(world))
    if allowed:
        assert answer.status_code == 200, answer.text
    else:
        assert "2024-12-01-preview" in _refused(answer, "messages[0].role")["message"]


async def test_an_escaped_developer_role_is_refused_too(client: httpx.AsyncClient, world: World) -> None:
    """The route skips the look at every message when the body's bytes hold neither the word nor an escape."""
    raw = b'{"messages": [{"role": "\\u0064eveloper", "content": "x"}, {"role": "user", "content": "hi"}]}'
    answer = await client.post(world.openai_url("chat/completions"), content=raw,
                               headers={**_key(world), "Content-Type": "application/json"})
    _refused(answer, "messages[0].role")


async def test_developer_messages_and_unknown_fields_on_the_v1_routes(client: httpx.AsyncClient,
                                                                      world: World) -> None:
    url = f"/accounts/{ACCOUNT}/openai/v1/chat/completions"
    body = {"model": "mock", "messages": [{"role": "developer", "content": "be brief"}, {"role": "user",
                                                                                          "content": "hi"}]}
    assert (await client.post(url, json=body, headers=_key(world))).status_code == 200
    error = _refused(await client.post(url, json={**body, "foo": 1}, headers=_key(world)), "foo")
    assert error["message"] == "Unrecognized request argument supplied: foo"


async def test_fields_no_spec_of_the_version_defines_are_refused_as_azure_does(client: httpx.AsyncClient,
                                                                               world: World) -> None:
    answer = await client.post(world.openai_url("chat/completions"), json={**CHAT, "foo": 1, "bar": 2},
                               headers=_key(world))
    assert _refused(answer, "bar")["message"] == "Unrecognized request arguments supplied: bar, foo"
    old = await client.post(world.openai_url("chat/completions", api_version="2023-05-15"),
                            json={**CHAT, "seed": 1}, headers=_key(world))
    assert _refused(old, "seed")["message"] == "Unrecognized request argument supplied: seed"
    preview_only = await client.post(world.openai_url("chat/completions"), json={**CHAT, "store": False},
                                     headers=_key(world))
    _refused(preview_only, "store")


async def test_embeddings_from_token_arrays_are_the_embeddings_of_their_text(client: httpx.AsyncClient,
                                                                            world: World) -> None:
    """What langchain's AzureOpenAIEmbeddings sends by default: cl100k_base token ids, one array per text."""
    hello, bye = (tokens.encoding().encode(text) for text in ("hello world", "goodbye"))
    url = world.openai_url("embeddings")
    as_text = (await client.post(url, json={"input": ["hello world", "goodbye"]}, headers=_key(world))).json()
    as_ids = await client.post(url, json={"input": [hello, bye]}, headers=_key(world))
    one = await client.post(url, json={"input": hello}, headers=_key(world))
    assert as_ids.status_code == 200 and one.status_code == 200, (as_ids.text, one.text)
    assert [d["embedding"] for d in as_ids.json()["data"]] == [d["embedding"] for d in as_text["data"]]
    assert one.json()["data"][0]["embedding"] == as_text["data"][0]["embedding"]


async def test_errors_name_param_and_type_or_leave_them_out(client: httpx.AsyncClient, world: World) -> None:
    """Never `"param": null`: the spec's error makes it a string."""
    answer = await client.post(world.openai_url("chat/completions"), content=b"{not json",
                               headers={**_key(world), "Content-Type": "application/json"})
    error = _refused(answer, None)
    assert "param" not in error
