"""The `$filter` clauses the Graph-compatible API serves, with Graph's semantics.

A filter is one clause or several joined by `and`:

- `field eq 'value'`;
- `startswith(field,'value')` (az's `ad app/sp/user/group list --display-name`, and `ad sp create-for-rbac`);
- `servicePrincipalNames/any(c:c eq 'value')` (az's `--assignee` look-up).

Graph compares directory strings case-insensitively, in both `eq` and `startswith`; a quote inside a value is
doubled (`'O''Brien'`). Which fields take which operator is per collection, following the properties'
"Supports $filter" notes in Microsoft Graph's v1.0 reference; anything else is refused with 400
`Request_UnsupportedQuery` naming the clause, never ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cielo.errors import UnsupportedQuery

_VALUE = r"'((?:[^']|'')*)'"
_EQ = re.compile(rf"^(\w+)\s+eq\s+{_VALUE}$")
_STARTSWITH = re.compile(rf"^startswith\(\s*(\w+)\s*,\s*{_VALUE}\s*\)$", re.IGNORECASE)
_ANY_EQ = re.compile(rf"^(\w+)/any\((\w+):\s*\2\s+eq\s+{_VALUE}\)$")
# `and` outside quotes: split on it only where the text before holds an even number of quotes.
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)


@dataclass(frozen=True)
class Clause:
    field: str
    op: str  # "eq", "startswith" or "any"
    value: str

    def matches(self, item: Mapping[str, Any]) -> bool:
        wanted = self.value.lower()
        if self.op == "any":
            return any(str(v).lower() == wanted for v in item.get(self.field) or [])
        have = str(item.get(self.field) or "").lower()
        return have == wanted if self.op == "eq" else have.startswith(wanted)


@dataclass(frozen=True)
class Filterable:
    """Which fields of a collection take `eq`, `startswith` and `any(… eq …)`."""

    eq: frozenset[str]
    startswith: frozenset[str] = frozenset()
    any_eq: frozenset[str] = frozenset()


USERS = Filterable(frozenset({"userPrincipalName", "displayName", "id", "mail"}),
                   frozenset({"userPrincipalName", "displayName", "mail"}))
GROUPS = Filterable(frozenset({"displayName", "id", "mailNickname"}), frozenset({"displayName", "mailNickname"}))
APPLICATIONS = Filterable(frozenset({"appId", "displayName", "id"}), frozenset({"appId", "displayName"}))
SERVICE_PRINCIPALS = Filterable(frozenset({"appId", "displayName", "id", "servicePrincipalType"}),
                                frozenset({"appId", "displayName"}), frozenset({"servicePrincipalNames"}))


def _split_and(raw: str) -> list[str]:
    parts: list[str] = []
    start = 0
    for match in _AND.finditer(raw):
        if raw[:match.start()].count("'") % 2 == 0:
            parts.append(raw[start:match.start()])
            start = match.end()
    parts.append(raw[start:])
    return [part.strip() for part in parts]


def _clause(text: str, allowed: Filterable) -> Clause:
    for pattern, op, names in ((_EQ, "eq", allowed.eq), (_STARTSWITH, "startswith", allowed.startswith)):
        match = pattern.match(text)
        if match:
            field, value = match.group(1), match.group(2).replace("''", "'")
            if field not in names:
                raise UnsupportedQuery(f"Unsupported or invalid query filter clause specified for property "
                                       f"'{field}': {text[:100]}")
            return Clause(field, op, value)
    match = _ANY_EQ.match(text)
    if match and match.group(1) in allowed.any_eq:
        return Clause(match.group(1), "any", match.group(3).replace("''", "'"))
    raise UnsupportedQuery(f"Unsupported or invalid query filter clause specified: {text[:100]}")


def parse_filter(raw: str | None, allowed: Filterable) -> list[Clause]:
    """The clauses of `raw` (all must hold); an empty list for no filter."""
    if raw is None or not raw.strip():
        return []
    return [_clause(part, allowed) for part in _split_and(raw.strip())]


def select(items: list[Any], shape: Any, clauses: list[Clause]) -> list[Any]:
    """The items whose Graph shape (`shape(item)`) satisfies every clause."""
    if not clauses:
        return items
    return [item for item in items if all(clause.matches(shape(item)) for clause in clauses)]
