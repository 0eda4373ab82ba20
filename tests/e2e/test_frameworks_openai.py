"""The openai SDK, 1.x (this venv), 2.x (the frameworks venv) and 3.x (a venv of its own) side by side, with
Entra tokens (`azure_ad_token_provider` from azure-identity's ClientSecretCredential): chat, a stream with
`stream_options.include_usage`, a forced tool call and the answer to its result, and `responses.create`.
The same script (frameworks/openai_cases.py) runs under each, against the embedded SmolLM2 and against an
OpenAI-compatible upstream behind Cielo (frameworks_support.FakeOpenAI)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from frameworks_support import Frameworks, Target

pytest_plugins = ("frameworks_support",)
pytestmark = pytest.mark.e2e


@pytest.fixture(params=["1", "2", "3"], ids=["openai1", "openai2", "openai3"])
def sdk(request: pytest.FixtureRequest) -> tuple[str, Path]:
    """(major version, the Python that has it)."""
    if request.param == "1":
        return "1", Path(sys.executable)
    return request.param, request.getfixturevalue("frameworks_python" if request.param == "2" else "openai3_python")


def _run(frameworks: Frameworks, sdk: tuple[str, Path], case: str, target: Target) -> dict:
    result = frameworks.run(sdk[1], "openai_cases", case, target)
    assert result["version"].split(".")[0] == sdk[0], result["version"]
    return result


def test_chat(frameworks: Frameworks, sdk: tuple[str, Path], target: Target) -> None:
    result = _run(frameworks, sdk, "chat", target)
    assert result["content"].strip()
    assert result["finish_reason"] in ("stop", "length")
    usage = result["usage"]
    assert usage["prompt_tokens"] > 0 and 0 < usage["completion_tokens"] <= 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert result["token_calls"] >= 1


def test_stream_with_usage(frameworks: Frameworks, sdk: tuple[str, Path], target: Target) -> None:
    result = _run(frameworks, sdk, "stream_usage", target)
    assert result["text"].strip()
    assert result["finish_reasons"] and result["finish_reasons"][-1] in ("stop", "length")
    # OpenAI's include_usage: one extra last chunk, with the usage and an empty choices list.
    assert len(result["usage"]) == 1, result
    assert not result["last_has_choices"], result
    usage = result["usage"][0]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_forced_tool_call_and_its_answer(frameworks: Frameworks, sdk: tuple[str, Path], target: Target) -> None:
    result = _run(frameworks, sdk, "tools", target)
    assert result["finish_reason"] == "tool_calls", result
    assert len(result["tool_calls"]) == 1, result
    call = result["tool_calls"][0]
    assert call["type"] == "function" and call["name"] == "get_weather" and call["id"]
    assert isinstance(call["arguments"]["city"], str) and call["arguments"]["city"], call
    assert result["followup"] and result["followup"].strip(), result
    assert result["followup_finish"] in ("stop", "length")
    if target.upstream:
        assert call["arguments"] == {"city": "Paris"}
        assert any(r.get("tool_choice") == {"type": "function", "function": {"name": "get_weather"}}
                   and r["tools"][0]["function"]["name"] == "get_weather" for r in frameworks.upstream.requests)


def test_responses_create(frameworks: Frameworks, sdk: tuple[str, Path], target: Target) -> None:
    result = _run(frameworks, sdk, "responses", target)
    assert result["object"] == "response", result
    if result["status"] == "incomplete":  # SmolLM2 talks on past max_output_tokens=16
        assert result["incomplete_details"] == {"reason": "max_output_tokens"}, result
    else:
        assert result["status"] == "completed" and result["incomplete_details"] is None, result
    assert result["output_text"].strip()
    assert result["usage"]["input_tokens"] > 0 and result["usage"]["output_tokens"] > 0
    types = result["event_types"]
    assert types[0] == "response.created", types
    assert types[-1] in ("response.completed", "response.incomplete"), types
    assert "response.output_text.delta" in types
    assert result["streamed_text"] == result["completed_text"] and result["streamed_text"].strip()
