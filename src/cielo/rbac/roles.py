"""Role definitions, and every Azure built-in role as data.

The built-ins (about 930) come from the vendored catalogue `rbac/data/builtin_roles.json`: Azure's own answer to
`az role definition list`, archived publicly (the file's `source` names the repository, commit and date;
scripts/build_role_catalogue.py rebuilds it). Built-in roles have the same GUID in every cloud,
`assignableScopes: ["/"]` and `roleType: BuiltInRole`; their permission lists are kept exactly as Azure
publishes them, odd entries included (docs/rbac.md, "The built-in role catalogue").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from cielo.rbac.errors import RoleDefinitionNotFound
from cielo.rbac.scopes import fold

RoleType = Literal["BuiltInRole", "CustomRole"]
ROLE_DEFINITION_TYPE = "Microsoft.Authorization/roleDefinitions"
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_ROLE_ID = re.compile(
    rf"(?:/subscriptions/[^/]+(?:/resourceGroups/[^/]+)?)?/providers/Microsoft\.Authorization/roleDefinitions/({_GUID})",
    re.IGNORECASE,
)
GUID = re.compile(_GUID)


@dataclass(frozen=True, slots=True)
class Permission:
    """One `permissions[]` block of a role definition. `condition` (ABAC, version `condition_version`) only
    occurs in built-in roles here: custom roles with conditions are refused."""

    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()
    condition: str | None = None
    condition_version: str | None = None

    def to_arm(self) -> dict[str, object]:
        body: dict[str, object] = {
            "actions": list(self.actions),
            "notActions": list(self.not_actions),
            "dataActions": list(self.data_actions),
            "notDataActions": list(self.not_data_actions),
        }
        if self.condition is not None:
            body["condition"] = self.condition
            body["conditionVersion"] = self.condition_version
        return body


@dataclass(frozen=True, slots=True)
class RoleDefinition:
    """A role definition. `id` is the bare GUID (ARM calls it `name`); `resource_id` is the ARM id."""

    id: str
    role_name: str
    description: str
    permissions: tuple[Permission, ...]
    assignable_scopes: tuple[str, ...] = ("/",)
    role_type: RoleType = "CustomRole"

    @property
    def resource_id(self) -> str:
        return f"/providers/Microsoft.Authorization/roleDefinitions/{self.id}"

    def resource_id_at(self, subscription_id: str | None) -> str:
        """The id as ARM shows it under a subscription (`az role assignment create` output does so)."""
        if subscription_id is None:
            return self.resource_id
        return f"/subscriptions/{subscription_id}{self.resource_id}"

    @property
    def is_builtin(self) -> bool:
        return self.role_type == "BuiltInRole"

    def to_arm(self, subscription_id: str | None = None) -> dict[str, object]:
        """The REST shape of a role definition, api-version 2022-04-01 (Azure/azure-rest-api-specs,
        authorization-RoleDefinitionsCalls.json)."""
        return {
            "id": self.resource_id_at(subscription_id),
            "name": self.id,
            "type": ROLE_DEFINITION_TYPE,
            "properties": {
                "roleName": self.role_name,
                "description": self.description,
                "type": self.role_type,
                "permissions": [p.to_arm() for p in self.permissions],
                "assignableScopes": list(self.assignable_scopes),
            },
        }


def role_definition_guid(value: str) -> str:
    """The lower-case GUID of a role definition given as a GUID or as a full role definition id."""
    if GUID.fullmatch(value):
        return fold(value)
    match = _ROLE_ID.fullmatch(value.rstrip("/"))
    if match is None:
        raise RoleDefinitionNotFound(f"The specified role definition with ID '{value}' does not exist.")
    return fold(match.group(1))


def _load_catalogue() -> tuple[RoleDefinition, ...]:
    """Every built-in role, from the vendored catalogue (rbac/data/builtin_roles.json; its `source` names the
    public archive and commit it was built from, scripts/build_role_catalogue.py rebuilds it)."""
    raw = json.loads(resources.files("cielo.rbac").joinpath("data/builtin_roles.json").read_bytes())
    return tuple(
        RoleDefinition(
            guid, name, description,
            tuple(Permission(tuple(a), tuple(na), tuple(da), tuple(nda), condition, version)
                  for a, na, da, nda, condition, version in blocks),
            ("/",), "BuiltInRole",
        )
        for guid, name, description, blocks in raw["roles"]
    )


BUILTIN_ROLES: tuple[RoleDefinition, ...] = _load_catalogue()
_BY_ID: dict[str, RoleDefinition] = {role.id: role for role in BUILTIN_ROLES}
_BY_NAME: dict[str, RoleDefinition] = {fold(role.role_name): role for role in BUILTIN_ROLES}

# The roles Cielo's own code names (bootstrap, docs, tests), by their GUIDs: the same in every cloud.
OWNER = _BY_ID["8e3af657-a8ff-443c-a75c-2fe8c4bcb635"]
CONTRIBUTOR = _BY_ID["b24988ac-6180-42a0-ab88-20f7382dd24c"]
READER = _BY_ID["acdd72a7-3385-48ef-bd42-f606fba81ae7"]
USER_ACCESS_ADMINISTRATOR = _BY_ID["18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"]
RBAC_ADMINISTRATOR = _BY_ID["f58310d9-a9f6-439a-9e8d-f62e7b41a168"]
COGNITIVE_SERVICES_USER = _BY_ID["a97b65f3-24c7-4388-baec-2e87135dc908"]
COGNITIVE_SERVICES_CONTRIBUTOR = _BY_ID["25fbc0a9-bd7c-42a3-aa1a-3b75d497ee68"]
COGNITIVE_SERVICES_OPENAI_USER = _BY_ID["5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"]
COGNITIVE_SERVICES_OPENAI_CONTRIBUTOR = _BY_ID["a001fd3d-188f-4b5d-821b-7da978bf7442"]
COGNITIVE_SERVICES_USAGES_READER = _BY_ID["bba48692-92b0-4667-a9ad-c31c7b334ac2"]


def builtin_role(name_or_id: str) -> RoleDefinition:
    """A built-in role by its name (case-insensitive), GUID or full id. Raises `RoleDefinitionNotFound`."""
    role = _BY_NAME.get(fold(name_or_id)) or _BY_ID.get(role_definition_guid(name_or_id))
    if role is not None:
        return role
    raise RoleDefinitionNotFound(f"The specified role definition with ID '{name_or_id}' does not exist.")
