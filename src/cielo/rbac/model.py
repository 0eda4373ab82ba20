"""Role assignments and the principals they are checked for (Microsoft.Authorization 2022-04-01 in
Azure/azure-rest-api-specs, authorization-RoleAssignmentsCalls.json)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from sys import intern
from typing import Literal

from cielo.rbac.scopes import fold

PrincipalType = Literal["User", "Group", "ServicePrincipal", "ForeignGroup"]
PRINCIPAL_TYPES: tuple[PrincipalType, ...] = ("User", "Group", "ServicePrincipal", "ForeignGroup")
ROLE_ASSIGNMENT_TYPE = "Microsoft.Authorization/roleAssignments"


@dataclass(frozen=True, slots=True)
class RoleAssignment:
    """A role assignment. `id` is its GUID name; `resource_id` is the ARM id under its scope.

    `role_definition_id` may be a GUID or a full role definition id; the index stores the bare
    lower-case GUID, the canonical scope path and the lower-case ids (see `RbacIndex.add_assignment`).
    Managed identities are `ServicePrincipal`s, as in Azure.
    """

    id: str
    scope: str
    role_definition_id: str
    principal_id: str
    principal_type: PrincipalType = "User"
    condition: str | None = None
    condition_version: str | None = None
    description: str | None = None
    created_on: datetime | None = None
    updated_on: datetime | None = None
    created_by: str | None = None
    updated_by: str | None = None
    delegated_managed_identity_resource_id: str | None = None

    @property
    def name(self) -> str:
        return self.id

    @property
    def resource_id(self) -> str:
        base = "" if self.scope == "/" else self.scope
        return f"{base}/providers/Microsoft.Authorization/roleAssignments/{self.id}"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who asks: an object id and the groups it belongs to, transitively (see `transitive_groups`).

    Ids are folded to lower case on construction, so build a Principal once per token and reuse it.
    """

    object_id: str
    tenant_id: str | None = None
    group_ids: frozenset[str] = frozenset()
    lookup_ids: tuple[str, ...] = field(init=False, repr=False, compare=False)
    lookup_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.object_id:
            raise ValueError("a principal needs an object id")
        object_id = intern(fold(self.object_id))  # interned, as the index's keys are: identity hits
        groups = frozenset(intern(fold(g)) for g in self.group_ids if g) - {object_id}
        object.__setattr__(self, "object_id", object_id)
        object.__setattr__(self, "group_ids", groups)
        object.__setattr__(self, "lookup_ids", (object_id, *sorted(groups)))
        object.__setattr__(self, "lookup_set", frozenset(self.lookup_ids))


def transitive_groups(member_id: str, memberships: Mapping[str, Iterable[str]]) -> frozenset[str]:
    """Every group `member_id` belongs to, directly or through other groups; cycles are harmless.

    `memberships` maps a member's object id (user, service principal or group) to the ids of the
    groups it is a direct member of. Ids compare case-insensitively; the result is lower case and
    never contains `member_id` itself, even when a cycle leads back to it.
    """
    direct: dict[str, list[str]] = {}
    for member, groups in memberships.items():
        direct.setdefault(fold(member), []).extend(fold(g) for g in groups)
    start = fold(member_id)
    seen: set[str] = {start}
    queue = deque([start])
    while queue:
        for group in direct.get(queue.popleft(), ()):
            if group not in seen:
                seen.add(group)
                queue.append(group)
    return frozenset(seen - {start})
