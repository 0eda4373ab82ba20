"""langchain-openai (frameworks venv) against Cielo with Entra tokens (`azure_ad_token_provider`), on the
embedded models and on an OpenAI-compatible upstream behind Cielo: AzureChatOpenAI's invoke, stream (its
default stream_usage asks for usage), bind_tools with a forced tool_choice, with_structured_output in each of its
three methods; AzureOpenAIEmbeddings with its defaults (texts sent as tiktoken token arrays). The calls are in
frameworks/langchain_cases.py."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from frameworks_support import Frameworks, Target

pytest_plugins = ("frameworks_support",)
pytestmark = pytest.mark.e2e


def _run(frameworks: Frameworks, python: Path, case: str, target: Target) -> Any:
    return frameworks.run(python, "langchain_cases", case, target)


def test_invoke(frameworks: Frameworks, frameworks_python: Path, target: Target) -> None:
    result = _run(frameworks, frameworks_python, "invoke", target)
    assert isinstance(result["content"], str) and result["content"].strip()
    assert result["finish_reason"] in ("stop", "length")
    usage = result["usage"]
    assert usage["input_tokens"] > 0 and 0 < usage["output_tokens"] <= 16
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert result["token_calls"] >= 1


def test_stream_reports_usage_on_the_models_last_chunk(frameworks: Frameworks, frameworks_python: Path,
                                                target: Target) -> None:
    result = _run(frameworks, frameworks_python, "stream", target)
    assert result["text"].strip()
    assert result["chunks_with_usage"] == 1, result
    last = result["last_usage"]
    assert last is not None, "stream_usage is on by default: the model's last chunk carries usage_metadata"
    assert result["usage"] == last
    assert last["input_tokens"] > 0 and last["output_tokens"] > 0
    assert last["total_tokens"] == last["input_tokens"] + last["output_tokens"]


def test_bind_tools_with_a_forced_tool_choice(frameworks: Frameworks, frameworks_python: Path,
                                              target: Target) -> None:
    result = _run(frameworks, frameworks_python, "bind_tools", target)
    assert result["invalid_tool_calls"] == [], result
    assert [c["name"] for c in result["tool_calls"]] == ["GetWeather"], result
    assert result["tool_calls"][0]["id"]
    city = result["parsed"][0]["city"]
    assert isinstance(city, str) and city
    if target.upstream:
        assert city == "Paris"
        assert any(r.get("tool_choice") == {"type": "function", "function": {"name": "GetWeather"}}
                   for r in frameworks.upstream.requests), "Cielo passed the forced tool_choice on"


@pytest.mark.parametrize("method", ["function_calling", "json_mode", "json_schema"])
def test_with_structured_output(frameworks: Frameworks, frameworks_python: Path, target: Target,
                                method: str) -> None:
    result = _run(frameworks, frameworks_python, method, target)
    assert result["type"] == "City", result
    assert set(result["value"]) == {"name", "country"}
    assert all(isinstance(v, str) for v in result["value"].values())
    if target.upstream and method != "function_calling":
        wanted = method.replace("_mode", "_object")
        assert any((r.get("response_format") or {}).get("type") == wanted for r in frameworks.upstream.requests)


def test_embeddings_with_defaults(frameworks: Frameworks, frameworks_python: Path, target: Target) -> None:
    result = _run(frameworks, frameworks_python, "embeddings", target)
    assert result["check_embedding_ctx_length"] is True
    dimensions = target.dimensions
    assert result["dimensions"] == [dimensions, dimensions] and result["query_dimensions"] == dimensions
    if not target.upstream:
        assert all(math.isclose(n, 1.0, rel_tol=1e-2) for n in result["norms"])  # e5's vectors are normalized
    assert result["same_text_same_vector"], "embed_query and embed_documents agree on the same text"
    if target.upstream:  # the upstream got both documents, as the token arrays or as their text
        texts = ["The quick brown fox", "A lazy dog"]
        assert any(r.get("model") == "fake-embed" and len(r["input"]) == 2
                   and (all(isinstance(i, list) for i in r["input"]) or r["input"] == texts)
                   for r in frameworks.upstream.requests), frameworks.upstream.requests
    else:  # e5 reads text: Cielo decodes the cl100k token arrays, and the vector is the text's
        assert result["tokens_read_as_text"]
