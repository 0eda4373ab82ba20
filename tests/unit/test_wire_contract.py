"""dataplane.wire against Azure's inference specs, in both directions: what a spec allows is accepted, what it
forbids is a 400 naming the parameter (never an exception of another kind), per route and api-version; fields
Cielo does not honour are refused with `unsupported_parameter`/`unsupported_value`; embeddings take token arrays."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cielo.dataplane import tokens, wire
from cielo.errors import DataPlaneError

USER = {"role": "user", "content": "hi"}
CHAT: dict[str, Any] = {"messages": [USER]}


def refused(check: Any, *args: Any) -> DataPlaneError:
    with pytest.raises(DataPlaneError) as caught:
        check(*args)
    assert caught.value.status == 400
    assert caught.value.error_type == "invalid_request_error"
    return caught.value


# ----------------------------------------------------------------------------- chat
@pytest.mark.parametrize("role", [["user"], {"a": 1}, 5, None, True, "wizard"])
def test_a_role_that_is_not_one_of_the_roles_is_a_400_not_a_crash(role: Any) -> None:
    error = refused(wire.validate_chat, {"messages": [{"role": role, "content": "x"}]})
    assert error.param == "messages[0].role"


@pytest.mark.parametrize("extra", [
    {"max_tokens": 0}, {"max_completion_tokens": 0}, {"top_logprobs": 3}, {"stream_options": {"include_usage": True}},
    {"logit_bias": {"50256": -100, "11": 100}}, {"logit_bias": None}, {"user": "user-1234"}, {"stop": "\n"},
    {"stop": ["a", "b", "c", "d"]}, {"stop": None}, {"seed": -(2**63)}, {"temperature": 0}, {"top_p": 1.0},
    {"n": 128}, {"max_tokens": None}, {"data_sources": None}, {"store": False}, {"modalities": ["text"]},
    {"model": "gpt-4o"},
])
def test_spec_valid_chat_fields_are_accepted(extra: dict[str, Any]) -> None:
    wire.validate_chat({**CHAT, **extra})


@pytest.mark.parametrize(("extra", "param"), [
    ({"stop": []}, "stop"), ({"stop": ["a", "b", "c", "d", "e"]}, "stop"), ({"stop": [1]}, "stop"),
    ({"logit_bias": {"50256": 1.5}}, "logit_bias"), ({"logit_bias": {"50256": 101}}, "logit_bias"),
    ({"logit_bias": {"x": 1}}, "logit_bias"), ({"logit_bias": [1]}, "logit_bias"),
    ({"logit_bias": {"1": True}}, "logit_bias"), ({"user": 5}, "user"), ({"max_tokens": -1}, "max_tokens"),
    ({"max_tokens": 1.5}, "max_tokens"), ({"max_tokens": True}, "max_tokens"),
    ({"max_completion_tokens": -1}, "max_completion_tokens"), ({"top_logprobs": 21}, "top_logprobs"),
    ({"n": 0}, "n"), ({"temperature": float("nan")}, "temperature"), ({"seed": 2**63}, "seed"),
    ({"stream_options": 5}, "stream_options"), ({"model": 5}, "model"),
])
def test_spec_invalid_chat_fields_are_400s_naming_the_field(extra: dict[str, Any], param: str) -> None:
    assert refused(wire.validate_chat, {**CHAT, **extra}).param == param


@pytest.mark.parametrize(("messages", "param"), [
    ([{"role": "system"}], "messages[0].content"),
    ([{"role": "user", "content": None}], "messages[0].content"),
    ([USER, {"role": "user", "content": []}], "messages[1].content"),
    ([{"role": "user", "content": [{"type": "image_url"}]}], "messages[0].content"),
    ([{"role": "user", "content": [{"text": "no type"}]}], "messages[0].content"),
    ([{"role": "user", "content": "x", "name": 5}], "messages[0].name"),
    ([USER, "hi"], "messages[1]"),
])
def test_malformed_messages_name_the_message_field(messages: list[Any], param: str) -> None:
    error = refused(wire.validate_chat, {"messages": messages})
    assert error.param == param and error.code == "BadRequest"


def test_assistant_messages_may_have_no_content_and_parts_may_be_text() -> None:
    wire.validate_chat({"messages": [USER, {"role": "assistant", "content": None},
                                     {"role": "user", "content": [{"type": "text", "text": "a"}]}]})


def test_well_formed_image_parts_are_not_served() -> None:
    part = {"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}}
    error = refused(wire.validate_chat, {"messages": [{"role": "user", "content": [part]}]})
    assert (error.code, error.param) == ("unsupported_value", "messages[0].content")


@pytest.mark.parametrize(("extra", "param", "code"), [
    ({"data_sources": [{"type": "azure_search", "parameters": {}}]}, "data_sources", "unsupported_parameter"),
    ({"data_sources": [{}]}, "data_sources", "unsupported_parameter"),
    ({"store": True}, "store", "unsupported_value"),
    ({"metadata": {"a": "b"}}, "metadata", "unsupported_parameter"),
    ({"reasoning_effort": "low"}, "reasoning_effort", "unsupported_parameter"),
    ({"modalities": ["text", "audio"]}, "modalities", "unsupported_value"),
    ({"prediction": {"type": "content", "content": "x"}}, "prediction", "unsupported_parameter"),
])
def test_fields_not_honoured_are_refused_by_name(extra: dict[str, Any], param: str, code: str) -> None:
    error = refused(wire.validate_chat, {**CHAT, **extra})
    assert (error.param, error.code) == (param, code)
    if param == "data_sources":
        assert "On Your Data" in error.message


# ----------------------------------------------------------------------------- per api-version
@pytest.mark.parametrize(("version", "allowed"), [
    ("2023-05-15", False), ("2024-06-01", False), ("2024-10-21", False), ("2024-10-01-preview", False),
    ("2024-12-01-preview", True), ("2025-03-01-preview", True), (None, True),
])
def test_developer_messages_only_on_api_versions_that_have_them(version: str | None, allowed: bool) -> None:
    body = {"messages": [{"role": "developer", "content": "be brief"}, USER]}
    if allowed:
        wire.check_version("chat", body, version)
        wire.validate_chat(body)
    else:
        error = refused(wire.check_version, "chat", body, version)
        assert error.param == "messages[0].role" and "developer" in error.message


@pytest.mark.parametrize(("kind", "version", "body", "param"), [
    ("chat", "2024-10-21", {**CHAT, "foo": 1}, "foo"),
    ("chat", "2024-10-21", {**CHAT, "store": False}, "store"),  # preview-only fields
    ("chat", "2023-05-15", {**CHAT, "seed": 1}, "seed"),
    ("chat", "2023-05-15", {**CHAT, "data_sources": []}, "data_sources"),
    ("completions", "2024-10-21", {"prompt": "x", "cache_level": 0}, "cache_level"),
    ("embeddings", "2024-10-21", {"input": "x", "foo": 1}, "foo"),
    ("embeddings", None, {"input": "x", "bar": 1, "foo": 2}, "bar"),
])
def test_fields_no_spec_of_the_version_defines_are_refused_as_azure_does(
        kind: str, version: str | None, body: dict[str, Any], param: str) -> None:
    error = refused(wire.check_version, kind, body, version)
    assert error.param == param
    assert error.message.startswith("Unrecognized request argument")


def test_fields_served_by_the_tools_module_are_known_on_every_version() -> None:
    body = {**CHAT, **{name: None for name in wire.SERVED_ELSEWHERE}}
    for version in ("2022-12-01", "2023-05-15", "2024-10-21", "2025-03-01-preview", None):
        wire.check_version("chat", body, version)
    wire.check_version("completions", {"prompt": "x", "stream_options": None}, "2024-10-21")


# ----------------------------------------------------------------------------- completions
@pytest.mark.parametrize("extra", [
    {"max_tokens": 0}, {"best_of": 0}, {"best_of": 1}, {"best_of": 3, "n": 3}, {"echo": False}, {"echo": True},
    {"suffix": None},
    {"logprobs": 5}, {"logit_bias": {"50256": -100}},
])
def test_spec_valid_completions_fields_are_accepted(extra: dict[str, Any]) -> None:
    wire.validate_completions({"prompt": "x", **extra})


@pytest.mark.parametrize("prompt", [[], ["a", "b"], "", None])
def test_prompts_the_spec_allows(prompt: Any) -> None:
    body = {"prompt": prompt}
    wire.validate_completions(body)
    assert body["prompt"] == ("<|endoftext|>" if prompt is None else prompt)


@pytest.mark.parametrize(("extra", "param", "code"), [
    ({"best_of": 21}, "best_of", "invalid_value"), ({"best_of": 3}, "best_of", "unsupported_value"),
    ({"echo": True, "prompt": ["a"]}, "echo", "unsupported_value"), ({"echo": "yes"}, "echo", "BadRequest"),
    ({"echo": True, "stream": True}, "echo", "unsupported_value"),
    ({"suffix": "end"}, "suffix", "unsupported_parameter"), ({"stop": []}, "stop", "BadRequest"),
    ({"logprobs": 6}, "logprobs", "invalid_value"), ({"prompt": [1, 2]}, "prompt", "BadRequest"),
    ({"prompt": 5}, "prompt", "BadRequest"),
])
def test_completions_refusals(extra: dict[str, Any], param: str, code: str) -> None:
    error = refused(wire.validate_completions, {"prompt": "x", **extra})
    assert (error.param, error.code) == (param, code)


def test_a_completions_body_without_prompt_is_refused_since_2024() -> None:
    assert refused(wire.validate_completions, {"max_tokens": 3}).param == "prompt"
    for version in ("2024-02-01", "2024-10-21", None):
        wire.check_version("completions", {"max_tokens": 3}, version)
        assert refused(wire.validate_completions, {"max_tokens": 3}).param == "prompt"
    body: dict[str, Any] = {"max_tokens": 3}
    wire.check_version("completions", body, "2023-05-15")
    wire.validate_completions(body)
    assert body["prompt"] == "<|endoftext|>"


# ----------------------------------------------------------------------------- embeddings
def _decode(ids: list[int]) -> str:
    text: str = tokens.encoding().decode(ids)
    return text


def test_embedding_inputs_in_every_form_the_spec_and_clients_use() -> None:
    hello = tokens.encoding().encode("hello world")
    assert wire.validate_embeddings({"input": ""}, 384) == [""]
    assert wire.validate_embeddings({"input": ["a", "b"]}, 384) == ["a", "b"]
    assert wire.validate_embeddings({"input": hello}, 384, _decode) == ["hello world"]
    assert wire.validate_embeddings({"input": [hello, hello[:1]]}, 384, _decode) == ["hello world", "hello"]
    assert wire.validate_embeddings({"input": ["x"], "dimensions": 384, "encoding_format": "base64",
                                     "user": "u"}, 384) == ["x"]


@pytest.mark.parametrize(("body", "param"), [
    ({"input": []}, "input"), ({"input": [""]}, "input"), ({"input": None}, "input"), ({}, "input"),
    ({"input": [[]]}, "input[0]"), ({"input": [1, "a"]}, "input"), ({"input": [[1], ["a"]]}, "input[1]"),
    ({"input": [100265]}, "input"), ({"input": [-1]}, "input"), ({"input": [[2**70]]}, "input[0]"),
    ({"input": [True]}, "input[0]"), ({"input": ["x"] * 2049}, "input"), ({"input": "x", "user": 5}, "user"),
    ({"input": "x", "encoding_format": "int8"}, "encoding_format"), ({"input": "x", "dimensions": 256}, "dimensions"),
    ({"input": "x", "dimensions": "384"}, "dimensions"), ({"input": "x", "input_type": "query"}, "input_type"),
])
def test_embedding_refusals_name_the_field(body: dict[str, Any], param: str) -> None:
    assert refused(wire.validate_embeddings, body, 384, _decode).param == param


def test_dimensions_other_than_the_models_own_get_azures_message() -> None:
    error = refused(wire.validate_embeddings, {"input": "x", "dimensions": 1536}, 384)
    assert error.message == "This model does not support specifying dimensions."


def test_token_arrays_without_a_decoder_are_refused() -> None:
    assert refused(wire.validate_embeddings, {"input": [1, 2]}, 384).param == "input"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_has_no_nan_or_infinity(constant: str) -> None:
    """json.loads accepts them; JSON does not, and passed on to an upstream they would become null."""
    raw = b'{"messages": [{"role": "user", "content": "x"}], "temperature": 1, "extra": [' + constant.encode() + b"]}"
    with pytest.raises(DataPlaneError) as raised:
        wire.parse_body(raw)
    assert raised.value.status == 400 and f"{constant} is not a JSON number" in raised.value.message


def test_parse_body_reads_what_json_loads_reads() -> None:
    for raw in (b'{"a": 1}', b'\xef\xbb\xbf{"a": 1}', '{"a": 1}'.encode("utf-16"), b' {"a": [1.5, "\\u00e9"]} '):
        assert wire.parse_body(raw) == json.loads(raw)
