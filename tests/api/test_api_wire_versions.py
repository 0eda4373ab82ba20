"""Request rules per api-version that the 2025-03-01-preview contract run (tests/contract) brought in, in-process
with the mock model: fields a role's message does not define are refused as Azure refuses them, audio parts are
refused as not served (the models read text), `developer` messages need 2024-12-01-preview, and `best_of` follows
OpenAI's rule (at least `n`)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from inproc import ACCOUNT, MOCK_DEPLOYMENT, World

BASE = f"/accounts/{ACCOUNT}/openai/deployments/{MOCK_DEPLOYMENT}"
PREVIEW = "2025-03-01-preview"


async def _post(client: httpx.AsyncClient, world: World, op: str, body: dict[str, Any],
                version: str = PREVIEW) -> httpx.Response:
    return await client.post(f"{BASE}/{op}", params={"api-version": version}, json=body,
                             headers={"api-key": world.api_key})


def _error(answer: httpx.Response, code: str, param: str) -> str:
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["param"], error["type"]) == (code, param, "invalid_request_error"), error
    assert answer.headers["x-ms-error-code"] == code
    return str(error["message"])


@pytest.mark.parametrize(("message", "extra"), [
    ({"role": "user", "content": "x", "refusal": []}, "refusal"),
    ({"role": "system", "content": "x", "tool_calls": []}, "tool_calls"),
    ({"role": "developer", "content": "x", "foo": 1}, "foo"),
    ({"role": "tool", "content": "x", "tool_call_id": "c", "function_call": {}}, "function_call"),
    ({"role": "assistant", "content": "x", "tool_call_id": "c"}, "tool_call_id"),
])
async def test_a_field_the_role_does_not_define_is_refused(client: httpx.AsyncClient, world: World,
                                                           message: dict[str, Any], extra: str) -> None:
    answer = await _post(client, world, "chat/completions", {"messages": [{"role": "user", "content": "hi"}, message]})
    text = _error(answer, "BadRequest", f"messages[1].{extra}")
    assert text == f"Additional properties are not allowed ('{extra}' was unexpected) - 'messages.1'"


@pytest.mark.parametrize("message", [
    {"role": "user", "content": "x", "name": "ann"},
    {"role": "assistant", "content": None, "refusal": "no", "name": "bot"},
    {"role": "developer", "content": "be brief", "name": "dev"},
])
async def test_the_fields_each_role_defines_are_served(client: httpx.AsyncClient, world: World,
                                                       message: dict[str, Any]) -> None:
    answer = await _post(client, world, "chat/completions", {"messages": [message, {"role": "user", "content": "hi"}]})
    assert answer.status_code == 200, answer.text


async def test_an_audio_part_is_not_served(client: httpx.AsyncClient, world: World) -> None:
    part = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    answer = await _post(client, world, "chat/completions", {"messages": [{"role": "user", "content": [part]}]})
    _error(answer, "unsupported_value", "messages[0].content")
    broken = await _post(client, world, "chat/completions",
                         {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": "x"}]}]})
    _error(broken, "BadRequest", "messages[0].content")


@pytest.mark.parametrize(("version", "served"), [("2024-10-21", False), ("2024-12-01-preview", True),
                                                 (PREVIEW, True)])
async def test_developer_messages_from_2024_12_01_preview(client: httpx.AsyncClient, world: World, version: str,
                                                          served: bool) -> None:
    body = {"messages": [{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hi"}]}
    answer = await _post(client, world, "chat/completions", body, version)
    if served:
        assert answer.status_code == 200, answer.text
    else:
        _error(answer, "BadRequest", "messages[0].role")


@pytest.mark.parametrize(("best_of", "n", "status", "code"), [
    (1, 1, 200, None), (2, 2, 200, None), (0, 3, 200, None),
    (2, 3, 400, "invalid_value"),  # OpenAI: best_of must be greater than or equal to n
    (3, 2, 400, "unsupported_value"),  # candidates to choose from are not generated
])
async def test_best_of_is_at_least_n(client: httpx.AsyncClient, world: World, best_of: int, n: int, status: int,
                                     code: str | None) -> None:
    answer = await _post(client, world, "completions", {"prompt": "x", "best_of": best_of, "n": n, "max_tokens": 2})
    assert answer.status_code == status, answer.text
    if code is not None:
        _error(answer, code, "best_of")
