"""Validating OpenAI request bodies: lenient on unknown fields, strict on the ones Cielo uses.

Every problem is a 400 in Azure's envelope naming the parameter (`param`), before any quota is
charged or any model runs.
"""

from __future__ import annotations

import json
from typing import Any

from cielo.errors import DataPlaneError

ROLES = {"system", "user", "assistant", "tool", "function", "developer"}
MAX_EMBEDDING_INPUTS = 2048


def bad(message: str, param: str | None = None, code: str = "BadRequest") -> DataPlaneError:
    return DataPlaneError(message, code=code, param=param, error_type="invalid_request_error")


def too_large(limit: int) -> DataPlaneError:
    """413 for a body over `limit` bytes, raised while it streams in (before it is held or parsed)."""
    return DataPlaneError(f"The request body is larger than {limit} bytes.", code="RequestTooLarge", status=413)


def too_deep(max_depth: int) -> DataPlaneError:
    return bad(f"The request body nests arrays and objects deeper than {max_depth} levels.")


def parse_body(raw: bytes) -> dict[str, Any]:
    """A JSON object. The caller has bounded `raw` (size, and nesting with a byte scan); RecursionError is
    still answered as a 400 rather than a 500, should text nested past Python's limit ever get here.

    Text that is not Unicode (a UTF-16 surrogate without its pair: `json.loads` makes one of an unpaired
    `\\ud800` escape, or of the bytes ED A0 80) is refused: no tokenizer, upstream or echo could encode it."""
    try:
        body = json.loads(raw) if raw.strip() else None
    except json.JSONDecodeError as exc:
        raise bad(f"The request body is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno}).") from exc
    except ValueError as exc:  # e.g. bytes that are not UTF-8
        raise bad("The request body is not valid JSON text.") from exc
    except RecursionError as exc:
        raise bad("The request body nests arrays and objects too deeply.") from exc
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object.")
    if _may_hold_surrogates(raw) and lone_surrogate_in(body):
        raise bad("The request body holds a UTF-16 surrogate (\\ud800 to \\udfff) without its pair, which is "
                  "not Unicode text.")
    return body


def _may_hold_surrogates(raw: bytes) -> bool:
    """False when `json.loads` cannot have made a surrogate of `raw`: text with neither an escape (a backslash),
    nor the lead byte ED of a surrogate encoded as UTF-8, nor a NUL (JSON in UTF-16 or UTF-32 has one in every
    ASCII character, its brackets and quotes; JSON in UTF-8 never has one). Three memchr passes."""
    return b"\\" in raw or b"\xed" in raw or b"\x00" in raw


_SCALARS = frozenset({int, float, bool, type(None)})


def lone_surrogate_in(value: Any) -> bool:
    """Whether a parsed JSON value holds a surrogate code point in a string or a key. `json.loads` joins a valid
    escaped pair into one code point, so any surrogate left is a lone one.

    Its cost follows the number of containers, not the bytes: a list of numbers is passed by the set of its
    types, strings (a list's, or an object's keys) are joined and checked at once: ASCII text in O(1) (`isascii`
    reads a flag), other text by CPython's strict UTF-32 encoder, the fastest strict one (~1 ns a code point)
    and, like every strict UTF encoder, one that refuses surrogates. Joining cannot make a pair of two halves:
    a str holds code points, and the encoder refuses each."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            if not _encodable(item):
                return True
        elif kind is dict:
            if not _encodable("".join(item)):
                return True
            stack.extend(item.values())
        elif kind is list:
            kinds = set(map(type, item))
            if kinds == {str}:
                if not _encodable("".join(item)):
                    return True
            elif not kinds <= _SCALARS:
                stack.extend(item)
    return False


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-32-le")
    except UnicodeEncodeError:
        return False
    return True


def _number(body: dict[str, Any], name: str, low: float, high: float, *, integer: bool = False) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        raise bad(f"'{name}' must be {'an integer' if integer else 'a number'}, not {type(value).__name__}.", name)
    if not low <= value <= high:
        raise bad(f"'{name}' must be between {low:g} and {high:g}; got {value}.", name, code="invalid_value")


def _bool(body: dict[str, Any], name: str) -> None:
    if body.get(name) is not None and not isinstance(body[name], bool):
        raise bad(f"'{name}' must be a boolean.", name)


def _common(body: dict[str, Any]) -> None:
    _number(body, "max_tokens", 1, 1_000_000, integer=True)
    _number(body, "max_completion_tokens", 1, 1_000_000, integer=True)
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    _number(body, "n", 1, 128, integer=True)
    _number(body, "presence_penalty", -2, 2)
    _number(body, "frequency_penalty", -2, 2)
    _number(body, "seed", -(2**63), 2**63 - 1, integer=True)
    _bool(body, "stream")
    stop = body.get("stop")
    if stop is not None:
        items = [stop] if isinstance(stop, str) else stop
        if not isinstance(items, list) or not all(isinstance(s, str) for s in items) or len(items) > 4:
            raise bad("'stop' must be a string or a list of at most 4 strings.", "stop")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad("'stream_options' must be an object.", "stream_options")
    if options is not None and not body.get("stream"):
        raise bad("'stream_options' is only allowed when 'stream' is true.", "stream_options")


def validate_chat(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("'messages' must be a non-empty list.", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad(f"'messages[{index}]' must be an object.", f"messages[{index}]")
        if message.get("role") not in ROLES:
            raise bad(f"'messages[{index}].role' must be one of {sorted(ROLES)}.", f"messages[{index}].role")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise bad(f"'messages[{index}].content' must be a string or a list of parts.",
                      f"messages[{index}].content")
        if isinstance(content, list) and not all(
                isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content):
            raise bad(f"'messages[{index}].content' parts must be text parts; this model reads text only.",
                      f"messages[{index}].content")
    _common(body)
    _bool(body, "logprobs")
    _number(body, "top_logprobs", 0, 20, integer=True)
    if body.get("top_logprobs") is not None and not body.get("logprobs"):
        raise bad("'top_logprobs' requires 'logprobs' to be true.", "top_logprobs")


def validate_completions(body: dict[str, Any]) -> None:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) and not (isinstance(prompt, list) and prompt
                                            and all(isinstance(p, str) for p in prompt)):
        raise bad("'prompt' must be a string or a non-empty list of strings.", "prompt")
    _common(body)
    _number(body, "logprobs", 0, 5, integer=True)
    _bool(body, "echo")
    _number(body, "best_of", 1, 128, integer=True)
    best_of = body.get("best_of")
    if best_of is not None and best_of not in (1, body.get("n") or 1):
        raise bad("'best_of' greater than 'n' is not supported by this deployment's model.", "best_of")


def validate_embeddings(body: dict[str, Any], dimensions: int) -> list[str]:
    data = body.get("input")
    inputs = [data] if isinstance(data, str) else data
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        raise bad("'input' must be a string or a non-empty list of strings.", "input")
    if len(inputs) > MAX_EMBEDDING_INPUTS:
        raise bad(f"Too many inputs: at most {MAX_EMBEDDING_INPUTS} per request.", "input")
    if any(not text for text in inputs):
        raise bad("'input' cannot contain empty strings.", "input")
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise bad("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
    wanted = body.get("dimensions")
    if wanted is not None and wanted != dimensions:
        raise bad(f"This model's embeddings have {dimensions} dimensions; 'dimensions' cannot change that.",
                  "dimensions")
    return list(inputs)
