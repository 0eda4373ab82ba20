"""RBAC for every request: the in-memory index, kept in step with the store.

Writes go to the database and to this process's index at once (a role change applies to the very
next request). Other worker processes notice the change through the `rbac.generation` marker and
reload their index from the database.

The database decides uniqueness (one assignment per principal, role and scope; custom role names): a check in
this process's index cannot see what another worker writes at the same moment. A reload never fails on what it
finds stored: an assignment or role the index refuses (a duplicate an older release let in, a role that no
longer exists) is logged and left out, and every other request goes on being answered.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from cielo.core.clock import Clock
from cielo.errors import CieloError, DuplicateKey
from cielo.identity.directory_view import DirectoryView
from cielo.identity.validation import TokenPrincipal
from cielo.rbac.decision import Decision
from cielo.rbac.engine import RbacIndex
from cielo.rbac.errors import RoleAssignmentExists, RoleDefinitionWithSameNameExists
from cielo.rbac.model import Principal, RoleAssignment, transitive_groups
from cielo.rbac.roles import Permission, RoleDefinition
from cielo.store.generation import ChangeMarker
from cielo.store.integrity import (
    CUSTOM_ROLE_TENANT_ROLE_NAME,
    ROLE_ASSIGNMENT_NAME,
    ROLE_ASSIGNMENT_PRINCIPAL_ROLE_SCOPE,
)
from cielo.store.resources import ResourceRepo, StoredAssignment, StoredRole

log = logging.getLogger("cielo.rbac")
# What a reload may refuse: the index's validation errors (RbacError is a ValueError and an ARM error).
_UNLOADABLE = (ValueError, CieloError)


@dataclass(frozen=True)
class ArmCaller:
    """The principal behind a resource-manager token, as RBAC sees it (ARM's error messages name `display`)."""

    object_id: str
    tenant_id: str
    display: str  # UPN for users, app id for service principals (ARM's error messages name it)
    kind: str  # "User" | "ServicePrincipal"
    exists: bool
    rbac: Principal


def _from_stored(a: StoredAssignment) -> RoleAssignment:
    return RoleAssignment(
        id=a.name, scope=a.scope, role_definition_id=a.role_definition_name, principal_id=a.principal_id,
        principal_type=a.principal_type,  # type: ignore[arg-type]
        condition=a.condition, condition_version=a.condition_version, description=a.description,
        created_on=dt.datetime.fromtimestamp(a.created_on, dt.UTC),
        updated_on=dt.datetime.fromtimestamp(a.updated_on, dt.UTC), created_by=a.created_by, updated_by=a.updated_by,
    )


def role_from_stored(role: StoredRole) -> RoleDefinition:
    permissions = tuple(
        Permission(tuple(p.get("actions", [])), tuple(p.get("notActions", [])), tuple(p.get("dataActions", [])),
                   tuple(p.get("notDataActions", [])))
        for p in role.permissions
    )
    return RoleDefinition(role.name, role.role_name, role.description or "", permissions,
                          tuple(role.assignable_scopes), "CustomRole")


class AccessService:
    def __init__(self, resources: ResourceRepo, directory: DirectoryView, generation: ChangeMarker, clock: Clock,
                 propagation_delay_s: float = 0.0) -> None:
        self._resources = resources
        self._directory = directory
        self._generation = generation
        self._clock = clock
        self._delay = propagation_delay_s
        self._lock = threading.Lock()
        self._seen: tuple[int, int] = (-1, -1)
        self._index = RbacIndex(clock=clock, propagation_delay_s=propagation_delay_s)
        self._groups_seen: object = None
        self._memberships: dict[str, list[str]] = {}
        self._reported: set[tuple[str, str]] = set()

    # ----------------------------------------------------------------- the index
    @property
    def index(self) -> RbacIndex:
        token = self._generation.token()
        if token != self._seen:
            with self._lock:
                if token != self._seen:
                    self._index = self._load()
                    self._seen = token
        return self._index

    def _load(self) -> RbacIndex:
        """A new index from the database. What it cannot take is skipped with a warning (once per process), oldest
        first kept: a reload that raised would leave every request answering the same error."""
        index = RbacIndex(clock=self._clock, propagation_delay_s=self._delay)
        for stored_role in self._resources.list_roles():
            try:
                index.add_role_definition(role_from_stored(stored_role))
            except _UNLOADABLE as exc:
                self._skipped("custom role", stored_role.name, exc)
        assignments = iter(self._resources.list_assignments())  # oldest first
        while True:
            tracker = _Tracker(assignments)
            try:
                index.add_assignments(tracker)  # the bulk path: one lock, no GC passes
                return index
            except _UNLOADABLE as exc:
                if tracker.current is None:
                    raise
                self._skipped("role assignment", tracker.current.name, exc)

    def _skipped(self, what: str, name: str, exc: Exception) -> None:
        if (what, name) not in self._reported:
            self._reported.add((what, name))
            log.warning("RBAC: the stored %s %s is left out of the index: %s", what, name, exc)

    def refresh(self) -> None:
        """Reload the index from the database now (another worker may have written without this one noticing
        yet)."""
        with self._lock:
            self._seen = self._generation.token()
            self._index = self._load()

    def stored_assignment(self, name: str) -> RoleAssignment | None:
        """An assignment as the database holds it (whatever this process's index knows)."""
        stored = self._resources.get_assignment(name)
        return _from_stored(stored) if stored is not None else None

    def changed(self) -> None:
        """Tell other processes; this one's index was already updated in place."""
        with self._lock:
            before = self._generation.token()
            self._generation.bump()
            if before == self._seen:
                self._seen = self._generation.token()

    # ----------------------------------------------------------------- callers
    def _groups_of(self, object_id: str) -> frozenset[str]:
        marker = self._directory.generation_token()
        if marker != self._groups_seen:
            memberships: dict[str, list[str]] = defaultdict(list)
            for group_id, member_id in self._directory.repo.all_memberships():
                memberships[member_id].append(group_id)
            self._memberships = dict(memberships)
            self._groups_seen = marker
        return transitive_groups(object_id, self._memberships) if self._memberships else frozenset()

    def groups_of(self, object_id: str) -> frozenset[str]:
        return self._groups_of(object_id)

    def caller(self, token: TokenPrincipal) -> ArmCaller:
        if token.kind == "user":
            user = self._directory.user(token.object_id)
            exists = user is not None and user.account_enabled and user.tenant_id == token.tenant_id
            display = token.upn or token.object_id
            kind = "User"
        else:
            sp = self._directory.service_principal_by_id(token.object_id)
            exists = sp is not None and sp.tenant_id == token.tenant_id
            display = token.app_id or token.object_id
            kind = "ServicePrincipal"
        groups = self._groups_of(token.object_id) if exists else frozenset()
        return ArmCaller(token.object_id, token.tenant_id, display, kind, exists,
                      Principal(token.object_id, token.tenant_id, groups))

    def authorize(self, caller: ArmCaller, action: str, scope: str, *, data_action: bool = False) -> Decision:
        if not caller.exists:
            # A deleted or disabled principal holds nothing, whatever its token says.
            return Decision(False, action, scope, data_action, caller.object_id)
        return self.index.authorize(caller.rbac, action, scope, data_action=data_action)

    # ----------------------------------------------------------------- writes
    def add_assignment(self, stored: StoredAssignment) -> RoleAssignment:
        """Validate in the index first (it raises ARM errors), then store; undo the index if the store fails.

        The database has the last word: another worker may have stored the same principal, role and scope a
        moment ago (409 `RoleAssignmentExists`, naming the stored one), or the same name (`DuplicateKey` for
        ROLE_ASSIGNMENT_NAME: the caller compares with what is stored)."""
        added = self.index.add_assignment(_from_stored(stored))
        try:
            self._resources.add_assignment(stored)
        except DuplicateKey as exc:
            self.index.remove_assignment(stored.name)
            if ROLE_ASSIGNMENT_PRINCIPAL_ROLE_SCOPE.matches(exc):
                other = self._resources.find_assignment(stored.principal_id, stored.role_definition_name,
                                                        stored.scope)
                if other is not None and other.name == stored.name:
                    # The database named the triple, but it is this very name, stored by another worker.
                    raise DuplicateKey(ROLE_ASSIGNMENT_NAME.table, ROLE_ASSIGNMENT_NAME.columns) from exc
                raise RoleAssignmentExists(other.name if other is not None else stored.name) from exc
            raise
        except Exception:
            self.index.remove_assignment(stored.name)
            raise
        self.changed()
        return added

    def update_assignment(self, name: str, description: str | None, updated_by: str) -> RoleAssignment:
        """Change an assignment's description (all a PUT on an existing assignment may change)."""
        current = self.index.get_assignment(name)
        if current is None:  # stored by another worker an instant ago
            self.refresh()
            current = self.index.get_assignment(name)
        assert current is not None
        now = self._clock.now()
        self._resources.update_assignment(name, description, now, updated_by)
        updated = self.index.add_assignment(dataclasses.replace(
            current, description=description, updated_on=dt.datetime.fromtimestamp(now, dt.UTC),
            updated_by=updated_by))
        self.changed()
        return updated

    def remove_assignment(self, name: str) -> None:
        self._resources.delete_assignment(name)
        self.index.remove_assignment(name)
        self.changed()

    def remove_principal(self, principal_id: str) -> None:
        self._resources.delete_principal_assignments(principal_id)
        self.index.remove_principal(principal_id)
        self.changed()

    def put_role(self, stored: StoredRole) -> RoleDefinition:
        added = self.index.add_role_definition(role_from_stored(stored))
        try:
            self._resources.put_role(stored)
        except Exception as exc:
            self.refresh()  # the index took a role the database refused
            if isinstance(exc, DuplicateKey) and CUSTOM_ROLE_TENANT_ROLE_NAME.matches(exc):
                raise RoleDefinitionWithSameNameExists(
                    "A custom role with the same name already exists in this directory.") from exc
            raise
        self.changed()
        return added

    def delete_role(self, name: str) -> RoleDefinition | None:
        removed = self.index.remove_role_definition(name)
        if removed is not None:
            self._resources.delete_role(removed.id)
            self.changed()
        return removed

    def scopes_deleted(self) -> None:
        """Resources (and the assignments at them) were deleted in the store: reload the index."""
        with self._lock:
            self._index = self._load()
        self.changed()


class _Tracker(Iterator[RoleAssignment]):
    """Feeds stored assignments to the index's bulk load, remembering the last one handed over: when the index
    refuses it, the load skips it and goes on from the next."""

    def __init__(self, stored: Iterator[StoredAssignment]) -> None:
        self._stored = stored
        self.current: StoredAssignment | None = None

    def __next__(self) -> RoleAssignment:
        self.current = None
        self.current = next(self._stored)
        return _from_stored(self.current)
