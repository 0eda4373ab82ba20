"""Azure's response shapes around a backend's OpenAI answer: ids, model, content-filter fields, SSE."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

SAFE = {"filtered": False, "severity": "safe"}


def content_filter_results() -> dict[str, Any]:
    return {"hate": dict(SAFE), "self_harm": dict(SAFE), "sexual": dict(SAFE), "violence": dict(SAFE)}


def prompt_filter_results(count: int = 1) -> list[dict[str, Any]]:
    results = []
    for index in range(count):
        filters = content_filter_results()
        filters["jailbreak"] = {"filtered": False, "detected": False}
        results.append({"prompt_index": index, "content_filter_results": filters})
    return results


def new_id(kind: str) -> str:
    prefix = "chatcmpl-" if kind == "chat" else "cmpl-"
    return prefix + secrets.token_urlsafe(21).replace("-", "x").replace("_", "y")[:29]


def _legacy_logprobs(logprobs: Any, offset: int) -> Any:
    """llama.cpp answers completions' logprobs in the chat shape; the completions API has its own."""
    if not isinstance(logprobs, dict) or "content" not in logprobs:
        return logprobs
    tokens, token_logprobs, tops, offsets = [], [], [], []
    position = offset
    for item in logprobs.get("content") or []:
        tokens.append(item.get("token", ""))
        token_logprobs.append(item.get("logprob"))
        tops.append({t.get("token", ""): t.get("logprob") for t in item.get("top_logprobs") or []})
        offsets.append(position)
        position += len(item.get("token", ""))
    return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": tops, "text_offset": offsets}


def _message(message: dict[str, Any]) -> dict[str, Any]:
    """The 2024-10-21 spec's chatCompletionResponseMessage: role, content and refusal always (content null
    beside tool calls), tool_calls or the legacy function_call when the model called something."""
    out = {"role": "assistant", "content": message.get("content"), "refusal": message.get("refusal")}
    if message.get("tool_calls"):
        out["tool_calls"] = message["tool_calls"]
    if message.get("function_call"):
        out["function_call"] = message["function_call"]
    return out


def _chat_logprobs(logprobs: Any) -> Any:
    if isinstance(logprobs, dict) and "refusal" not in logprobs:
        return {**logprobs, "refusal": None}  # required beside `content` by the 2024-10-21 spec
    return logprobs


def finish(kind: str, result: dict[str, Any], model: str, body: dict[str, Any]) -> dict[str, Any]:
    """A non-streamed answer in Azure's shape."""
    echo_prefix = body.get("prompt") if kind == "completions" and body.get("echo") and isinstance(
        body.get("prompt"), str) else ""
    choices = []
    for choice in result.get("choices", []):
        out: dict[str, Any] = {"index": choice.get("index", 0), "finish_reason": choice.get("finish_reason")}
        if kind == "chat":
            out["message"] = _message(choice.get("message") or {})
            out["logprobs"] = _chat_logprobs(choice.get("logprobs"))
        else:
            out["text"] = f"{echo_prefix}{choice.get('text', '')}"
            out["logprobs"] = _legacy_logprobs(choice.get("logprobs"), len(echo_prefix or ""))
        out["content_filter_results"] = content_filter_results()
        choices.append(out)
    usage = result.get("usage") or {}
    prompt_count = len(body["prompt"]) if kind == "completions" and isinstance(body.get("prompt"), list) else 1
    return {
        "id": new_id(kind),
        "object": "chat.completion" if kind == "chat" else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {"completion_tokens": int(usage.get("completion_tokens", 0)),
                  "prompt_tokens": int(usage.get("prompt_tokens", 0)),
                  "total_tokens": int(usage.get("total_tokens", 0))},
        "prompt_filter_results": prompt_filter_results(prompt_count),
        "system_fingerprint": "fp_cielo",
    }


def sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def error_event(code: str, message: str) -> bytes:
    """The event that ends a stream which failed after it started: Azure's error envelope as the data.
    OpenAI's streams end the same way; the openai SDK raises APIError with `message` on it (its
    `Stream.__stream__` checks every event for an `error` key)."""
    return sse({"error": {"code": code, "message": message}})


def prompt_annotation_event() -> bytes:
    """The first event of an Azure stream: prompt filter results, no choices
    (learn.microsoft.com/azure/ai-services/openai/concepts/content-streaming)."""
    return sse({"id": "", "object": "", "created": 0, "model": "", "prompt_filter_results": prompt_filter_results(),
                "choices": [], "usage": None})


def chunk(kind: str, raw: dict[str, Any], stream_id: str, created: int, model: str) -> dict[str, Any] | None:
    """A backend's chunk in Azure's shape, or None when it carries no choice. Its usage is not passed on here:
    the data plane sends the usage in a chunk of its own at the end, when the client asked for it."""
    choices = []
    for choice in raw.get("choices", []):
        out: dict[str, Any] = {"index": choice.get("index", 0), "finish_reason": choice.get("finish_reason")}
        if kind == "chat":
            delta = dict(choice.get("delta") or {})
            if delta.get("content") is None and "role" not in delta:
                delta.pop("content", None)
            out["delta"] = delta
            if choice.get("logprobs") is not None:
                out["logprobs"] = _chat_logprobs(choice.get("logprobs"))
            if delta.get("content"):
                out["content_filter_results"] = content_filter_results()
        else:
            out["text"] = choice.get("text", "")
            out["logprobs"] = None
            if out["text"]:
                out["content_filter_results"] = content_filter_results()
        choices.append(out)
    if not choices:
        return None
    return {"id": stream_id, "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
            "created": created, "model": model, "system_fingerprint": "fp_cielo", "choices": choices,
            "usage": None}


def usage_chunk(kind: str, usage: dict[str, Any], stream_id: str, created: int, model: str) -> dict[str, Any]:
    """The last chunk before `[DONE]` when `stream_options.include_usage` is true: no choices, the request's
    usage (chatCompletionStreamOptions in the 2024-10-21 spec)."""
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    return {"id": stream_id, "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
            "created": created, "model": model, "system_fingerprint": "fp_cielo", "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}
