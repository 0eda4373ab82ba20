"""Tests for cielo.cli.output: az-style --query and -o/--output rendering."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from typing import Any

import pytest
import yaml

from cielo.cli.output import (
    OUTPUT_FORMATS,
    OutputError,
    apply_query,
    emit,
    format_az_datetime,
    render,
)

ANSI = re.compile(r"\x1b\[[0-9;]*m")

ACCOUNTS: list[dict[str, Any]] = [
    {
        "id": "/subscriptions/1",
        "name": "a",
        "location": "eastus",
        "isDefault": True,
        "tags": {"env": "dev"},
        "user": {"name": "alice@example.com", "type": "user"},
    },
    {
        "id": "/subscriptions/2",
        "name": "bbbbbbbb",
        "location": "westeurope",
        "isDefault": False,
        "tags": {},
        "user": {"name": "bob@example.com", "type": "user"},
    },
]


class TtyStringIO(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_output_formats() -> None:
    assert OUTPUT_FORMATS == ("json", "jsonc", "table", "tsv", "yaml", "none")
    assert issubclass(OutputError, ValueError)


# ------------------------------------------------------------------------------------------ query


def test_query_none_returns_result_unchanged() -> None:
    assert apply_query(ACCOUNTS, None) is ACCOUNTS


def test_query_filter_projection() -> None:
    assert apply_query(ACCOUNTS, "[?name=='a'].id") == ["/subscriptions/1"]
    assert apply_query(ACCOUNTS, "[?name=='zzz'].id") == []


def test_query_nested_field() -> None:
    assert apply_query(ACCOUNTS[0], "user.name") == "alice@example.com"
    assert apply_query(ACCOUNTS[0], "missing.name") is None


def test_query_multiselect_hash_keeps_projection_order() -> None:
    result = apply_query(ACCOUNTS, "[].{Zed:name, Alpha:location}")
    assert result == [{"Zed": "a", "Alpha": "eastus"}, {"Zed": "bbbbbbbb", "Alpha": "westeurope"}]
    assert list(result[0]) == ["Zed", "Alpha"]


@pytest.mark.parametrize("query", ["[?name=='a'", "user..name", "", "[?name==]"])
def test_invalid_query_raises_output_error(query: str) -> None:
    with pytest.raises(OutputError, match="--query"):
        apply_query(ACCOUNTS, query)


def test_query_runtime_type_error_raises_output_error() -> None:
    with pytest.raises(OutputError, match="--query"):
        apply_query({"a": "text"}, "abs(a)")


# ------------------------------------------------------------------------------------------ json


@pytest.mark.parametrize(
    "value",
    [ACCOUNTS, ACCOUNTS[0], "text", 42, 1.5, True, [], {}, {"ünï": "çødé ✓"}, [[1, [2]], {"a": {"b": None}}]],
)
def test_json_matches_az(value: Any) -> None:
    text = render(value, "json")
    assert text == json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n"  # az sorts keys
    assert json.loads(text) == value


def test_json_is_default_and_keeps_unicode() -> None:
    text = render({"name": "café"})
    assert text == '{\n  "name": "café"\n}\n'


def test_json_accepts_datetime_and_bytes() -> None:
    when = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert json.loads(render({"t": when, "b": b"raw"})) == {"t": "2024-01-02T03:04:05+00:00", "b": "raw"}


@pytest.mark.parametrize("output", OUTPUT_FORMATS)
def test_none_result_renders_nothing(output: str) -> None:
    assert render(None, output) == ""


@pytest.mark.parametrize("value", [ACCOUNTS, ACCOUNTS[0], "x", 3, [], {}])
def test_none_output_renders_nothing(value: Any) -> None:
    assert render(value, "none") == ""


def test_unknown_output_format() -> None:
    with pytest.raises(OutputError, match="invalid choice"):
        render(ACCOUNTS, "xml")


def test_output_format_is_case_insensitive() -> None:
    assert render({"a": 1}, "JSON") == render({"a": 1}, "json")


# ------------------------------------------------------------------------------------------ jsonc


@pytest.mark.parametrize("value", [ACCOUNTS, ACCOUNTS[0], "x", 1, None, [], {"s": 'quote " and : colon'}])
def test_jsonc_without_color_equals_json(value: Any) -> None:
    assert render(value, "jsonc") == render(value, "json")
    assert render(value, "jsonc", color=False) == render(value, "json")


def test_jsonc_with_color_adds_ansi_only() -> None:
    value = {"name": "a: 1", "count": -2.5e3, "ok": True, "none": None, "list": ["x", 7]}
    colored = render(value, "jsonc", color=True)
    assert "\x1b[" in colored
    assert ANSI.sub("", colored) == render(value, "json")
    # keys and string values are coloured differently
    assert '\x1b[94m"name"' in colored
    assert '\x1b[33m"a: 1"' in colored


def test_emit_jsonc_uses_color_only_on_tty() -> None:
    plain = io.StringIO()
    emit(ACCOUNTS, "jsonc", stream=plain)
    assert plain.getvalue() == render(ACCOUNTS, "json")

    tty = TtyStringIO()
    emit(ACCOUNTS, "jsonc", stream=tty)
    assert "\x1b[" in tty.getvalue()
    assert ANSI.sub("", tty.getvalue()) == render(ACCOUNTS, "json")


def test_emit_json_on_tty_has_no_color() -> None:
    tty = TtyStringIO()
    emit(ACCOUNTS, "json", stream=tty)
    assert tty.getvalue() == render(ACCOUNTS, "json")


# ------------------------------------------------------------------------------------------ yaml


@pytest.mark.parametrize(
    "value", [ACCOUNTS, ACCOUNTS[0], "text", 5, 2.5, False, [], {}, {"ünï": ["çødé", {"deep": [1, None]}]}]
)
def test_yaml_round_trips(value: Any) -> None:
    assert yaml.safe_load(render(value, "yaml")) == value


def test_yaml_sorts_keys_like_az_and_keeps_unicode() -> None:
    text = render({"zeta": 1, "alpha": "ü"}, "yaml")
    assert text == "alpha: ü\nzeta: 1\n"


def test_yaml_block_style() -> None:
    assert render({"a": [1, 2], "b": {"c": "d"}}, "yaml") == "a:\n- 1\n- 2\nb:\n  c: d\n"


# ------------------------------------------------------------------------------------------ tsv


def test_tsv_list_of_dicts_in_key_order_with_nested_values_as_knack_writes_them() -> None:
    # knack: values by sorted key; a nested object is an empty field, a list its length.
    assert render(ACCOUNTS, "tsv") == (
        "/subscriptions/1\tTrue\teastus\ta\t\t\n/subscriptions/2\tFalse\twesteurope\tbbbbbbbb\t\t\n"
    )


def test_tsv_dict_is_one_line_with_none_and_nested_values_as_knack_writes_them() -> None:
    value = {"g": 1.5, "a": 1, "b": None, "c": [1, 2], "d": "x", "e": {"f": 1}}
    assert render(value, "tsv") == "1\tNone\t2\tx\t\t1.5\n"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("text", "text\n"), (42, "42\n"), (1.5, "1.5\n"), (True, "true\n"), (False, "false\n")],
)
def test_tsv_scalar(value: Any, expected: str) -> None:
    assert render(value, "tsv") == expected


def test_tsv_list_of_scalars_one_per_line() -> None:
    assert render(["a", 1, None, True], "tsv") == "a\n1\nNone\ntrue\n"


def test_tsv_list_of_lists() -> None:
    assert render([["a", 1, [9]], ["b", None, {"x": 1}]], "tsv") == "a\t1\t1\nb\tNone\t\n"


def test_tsv_empty() -> None:
    assert render([], "tsv") == ""
    assert render({}, "tsv") == "\n"


def test_tsv_with_query() -> None:
    out = io.StringIO()
    emit(ACCOUNTS, "tsv", query="[?name=='a'].id", stream=out)
    assert out.getvalue() == "/subscriptions/1\n"


def test_tsv_with_multiselect_query_keeps_order() -> None:
    projected = apply_query(ACCOUNTS, "[].{l:location, n:name}")
    assert render(projected, "tsv") == "eastus\ta\nwesteurope\tbbbbbbbb\n"


# ------------------------------------------------------------------------------------------ table


def test_table_list_of_dicts() -> None:
    rows = [
        {"name": "rg1", "location": "eastus", "provisioningState": "Succeeded"},
        {"name": "a-much-longer-name", "location": "westeurope", "provisioningState": "Failed"},
    ]
    # Without --query or a table layout, knack sorts each item's keys.
    assert render(rows, "table") == (
        "Location    Name                ProvisioningState\n"
        "----------  ------------------  -------------------\n"
        "eastus      rg1                 Succeeded\n"
        "westeurope  a-much-longer-name  Failed\n"
    )
    assert render(rows, "table", query_active=True).splitlines()[0].split() == ["Name", "Location",
                                                                                "ProvisioningState"]


def test_table_omits_nested_none_and_az_skipped_keys() -> None:
    # az's auto-table drops id/type/etag, nested values and None-only columns.
    assert render(ACCOUNTS, "table") == (
        "IsDefault    Location    Name\n"
        "-----------  ----------  --------\n"
        "True         eastus      a\n"
        "False        westeurope  bbbbbbbb\n"
    )


def test_table_columns_in_order_of_first_appearance() -> None:
    rows = [{"b": 1, "a": None}, {"c": "x", "a": 2}]
    assert render(rows, "table", query_active=True) == "B    C    A\n---  ---  ---\n1\n     x    2\n"
    assert render(rows, "table") == "B    A    C\n---  ---  ---\n1\n     2    x\n"


def test_table_dict_is_one_row() -> None:
    assert render({"name": "n", "count": 3, "nested": {"x": 1}}, "table") == (
        "Count    Name\n-------  ------\n3        n\n"
    )


def test_table_header_capitalises_first_letter_only() -> None:
    text = render([{"resourceGroup": "rg", "Name": "x"}], "table", query_active=True)
    assert text.splitlines()[0] == "ResourceGroup    Name"


def test_table_scalars_and_lists() -> None:
    assert render("hello", "table") == "Result\n--------\nhello\n"
    assert render([1, 2], "table") == "Result\n--------\n1\n2\n"
    assert render([["a", 1], ["b", 2]], "table") == (
        "Column1    Column2\n---------  ---------\na          1\nb          2\n"
    )


def test_table_empty() -> None:
    assert render([], "table") == ""
    assert render({"only": {"nested": 1}}, "table") == ""


def test_table_with_query_projection() -> None:
    out = io.StringIO()
    emit(ACCOUNTS, "table", query="[].{name:name, user:user.name}", stream=out)
    assert out.getvalue() == (
        "Name      User\n"
        "--------  -----------------\n"
        "a         alice@example.com\n"
        "bbbbbbbb  bob@example.com\n"
    )


def test_table_multiline_cell() -> None:
    assert render([{"a": "x\ny", "b": 1}], "table") == "A    B\n---  ---\nx    1\ny\n"


# ------------------------------------------------------------------------------------------ emit


def test_emit_defaults_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    emit({"a": 1})
    assert capsys.readouterr().out == '{\n  "a": 1\n}\n'


@pytest.mark.parametrize("output", OUTPUT_FORMATS)
def test_emit_none_writes_nothing(output: str, capsys: pytest.CaptureFixture[str]) -> None:
    emit(None, output)
    assert capsys.readouterr().out == ""


def test_emit_query_resulting_in_none_writes_nothing() -> None:
    out = io.StringIO()
    emit(ACCOUNTS[0], "json", query="nothing.here", stream=out)
    assert out.getvalue() == ""


def test_emit_empty_list_json() -> None:
    out = io.StringIO()
    emit([], "json", stream=out)
    assert out.getvalue() == "[]\n"


def test_emit_invalid_query_writes_nothing() -> None:
    out = io.StringIO()
    with pytest.raises(OutputError):
        emit(ACCOUNTS, "json", query="[?", stream=out)
    assert out.getvalue() == ""


# ------------------------------------------------------------------------------------------ datetime


@pytest.mark.parametrize(
    "ts", [0.0, 1_700_000_000.0, 1_718_000_000.123456, 1_735_689_599.999999, 4_102_444_800.5]
)
def test_format_az_datetime_round_trips_in_local_time(ts: float) -> None:
    text = format_az_datetime(ts)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", text)
    parsed = dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f")
    assert abs(parsed - dt.datetime.fromtimestamp(ts)) <= dt.timedelta(microseconds=1)
    assert abs(parsed.timestamp() - ts) <= 1e-6 + 1e-9 * abs(ts)


def test_table_layout_of_the_command_orders_columns_and_yields_to_a_query() -> None:
    def layout(result: Any) -> Any:
        return [{"Name": r["name"], "Location": r["location"]} for r in result]

    assert render(ACCOUNTS, "table", table_transformer=layout).splitlines()[0] == "Name      Location"
    out = io.StringIO()
    emit(ACCOUNTS, "table", query="[].{where:location}", stream=out, table_transformer=layout)
    assert out.getvalue().splitlines()[0] == "Where"  # with --query, knack ignores the layout
