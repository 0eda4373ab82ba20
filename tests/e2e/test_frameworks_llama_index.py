"""llama-index (frameworks venv) against Cielo with Entra tokens (`use_azure_ad`, `azure_ad_token_provider`),
on the embedded models and on an OpenAI-compatible upstream behind Cielo: AzureOpenAI's chat_with_tools and
predict_and_call with a FunctionTool, and AzureOpenAIEmbedding. The calls are in
frameworks/llama_index_cases.py, each with llama-index's own Entra setup unchanged (with openai>=2.34 it sends
the token as `api-key` beside `Authorization: Bearer`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from frameworks_support import Frameworks, Target

pytest_plugins = ("frameworks_support",)
pytestmark = pytest.mark.e2e


def test_default_entra_setup(frameworks: Frameworks, frameworks_python: Path, target: Target) -> None:
    outcome = frameworks.outcome(frameworks_python, "llama_index_cases", "default_entra", target)
    error = outcome.get("error", "")
    assert not error, error[-4000:]
    assert outcome["result"]["content"].strip()


def test_chat_with_tools(frameworks: Frameworks, frameworks_python: Path, target: Target) -> None:
    result = frameworks.run(frameworks_python, "llama_index_cases", "chat_with_tools", target)
    assert [s["name"] for s in result["selections"]] == ["get_weather"], result
    selection = result["selections"][0]
    assert selection["id"] and isinstance(selection["kwargs"].get("city"), str) and selection["kwargs"]["city"]
    assert result["token_calls"] >= 1
    if target.upstream:
        assert selection["kwargs"] == {"city": "Paris"}
        assert any(r.get("tool_choice") == "required" and r["tools"][0]["function"]["name"] == "get_weather"
                   for r in frameworks.upstream.requests), "Cielo passed tools and tool_choice on"


def test_predict_and_call(frameworks: Frameworks, frameworks_python: Path, target: Target) -> None:
    result = frameworks.run(frameworks_python, "llama_index_cases", "predict_and_call", target)
    assert len(result["calls"]) == 1 and result["calls"][0], result
    source = result["sources"][0]
    assert source["tool"] == "get_weather" and not source["is_error"]
    assert source["output"] == f"Sunny, 21 C in {result['calls'][0]}"
    assert result["response"] == source["output"]


def test_embeddings(frameworks: Frameworks, frameworks_python: Path, target: Target) -> None:
    result = frameworks.run(frameworks_python, "llama_index_cases", "embeddings", target)
    dimensions = target.dimensions
    assert result["dimensions"] == [dimensions, dimensions] and result["query_dimensions"] == dimensions
