"""Reading the JSON text columns (tags, properties, role permissions, URIs) back into Python values.

Releases before the request boundary refused them (cielo/http/bodies.py, dataplane/wire.py) could store a lone UTF-16
surrogate: `json.dumps` writes it as the escape `\\ud800`, which SQLite keeps as plain ASCII. Read back by
`json.loads`, it became a string that cannot be encoded as UTF-8, so every response that carried the record (a
group's GET, the group list, `.../resources`) failed with a 500, on every read, across restarts. `load_json`
replaces each lone surrogate with U+FFFD (the replacement character), so such a record is served, visibly
marked, and a later write stores the repaired text.
"""

from __future__ import annotations

import json
import re
from typing import Any

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def load_json(text: str) -> Any:
    """`json.loads(text)`, with lone surrogates in strings and keys replaced by U+FFFD.

    Only text with a `\\uD8..` to `\\uDF..` escape can hold one (a column is valid UTF-8, or SQLite would not return
    it), so other text costs one substring test."""
    value = json.loads(text)
    if "\\ud" in text or "\\uD" in text:
        return _replaced(value)
    return value


def _replaced(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_replaced(key): _replaced(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_replaced(item) for item in value]
    return value
