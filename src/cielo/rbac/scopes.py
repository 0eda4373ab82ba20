"""Azure RBAC scopes: parsing, canonical form, ancestry (azure-facts.md §3.3 "Scope format").

A scope is `/`, a management group (`/providers/Microsoft.Management/managementGroups/{mg}`), a
subscription, a resource group, or a resource id, nested resources and extension resources included:

    /subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{type}/{name}[/{subtype}/{subname}...]
                                                                  [/providers/{ns}/{type}/{name}...]

Scopes compare case-insensitively, as ARM resource ids do. Only ASCII letters are folded: two strings
that differ in a non-ASCII character are different scopes, so Unicode case rules (the Kelvin sign
lower-cases to `k`) can never make one scope stand for another. Anything that a path could use to
escape its parent is refused rather than interpreted: `.`/`..` segments, empty segments, `%` (no
percent-decoding happens here; the router has decoded the URL once already), backslashes, `?`, `#`,
whitespace and control or format characters.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from cielo.rbac.errors import InvalidScope

MAX_SCOPE_LENGTH = 2048
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_FORBIDDEN_ASCII = frozenset("%\\?#\x7f" + "".join(chr(c) for c in range(0x21)))
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})


def fold(text: str) -> str:
    """The comparison key of an identifier: ASCII letters lower-cased, everything else kept."""
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


class ScopeKind(StrEnum):
    ROOT = "root"
    MANAGEMENT_GROUP = "managementGroup"
    SUBSCRIPTION = "subscription"
    RESOURCE_GROUP = "resourceGroup"
    RESOURCE = "resource"


@dataclass(frozen=True, slots=True)
class Scope:
    """A parsed scope. `path` keeps the caller's case (keywords canonicalised); `key` is the lookup key.

    `chain` lists the canonical paths of every scope from `/` down to this one, inclusive; `chain_keys`
    their keys. Only levels that are scopes appear: `.../providers/{ns}` alone is not one.
    """

    path: str
    key: str
    kind: ScopeKind
    chain: tuple[str, ...]
    chain_keys: tuple[str, ...]
    subscription_id: str | None = None
    resource_group: str | None = None

    def __str__(self) -> str:
        return self.path

    @property
    def parent(self) -> Scope | None:
        return parse_scope(self.chain[-2]) if len(self.chain) > 1 else None

    def is_within(self, ancestor: Scope) -> bool:
        """True when `ancestor` is this scope or one of its ancestors (whole segments only)."""
        return ancestor.key in self.chain_keys


ROOT = Scope("/", "/", ScopeKind.ROOT, ("/",), ("/",))


def _check_segment(segment: str, value: str) -> None:
    if not segment:
        raise InvalidScope(f"The scope '{value}' is not valid: it has an empty segment.")
    if segment in (".", ".."):
        raise InvalidScope(f"The scope '{value}' is not valid: '.' and '..' segments are not allowed.")
    if segment.isascii():
        if not _FORBIDDEN_ASCII.isdisjoint(segment):
            raise InvalidScope(f"The scope '{value}' is not valid: it contains a forbidden character.")
        return
    for char in segment:
        if char in _FORBIDDEN_ASCII or unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            raise InvalidScope(f"The scope '{value}' is not valid: it contains a forbidden character.")


def _invalid(value: str, why: str) -> InvalidScope:
    return InvalidScope(f"The scope '{value}' is not valid: {why}.")


@lru_cache(maxsize=65536)
def parse_scope(value: str) -> Scope:
    """Parse and canonicalise a scope; raise `InvalidScope` for anything else. Cached: scopes repeat."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise InvalidScope(f"The scope '{value}' is not valid: it must start with '/'.")
    if len(value) > MAX_SCOPE_LENGTH:
        raise InvalidScope(f"The scope is not valid: it is longer than {MAX_SCOPE_LENGTH} characters.")
    if value == "/":
        return ROOT
    body = value[1:-1] if value.endswith("/") else value[1:]  # one trailing slash is tolerated
    segments = body.split("/")
    for segment in segments:
        _check_segment(segment, value)
    keys = [fold(s) for s in segments]
    count = len(segments)
    out: list[str] = []  # canonical segments so far
    chain = ["/"]
    kind = ScopeKind.ROOT
    subscription: str | None = None
    resource_group: str | None = None
    i = 0
    if keys[0] == "subscriptions":
        if count < 2:
            raise _invalid(value, "'subscriptions' needs a subscription id")
        subscription = segments[1]
        out += ["subscriptions", subscription]
        chain.append("/" + "/".join(out))
        kind, i = ScopeKind.SUBSCRIPTION, 2
        if i < count and keys[i] == "resourcegroups":
            if i + 1 >= count:
                raise _invalid(value, "'resourceGroups' needs a resource group name")
            resource_group = segments[i + 1]
            out += ["resourceGroups", resource_group]
            chain.append("/" + "/".join(out))
            kind, i = ScopeKind.RESOURCE_GROUP, i + 2
    elif keys[0] != "providers":
        raise _invalid(value, "it must start with /subscriptions or /providers")
    while i < count:
        # A provider block: providers/{namespace} then one or more {type}/{name} pairs. A `providers`
        # segment where a type would stand opens an extension resource's block.
        if keys[i] != "providers":
            raise _invalid(value, f"unexpected segment '{segments[i]}'")
        if i + 1 >= count:
            raise _invalid(value, "'providers' needs a namespace")
        out += ["providers", segments[i + 1]]
        i += 2
        pairs = 0
        while i < count and keys[i] != "providers":
            if i + 1 >= count:
                raise _invalid(value, f"resource type '{segments[i]}' has no name")
            out += [segments[i], segments[i + 1]]
            chain.append("/" + "/".join(out))
            i += 2
            pairs += 1
        if pairs == 0:
            raise _invalid(value, f"provider namespace '{out[-1]}' needs a resource type and name")
        kind = ScopeKind.RESOURCE
    if (
        kind is ScopeKind.RESOURCE
        and len(chain) == 2
        and keys[1] == "microsoft.management"
        and keys[2] == "managementgroups"
    ):
        kind = ScopeKind.MANAGEMENT_GROUP
    chain_tuple = tuple(chain)
    chain_keys = tuple(fold(p) for p in chain_tuple)
    return Scope(chain_tuple[-1], chain_keys[-1], kind, chain_tuple, chain_keys, subscription, resource_group)


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
