"""The vendored catalogue of Azure's built-in roles (src/cielo/rbac/data/builtin_roles.json), checked field by field
for well-known roles against Azure's published definitions (learn.microsoft.com/azure/role-based-access-control/
built-in-roles), and what the engine decides with roles written for services Cielo does not serve."""

from __future__ import annotations

import json
import uuid
from importlib import resources

import pytest

from cielo.rbac import BUILTIN_ROLES, Outcome, Principal, RbacIndex, RoleAssignment, builtin_role
from cielo.rbac.errors import RoleDefinitionWithSameNameExists
from cielo.rbac.roles import Permission, RoleDefinition

SUB = "/subscriptions/00000000-0000-0000-0000-0000000000aa"
RG = f"{SUB}/resourceGroups/rg"
ACCOUNT = f"{RG}/providers/Microsoft.CognitiveServices/accounts/acct"
CS = "Microsoft.CognitiveServices"
OAI = f"{CS}/accounts/OpenAI"


def _perm(name: str) -> Permission:
    [perm] = builtin_role(name).permissions
    return perm


def _index_with(role: str) -> tuple[RbacIndex, Principal]:
    index = RbacIndex()
    user = str(uuid.uuid4())
    index.add_assignment(RoleAssignment(str(uuid.uuid4()), RG, builtin_role(role).id, user))
    return index, Principal(user)


def test_the_whole_catalogue_is_there_with_its_source() -> None:
    raw = json.loads(resources.files("cielo.rbac").joinpath("data/builtin_roles.json").read_bytes())
    assert raw["source"]["repository"] == "https://github.com/easimon/azure-builtin-roles"
    assert len(raw["source"]["commit"]) == 40 and raw["source"]["date"] == "2026-08-22"
    assert len(BUILTIN_ROLES) == len(raw["roles"]) == 928
    assert len({r.id for r in BUILTIN_ROLES}) == 928 and len({r.role_name.lower() for r in BUILTIN_ROLES}) == 928
    assert all(r.role_type == "BuiltInRole" and r.assignable_scopes == ("/",) for r in BUILTIN_ROLES)
    assert sum(1 for r in BUILTIN_ROLES for p in r.permissions if p.condition) == 31


def test_general_roles_field_by_field() -> None:
    owner, contributor, reader = builtin_role("Owner"), builtin_role("Contributor"), builtin_role("Reader")
    assert owner.id == "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
    assert owner.description == ("Grants full access to manage all resources, including the ability to assign roles "
                                 "in Azure RBAC.")
    assert owner.permissions == (Permission(actions=("*",)),)
    assert contributor.id == "b24988ac-6180-42a0-ab88-20f7382dd24c"
    assert contributor.permissions == (Permission(actions=("*",), not_actions=(
        "Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write",
        "Microsoft.Authorization/elevateAccess/Action", "Microsoft.Blueprint/blueprintAssignments/write",
        "Microsoft.Blueprint/blueprintAssignments/delete", "Microsoft.Compute/galleries/share/action",
        "Microsoft.Purview/consents/write", "Microsoft.Purview/consents/delete",
        "Microsoft.Resources/deploymentStacks/manageDenySetting/action", "Microsoft.Subscription/cancel/action",
        "Microsoft.Subscription/enable/action")),)
    assert reader.id == "acdd72a7-3385-48ef-bd42-f606fba81ae7"
    assert reader.description == "View all resources, but does not allow you to make any changes."
    assert reader.permissions == (Permission(actions=("*/read",)),)
    uaa = builtin_role("User Access Administrator")
    assert uaa.id == "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
    assert uaa.description == "Lets you manage user access to Azure resources."
    assert uaa.permissions == (Permission(actions=("*/read", "Microsoft.Authorization/*", "Microsoft.Support/*")),)


def test_cognitive_services_roles_field_by_field() -> None:
    openai_user = builtin_role("Cognitive Services OpenAI User")
    assert openai_user.id == "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"
    assert openai_user.permissions == (Permission(
        actions=(f"{CS}/*/read", "Microsoft.Authorization/roleAssignments/read",
                 "Microsoft.Authorization/roleDefinitions/read"),
        data_actions=(f"{OAI}/*/read", f"{OAI}/engines/completions/action", f"{OAI}/engines/search/action",
                      f"{OAI}/engines/generate/action", f"{OAI}/deployments/audio/action",
                      f"{OAI}/deployments/search/action", f"{OAI}/deployments/completions/action",
                      f"{OAI}/deployments/chat/completions/action", f"{OAI}/deployments/realtime/action",
                      f"{OAI}/deployments/extensions/chat/completions/action", f"{OAI}/deployments/embeddings/action",
                      f"{OAI}/images/generations/action", f"{OAI}/video/generations/*/action",
                      f"{OAI}/video/generations/*/delete", f"{OAI}/assistants/*", f"{OAI}/responses/*"),
        not_data_actions=(f"{OAI}/stored-completions/read",)),)
    openai_contributor = builtin_role("Cognitive Services OpenAI Contributor")
    assert openai_contributor.id == "a001fd3d-188f-4b5d-821b-7da978bf7442"
    assert openai_contributor.description == "Full access including the ability to fine-tune, deploy and generate text"
    assert openai_contributor.permissions == (Permission(
        actions=(f"{CS}/*/read", f"{CS}/accounts/deployments/write", f"{CS}/accounts/deployments/delete",
                 f"{CS}/accounts/raiPolicies/read", f"{CS}/accounts/raiPolicies/write",
                 f"{CS}/accounts/raiPolicies/delete", f"{CS}/accounts/commitmentplans/read",
                 f"{CS}/accounts/commitmentplans/write", f"{CS}/accounts/commitmentplans/delete",
                 "Microsoft.Authorization/roleAssignments/read", "Microsoft.Authorization/roleDefinitions/read"),
        data_actions=(f"{OAI}/*",)),)
    user = _perm("Cognitive Services User")
    assert builtin_role("Cognitive Services User").id == "a97b65f3-24c7-4388-baec-2e87135dc908"
    assert user.actions[:2] == (f"{CS}/*/read", f"{CS}/accounts/listkeys/action") and len(user.actions) == 13
    assert user.data_actions == (f"{CS}/*",)
    assert user.not_data_actions == (
        f"{CS}/accounts/AIServices/agents/endpoints/UserIdentityImpersonation/action",
        f"{OAI}/fine-tunes-deployments/write", f"{CS}/accounts/AIServices/fine_tuning_deployments/write")
    contributor = _perm("Cognitive Services Contributor")
    assert builtin_role("Cognitive Services Contributor").id == "25fbc0a9-bd7c-42a3-aa1a-3b75d497ee68"
    assert len(contributor.actions) == 18 and f"{CS}/*" in contributor.actions and contributor.data_actions == ()


def test_roles_of_services_cielo_does_not_serve() -> None:
    developer = builtin_role("Azure AI Developer")
    assert developer.id == "64702f94-c441-49e6-a78b-ef80e0188fee"
    [perm] = developer.permissions
    assert perm.actions == ("Microsoft.MachineLearningServices/workspaces/*/read",
                            "Microsoft.MachineLearningServices/workspaces/*/action",
                            "Microsoft.MachineLearningServices/workspaces/*/delete",
                            "Microsoft.MachineLearningServices/workspaces/*/write",
                            "Microsoft.MachineLearningServices/locations/*/read", "Microsoft.Authorization/*/read",
                            "Microsoft.Resources/deployments/*")
    assert len(perm.not_actions) == 10
    assert perm.data_actions == (f"{OAI}/*", f"{CS}/accounts/SpeechServices/*", f"{CS}/accounts/ContentSafety/*",
                                 f"{CS}/accounts/MaaS/*")
    assert perm.not_data_actions == (f"{OAI}/fine-tunes-deployments/write",)
    blob = builtin_role("Storage Blob Data Contributor")
    assert blob.id == "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
    assert blob.description == "Allows for read, write and delete access to Azure Storage blob containers and data"
    assert len(blob.permissions[0].actions) == 4 and len(blob.permissions[0].data_actions) == 5
    secrets = builtin_role("Key Vault Secrets User")
    assert secrets.id == "4633458b-17de-408a-b874-0445c86b69e6"
    assert secrets.permissions == (Permission(data_actions=("Microsoft.KeyVault/vaults/secrets/getSecret/action",
                                                            "Microsoft.KeyVault/vaults/secrets/readMetadata/action")),)


def test_reader_star_read_decides_on_cielos_actions_across_providers() -> None:
    index, who = _index_with("Reader")
    for action in ("Microsoft.CognitiveServices/accounts/read", "Microsoft.CognitiveServices/accounts/deployments/read",
                   "Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.Compute/virtualMachines/read",
                   "Microsoft.Web/sites/read", "Microsoft.ManagedIdentity/userAssignedIdentities/read",
                   "Microsoft.Authorization/roleAssignments/read"):
        assert index.authorize(who, action, ACCOUNT, data_action=False).allowed, action
    for action in ("Microsoft.CognitiveServices/accounts/write", "Microsoft.CognitiveServices/accounts/listKeys/action",
                   "Microsoft.Authorization/roleAssignments/write", "Microsoft.Web/sites/delete"):
        assert not index.authorize(who, action, ACCOUNT, data_action=False).allowed, action
    # `*/read` is a control-plane pattern: it never grants a data action.
    denied = index.authorize(who, f"{OAI}/deployments/chat/completions/action", ACCOUNT, data_action=True)
    assert not denied.allowed and denied.evaluations[0].outcome is Outcome.NOT_INCLUDED


def test_azure_ai_developer_grants_openai_data_actions_but_not_account_management() -> None:
    index, who = _index_with("Azure AI Developer")
    assert index.authorize(who, f"{OAI}/deployments/chat/completions/action", ACCOUNT, data_action=True).allowed
    assert not index.authorize(who, f"{OAI}/fine-tunes-deployments/write", ACCOUNT, data_action=True).allowed
    assert not index.authorize(who, "Microsoft.CognitiveServices/accounts/read", ACCOUNT, data_action=False).allowed
    assert index.authorize(who, "Microsoft.Authorization/roleAssignments/read", ACCOUNT, data_action=False).allowed


def test_storage_role_grants_nothing_cielo_serves() -> None:
    index, who = _index_with("Storage Blob Data Contributor")
    assert not index.authorize(who, "Microsoft.Resources/subscriptions/resourceGroups/read", RG,
                               data_action=False).allowed
    assert not index.authorize(who, f"{OAI}/deployments/completions/action", ACCOUNT, data_action=True).allowed
    assert index.authorize(who, "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read", RG,
                           data_action=True).allowed


def test_a_condition_in_a_built_in_fails_closed_for_what_it_governs_only() -> None:
    index, who = _index_with("Key Vault Data Access Administrator")
    write = index.authorize(who, "Microsoft.Authorization/roleAssignments/write", RG, data_action=False)
    assert not write.allowed and write.evaluations[0].outcome is Outcome.CONDITION_NOT_EVALUATED
    assert "condition" in write.reason
    assert index.authorize(who, "Microsoft.Authorization/roleDefinitions/read", RG, data_action=False).allowed
    assert index.authorize(who, "Microsoft.Resources/subscriptions/resourceGroups/read", RG, data_action=False).allowed
    # A condition naming no ActionMatches governs its whole block.
    index, who = _index_with("Oracle Database DbSystems Administrator")
    [perm] = builtin_role("Oracle Database DbSystems Administrator").permissions
    assert perm.condition == "@Resource[HasObotoken] boolequals true"
    some = next(a for a in perm.actions if "*" not in a)
    assert index.authorize(who, some, RG, data_action=False).evaluations[0].outcome is Outcome.CONDITION_NOT_EVALUATED


def test_odd_entries_of_azures_data_load_and_match_nothing_malformed() -> None:
    # Azure's own lists carry a few entries outside the action grammar; they load (built-ins are data) and a
    # trailing space is trimmed.
    odd = [a for r in BUILTIN_ROLES for p in r.permissions for a in p.actions + p.data_actions
           if a != a.strip() or a.endswith("/") or ":" in a or "{" in a]
    assert odd
    role = next(r for r in BUILTIN_ROLES if any(a.endswith("read ") for p in r.permissions for a in p.actions))
    index, who = _index_with(role.role_name)
    assert index.authorize(who, "Microsoft.Network/virtualNetworks/read", RG, data_action=False).allowed


def test_custom_role_names_cannot_take_a_built_in_name() -> None:
    index = RbacIndex()
    clash = RoleDefinition(str(uuid.uuid4()), "key vault secrets user", "mine",
                           (Permission(actions=("Microsoft.Resources/subscriptions/resourceGroups/read",)),), (SUB,))
    with pytest.raises(RoleDefinitionWithSameNameExists):
        index.add_role_definition(clash)
    fine = RoleDefinition(str(uuid.uuid4()), "Key Vault Secrets User (mine)", "mine", clash.permissions, (SUB,))
    assert index.add_role_definition(fine).role_type == "CustomRole"


def test_any_built_in_is_assignable_at_any_scope() -> None:
    index = RbacIndex()
    user = str(uuid.uuid4())
    for i, role in enumerate(BUILTIN_ROLES):
        scope = (ACCOUNT, RG, SUB, "/")[i % 4]
        index.add_assignment(RoleAssignment(str(uuid.uuid4()), scope, role.id.upper(), user))
    assert len(index) == len(BUILTIN_ROLES)
