"""RBAC errors. Each is a `ValueError` (the engine is pure) and an ARM error that the API layer renders.

Codes seen in public Azure error bodies (`RoleAssignmentExists`,
`RoleDefinitionDoesNotExist`, `InvalidActionOrNotAction`, `RoleAssignmentUpdateNotPermitted`,
`RoleDefinitionWithSameNameExists`, `RoleDefinitionHasAssignments`). Where no Azure code is known
the generic `BadRequest` code of the base class stays; docs/rbac.md lists which is which.
"""

from __future__ import annotations

from cielo.errors import BadRequest, Conflict


class RbacError(ValueError):
    """Base of the errors below; catch it to catch any RBAC validation failure."""


class InvalidScope(BadRequest, RbacError):
    """A scope that is not `/`, a management group, a subscription, a resource group or a resource id."""


class InvalidAction(BadRequest, RbacError):
    """An action or permission pattern that is malformed (Azure: InvalidActionOrNotAction)."""

    code = "InvalidActionOrNotAction"


class RoleDefinitionNotFound(BadRequest, RbacError):
    """A role assignment names a role definition that does not exist (Azure: RoleDefinitionDoesNotExist)."""

    code = "RoleDefinitionDoesNotExist"


class ScopeNotAssignable(BadRequest, RbacError):
    """The assignment scope is not within the role definition's assignableScopes."""


class InvalidRoleDefinition(BadRequest, RbacError):
    """A custom role definition that cannot be stored (bad id, name, assignable scopes, or a built-in clash)."""


class RoleDefinitionWithSameNameExists(Conflict, RbacError):
    """Role names are unique in a directory (Azure: 409 RoleDefinitionWithSameNameExists)."""

    code = "RoleDefinitionWithSameNameExists"


class RoleDefinitionHasAssignments(Conflict, RbacError):
    """A custom role that assignments still use cannot be deleted or narrowed below them."""

    code = "RoleDefinitionHasAssignments"


class InvalidRoleAssignment(BadRequest, RbacError):
    """A role assignment with a malformed id, principal id or principal type."""


class RoleAssignmentExists(Conflict, RbacError):
    """Same principal, role and scope under another assignment name (409, as public Azure error bodies show)."""

    code = "RoleAssignmentExists"

    def __init__(self, existing_id: str) -> None:
        super().__init__(
            "The role assignment already exists. The ID of the existing role assignment is "
            f"{existing_id.replace('-', '')}."
        )
        self.existing_id = existing_id


class RoleAssignmentUpdateNotPermitted(Conflict, RbacError):
    """A PUT on an existing assignment name that changes its principal, role or scope."""

    code = "RoleAssignmentUpdateNotPermitted"

    def __init__(self) -> None:
        super().__init__("Tenant ID, application ID, principal ID, and scope are not allowed to be updated.")
