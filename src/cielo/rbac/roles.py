"""Role definitions, and Azure's built-in roles as data (exact GUIDs and lists from
learn.microsoft.com/azure/role-based-access-control/built-in-roles).

Built-in roles have the same GUID in every cloud, `assignableScopes: ["/"]` and `roleType:
BuiltInRole`. Cognitive Services OpenAI User is its 2025 version (with `deployments/realtime/action`,
`assistants/*` and the `stored-completions/read` NotDataAction).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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
    """One `permissions[]` block of a role definition."""

    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()

    def to_arm(self) -> dict[str, list[str]]:
        return {
            "actions": list(self.actions),
            "notActions": list(self.not_actions),
            "dataActions": list(self.data_actions),
            "notDataActions": list(self.not_data_actions),
        }


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


def _builtin(guid: str, name: str, description: str, permission: Permission) -> RoleDefinition:
    return RoleDefinition(guid, name, description, (permission,), ("/",), "BuiltInRole")


_CS = "Microsoft.CognitiveServices/accounts"

OWNER = _builtin(
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "Owner",
    "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
    Permission(actions=("*",)),
)
CONTRIBUTOR = _builtin(
    "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "Contributor",
    "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, manage "
    "assignments in Azure Blueprints, or share image galleries.",
    Permission(
        actions=("*",),
        not_actions=(
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
            "Microsoft.Compute/galleries/share/action",
            "Microsoft.Purview/consents/write",
            "Microsoft.Purview/consents/delete",
            "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
            "Microsoft.Subscription/cancel/action",
            "Microsoft.Subscription/enable/action",
        ),
    ),
)
READER = _builtin(
    "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "Reader",
    "View all resources, but does not allow you to make any changes.",
    Permission(actions=("*/read",)),
)
USER_ACCESS_ADMINISTRATOR = _builtin(
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "User Access Administrator",
    "Lets you manage user access to Azure resources.",
    Permission(actions=("*/read", "Microsoft.Authorization/*", "Microsoft.Support/*")),
)
RBAC_ADMINISTRATOR = _builtin(
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
    "Role Based Access Control Administrator",
    "Manage access to Azure resources by assigning roles using Azure RBAC. This role does not allow you to manage "
    "access using other ways, such as Azure Policy.",
    Permission(
        actions=(
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
            "*/read",
            "Microsoft.Support/*",
        )
    ),
)
COGNITIVE_SERVICES_USER = _builtin(
    "a97b65f3-24c7-4388-baec-2e87135dc908",
    "Cognitive Services User",
    "Lets you read and list keys of Cognitive Services.",
    Permission(
        actions=(
            "Microsoft.CognitiveServices/*/read",
            "Microsoft.CognitiveServices/accounts/listkeys/action",
            "Microsoft.Insights/alertRules/read",
            "Microsoft.Insights/diagnosticSettings/read",
            "Microsoft.Insights/logDefinitions/read",
            "Microsoft.Insights/metricdefinitions/read",
            "Microsoft.Insights/metrics/read",
            "Microsoft.ResourceHealth/availabilityStatuses/read",
            "Microsoft.Resources/deployments/operations/read",
            "Microsoft.Resources/subscriptions/operationresults/read",
            "Microsoft.Resources/subscriptions/read",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Support/*",
        ),
        data_actions=("Microsoft.CognitiveServices/*",),
    ),
)
COGNITIVE_SERVICES_CONTRIBUTOR = _builtin(
    "25fbc0a9-bd7c-42a3-aa1a-3b75d497ee68",
    "Cognitive Services Contributor",
    "Lets you create, read, update, delete and manage keys of Cognitive Services.",
    Permission(
        actions=(
            "Microsoft.Authorization/*/read",
            "Microsoft.CognitiveServices/*",
            "Microsoft.Features/features/read",
            "Microsoft.Features/providers/features/read",
            "Microsoft.Features/providers/features/register/action",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Insights/diagnosticSettings/*",
            "Microsoft.Insights/logDefinitions/read",
            "Microsoft.Insights/metricdefinitions/read",
            "Microsoft.Insights/metrics/read",
            "Microsoft.ResourceHealth/availabilityStatuses/read",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Resources/deployments/operations/read",
            "Microsoft.Resources/subscriptions/operationresults/read",
            "Microsoft.Resources/subscriptions/read",
            "Microsoft.Resources/subscriptions/resourcegroups/deployments/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Support/*",
        ),
    ),
)
COGNITIVE_SERVICES_OPENAI_CONTRIBUTOR = _builtin(
    "a001fd3d-188f-4b5d-821b-7da978bf7442",
    "Cognitive Services OpenAI Contributor",
    "Full access including the ability to fine-tune, deploy and generate text",
    Permission(
        actions=(
            "Microsoft.CognitiveServices/*/read",
            "Microsoft.CognitiveServices/accounts/deployments/write",
            "Microsoft.CognitiveServices/accounts/deployments/delete",
            "Microsoft.CognitiveServices/accounts/raiPolicies/read",
            "Microsoft.CognitiveServices/accounts/raiPolicies/write",
            "Microsoft.CognitiveServices/accounts/raiPolicies/delete",
            "Microsoft.CognitiveServices/accounts/commitmentplans/read",
            "Microsoft.CognitiveServices/accounts/commitmentplans/write",
            "Microsoft.CognitiveServices/accounts/commitmentplans/delete",
            "Microsoft.Authorization/roleAssignments/read",
            "Microsoft.Authorization/roleDefinitions/read",
        ),
        data_actions=(f"{_CS}/OpenAI/*",),
    ),
)
COGNITIVE_SERVICES_OPENAI_USER = _builtin(
    "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd",
    "Cognitive Services OpenAI User",
    "Ability to view files, models, deployments. Readers can't make any changes They can inference and create images",
    Permission(
        actions=(
            "Microsoft.CognitiveServices/*/read",
            "Microsoft.Authorization/roleAssignments/read",
            "Microsoft.Authorization/roleDefinitions/read",
        ),
        data_actions=(
            f"{_CS}/OpenAI/*/read",
            f"{_CS}/OpenAI/engines/completions/action",
            f"{_CS}/OpenAI/engines/search/action",
            f"{_CS}/OpenAI/engines/generate/action",
            f"{_CS}/OpenAI/deployments/audio/action",
            f"{_CS}/OpenAI/deployments/search/action",
            f"{_CS}/OpenAI/deployments/completions/action",
            f"{_CS}/OpenAI/deployments/chat/completions/action",
            f"{_CS}/OpenAI/deployments/realtime/action",
            f"{_CS}/OpenAI/deployments/extensions/chat/completions/action",
            f"{_CS}/OpenAI/deployments/embeddings/action",
            f"{_CS}/OpenAI/images/generations/action",
            f"{_CS}/OpenAI/assistants/*",
        ),
        not_data_actions=(f"{_CS}/OpenAI/stored-completions/read",),
    ),
)
COGNITIVE_SERVICES_USAGES_READER = _builtin(
    "bba48692-92b0-4667-a9ad-c31c7b334ac2",
    "Cognitive Services Usages Reader",
    "Minimal permission to view Cognitive Services usages.",
    Permission(actions=("Microsoft.CognitiveServices/locations/usages/read",)),
)

BUILTIN_ROLES: tuple[RoleDefinition, ...] = (
    OWNER,
    CONTRIBUTOR,
    READER,
    USER_ACCESS_ADMINISTRATOR,
    RBAC_ADMINISTRATOR,
    COGNITIVE_SERVICES_USER,
    COGNITIVE_SERVICES_CONTRIBUTOR,
    COGNITIVE_SERVICES_OPENAI_USER,
    COGNITIVE_SERVICES_OPENAI_CONTRIBUTOR,
    COGNITIVE_SERVICES_USAGES_READER,
)


def builtin_role(name_or_id: str) -> RoleDefinition:
    """A built-in role by its name (case-insensitive), GUID or full id. Raises `RoleDefinitionNotFound`."""
    wanted = fold(name_or_id)
    for role in BUILTIN_ROLES:
        if fold(role.role_name) == wanted:
            return role
    guid = role_definition_guid(name_or_id)
    for role in BUILTIN_ROLES:
        if role.id == guid:
            return role
    raise RoleDefinitionNotFound(f"The specified role definition with ID '{name_or_id}' does not exist.")
