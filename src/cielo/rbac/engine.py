"""The in-memory RBAC index and evaluator (learn.microsoft.com/azure/role-based-access-control/overview,
role-definitions).

Assignments are indexed by scope key, then by principal id. `authorize` walks the scope's chain from
`/` down (at most a handful of levels) and, at each level, looks up the principal and its groups: its
cost depends on the depth and the number of groups, never on how many assignments exist.

Concurrency: one writer at a time (a lock), readers without locks. Readers only call `dict.get` on
the outer maps, which is atomic. The per-scope principal maps are copy-on-write while small; a large
one (more than `_COW_MAX` principals at one scope) is updated in place instead of being copied on
every write, and readers never iterate a map that large, so they never see one change under them.
Leaf tuples are immutable.
"""

from __future__ import annotations

import dataclasses
import gc
import threading
from collections.abc import Iterable, Iterator
from functools import cache
from sys import intern

from cielo.core.clock import Clock, SystemClock
from cielo.rbac.actions import RolePermissions, normalize_action
from cielo.rbac.decision import Decision, Evaluation, Outcome
from cielo.rbac.errors import (
    InvalidRoleAssignment,
    InvalidRoleDefinition,
    RoleAssignmentExists,
    RoleAssignmentUpdateNotPermitted,
    RoleDefinitionHasAssignments,
    RoleDefinitionNotFound,
    RoleDefinitionWithSameNameExists,
    ScopeNotAssignable,
)
from cielo.rbac.model import PRINCIPAL_TYPES, Principal, RoleAssignment
from cielo.rbac.roles import BUILTIN_ROLES, GUID, RoleDefinition, role_definition_guid
from cielo.rbac.scopes import Scope, ScopeKind, as_scope, fold, parse_scope

_COW_MAX = 32
_CUSTOM_ROLE_SCOPE_KINDS = (ScopeKind.MANAGEMENT_GROUP, ScopeKind.SUBSCRIPTION, ScopeKind.RESOURCE_GROUP)


# (assignment, effective_at): plain tuples, ten times cheaper to build than a NamedTuple. effective_at is
# 0.0 without a propagation delay.
_Entry = tuple[RoleAssignment, float]
_NO_PRINCIPALS: dict[str, tuple[_Entry, ...]] = {}
# Enum attribute access costs ~75 ns on Python 3.11; the hot path uses these module constants instead.
_GRANTS, _NOT_INCLUDED, _CONTROL_PLANE_ONLY = Outcome.GRANTS, Outcome.NOT_INCLUDED, Outcome.CONTROL_PLANE_ONLY
_CONDITION, _PENDING, _UNKNOWN_ROLE = Outcome.CONDITION_NOT_EVALUATED, Outcome.PENDING, Outcome.UNKNOWN_ROLE


class _Role:
    """A role as the index uses it. A custom role's patterns compile at once (that validates them); a built-in's
    compile the first time it is assigned (`compile`), so that ~930 roles cost nothing at start-up. Only assigned
    roles are ever evaluated, and an uncompiled role grants nothing, so a miss can only fail closed."""

    __slots__ = ("builtin", "definition", "everywhere", "name", "permissions", "scopes")

    def __init__(self, definition: RoleDefinition) -> None:
        self.definition = definition
        self.builtin = definition.is_builtin
        self.name = definition.role_name
        self.permissions = _UNCOMPILED
        if not self.builtin:
            self.compile()
        self.scopes = tuple(parse_scope(s) for s in definition.assignable_scopes)
        self.everywhere = any(s.key == "/" for s in self.scopes)

    def compile(self) -> RolePermissions:
        """Idempotent; two threads racing here build equal objects and either one wins."""
        if self.permissions is _UNCOMPILED:
            self.permissions = RolePermissions(
                ((p.actions, p.not_actions, p.data_actions, p.not_data_actions, p.condition)
                 for p in self.definition.permissions),
                strict=not self.builtin,
            )
        return self.permissions

    def assignable_at(self, scope: Scope) -> bool:
        return self.everywhere or any(scope.is_within(s) for s in self.scopes)


_UNCOMPILED = RolePermissions(())


@cache
def _builtin_roles() -> tuple[dict[str, _Role], dict[str, str]]:
    """The built-ins, once per process and shared by every index (a compiled role is immutable but for its memo
    of answers, which depend on the role alone), and their names."""
    return {role.id: _Role(role) for role in BUILTIN_ROLES}, {fold(role.role_name): role.id for role in BUILTIN_ROLES}


class RbacIndex:
    """Role definitions (the built-ins plus custom roles) and role assignments, with `authorize`.

    `builtin_roles` narrows the built-ins it knows (default: Azure's whole catalogue, `BUILTIN_ROLES`).
    `propagation_delay_s` imitates Azure's propagation (up to about 5 minutes for Azure OpenAI,
    learn.microsoft.com/azure/ai-services/openai/how-to/managed-identity): an
    assignment grants from `created_on` (or from when it was added, if it has none) plus the delay;
    a removal takes effect at once. `clock` is injectable for tests.
    """

    def __init__(
        self,
        *,
        custom_roles: Iterable[RoleDefinition] = (),
        clock: Clock | None = None,
        propagation_delay_s: float = 0.0,
        builtin_roles: Iterable[RoleDefinition] | None = None,
    ) -> None:
        if propagation_delay_s < 0:
            raise ValueError("propagation_delay_s must be >= 0")
        self._clock: Clock = clock or SystemClock()
        self._delay = float(propagation_delay_s)
        self._lock = threading.Lock()
        compiled, names = _builtin_roles()
        if builtin_roles is None:
            self._roles: dict[str, _Role] = dict(compiled)
            self._role_names: dict[str, str] = dict(names)
        else:  # a subset, e.g. to measure the engine with fewer built-ins (benchmarks/rbac.py)
            self._roles = {r.id: compiled.get(r.id) or _Role(r) for r in builtin_roles if r.is_builtin}
            self._role_names = {fold(r.definition.role_name): r.definition.id for r in self._roles.values()}
        self._scopes: dict[str, dict[str, tuple[_Entry, ...]]] = {}
        self._by_id: dict[str, tuple[str, RoleAssignment, float]] = {}  # id -> (scope key, assignment, effective_at)
        self._by_principal: dict[str, set[str]] = {}  # principal id -> assignment ids
        self._by_custom_role: dict[str, set[str]] = {}  # custom role id -> assignment ids
        for role in custom_roles:
            self.add_role_definition(role)

    # ------------------------------------------------------------------------------ role definitions
    def get_role_definition(self, role_id: str) -> RoleDefinition | None:
        """By GUID or full role definition id; None when unknown."""
        try:
            role = self._roles.get(role_definition_guid(role_id))
        except RoleDefinitionNotFound:
            return None
        return role.definition if role is not None else None

    def find_role(self, role_name: str) -> RoleDefinition | None:
        """By role name, case-insensitively (as `az role assignment create --role Reader` resolves it)."""
        role_id = self._role_names.get(fold(role_name))
        return self._roles[role_id].definition if role_id is not None else None

    def role_definitions(self) -> list[RoleDefinition]:
        return [role.definition for role in list(self._roles.values())]

    def add_role_definition(self, role: RoleDefinition) -> RoleDefinition:
        """Create or replace a custom role. Returns it as stored (lower-case GUID, canonical scopes).

        Raises `InvalidRoleDefinition`, `InvalidAction`, `InvalidScope`, `RoleDefinitionWithSameNameExists`,
        or `RoleDefinitionHasAssignments` when a replacement would leave assignments outside its scopes.
        """
        if not GUID.fullmatch(role.id):
            raise InvalidRoleDefinition(f"The role definition id '{role.id}' is not a valid GUID.")
        if role.role_type != "CustomRole":
            raise InvalidRoleDefinition("Only custom roles can be created; built-in roles are fixed.")
        if not role.role_name.strip():
            raise InvalidRoleDefinition("A role definition needs a roleName.")
        if not role.assignable_scopes:
            raise InvalidRoleDefinition("A custom role needs at least one assignable scope.")
        scopes = tuple(parse_scope(s) for s in role.assignable_scopes)
        for scope in scopes:
            if scope.kind not in _CUSTOM_ROLE_SCOPE_KINDS:
                raise InvalidRoleDefinition(
                    f"The assignable scope '{scope.path}' is not valid: a custom role can be made assignable at "
                    "management groups, subscriptions and resource groups only."
                )
        stored = dataclasses.replace(
            role, id=fold(role.id), assignable_scopes=tuple(dict.fromkeys(s.path for s in scopes))
        )
        compiled = _Role(stored)  # compiles the patterns: raises InvalidAction before anything changes
        with self._lock:
            previous = self._roles.get(stored.id)
            if previous is not None and previous.builtin:
                raise InvalidRoleDefinition(f"'{previous.name}' is a built-in role and cannot be changed.")
            same_name = self._role_names.get(fold(stored.role_name))
            if same_name is not None and same_name != stored.id:
                raise RoleDefinitionWithSameNameExists(
                    "A custom role with the same name already exists in this directory."
                )
            for assignment_id in self._by_custom_role.get(stored.id, ()):
                assignment = self._by_id[assignment_id][1]
                if not compiled.assignable_at(parse_scope(assignment.scope)):
                    raise RoleDefinitionHasAssignments(
                        f"Role assignment '{assignment.id}' at '{assignment.scope}' is outside the new assignable "
                        "scopes; delete it first."
                    )
            if previous is not None:
                self._role_names.pop(fold(previous.name), None)
            self._roles[stored.id] = compiled
            self._role_names[fold(stored.role_name)] = stored.id
        return stored

    def remove_role_definition(self, role_id: str) -> RoleDefinition | None:
        """Delete a custom role; None when it does not exist. Refuses built-ins and roles in use."""
        guid = role_definition_guid(role_id)
        with self._lock:
            role = self._roles.get(guid)
            if role is None:
                return None
            if role.builtin:
                raise InvalidRoleDefinition(f"'{role.name}' is a built-in role and cannot be deleted.")
            if self._by_custom_role.get(guid):
                raise RoleDefinitionHasAssignments(
                    "There are existing role assignments referencing the role; delete them first."
                )
            del self._roles[guid]
            self._role_names.pop(fold(role.name), None)
            self._by_custom_role.pop(guid, None)
        return role.definition

    # ------------------------------------------------------------------------------ assignments
    def __len__(self) -> int:
        return len(self._by_id)

    def get_assignment(self, assignment_id: str) -> RoleAssignment | None:
        found = self._by_id.get(fold(assignment_id))
        return found[1] if found is not None else None

    def add_assignment(self, assignment: RoleAssignment) -> RoleAssignment:
        """Store an assignment; returns it normalised. Idempotent for the same id and content.

        Raises `InvalidRoleAssignment`, `InvalidScope`, `RoleDefinitionNotFound`, `ScopeNotAssignable`,
        `RoleAssignmentExists` (same principal, role and scope under another id) or
        `RoleAssignmentUpdateNotPermitted` (same id, another principal, role or scope).
        """
        with self._lock:
            return self._add_locked(assignment)

    def add_assignments(self, assignments: Iterable[RoleAssignment]) -> int:
        """Bulk load (e.g. from the store at start-up) under one lock. All-or-nothing is not promised:
        the first invalid assignment raises and those before it stay.

        The cyclic garbage collector is paused meanwhile: the index holds no reference cycles, and
        otherwise its repeated full passes over a growing heap double the time to load 1M assignments.
        """
        count = 0
        collecting = gc.isenabled()
        gc.disable()
        try:
            with self._lock:
                for assignment in assignments:
                    self._add_locked(assignment)
                    count += 1
        finally:
            if collecting:
                gc.enable()
        return count

    def remove_assignment(self, assignment_id: str) -> RoleAssignment | None:
        """Delete an assignment; it stops granting at once. None when it did not exist."""
        with self._lock:
            return self._remove_locked(fold(assignment_id))

    def remove_principal(self, principal_id: str) -> tuple[RoleAssignment, ...]:
        """Delete every assignment of a principal (a user, service principal or group that was deleted)."""
        with self._lock:
            ids = list(self._by_principal.get(fold(principal_id), ()))
            removed = [self._remove_locked(assignment_id) for assignment_id in ids]
        return tuple(a for a in removed if a is not None)

    def list_assignments(
        self,
        scope: str | Scope | None = None,
        *,
        principal_id: str | None = None,
        include_inherited: bool = False,
        include_below: bool = False,
    ) -> list[RoleAssignment]:
        """Assignments at `scope` (all when None); with those above it (Azure's `atScope()` filter) and/or
        below it; optionally of one principal only. Ordered from `/` downwards. Not for the hot path."""
        wanted = fold(principal_id) if principal_id is not None else None
        with self._lock:
            if scope is None:
                keys: Iterable[str] = list(self._scopes)
            else:
                parsed = as_scope(scope)
                keys = list(parsed.chain_keys if include_inherited else (parsed.key,))
                if include_below:
                    prefix = "/" if parsed.key == "/" else parsed.key + "/"
                    keys += sorted(k for k in self._scopes if k.startswith(prefix) and k != parsed.key)
            return [
                entry[0]
                for key in keys
                for pid, entries in self._scopes.get(key, {}).items()
                if wanted is None or pid == wanted
                for entry in entries
            ]

    def assignments_of(self, principal_id: str) -> list[RoleAssignment]:
        with self._lock:
            ids = self._by_principal.get(fold(principal_id), set())
            return [self._by_id[i][1] for i in sorted(ids)]

    def __iter__(self) -> Iterator[RoleAssignment]:
        return iter(self.list_assignments())

    # ------------------------------------------------------------------------------ decisions
    def authorize(self, principal: Principal, action: str, scope: str | Scope, *, data_action: bool) -> Decision:
        """May `principal` perform `action` at `scope`? `data_action` is required on purpose: a data action
        checked as a control-plane one would be granted by Owner's `*`.

        Raises `InvalidScope` or `InvalidAction` for malformed input (a caller bug, not a denial).
        """
        parsed = scope if isinstance(scope, Scope) else parse_scope(scope)
        wanted = normalize_action(action)
        ids = principal.lookup_ids
        scopes = self._scopes
        found: list[_Entry] = []
        for key in parsed.chain_keys:
            by_principal = scopes.get(key)
            if by_principal is None:
                continue
            if len(by_principal) < len(ids) and len(by_principal) <= _COW_MAX:
                members = principal.lookup_set
                for pid, entries in by_principal.items():
                    if pid in members:
                        found.extend(entries)
            else:
                for pid in ids:
                    hits = by_principal.get(pid)
                    if hits is not None:
                        found.extend(hits)
        if not found:
            return Decision(False, action, parsed.path, data_action, principal.object_id)
        roles = self._roles
        now = self._clock.now() if self._delay else 0.0
        allowed = False
        evaluations: list[Evaluation] = []
        for assignment, effective_at in found:
            role = roles.get(assignment.role_definition_id)
            if role is None:
                outcome = _UNKNOWN_ROLE
            elif not role.permissions.allows(wanted, data_action):
                outcome = _NOT_INCLUDED
                if role.permissions.has_conditions and role.permissions.conditional(wanted, data_action):
                    outcome = _CONDITION
                elif data_action and role.permissions.allows(wanted, False):
                    outcome = _CONTROL_PLANE_ONLY
            elif assignment.condition is not None:
                outcome = _CONDITION
            elif effective_at > now:
                outcome = _PENDING
            else:
                outcome = _GRANTS
                allowed = True
            evaluations.append(Evaluation(assignment, role.name if role else None, outcome, effective_at))
        return Decision(allowed, action, parsed.path, data_action, principal.object_id, tuple(evaluations), now)

    def explain(self, principal: Principal, action: str, scope: str | Scope, *, data_action: bool) -> str:
        """`authorize(...).reason`: which assignment granted, or what the principal has and lacks."""
        return self.authorize(principal, action, scope, data_action=data_action).reason

    # ------------------------------------------------------------------------------ internals
    def _normalize(self, assignment: RoleAssignment) -> tuple[RoleAssignment, Scope, _Role]:
        if not GUID.fullmatch(assignment.id):
            raise InvalidRoleAssignment(f"The role assignment name '{assignment.id}' is not a valid GUID.")
        principal_id = intern(fold(assignment.principal_id.strip()))
        if not principal_id or "/" in principal_id:
            raise InvalidRoleAssignment(f"The principal id '{assignment.principal_id}' is not valid.")
        if assignment.principal_type not in PRINCIPAL_TYPES:
            raise InvalidRoleAssignment(
                f"The principal type '{assignment.principal_type}' is not one of {', '.join(PRINCIPAL_TYPES)}."
            )
        scope = parse_scope(assignment.scope)
        role = self._roles.get(assignment.role_definition_id)  # already a lower-case GUID: the common case
        role_id = assignment.role_definition_id if role is not None else role_definition_guid(
            assignment.role_definition_id
        )
        role = role or self._roles.get(role_id)
        if role is None:
            raise RoleDefinitionNotFound(
                f"The specified role definition with ID '{assignment.role_definition_id}' does not exist."
            )
        if role.permissions is _UNCOMPILED:
            role.compile()
        if not role.assignable_at(scope):
            raise ScopeNotAssignable(
                f"The role '{role.name}' is not available for assignment at the requested scope '{scope.path}'."
            )
        assignment_id = fold(assignment.id)
        if (
            assignment_id != assignment.id
            or scope.path != assignment.scope
            or role_id != assignment.role_definition_id
            or principal_id != assignment.principal_id
        ):
            assignment = dataclasses.replace(
                assignment, id=assignment_id, scope=scope.path, role_definition_id=role_id, principal_id=principal_id
            )
        return assignment, scope, role

    def _add_locked(self, assignment: RoleAssignment) -> RoleAssignment:
        assignment, scope, role = self._normalize(assignment)
        assignment_id, principal_id, key = assignment.id, assignment.principal_id, scope.key
        previous = self._by_id.get(assignment_id)
        if previous is not None:
            old_key, old, effective_at = previous  # an update (description, condition) does not re-propagate
            if (old.principal_id, old.role_definition_id, old_key) != (principal_id, assignment.role_definition_id, key):  # noqa: E501
                raise RoleAssignmentUpdateNotPermitted()
            if old == assignment:
                return old
            self._remove_locked(assignment_id)
        else:
            for other, _ in self._scopes.get(key, _NO_PRINCIPALS).get(principal_id, ()):
                if other.role_definition_id == assignment.role_definition_id:
                    raise RoleAssignmentExists(other.id)
            effective_at = 0.0
            if self._delay:
                created = assignment.created_on.timestamp() if assignment.created_on else self._clock.now()
                effective_at = created + self._delay
        entry = (assignment, effective_at)
        by_principal = self._scopes.get(key)
        if by_principal is None:
            self._scopes[key] = {principal_id: (entry,)}
        else:
            entries = by_principal.get(principal_id)
            entries = (entry,) if entries is None else (*entries, entry)
            if len(by_principal) > _COW_MAX:
                by_principal[principal_id] = entries
            else:
                copy = by_principal.copy()
                copy[principal_id] = entries
                self._scopes[key] = copy
        self._by_id[assignment_id] = (key, assignment, effective_at)
        ids = self._by_principal.get(principal_id)
        if ids is None:
            self._by_principal[principal_id] = {assignment_id}
        else:
            ids.add(assignment_id)
        if not role.builtin:
            self._by_custom_role.setdefault(role.definition.id, set()).add(assignment_id)
        return assignment

    def _remove_locked(self, assignment_id: str) -> RoleAssignment | None:
        found = self._by_id.pop(assignment_id, None)
        if found is None:
            return None
        key, assignment, _ = found
        pid = assignment.principal_id
        by_principal = self._scopes[key]
        remaining = tuple(e for e in by_principal[pid] if e[0].id != assignment_id)
        if len(by_principal) > _COW_MAX:
            if remaining:
                by_principal[pid] = remaining
            else:
                del by_principal[pid]
        else:
            copy = by_principal.copy()
            if remaining:
                copy[pid] = remaining
            else:
                del copy[pid]
            if copy:
                self._scopes[key] = copy
            else:
                del self._scopes[key]
        ids = self._by_principal[pid]
        ids.discard(assignment_id)
        if not ids:
            del self._by_principal[pid]
        custom = self._by_custom_role.get(assignment.role_definition_id)
        if custom is not None:
            custom.discard(assignment_id)
        return assignment
