"""JSON with comments, as ARM reads template bodies: az 2.91 splices the template file's own text into the request
(`…, template:{…}}}`: an unquoted key, and whatever comments the file holds), and ARM's deserializer accepts it.

`normalize` turns such text into strict JSON: `//` and `/* */` comments dropped, bare identifier keys quoted,
trailing commas before `}`/`]` removed; strings are copied untouched.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any


def normalize(text: str) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("//", i):
            while i < n and text[i] not in "\r\n":
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c.isalpha() or c in "_$":
            j = i
            while j < n and (text[j].isalnum() or text[j] in "_$"):
                j += 1
            word = text[i:j]
            k = j
            while k < n and text[k].isspace():
                k += 1
            out.append(f'"{word}"' if k < n and text[k] == ":" else word)
            i = j
        elif c == ",":
            k = i + 1
            while k < n and (text[k].isspace()):
                k += 1
            if k < n and text[k] in "}]":
                i += 1
                continue
            out.append(c)
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def loads(text: str) -> Any:
    """Strict JSON when it is; else the text normalized (a ValueError names what is still wrong)."""
    try:
        return json.loads(text)
    except ValueError:
        return json.loads(normalize(text))


def positions(text: str) -> dict[str, tuple[int, int]]:
    """Where each value starts in `text` (1-based line and column), by path: `a.b[0].c`, as `TemplateError.where`
    names them. Best effort: on text it cannot follow it returns what it found so far."""
    found: dict[str, tuple[int, int]] = {}
    i, n = 0, len(text)

    def skip() -> None:
        nonlocal i
        while i < n:
            if text[i].isspace() or text[i] == ",":
                i += 1
            elif text.startswith("//", i):
                while i < n and text[i] not in "\r\n":
                    i += 1
            elif text.startswith("/*", i):
                end = text.find("*/", i + 2)
                i = n if end < 0 else end + 2
            else:
                return

    def where() -> tuple[int, int]:
        line = text.count("\n", 0, i) + 1
        return line, i - (text.rfind("\n", 0, i) + 1) + 1

    def string() -> str:
        nonlocal i
        start = i
        i += 1
        while i < n and text[i] != '"':
            i += 2 if text[i] == "\\" else 1
        i += 1
        value: str = json.loads(text[start:i])
        return value

    def value(path: str) -> None:
        nonlocal i
        skip()
        if i >= n:
            raise ValueError("end of text")
        found[path] = where()
        c = text[i]
        if c == "{":
            i += 1
            while True:
                skip()
                if i >= n or text[i] == "}":
                    i += 1
                    return
                if text[i] == '"':
                    key = string()
                else:
                    start = i
                    while i < n and (text[i].isalnum() or text[i] in "_$"):
                        i += 1
                    key = text[start:i]
                    if not key:
                        raise ValueError("unexpected character")
                skip()
                if i >= n or text[i] != ":":
                    raise ValueError("expected ':'")
                i += 1
                value(f"{path}.{key}" if path else key)
        elif c == "[":
            i += 1
            index = 0
            while True:
                skip()
                if i >= n or text[i] == "]":
                    i += 1
                    return
                value(f"{path}[{index}]")
                index += 1
        elif c == '"':
            string()
        else:
            while i < n and text[i] not in ",]}" and not text[i].isspace():
                i += 1

    with contextlib.suppress(ValueError, IndexError):
        value("")
    return found
