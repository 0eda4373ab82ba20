"""Azure RBAC scopes: parsing, canonical form, ancestry
(learn.microsoft.com/azure/role-based-access-control/scope-overview).

A scope is `/`, a management group (`/providers/Microsoft.Management/managementGroups/{mg}`), a
subscription, a resource group, or a resource id, nested resources and extension resources included:

    /subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{type}/{name}[/{subtype}/{subname}...]
                                                                  [/providers/{ns}/{type}/{name}...]

Scopes compare case-insensitively, as ARM resource ids do. Keys are interned, so the index's dict
probes match by identity without reading the stored key. Only ASCII letters are folded: two strings
that differ in a non-ASCII character are different scopes, so Unicode case rules (the Kelvin sign
lower-cases to `k`) can never make one scope stand for another. Anything that a path could use to
escape its parent is refused rather than interpreted: `.`/`..` segments, empty segments, `%` (no
percent-decoding happens here; the router has decoded the URL once already), backslashes, `?`, `#`,
whitespace and control or format characters.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum
from functools import lru_cache
from itertools import accumulate
from sys import intern
from typing import NamedTuple

from cielo.rbac.errors import InvalidScope

MAX_SCOPE_LENGTH = 2048
# Parsed scopes kept (LRU). A cached deployment scope costs ~0.8 KB, so the cache tops out near 100 MB; it
# only fills where that many distinct scopes are asked about, and a miss costs a few microseconds.
SCOPE_CACHE_SIZE = 131072
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_FORBIDDEN_ASCII = re.compile(r"[\x00-\x20\x7f%\\?#]")
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})


def fold(text: str) -> str:
    """The comparison key of an identifier: ASCII letters lower-cased, everything else kept.

    Folding never changes a string's length, so a key's prefixes line up with its path's.
    """
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


class ScopeKind(StrEnum):
    ROOT = "root"
    MANAGEMENT_GROUP = "managementGroup"
    SUBSCRIPTION = "subscription"
    RESOURCE_GROUP = "resourceGroup"
    RESOURCE = "resource"


class Scope(NamedTuple):
    """A parsed scope. `path` keeps the caller's case (keywords canonicalised); `key` is the lookup key.

    `chain_keys` are the keys of every scope from `/` down to this one, inclusive (`chain` their paths).
    Only levels that are scopes appear: `.../providers/{ns}` alone is not one. (A NamedTuple: immutable,
    and a third of a frozen dataclass's construction cost, which matters when a parse misses the cache.)
    """

    path: str
    key: str
    kind: ScopeKind
    chain_keys: tuple[str, ...]
    subscription_id: str | None = None
    resource_group: str | None = None

    def __str__(self) -> str:
        return self.path

    @property
    def chain(self) -> tuple[str, ...]:
        return ("/", *(self.path[: len(k)] for k in self.chain_keys[1:]))

    @property
    def parent(self) -> Scope | None:
        return parse_scope(self.path[: len(self.chain_keys[-2])]) if len(self.chain_keys) > 1 else None

    def is_within(self, ancestor: Scope) -> bool:
        """True when `ancestor` is this scope or one of its ancestors (whole segments only)."""
        return ancestor.key in self.chain_keys


ROOT = Scope("/", "/", ScopeKind.ROOT, ("/",))
_RESOURCE = ScopeKind.RESOURCE  # enum attribute access costs ~75 ns on Python 3.11


def _invalid(value: str, why: str) -> InvalidScope:
    return InvalidScope(f"The scope '{value[:MAX_SCOPE_LENGTH]}' is not valid: {why}.")


def _check_characters(value: str, path: str) -> None:
    if path.isascii():
        if _FORBIDDEN_ASCII.search(path):
            raise _invalid(value, "it contains a forbidden character")
        return
    for char in path:
        if _FORBIDDEN_ASCII.match(char) or unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            raise _invalid(value, "it contains a forbidden character")


@lru_cache(maxsize=SCOPE_CACHE_SIZE)
def parse_scope(value: str) -> Scope:
    """Parse and canonicalise a scope; raise `InvalidScope` for anything else. Cached: scopes repeat.

    A nested resource (`{resource}/{type}/{name}`, e.g. a deployment under an account) reuses its
    parent's cached parse, so a cache miss on a deep scope costs a fraction of a full parse.
    """
    parsed = _parse_nested(value)
    if parsed is None:
        parsed = _parse_common(value)
    return parsed if parsed is not None else _parse_full(value)


# The common shape in one regex: /subscriptions/{s}[/resourceGroups/{rg}][/providers/{ns}/{type}/{name}...].
# A segment is never `.`/`..` and never holds a forbidden character; a type is never `providers`.
_SEGMENT = r"(?!\.\.?(?:/|$))[^/\x00-\x20\x7f%\\?#]+"
_COMMON = re.compile(
    rf"/subscriptions/(?P<sub>{_SEGMENT})(?:/resourceGroups/(?P<rg>{_SEGMENT}))?"
    rf"(?:/providers/(?P<ns>{_SEGMENT})(?P<pairs>(?:/(?!providers(?:/|$)){_SEGMENT}/{_SEGMENT})+))?/?",
    re.IGNORECASE,
)


def _parse_common(value: str) -> Scope | None:
    """The common ASCII shape at C speed, or None to let the full parser decide."""
    if not value.isascii() or len(value) > MAX_SCOPE_LENGTH:
        return None
    match = _COMMON.fullmatch(value)
    if match is None:
        return None
    subscription, resource_group, namespace, pairs = match.group("sub", "rg", "ns", "pairs")
    # Keywords differ from ARM's casing at most by case, so positions in `value` are positions in `path`.
    ends = [match.end("sub")]
    path = "/subscriptions/" + subscription
    kind = ScopeKind.SUBSCRIPTION
    if resource_group is not None:
        ends.append(match.end("rg"))
        path += "/resourceGroups/" + resource_group
        kind = ScopeKind.RESOURCE_GROUP
    if namespace is not None:
        end = match.start("pairs")
        segments = pairs.split("/")  # "", type, name, type, name...
        for i in range(1, len(segments), 2):
            end += len(segments[i]) + len(segments[i + 1]) + 2
            ends.append(end)
        path += "/providers/" + namespace + pairs
        kind = _RESOURCE
    if path == value:
        path = value
    key = path.lower()
    chain_keys = ("/", *[intern(key[:end]) for end in ends])
    return Scope(path, chain_keys[-1], kind, chain_keys, subscription, resource_group)


def _parse_nested(value: str) -> Scope | None:
    """`value` as its parent resource plus one type/name pair, or None to let the other parsers decide."""
    path = value[:-1] if value.endswith("/") else value
    parts = path.rsplit("/", 4)
    if len(parts) != 5 or len(value) > MAX_SCOPE_LENGTH:
        return None
    _, parent_type, _, type_, name = parts
    # The parent must be a resource, so not `.../providers/{namespace}`; nor may the pair open a block.
    if fold(parent_type) == "providers" or fold(type_) == "providers":
        return None
    tail = f"/{type_}/{name}"
    parent_path = path[: len(path) - len(tail)]
    if parent_path.endswith("/") or type_ in ("", ".", "..") or name in ("", ".", ".."):
        return None  # an empty or dot segment: the full parser refuses it
    if not tail.isascii() or _FORBIDDEN_ASCII.search(tail):
        return None
    try:
        parent = parse_scope(parent_path)
    except InvalidScope:
        return None
    if parent.kind is not _RESOURCE:
        return None
    full = parent.path + tail
    if full == value:
        full = value  # share the caller's string: the cache holds it anyway
    key = intern(parent.key + fold(tail))
    return Scope(full, key, _RESOURCE, (*parent.chain_keys, key), parent.subscription_id, parent.resource_group)


def _parse_full(value: str) -> Scope:
    """The whole grammar, segment by segment."""
    if not value.startswith("/"):
        raise _invalid(value, "it must start with '/'")
    if len(value) > MAX_SCOPE_LENGTH:
        raise _invalid(value, f"it is longer than {MAX_SCOPE_LENGTH} characters")
    if value == "/":
        return ROOT
    path = value[:-1] if value.endswith("/") else value  # one trailing slash is tolerated
    _check_characters(value, path)
    segments = path[1:].split("/")
    if "" in segments:
        raise _invalid(value, "it has an empty segment")
    if "." in segments or ".." in segments:
        raise _invalid(value, "'.' and '..' segments are not allowed")
    keys = fold(path)[1:].split("/")
    count = len(segments)
    levels: list[int] = []  # segment counts at which a scope of the chain ends
    kind = ScopeKind.ROOT
    subscription: str | None = None
    resource_group: str | None = None
    i = 0
    if keys[0] == "subscriptions":
        if count < 2:
            raise _invalid(value, "'subscriptions' needs a subscription id")
        segments[0] = "subscriptions"
        subscription = segments[1]
        kind, i = ScopeKind.SUBSCRIPTION, 2
        levels.append(2)
        if i < count and keys[i] == "resourcegroups":
            if i + 1 >= count:
                raise _invalid(value, "'resourceGroups' needs a resource group name")
            segments[i] = "resourceGroups"
            resource_group = segments[i + 1]
            kind, i = ScopeKind.RESOURCE_GROUP, i + 2
            levels.append(i)
    elif keys[0] != "providers":
        raise _invalid(value, "it must start with /subscriptions or /providers")
    while i < count:
        # A provider block: providers/{namespace} then one or more {type}/{name} pairs. A `providers`
        # segment where a type would stand opens an extension resource's block.
        if keys[i] != "providers":
            raise _invalid(value, f"unexpected segment '{segments[i]}'")
        if i + 1 >= count:
            raise _invalid(value, "'providers' needs a namespace")
        segments[i] = "providers"
        namespace = i + 1
        i += 2
        while i < count and keys[i] != "providers":
            if i + 1 >= count:
                raise _invalid(value, f"resource type '{segments[i]}' has no name")
            i += 2
            levels.append(i)
        if levels[-1:] != [i] or i == namespace + 1:
            raise _invalid(value, f"provider namespace '{segments[namespace]}' needs a resource type and name")
        kind = ScopeKind.RESOURCE
    if kind is ScopeKind.RESOURCE and levels == [4] and keys[1] == "microsoft.management" and (
        keys[2] == "managementgroups"
    ):
        kind = ScopeKind.MANAGEMENT_GROUP
    canonical = "/" + "/".join(segments)
    key = fold(canonical)
    ends = list(accumulate(map(len, segments)))  # the first n segments end at ends[n - 1] + n
    chain_keys = ("/", *[intern(key[: ends[n - 1] + n]) for n in levels])
    return Scope(canonical, chain_keys[-1], kind, chain_keys, subscription, resource_group)


def as_scope(value: str | Scope) -> Scope:
    return value if isinstance(value, Scope) else parse_scope(value)


def normalize_scope(value: str) -> str:
    """The canonical path of a scope (trailing slash stripped, keywords in ARM's casing)."""
    return parse_scope(value).path


def scope_key(value: str | Scope) -> str:
    return as_scope(value).key


def ancestors(value: str | Scope) -> tuple[str, ...]:
    """Canonical paths from `/` down to the scope itself, inclusive."""
    return as_scope(value).chain


def is_within(child: str | Scope, ancestor: str | Scope) -> bool:
    """True when `ancestor` is `child` or contains it, compared on whole segments, case-insensitively."""
    return as_scope(child).is_within(as_scope(ancestor))
