"""RBAC for every request: the in-memory index, kept in step with the store.

Writes go to the database and to this process's index at once (a role change applies to the very
next request). Other worker processes notice the change through the `rbac.generation` marker and
reload their index from the database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections import defaultdict
from dataclasses import dataclass

from cielo.core.clock import Clock
from cielo.identity.directory_view import DirectoryView
from cielo.identity.validation import Principal as TokenPrincipal
from cielo.rbac.decision import Decision
from cielo.rbac.engine import RbacIndex
from cielo.rbac.model import Principal, RoleAssignment, transitive_groups
from cielo.rbac.roles import Permission, RoleDefinition
from cielo.store.directory import DirectoryRepo
from cielo.store.generation import Generation
from cielo.store.resources import ResourceRepo, StoredAssignment, StoredRole


@dataclass(frozen=True)
class Caller:
    """The principal behind a token, as RBAC sees it."""

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
    def __init__(self, resources: ResourceRepo, directory: DirectoryView, generation: Generation, clock: Clock,
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
        roles = [role_from_stored(r) for r in self._resources.list_roles()]
        index = RbacIndex(custom_roles=roles, clock=self._clock, propagation_delay_s=self._delay)
        index.add_assignments(_from_stored(a) for a in self._resources.list_assignments())
        return index

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

    def caller(self, token: TokenPrincipal) -> Caller:
        repo: DirectoryRepo = self._directory.repo
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
        del repo
        groups = self._groups_of(token.object_id) if exists else frozenset()
        return Caller(token.object_id, token.tenant_id, display, kind, exists,
                      Principal(token.object_id, token.tenant_id, groups))

    def authorize(self, caller: Caller, action: str, scope: str, *, data_action: bool = False) -> Decision:
        if not caller.exists:
            # A deleted or disabled principal holds nothing, whatever its token says.
            return Decision(False, action, scope, data_action, caller.object_id)
        return self.index.authorize(caller.rbac, action, scope, data_action=data_action)

    # ----------------------------------------------------------------- writes
    def add_assignment(self, stored: StoredAssignment) -> RoleAssignment:
        """Validate in the index first (it raises ARM errors), then store; undo the index if the store fails."""
        added = self.index.add_assignment(_from_stored(stored))
        try:
            self._resources.add_assignment(stored)
        except Exception:
            self.index.remove_assignment(stored.name)
            raise
        self.changed()
        return added

    def update_assignment(self, name: str, description: str | None, updated_by: str) -> RoleAssignment:
        """Change an assignment's description (all a PUT on an existing assignment may change)."""
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
        self._resources.put_role(stored)
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
