"""semantic-kernel (frameworks venv) against Cielo with Entra tokens (`ad_token_provider`), on the embedded
SmolLM2 and on an OpenAI-compatible upstream behind Cielo: a chat answer, and a kernel function that
FunctionChoiceBehavior.Required() makes the model call. The calls are in frameworks/semantic_kernel_cases.py."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from frameworks_support import Frameworks, Target

pytest_plugins = ("frameworks_support",)
pytestmark = pytest.mark.e2e


def test_chat(frameworks: Frameworks, frameworks_python: Path, target: Target) -> None:
    result = frameworks.run(frameworks_python, "semantic_kernel_cases", "chat", target)
    assert result["content"].strip()
    assert result["token_calls"] >= 1


def test_required_function_choice_calls_the_kernel_function(frameworks: Frameworks, frameworks_python: Path,
                                                             target: Target) -> None:
    result = frameworks.run(frameworks_python, "semantic_kernel_cases", "required", target)
    assert len(result["calls"]) == 1, result
    assert isinstance(result["calls"][0], str) and result["calls"][0]
    # user, assistant (the tool call), tool (the function's result); then the final answer in text
    assert result["roles"] == ["user", "assistant", "tool"], result
    assert result["answer"] and result["answer"].strip()
    if target.upstream:
        assert result["calls"] == ["Paris"]
        assert any(r.get("tool_choice") == "required"
                   and [t["function"]["name"] for t in r["tools"]] == ["weather-get_weather"]
                   for r in frameworks.upstream.requests), "Cielo passed tools and tool_choice on"
