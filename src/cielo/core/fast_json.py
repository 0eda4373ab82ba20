"""JSON on the data plane's hot path with orjson: about ten times faster than the standard library's encoder for an
answer the size of a chat completion (docs/benchmarks.md). Two helpers, each keeping the standard library's result
where orjson differs:

- `dumps` writes compact UTF-8 JSON (what `json.dumps(..., ensure_ascii=False, separators=(",", ":"))` writes, as
  bytes). A value orjson refuses (an integer beyond 64 bits, a non-string key, a type it does not know) goes to the
  standard library, which writes it or raises as before. NaN and infinities are written as `null` (the
  standard library with `allow_nan=False` would fail the whole answer with a 500; JSON has no such numbers).
- `loads` parses text from an upstream server. orjson is strict where `json.loads` is lenient: it
  refuses NaN and Infinity, and a lone UTF-16 surrogate (which the standard library would accept and then fail to
  encode on the way out); an integer beyond 64 bits becomes a float. Text with a byte order mark, or in UTF-16
  or UTF-32, is read as `json.loads` reads it. Its errors are `json.JSONDecodeError`s with
  `msg`, `lineno` and `colno`.

Request bodies from clients are still parsed by `json.loads` (dataplane/wire.py): their error messages and the
surrogate and nesting checks around them are part of Cielo's answers.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: the standard library writes it, or raises its own error
        return _ENCODER.encode(value).encode("utf-8")


def loads(text: bytes | str) -> Any:
    if isinstance(text, bytes) and (b"\x00" in text[:4] or text[:1] in (b"\xef", b"\xfe", b"\xff")):
        encoding = json.detect_encoding(text)  # a byte order mark, UTF-16 or UTF-32, as json.loads reads them
        if encoding != "utf-8":
            text = text.decode(encoding)
    return orjson.loads(text)

