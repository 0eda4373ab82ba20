"""api/openai.py's lean request and answer pieces answer exactly as the Starlette objects they stand for."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse

from cielo.api.openai import DataPlaneRequest, IndexedHeaders, JsonAnswer, _request_id, query_value

_NAMES = st.sampled_from(["authorization", "api-key", "content-length", "x-ms-client-request-id", "host", "a"])
_RAW = st.lists(st.tuples(_NAMES, st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=8)),
                max_size=8)


@given(_RAW, _NAMES)
def test_indexed_headers_answer_as_starlette_headers_do(raw: list[tuple[str, str]], name: str) -> None:
    scope: dict[str, Any] = {"type": "http", "headers": [(k.encode(), v.encode("latin-1")) for k, v in raw]}
    ours, theirs = IndexedHeaders(scope), Headers(scope=scope)
    for key in (name, name.upper(), "missing"):
        assert ours.get(key) == theirs.get(key)  # the first of repeated headers, as Starlette
        assert (key in ours) == (key in theirs)
        if key in theirs:
            assert ours[key] == theirs[key]
        else:
            with pytest.raises(KeyError):
                ours[key]
    assert ours.items() == theirs.items()
    assert DataPlaneRequest(scope).headers.get(name) == Request(scope).headers.get(name)


@given(st.text(st.sampled_from("ab=&%+2 0-"), max_size=30))
def test_query_value_is_what_query_params_get_answers(query: str) -> None:
    for raw in (query, query + "&api-version=2024-10-21", "api-version=x&" + query):
        scope: dict[str, Any] = {"type": "http", "query_string": raw.encode("latin-1")}
        for name in ("api-version", "a", "b", "a b"):
            assert query_value(scope, name) == Request(scope).query_params.get(name)


@pytest.mark.parametrize("content", [
    {"id": "chatcmpl-1", "choices": [{"message": {"content": "é ☃ 😀"}, "logprobs": None}], "n": 1.5e-7},
    {"data": [], "object": "list"},
])
def test_json_answer_is_json_response_up_to_number_spelling(content: dict[str, Any]) -> None:
    """The same JSON value, compact, in UTF-8, with the same headers; orjson spells some floats differently
    (`1.5e-7` for the standard library's `1.5e-07`), so the content length may differ by those bytes."""
    headers = {"apim-request-id": "1", "X-RateLimit-Remaining-Requests": "9", "retry-after": "1"}
    ours, theirs = JsonAnswer(content, headers), JSONResponse(content, headers=headers)
    assert ours.status_code == theirs.status_code
    assert json.loads(ours.body) == json.loads(theirs.body) == content
    assert ours.body.replace(b"e-7", b"e-07") == theirs.body
    assert [h for h in ours.raw_headers if h[0] != b"content-length"] == \
        [h for h in theirs.raw_headers if h[0] != b"content-length"]
    assert (b"content-length", str(len(ours.body)).encode()) in ours.raw_headers


def test_json_answer_refuses_a_lone_surrogate_and_writes_non_finite_numbers_as_null() -> None:
    with pytest.raises(ValueError):
        JsonAnswer({"x": "\ud800"}, {})  # not Unicode: the standard library's error, as JSONResponse's
    answer = JsonAnswer({"x": float("nan"), "y": [float("-inf")]}, {})  # JSONResponse: ValueError, a 500
    assert json.loads(answer.body) == {"x": None, "y": [None]}


def test_json_answer_falls_back_to_the_standard_library_past_64_bit_integers() -> None:
    big = {"seed": 2**70, "n": -(2**64)}
    assert JsonAnswer(big, {}).body == JSONResponse(big).body
    with pytest.raises(TypeError):
        JsonAnswer({"x": object()}, {})


def test_request_ids_are_version_4_uuids() -> None:
    ids = {_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", i) for i in ids)
