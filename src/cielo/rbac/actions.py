"""Action strings and permission patterns (learn.microsoft.com/azure/role-based-access-control/role-definitions).

An action is `{Company}.{Provider}/{resourceType...}/{verb}`, e.g.
`Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action`. Patterns may use
`*` as a whole segment; it matches one or more whole segments, so `Microsoft.CognitiveServices/
accounts/OpenAI/*/read` covers `.../OpenAI/assistants/threads/messages/files/read`, and a bare `*`
matches every action. Matching is case-insensitive (built-in roles mix `Delete`/`delete`,
`listkeys`/`listKeys`). A `*` inside a segment (`Microsoft.Sto*`) is refused: Azure documents none.

Built-in roles are Azure's data as published, and a few of their entries break this grammar (a trailing space
or slash, `:` or `{operationName}` in a segment): compiled with `strict=False`, such an entry is trimmed, and if
still malformed kept as an exact name, which matches no action Cielo can be asked (every action it checks is
well formed). Custom roles are always compiled strictly.

A permission block with an ABAC condition (built-ins only) grants nothing the condition governs: conditions are
not evaluated, so they fail closed. Azure's built-in conditions have the form `(!(ActionMatches{'X'})) OR
(...)`, true for every action but X; the actions named in `ActionMatches{…}` are the governed ones, and a
condition that names none governs the whole block.

Patterns compile once into a `PatternSet`: exact names in a frozenset, `prefix/*` and `*/suffix` forms
as `str.startswith`/`str.endswith` tuples, and anything else into a segment glob that runs in
O(segments x tokens) with no backtracking blow-up. `RolePermissions` memoises each role's answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from cielo.rbac.errors import InvalidAction

MAX_ACTION_LENGTH = 512
_SEGMENT = re.compile(r"[a-z0-9._\-]+")
_ONE = "?"  # glob token: exactly one segment (a literal segment can never be "?" or "*")
_ANY = "*"  # glob token: zero or more segments
_MEMO_LIMIT = 4096


def _segments(text: str, *, allow_wildcards: bool) -> list[str]:
    if not text or len(text) > MAX_ACTION_LENGTH:
        raise InvalidAction(f"'{text[:MAX_ACTION_LENGTH]}' is not a valid action: empty or too long.")
    if not text.isascii():
        raise InvalidAction(f"'{text}' is not a valid action: only ASCII characters are allowed.")
    segments = text.lower().split("/")
    for segment in segments:
        if segment == "*" and allow_wildcards:
            continue
        if not _SEGMENT.fullmatch(segment):
            raise InvalidAction(
                f"'{text}' does not match any of the actions supported by the providers: each segment must be "
                "letters, digits, '.', '_' or '-'" + (", or '*' alone." if allow_wildcards else ".")
            )
    return segments


@lru_cache(maxsize=8192)
def normalize_action(action: str) -> str:
    """A requested action in lower case. Raises `InvalidAction` when malformed or when it has a `*`."""
    return "/".join(_segments(action, allow_wildcards=False))


def normalize_pattern(pattern: str) -> str:
    """A permission pattern in lower case. Raises `InvalidAction` when malformed."""
    return "/".join(_segments(pattern, allow_wildcards=True))


def _glob(tokens: tuple[str, ...], segments: list[str]) -> bool:
    """Wildcard match over segments with `?` (one) and `*` (zero or more): the linear greedy algorithm."""
    t = s = 0
    star_t, star_s = -1, 0
    n_tokens, n_segments = len(tokens), len(segments)
    while s < n_segments:
        if t < n_tokens and tokens[t] != _ANY and (tokens[t] == _ONE or tokens[t] == segments[s]):
            t += 1
            s += 1
        elif t < n_tokens and tokens[t] == _ANY:
            star_t, star_s = t, s
            t += 1
        elif star_t >= 0:
            t = star_t + 1
            star_s += 1
            s = star_s
        else:
            return False
    while t < n_tokens and tokens[t] == _ANY:
        t += 1
    return t == n_tokens


def _lenient(pattern: str) -> list[str] | None:
    """A built-in's pattern as segments, or None when even trimmed it breaks the grammar."""
    try:
        return normalize_pattern(pattern.strip()).split("/")
    except InvalidAction:
        return None


class PatternSet:
    """The union of some permission patterns, compiled for matching normalised actions."""

    __slots__ = ("_exact", "_globs", "_match_all", "_prefixes", "_suffixes", "patterns")

    def __init__(self, patterns: Iterable[str], *, strict: bool = True) -> None:
        self.patterns = tuple(patterns)
        exact: set[str] = set()
        prefixes: list[str] = []
        suffixes: list[str] = []
        globs: list[tuple[str, ...]] = []
        match_all = False
        for pattern in self.patterns:
            found = normalize_pattern(pattern).split("/") if strict else _lenient(pattern)
            if found is None:
                exact.add(pattern.strip().lower())  # matches nothing normalize_action lets through
                continue
            segments = found
            stars = segments.count("*")
            if stars == 0:
                exact.add("/".join(segments))
            elif segments == ["*"]:
                match_all = True
            elif stars == 1 and segments[-1] == "*":
                prefixes.append("/".join(segments[:-1]) + "/")  # `a/b/*`: a/b/ then >= 1 segment
            elif stars == 1 and segments[0] == "*":
                suffixes.append("/" + "/".join(segments[1:]))  # `*/read`: >= 1 segment then /read
            else:
                tokens: list[str] = []
                for segment in segments:
                    tokens += [_ONE, _ANY] if segment == "*" else [segment]  # `*` = one, then any more
                globs.append(tuple(tokens))
        self._exact = frozenset(exact)
        self._prefixes = tuple(prefixes)
        self._suffixes = tuple(suffixes)
        self._globs = tuple(globs)
        self._match_all = match_all

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, action: str) -> bool:
        """`action` must come from `normalize_action` (lower case, no empty segments, no `*`)."""
        if self._match_all or action in self._exact:
            return True
        if self._prefixes and action.startswith(self._prefixes):
            return True
        if self._suffixes and action.endswith(self._suffixes):
            return True
        if self._globs:
            segments = action.split("/")
            return any(_glob(tokens, segments) for tokens in self._globs)
        return False


def action_matches(pattern: str, action: str) -> bool:
    """Does one pattern cover one action? (Convenience; the engine uses compiled `PatternSet`s.)"""
    return PatternSet((pattern,)).matches(normalize_action(action))


_ACTION_MATCHES = re.compile(r"ActionMatches\{\s*'([^']*)'\s*\}", re.IGNORECASE)
_NOTHING = PatternSet(())


def governed_actions(condition: str) -> PatternSet | None:
    """The actions an ABAC condition restricts: those its `ActionMatches{…}` clauses name; None for all."""
    named = _ACTION_MATCHES.findall(condition)
    return PatternSet(named, strict=False) if named else None


# A role's permission block: (actions, notActions, dataActions, notDataActions[, condition]).
Block = tuple[Iterable[str], Iterable[str], Iterable[str], Iterable[str]] | tuple[
    Iterable[str], Iterable[str], Iterable[str], Iterable[str], str | None]


class _Compiled:
    __slots__ = ("data", "deny", "governed", "grant", "no_data")

    def __init__(self, block: Block, strict: bool) -> None:
        self.grant = PatternSet(block[0], strict=strict)
        self.deny = PatternSet(block[1], strict=strict)
        self.data = PatternSet(block[2], strict=strict)
        self.no_data = PatternSet(block[3], strict=strict)
        condition = block[4] if len(block) > 4 else None  # type: ignore[misc]
        # None: unconditional; _NOTHING never matches, so `governed` is only consulted when a condition exists.
        self.governed: PatternSet | None = _NOTHING
        if condition:
            self.governed = governed_actions(condition)

    def covers(self, action: str, data_action: bool) -> bool:
        if data_action:
            return self.data.matches(action) and not self.no_data.matches(action)
        return self.grant.matches(action) and not self.deny.matches(action)

    def conditioned(self, action: str) -> bool:
        return self.governed is None or self.governed.matches(action)


class RolePermissions:
    """A role's permission blocks compiled: allowed = union over blocks of (Actions - NotActions).

    NotActions subtract only within their own block (and so within their own role); another block or
    another role that grants the action restores it, as in Azure. Control-plane patterns and data
    patterns are separate sets: Owner's `*` never grants a data action. A block with a condition grants
    nothing its condition governs (`conditional` says when that is why an action is not allowed).
    `strict=False` for built-in roles (see the module docstring).
    """

    __slots__ = ("_blocks", "_control_memo", "_data_memo", "has_conditions")

    def __init__(self, blocks: Iterable[Block], *, strict: bool = True) -> None:
        self._blocks = tuple(_Compiled(block, strict) for block in blocks)
        self.has_conditions = any(b.governed is not _NOTHING for b in self._blocks)
        self._control_memo: dict[str, bool] = {}
        self._data_memo: dict[str, bool] = {}

    def allows(self, action: str, data_action: bool) -> bool:
        """`action` must be normalised. Answers are memoised per role (bounded; a full memo is reset)."""
        memo = self._data_memo if data_action else self._control_memo
        answer = memo.get(action)
        if answer is None:
            answer = any(b.covers(action, data_action) and not b.conditioned(action) for b in self._blocks)
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[action] = answer
        return answer

    def conditional(self, action: str, data_action: bool) -> bool:
        """Would a block grant `action` but for its condition (which Cielo does not evaluate)?"""
        return any(b.covers(action, data_action) and b.conditioned(action) for b in self._blocks)
