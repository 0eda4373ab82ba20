"""Global output options of the ``cielo`` CLI, modelled on the Azure CLI (az / knack).

``--query`` applies a JMESPath expression to the command result, then ``-o/--output`` renders it:

* ``json``  -- ``json.dumps(result, indent=2, ensure_ascii=False, sort_keys=True)`` (az sorts keys) plus a
  trailing newline.
* ``jsonc`` -- the same text with ANSI colours (only when writing to a terminal; otherwise plain json).
* ``yaml``  -- ``yaml.safe_dump(result, default_flow_style=False, allow_unicode=True, sort_keys=True)``.
* ``tsv``   -- knack's: one line per list item; a dict contributes its values joined by tabs, in key order
  (in the query's order for a ``--query`` multiselect), a nested object as an empty field, a list as its length,
  ``None`` as ``None``.
* ``table`` -- knack's auto-table: scalar fields as left-aligned columns under capitalised headers, sorted
  by key unless a ``--query`` or the command's own table layout (az's ``table_transformer``) orders them.
* ``none``  -- nothing.

A result of ``None`` (e.g. from a delete command) prints nothing whatever the format, as in az.
"""

from __future__ import annotations

import collections
import datetime as _dt
import enum
import json
import re
import sys
from collections.abc import Callable
from typing import Any, TextIO

# jmespath (--query) and yaml (-o yaml) are imported by the functions that use them: every `cielo` command is a
# new process, and most never need either (tests/unit/test_cli_lazy_imports.py keeps it so).

__all__ = [
    "OUTPUT_FORMATS",
    "OutputError",
    "TableTransformer",
    "apply_query",
    "compile_query",
    "emit",
    "format_az_datetime",
    "render",
]

# A command's own table layout (az's `table_transformer`): the result in, the rows to show out.
TableTransformer = Callable[[Any], Any]

OUTPUT_FORMATS: tuple[str, ...] = ("json", "jsonc", "table", "tsv", "yaml", "none")

# Keys knack's auto-table never shows as columns (``az group list -o table`` has no Id column).
TABLE_SKIP_KEYS: frozenset[str] = frozenset({"id", "type", "etag"})

# tabulate (used by knack) makes every column at least two characters wider than its header.
_TABLE_MIN_PADDING = 2
_TABLE_COLUMN_SEPARATOR = "  "
_MULTILINE = re.compile(r"[\r\n]")

_AZ_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


class OutputError(ValueError):
    """An invalid ``--query``/``--output`` or a result that cannot be rendered."""


# --------------------------------------------------------------------------------------------------
# --query
# --------------------------------------------------------------------------------------------------


def compile_query(query: str) -> Any:
    """The parsed JMESPath ``query``; commands check it before they run, as az's argument parser does."""
    import jmespath
    import jmespath.exceptions

    try:
        return jmespath.compile(query)
    except jmespath.exceptions.JMESPathError as exc:  # ParseError, LexerError, EmptyExpressionError
        raise OutputError(f"argument --query: invalid jmespath query {query!r}: {exc}") from exc


def apply_query(result: Any, query: str | None) -> Any:
    """Apply the JMESPath ``query`` to ``result``; ``None`` means no query (result returned as is)."""
    if query is None:
        return result
    import jmespath
    import jmespath.exceptions

    expression = compile_query(query)
    try:
        # As knack: a multiselect hash keeps the order the query names its keys in (tsv and table follow it).
        return expression.search(result, jmespath.Options(dict_cls=collections.OrderedDict))
    except jmespath.exceptions.JMESPathError as exc:  # e.g. JMESPathTypeError from a function call
        raise OutputError(f"Invalid jmespath query supplied for '--query': {exc}") from exc


# --------------------------------------------------------------------------------------------------
# json / jsonc
# --------------------------------------------------------------------------------------------------


class _ResultEncoder(json.JSONEncoder):
    """JSON encoder that also accepts the few non-JSON types a command result may carry."""

    def default(self, o: Any) -> Any:
        if isinstance(o, bytes | bytearray):
            return o.decode()
        if isinstance(o, _dt.datetime | _dt.date | _dt.time):
            return o.isoformat()
        if isinstance(o, enum.Enum):
            return o.value
        if isinstance(o, set | frozenset | tuple):
            return list(o)
        return super().default(o)


def _format_json(result: Any) -> str:
    return json.dumps(result, indent=2, ensure_ascii=False, sort_keys=True, cls=_ResultEncoder) + "\n"


# Colours of pygments' TerminalFormatter for its JsonLexer tokens, which is what az's jsonc uses.
_ANSI_KEY = "\x1b[94m"  # Name.Tag: bright blue
_ANSI_STRING = "\x1b[33m"  # String: yellow
_ANSI_NUMBER = "\x1b[34m"  # Number: blue
_ANSI_CONSTANT = "\x1b[34m"  # Keyword.Constant (true/false/null): blue
_ANSI_RESET = "\x1b[39;49;00m"

_JSON_TOKEN = re.compile(
    r'(?P<string>"(?:[^"\\]|\\.)*")(?P<colon>\s*:)?'
    r"|(?P<number>-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)"
    r"|(?P<constant>\btrue\b|\bfalse\b|\bnull\b|\bNaN\b|-?\bInfinity\b)"
)


def _colorize_json(text: str) -> str:
    """Add ANSI colours to JSON text produced by :func:`json.dumps`."""

    def paint(match: re.Match[str]) -> str:
        string = match.group("string")
        if string is not None:
            colon = match.group("colon")
            if colon is not None:
                return f"{_ANSI_KEY}{string}{_ANSI_RESET}{colon}"
            return f"{_ANSI_STRING}{string}{_ANSI_RESET}"
        if match.group("number") is not None:
            return f"{_ANSI_NUMBER}{match.group(0)}{_ANSI_RESET}"
        return f"{_ANSI_CONSTANT}{match.group(0)}{_ANSI_RESET}"

    return _JSON_TOKEN.sub(paint, text)


# --------------------------------------------------------------------------------------------------
# yaml
# --------------------------------------------------------------------------------------------------


def _format_yaml(result: Any) -> str:
    import yaml
    import yaml.representer

    def dump(data: Any) -> str:
        return yaml.safe_dump(data, default_flow_style=False, allow_unicode=True, sort_keys=True)

    try:
        return dump(result)
    except yaml.representer.RepresenterError:
        # As knack does: types safe_dump refuses (OrderedDict, datetime subclasses, bytes, ...) are
        # normalised through JSON first.
        return dump(json.loads(json.dumps(result, cls=_ResultEncoder)))


# --------------------------------------------------------------------------------------------------
# tsv
# --------------------------------------------------------------------------------------------------


def _is_complex(value: Any) -> bool:
    return isinstance(value, dict | list | tuple | set | frozenset)


def _tsv_field(value: Any) -> str:
    """knack's ``_dump_obj``: a list is its length, an object an empty field, anything else ``str()``."""
    if isinstance(value, list | tuple):
        return str(len(value))
    if isinstance(value, dict):
        return ""
    return value if isinstance(value, str) else str(value)


def _tsv_row(item: Any) -> str:
    if isinstance(item, collections.OrderedDict):
        values: Any = item.values()
    elif isinstance(item, dict):
        values = [value for _, value in sorted(item.items())]
    elif isinstance(item, list | tuple):
        values = item
    elif isinstance(item, bool):
        return "true" if item else "false"  # knack lower-cases a bare boolean (``az group exists -o tsv``)
    else:
        return _tsv_field(item)
    return "\t".join(_tsv_field(value) for value in values)


def _format_tsv(result: Any) -> str:
    items = result if isinstance(result, list) else [result]
    return "".join(_tsv_row(item) + "\n" for item in items)


# --------------------------------------------------------------------------------------------------
# table
# --------------------------------------------------------------------------------------------------


def _capitalize_first_char(key: str) -> str:
    return key[:1].upper() + key[1:]


def _table_row(item: Any, sort_keys: bool) -> dict[str, Any]:
    """knack's ``_auto_table_item``: which columns (and values) one result item contributes."""
    row: dict[str, Any] = {}
    if isinstance(item, dict):
        for key, value in (sorted(item.items()) if sort_keys else item.items()):
            if str(key) in TABLE_SKIP_KEYS or value is None or _is_complex(value):
                continue
            row[_capitalize_first_char(str(key))] = value
    elif isinstance(item, list | tuple):
        for index, value in enumerate(item, start=1):
            row[f"Column{index}"] = value
    else:
        row["Result"] = item
    return row


def _table_text(value: Any) -> str:
    return "" if value is None else str(value)


def _format_table(result: Any, sort_keys: bool = True) -> str:
    """knack's table: ``tabulate(rows, headers="keys", tablefmt="simple", disable_numparse=True)``.

    knack sorts each item's keys unless a ``--query`` or a table layout of the command gave them an order."""
    items = result if isinstance(result, list) else [result]
    rows = [_table_row(item, sort_keys) for item in items]
    headers: list[str] = []
    for row in rows:
        headers.extend(key for key in row if key not in headers)
    if not headers:
        return ""

    texts = [[_table_text(row.get(header)) for header in headers] for row in rows]
    # As tabulate: the whitespace around each cell is stripped; once any cell spans several lines the
    # table is laid out line by line, and then a row with nothing in it takes no line at all.
    multiline = any(_MULTILINE.search(text) for row_texts in texts for text in row_texts)
    if multiline:
        cells = [[text.strip().splitlines() for text in row_texts] for row_texts in texts]
    else:
        cells = [[[text.strip()] for text in row_texts] for row_texts in texts]

    widths = [len(header) + _TABLE_MIN_PADDING for header in headers]
    for row_cells in cells:
        for index, lines in enumerate(row_cells):
            widths[index] = max([widths[index], *(len(text) for text in lines)])

    def join(parts: list[str]) -> str:
        padded = (part.ljust(width) for part, width in zip(parts, widths, strict=True))
        return _TABLE_COLUMN_SEPARATOR.join(padded).rstrip()

    out = [join(headers), join(["-" * width for width in widths])]
    for row_cells in cells:
        height = max(len(lines) for lines in row_cells)
        for n in range(height):
            out.append(join([lines[n] if n < len(lines) else "" for lines in row_cells]))
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------------


def render(result: Any, output: str = "json", *, color: bool = False, query_active: bool = False,
           table_transformer: TableTransformer | None = None) -> str:
    """Render ``result`` in ``output`` format; ``''`` for ``none`` and for a ``None`` result.

    ``color`` only affects ``jsonc`` (which is plain ``json`` without it). ``table_transformer`` is the
    command's table layout, used (as knack does) only for ``table`` and only without a ``--query``.
    """
    fmt = output.lower()
    if fmt not in OUTPUT_FORMATS:
        choices = ", ".join(repr(name) for name in OUTPUT_FORMATS)
        raise OutputError(f"argument --output/-o: invalid choice: {output!r} (choose from {choices})")
    if result is None or fmt == "none":
        return ""
    if fmt == "json":
        return _format_json(result)
    if fmt == "jsonc":
        text = _format_json(result)
        return _colorize_json(text) if color else text
    if fmt == "yaml":
        return _format_yaml(result)
    if fmt == "tsv":
        return _format_tsv(result)
    if table_transformer is not None and not query_active:
        return _format_table(table_transformer(result), sort_keys=False)
    return _format_table(result, sort_keys=not query_active)


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    if isatty is None:
        return False
    try:
        return bool(isatty())
    except (ValueError, OSError):  # closed or detached stream
        return False


def emit(result: Any, output: str = "json", query: str | None = None, stream: TextIO | None = None,
         table_transformer: TableTransformer | None = None) -> None:
    """Apply ``query``, render in ``output`` format and write to ``stream`` (default ``sys.stdout``).

    ``jsonc`` is coloured only when the stream is a terminal. Nothing is written for an empty rendering.
    """
    out = sys.stdout if stream is None else stream
    text = render(apply_query(result, query), output, color=_isatty(out), query_active=query is not None,
                  table_transformer=table_transformer)
    if text:
        out.write(text)


def format_az_datetime(ts: float) -> str:
    """A POSIX timestamp as local time in az's ``expiresOn`` format, ``%Y-%m-%d %H:%M:%S.%f``.

    This is what ``az account get-access-token`` prints and what azure-identity's
    ``AzureCliCredential`` parses (as local time).
    """
    return _dt.datetime.fromtimestamp(ts).strftime(_AZ_DATETIME_FORMAT)
