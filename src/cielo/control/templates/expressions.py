"""ARM template expressions: `"[concat('a', parameters('b'))]"`, tokenized and parsed by recursive descent.

A JSON string is an expression when it starts with `[` and ends with `]`; `[[` at the start is an escaped
literal `[`. Inside, an expression is a function call, a string literal (`'it''s'`), an integer, and any number
of `.property` and `[index]` accessors. Nothing is evaluated with Python's eval: `evaluate` walks the tree and
calls the functions it is given (names are case-insensitive, as in ARM).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any


class TemplateError(Exception):
    """A template (or one of its expressions) that cannot be evaluated: ARM's 400 InvalidTemplate."""

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Member:
    target: Node
    name: str


@dataclass(frozen=True)
class Index:
    target: Node
    index: Node


Node = Literal | Call | Member | Index

_PUNCT = "(),.[]"


def is_expression(text: str) -> bool:
    return len(text) >= 2 and text[0] == "[" and text[-1] == "]" and not text.startswith("[[")


def tokenize(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, position) per token; kinds: str, int, name, and each punctuation character."""
    out: list[tuple[str, str, int]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "'":
            start, i, chars = i, i + 1, []
            while True:
                if i >= n:
                    raise TemplateError(f"The string literal starting at position {start + 1} is not terminated.")
                if text[i] == "'":
                    if i + 1 < n and text[i + 1] == "'":
                        chars.append("'")
                        i += 2
                        continue
                    i += 1
                    break
                chars.append(text[i])
                i += 1
            out.append(("str", "".join(chars), start))
        elif c.isdigit() or (c == "-" and i + 1 < n and text[i + 1].isdigit()):
            start = i
            i += 1
            while i < n and text[i].isdigit():
                i += 1
            out.append(("int", text[start:i], start))
        elif c.isalpha() or c == "_":
            start = i
            while i < n and (text[i].isalnum() or text[i] == "_"):
                i += 1
            out.append(("name", text[start:i], start))
        elif c in _PUNCT:
            out.append((c, c, i))
            i += 1
        else:
            raise TemplateError(f"The character '{c}' at position {i + 1} is not expected.")
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def take(self, kind: str) -> tuple[str, str, int]:
        if self.peek() != kind:
            where = self.tokens[self.pos][2] + 1 if self.pos < len(self.tokens) else len(self.text) + 1
            found = self.tokens[self.pos][1] if self.pos < len(self.tokens) else "the end"
            raise TemplateError(f"Expected '{kind}' at position {where}, found '{found}'.")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def expression(self) -> Node:
        kind = self.peek()
        node: Node
        if kind == "str":
            node = Literal(self.take("str")[1])
        elif kind == "int":
            node = Literal(int(self.take("int")[1]))
        elif kind == "name":
            name = self.take("name")[1]
            self.take("(")
            args: list[Node] = []
            if self.peek() != ")":
                args.append(self.expression())
                while self.peek() == ",":
                    self.take(",")
                    args.append(self.expression())
            self.take(")")
            node = Call(name.lower(), tuple(args))
        else:
            where = self.tokens[self.pos][2] + 1 if kind else len(self.text) + 1
            raise TemplateError(f"Expected a function call, string or number at position {where}.")
        while self.peek() in (".", "["):
            if self.take(self.peek() or "")[0] == ".":
                node = Member(node, self.take("name")[1])
            else:
                node = Index(node, self.expression())
                self.take("]")
        return node


def parse(text: str) -> Node:
    """The tree of one expression's inside (without the enclosing brackets)."""
    parser = _Parser(text)
    if not parser.tokens:
        raise TemplateError("The expression is empty.")
    node = parser.expression()
    if parser.pos != len(parser.tokens):
        raise TemplateError(f"Unexpected '{parser.tokens[parser.pos][1]}' at position "
                            f"{parser.tokens[parser.pos][2] + 1}.")
    return node


def calls(node: Node) -> list[Call]:
    """Every function call in a tree, outermost first."""
    if isinstance(node, Call):
        return [node, *(c for a in node.args for c in calls(a))]
    if isinstance(node, Member):
        return calls(node.target)
    if isinstance(node, Index):
        return [*calls(node.target), *calls(node.index)]
    return []


Function = Callable[..., Any]
# Functions that get their arguments unevaluated (`if`, `and`, `or` skip what they do not need).
LazyFunction = Callable[[Callable[[Node], Awaitable[Any]], tuple[Node, ...]], Awaitable[Any]]


class Evaluator:
    """Evaluates trees with `functions` (plain: evaluated arguments, maybe async) and `lazy` ones."""

    def __init__(self, functions: Mapping[str, Function], lazy: Mapping[str, LazyFunction] | None = None) -> None:
        self.functions = functions
        self.lazy = lazy or {}

    async def evaluate(self, node: Node) -> Any:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Call):
            if node.name in self.lazy:
                return await self.lazy[node.name](self.evaluate, node.args)
            fn = self.functions.get(node.name)
            if fn is None:
                raise TemplateError(f"The template function '{node.name}' is not valid or not served by this "
                                    "Cielo.")
            args = [await self.evaluate(a) for a in node.args]
            try:
                result = fn(*args)
            except TemplateError:
                raise
            except (TypeError, ValueError, IndexError, KeyError, ZeroDivisionError) as exc:
                raise TemplateError(f"The template function '{node.name}' failed: {exc}") from exc
            return await result if inspect.isawaitable(result) else result
        target = await self.evaluate(node.target)
        if isinstance(node, Member):
            if not isinstance(target, dict):
                raise TemplateError(f"The property '{node.name}' cannot be read from a value of type "
                                    f"'{type_name(target)}'.")
            for key, value in target.items():  # ARM property names are case-insensitive
                if key.lower() == node.name.lower():
                    return value
            raise TemplateError(f"The language expression property '{node.name}' doesn't exist, available "
                                f"properties are '{', '.join(target)}'.")
        index = await self.evaluate(node.index)
        if isinstance(target, list) and isinstance(index, int) and not isinstance(index, bool):
            if not 0 <= index < len(target):
                raise TemplateError(f"The index {index} is out of range for an array of length {len(target)}.")
            return target[index]
        if isinstance(target, dict) and isinstance(index, str):
            for key, value in target.items():
                if key.lower() == index.lower():
                    return value
            raise TemplateError(f"The property '{index}' doesn't exist.")
        raise TemplateError(f"A value of type '{type_name(target)}' cannot be indexed with "
                            f"'{type_name(index)}'.")

    async def value(self, raw: Any, where: str = "") -> Any:
        """A template value with every expression string in it evaluated (objects and arrays walked)."""
        try:
            if isinstance(raw, str):
                if is_expression(raw):
                    return await self.evaluate(parse(raw[1:-1]))
                return raw[1:] if raw.startswith("[[") else raw
            if isinstance(raw, list):
                return [await self.value(v, f"{where}[{i}]") for i, v in enumerate(raw)]
            if isinstance(raw, dict):
                return {k: await self.value(v, f"{where}.{k}" if where else k) for k, v in raw.items()}
            return raw
        except TemplateError as exc:
            if exc.where is None:
                exc.where = where
            raise


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, dict):
        return "Object"
    return "Null" if value is None else type(value).__name__
