"""core/fast_json: orjson where it agrees with the standard library, the standard library where it does not."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cielo.core import fast_json

_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text()
    .filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t))
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20)


@given(_VALUES)
def test_dumps_writes_the_value_the_standard_library_reads_back(value: Any) -> None:
    out = fast_json.dumps(value)
    assert json.loads(out) == value
    assert b"\n" not in out and b", " not in out.replace(b'", ', b"")  # compact


def test_dumps_falls_back_past_64_bits_and_for_unknown_types() -> None:
    assert fast_json.dumps({"n": 2**70}) == b'{"n":1180591620717411303424}'
    with pytest.raises(TypeError):
        fast_json.dumps({"x": {1, 2}})
    with pytest.raises(ValueError):
        fast_json.dumps("\ud800")


def test_loads_is_strict_where_json_loads_is_lenient() -> None:
    for text in (b'{"x": NaN}', b'{"x": Infinity}', b'"\\ud800"'):
        json.loads(text)  # accepted by the standard library
        with pytest.raises(json.JSONDecodeError) as raised:
            fast_json.loads(text)
        assert raised.value.lineno == 1 and raised.value.msg
    assert fast_json.loads(b'{"a": [1, 2.5, "\\u00e9", null]}') == {"a": [1, 2.5, "é", None]}


def test_loads_reads_a_byte_order_mark_and_utf_16_as_json_loads_does() -> None:
    value = {"choices": [{"text": "é"}]}
    for raw in (b"\xef\xbb\xbf" + json.dumps(value).encode(), json.dumps(value).encode("utf-16"),
                json.dumps(value).encode("utf-32-le")):
        assert fast_json.loads(raw) == json.loads(raw) == value
