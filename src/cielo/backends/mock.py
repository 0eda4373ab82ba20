"""A deterministic backend for tests only (never a default): it echoes the last user text."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncGenerator
from typing import Any


def _last_text(kind: str, body: dict[str, Any]) -> str:
    if kind == "chat":
        for message in reversed(body.get("messages", [])):
            content = message.get("content")
            if isinstance(content, str):
                return content
        return ""
    prompt = body.get("prompt", "")
    return prompt if isinstance(prompt, str) else " ".join(str(p) for p in prompt)


class MockBackend:
    async def complete(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        text = "echo: " + _last_text(kind, body)[:200]
        n = int(body.get("n") or 1)
        usage = {"prompt_tokens": len(_last_text(kind, body).split()), "completion_tokens": len(text.split())}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if kind == "chat":
            choices = [{"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                       for i in range(n)]
            return {"object": "chat.completion", "choices": choices, "usage": usage}
        return {"object": "text_completion", "usage": usage,
                "choices": [{"index": i, "finish_reason": "stop", "text": text, "logprobs": None} for i in range(n)]}

    async def stream(self, kind: str, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        words = ("echo: " + _last_text(kind, body)[:200]).split(" ")
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
