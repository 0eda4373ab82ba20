"""A deterministic backend for tests only (never a default): it echoes the last user text.

Tools, deterministically: a forced `tool_choice` ("required", a named function, a legacy `function_call`
naming one) calls the first function allowed (with `parallel_tool_calls: true` and "required", each declared
function once); "auto" calls the first function when the last message is the user's, and answers in text
after a tool's result. Arguments hold the required properties of the function's schema with simple values
(dataplane.toolcalls.sample). `response_format` json_object answers `{"echo": text}`; json_schema a sample
of the schema.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncGenerator
from typing import Any

from cielo.dataplane import toolcalls


def _last_text(kind: str, body: dict[str, Any]) -> str:
    if kind == "chat":
        for message in reversed(body.get("messages", [])):
            content = message.get("content")
            if isinstance(content, str):
                return content
        return ""
    prompt = body.get("prompt", "")
    return prompt if isinstance(prompt, str) else " ".join(str(p) for p in prompt)


def _text(kind: str, body: dict[str, Any]) -> str:
    text = "echo: " + _last_text(kind, body)[:200]
    response_format = body.get("response_format") or {}
    if kind == "chat" and response_format.get("type") == "json_object":
        return json.dumps({"echo": text})
    if kind == "chat" and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
        return json.dumps(toolcalls.sample(schema))
    return text


def _envelope(plan: toolcalls.ToolPlan, body: dict[str, Any]) -> Any:
    """What a model would answer in the tool-call JSON: which calls, or a text answer (None)."""
    last = (body.get("messages") or [{}])[-1]
    if plan.mode == "none" or (plan.mode == "auto" and last.get("role") != "user"):
        return None
    names = plan.allowed if plan.parallel and plan.mode == "required" else plan.allowed[:1]
    calls = [{"name": name, "arguments": toolcalls.sample(plan.parameters[name])} for name in names]
    return {"tool_calls": calls} if plan.parallel else {"tool_call": calls[0]}


class MockBackend:
    async def complete(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        plan = toolcalls.plan_for(body) if kind == "chat" else None
        text = _text(kind, body)
        n = int(body.get("n") or 1)
        usage = {"prompt_tokens": len(_last_text(kind, body).split()), "completion_tokens": len(text.split())}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if kind == "chat":
            choices = [{"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                       for i in range(n)]
            envelope = _envelope(plan, body) if plan is not None else None
            if plan is not None and envelope is not None:
                choices = [toolcalls.choice_from_envelope(plan, c, envelope) for c in choices]
            return {"object": "chat.completion", "choices": choices, "usage": usage}
        return {"object": "text_completion", "usage": usage,
                "choices": [{"index": i, "finish_reason": "stop", "text": text, "logprobs": None} for i in range(n)]}

    async def stream(self, kind: str, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        if kind == "chat" and toolcalls.plan_for(body) is not None:
            for chunk in toolcalls.stream_answer(await self.complete(kind, body)):
                yield chunk
            return
        words = _text(kind, body).split(" ")
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            if kind == "chat":
                delta: dict[str, Any] = {"content": piece} if i else {"role": "assistant", "content": piece}
                yield {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta,
                                                                       "finish_reason": None}]}
            else:
                yield {"object": "text_completion", "choices": [{"index": 0, "text": piece, "finish_reason": None}]}
        final: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        if kind == "chat":
            final["delta"] = {}
        else:
            final["text"] = ""
        yield {"object": "chat.completion.chunk" if kind == "chat" else "text_completion", "choices": [final]}

    async def embed(self, inputs: list[str]) -> tuple[list[list[float]], int]:
        vectors = []
        for text in inputs:
            digest = hashlib.sha256(text.encode()).digest()
            vectors.append([(b - 128) / 128 for b in digest[:16]])
        return vectors, sum(len(t.split()) for t in inputs)

    async def close(self) -> None:
        return None
