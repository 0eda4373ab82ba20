"""Declarative ARM routing: one table of (method, path pattern) → (RBAC action, scope, handler, api-versions).

How a route is declared (the whole resource manager is `cielo.api.arm.TABLE`)::

    Route("GET", f"{RG}/providers/Microsoft.CognitiveServices/accounts/{{accountName}}",
          handler=get_account, action="Microsoft.CognitiveServices/accounts/read", scope=account_id)

Patterns are matched segment by segment:

- a literal (`resourceGroups`) matches case-insensitively, as ARM's path keywords do;
- `{name}` captures one segment, its case kept (resource names keep the case they were created with);
- `{name:A|B}` captures one segment that must be one of the choices (case-insensitively), keeping the case the
  client sent (so an error message names the path as the client wrote it);
- a leading `{name*}` captures any number of segments, the scope an extension resource hangs off (`/` when
  none); when several positions fit, the last one wins (ARM reads `{scope}/providers/Microsoft.Authorization/…`
  from the right);
- a trailing `{name*}` captures what is left, possibly nothing (only `Unserved` patterns use it).

The dispatcher that reads the table (`cielo.api.arm.dispatch`) does, for every request: api-version, caller,
match, `prepare` (the existence checks ARM answers before anything else: the subscription, the resource group
of a compute resource), the route's api-versions, `ctx.require(action, scope)` when the route names an action,
then the handler, which parses, calls one service method and renders. A route with `action=None` authorizes in
its handler, because its answer depends on each item (lists show what the caller may read) or on the body.

A path that matches a route's pattern under another HTTP method is ARM's `MethodNotAllowed`, unless the routes
of that pattern say `other_methods_unserved` (an action path, such as `checkAccess`, that answers a wrong method
as an unknown path): then, like a path that matches no route, it gets the first `Unserved` entry that matches,
which names the 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Call = TypeVar("Call")
Answer = TypeVar("Answer")


@dataclass(frozen=True)
class Pattern:
    """A compiled path pattern (see the module docstring for the syntax)."""

    text: str
    leading: str | None
    # Per segment: (captured name or None for a literal, lower-cased literal or allowed choices).
    segments: tuple[tuple[str | None, frozenset[str]], ...]
    trailing: str | None

    @classmethod
    def compile(cls, text: str) -> Pattern:
        raw = [s for s in text.split("/") if s]
        leading = trailing = None
        if raw and raw[0].startswith("{") and raw[0].endswith("*}"):
            leading = raw.pop(0)[1:-2]
        if raw and raw[-1].startswith("{") and raw[-1].endswith("*}"):
            trailing = raw.pop()[1:-2]
        segments: list[tuple[str | None, frozenset[str]]] = []
        for segment in raw:
            if segment.startswith("{") and segment.endswith("}"):
                name, _, choices = segment[1:-1].partition(":")
                if not name.isidentifier() or name.endswith("*"):
                    raise ValueError(f"bad capture {segment!r} in {text!r}")
                segments.append((name, frozenset(c.lower() for c in choices.split("|")) if choices else frozenset()))
            else:
                segments.append((None, frozenset({segment.lower()})))
        return cls(text, leading, tuple(segments), trailing)

    def match(self, parts: Sequence[str], lower: Sequence[str]) -> dict[str, str] | None:
        """The captures when `parts` (the path's segments, `lower` the same lower-cased) fit, else None."""
        n = len(self.segments)
        if self.leading is None:
            starts: Sequence[int] = (0,)
        elif self.trailing is None:
            starts = (len(parts) - n,)
        else:
            starts = range(len(parts) - n, -1, -1)  # the last position that fits wins
        for start in starts:
            found = self._match_at(parts, lower, start)
            if found is not None:
                return found
        return None

    def _match_at(self, parts: Sequence[str], lower: Sequence[str], start: int) -> dict[str, str] | None:
        end = start + len(self.segments)
        if start < 0 or end > len(parts) or (self.trailing is None and end != len(parts)):
            return None
        captured: dict[str, str] = {}
        for (name, allowed), part, folded in zip(self.segments, parts[start:end], lower[start:end], strict=True):
            if allowed and folded not in allowed:
                return None
            if name is not None:
                captured[name] = part
        if self.leading is not None:
            captured[self.leading] = "/" + "/".join(parts[:start]) if start else "/"
        if self.trailing is not None:
            captured[self.trailing] = "/".join(parts[end:])
        return captured


@dataclass(frozen=True)
class Route(Generic[Call, Answer]):
    """One operation: `method` on paths of `pattern`."""

    method: str
    pattern: str
    handler: Callable[[Call], Awaitable[Answer]]
    # The ARM action checked at `scope(call)` before the handler runs; None: the handler authorizes.
    action: str | None = None
    scope: Callable[[Call], str] | None = None
    # The api-versions this operation serves; None: any date-shaped version (what Cielo accepts everywhere today).
    api_versions: frozenset[str] | None = None
    # What ARM checks before anything else on this path, whatever the method (the same for every route of a pattern).
    prepare: tuple[Callable[[Call], None], ...] = ()
    # A wrong method on this path is answered as an unknown path (404) rather than MethodNotAllowed.
    other_methods_unserved: bool = False

    def __post_init__(self) -> None:
        if self.action is not None and self.scope is None:
            raise ValueError(f"{self.method} {self.pattern}: a route that names an action needs its scope")


@dataclass(frozen=True)
class Unserved(Generic[Call]):
    """The 404 for paths under `pattern` that no route serves."""

    pattern: str
    answer: Callable[[Call], Exception]
    prepare: tuple[Callable[[Call], None], ...] = ()


@dataclass(frozen=True)
class Resolution(Generic[Call, Answer]):
    """What the table says about one request: the route to run, or the error to answer after `prepare`."""

    params: dict[str, str]
    prepare: tuple[Callable[[Call], None], ...]
    route: Route[Call, Answer] | None = None
    refusal: Callable[[Call], Exception] | None = None


@dataclass
class _PatternRoutes(Generic[Call, Answer]):
    pattern: Pattern
    by_method: dict[str, Route[Call, Answer]] = field(default_factory=dict)


class RouteTable(Generic[Call, Answer]):
    """Routes in declaration order; the first pattern that fits a path decides its answer."""

    def __init__(self, routes: Sequence[Route[Call, Answer]], unserved: Sequence[Unserved[Call]],
                 method_not_allowed: Callable[[Call], Exception]) -> None:
        self.routes = tuple(routes)
        self._patterns: list[_PatternRoutes[Call, Answer]] = []
        by_text: dict[str, _PatternRoutes[Call, Answer]] = {}
        for route in routes:
            group = by_text.get(route.pattern)
            if group is None:
                group = by_text[route.pattern] = _PatternRoutes(Pattern.compile(route.pattern))
                self._patterns.append(group)
            if route.method in group.by_method:
                raise ValueError(f"{route.method} {route.pattern} is declared twice")
            first = next(iter(group.by_method.values()), route)
            if (first.prepare, first.other_methods_unserved) != (route.prepare, route.other_methods_unserved):
                raise ValueError(f"the routes of {route.pattern} disagree on prepare or other_methods_unserved")
            group.by_method[route.method] = route
        self._unserved = [(Pattern.compile(u.pattern), u) for u in unserved]
        self._method_not_allowed = method_not_allowed

    def resolve(self, method: str, parts: Sequence[str]) -> Resolution[Call, Answer]:
        lower = [p.lower() for p in parts]
        for group in self._patterns:
            params = group.pattern.match(parts, lower)
            if params is None:
                continue
            route = group.by_method.get(method)
            if route is not None:
                return Resolution(params, route.prepare, route=route)
            first = next(iter(group.by_method.values()))
            if not first.other_methods_unserved:
                return Resolution(params, first.prepare, refusal=self._method_not_allowed)
        for pattern, unserved in self._unserved:
            params = pattern.match(parts, lower)
            if params is not None:
                return Resolution(params, unserved.prepare, refusal=unserved.answer)
        raise LookupError(f"no route and no Unserved entry for {'/'.join(parts)!r}")  # the table ends with catch-alls
