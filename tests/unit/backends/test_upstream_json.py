"""An upstream's non-streamed answer is read strictly (core/fast_json.py): what is not JSON, JSON's numbers and
Unicode, or an object is a BadUpstreamAnswer naming where it went wrong."""

from __future__ import annotations

import pytest

from cielo.backends.base import BadUpstreamAnswer
from cielo.backends.openai_compat import _json_object


@pytest.mark.parametrize(("raw", "says"), [
    (b'{"choices": [], "x": NaN}', "invalid JSON (unexpected character"),
    (b'{"x": Infinity}', "invalid JSON ("),
    (b'{"text": "\\ud800"}', "invalid JSON ("),
    (b'{"choices": [', "invalid JSON (unexpected end of data at line 1 column 14)"),
    (b"[1, 2]", "a JSON list, not an object"),
    (b"  ", "an empty body"),
    (b"<html></html>", "an HTML page"),
])
def test_what_is_not_a_json_object_is_named(raw: bytes, says: str) -> None:
    with pytest.raises(BadUpstreamAnswer) as raised:
        _json_object(raw, "application/json")
    assert says in str(raised.value)


def test_an_answer_is_read_as_the_standard_library_reads_it() -> None:
    assert _json_object(b'{"choices": [{"text": "\\u00e9 ok"}], "n": 1.5e-7, "big": 12}', "application/json") == \
        {"choices": [{"text": "é ok"}], "n": 1.5e-7, "big": 12}
