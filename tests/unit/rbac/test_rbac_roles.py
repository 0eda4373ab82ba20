"""Built-in roles as data (learn.microsoft.com/azure/role-based-access-control/built-in-roles) and what each
lets a principal do."""

from __future__ import annotations

import uuid

import pytest

from cielo.rbac import (
    BUILTIN_ROLES,
    OWNER,
    Principal,
    RbacIndex,
    RoleAssignment,
    RoleDefinitionNotFound,
    builtin_role,
    role_definition_guid,
)

SUB = "/subscriptions/00000000-0000-0000-0000-0000000000aa"
RG = f"{SUB}/resourceGroups/rg"
ACCOUNT = f"{RG}/providers/Microsoft.CognitiveServices/accounts/acct"
CS = "Microsoft.CognitiveServices/accounts"
OAI = f"{CS}/OpenAI"

EXPECTED = {
    "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "Reader": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "User Access Administrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "Role Based Access Control Administrator": "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
    "Cognitive Services User": "a97b65f3-24c7-4388-baec-2e87135dc908",
    "Cognitive Services Contributor": "25fbc0a9-bd7c-42a3-aa1a-3b75d497ee68",
    "Cognitive Services OpenAI User": "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd",
    "Cognitive Services OpenAI Contributor": "a001fd3d-188f-4b5d-821b-7da978bf7442",
    "Cognitive Services Usages Reader": "bba48692-92b0-4667-a9ad-c31c7b334ac2",
}


def test_builtin_names_and_guids() -> None:
    # The whole catalogue is tests/unit/test_role_catalogue.py's; these are the roles Cielo's own code names.
    by_name = {r.role_name: r for r in BUILTIN_ROLES}
    assert {name: by_name[name].id for name in EXPECTED} == EXPECTED
    for role in BUILTIN_ROLES:
        assert role.role_type == "BuiltInRole"
        assert role.assignable_scopes == ("/",)
    assert all(len(by_name[name].permissions) == 1 for name in EXPECTED)


def test_descriptions_are_azures() -> None:
    assert builtin_role("Reader").description == "View all resources, but does not allow you to make any changes."
    assert builtin_role("Cognitive Services User").description == "Lets you read and list keys of Cognitive Services."
    assert builtin_role("Cognitive Services Usages Reader").description == (
        "Minimal permission to view Cognitive Services usages."
    )


def test_contributor_not_actions_are_the_full_list() -> None:
    assert len(builtin_role("Contributor").permissions[0].not_actions) == 11


def test_openai_user_is_the_2025_version() -> None:
    perm = builtin_role("Cognitive Services OpenAI User").permissions[0]
    assert f"{OAI}/deployments/realtime/action" in perm.data_actions
    assert f"{OAI}/assistants/*" in perm.data_actions
    assert perm.not_data_actions == (f"{OAI}/stored-completions/read",)


def test_lookup_by_name_guid_and_full_id() -> None:
    assert builtin_role("owner") is OWNER
    assert builtin_role(OWNER.id.upper()) is OWNER
    assert builtin_role(f"{SUB}/providers/Microsoft.Authorization/roleDefinitions/{OWNER.id}") is OWNER
    assert role_definition_guid(f"/providers/Microsoft.Authorization/roleDefinitions/{OWNER.id.upper()}") == OWNER.id
    with pytest.raises(RoleDefinitionNotFound):
        builtin_role("Global Administrator")
    with pytest.raises(RoleDefinitionNotFound):
        role_definition_guid("/providers/Microsoft.Authorization/roleAssignments/" + OWNER.id)


def test_to_arm_shape() -> None:
    body = OWNER.to_arm("sub1")
    assert body["id"] == f"/subscriptions/sub1/providers/Microsoft.Authorization/roleDefinitions/{OWNER.id}"
    assert body["name"] == OWNER.id
    assert body["type"] == "Microsoft.Authorization/roleDefinitions"
    assert body["properties"] == {
        "roleName": "Owner",
        "description": OWNER.description,
        "type": "BuiltInRole",
        "permissions": [{"actions": ["*"], "notActions": [], "dataActions": [], "notDataActions": []}],
        "assignableScopes": ["/"],
    }


# (role, action, data_action, expected), each checked with the role assigned at the resource group
# and the question asked at an account below it.
CASES = [
    ("Owner", f"{CS}/write", False, True),
    ("Owner", "Microsoft.Authorization/roleAssignments/write", False, True),
    ("Owner", f"{OAI}/deployments/chat/completions/action", True, False),
    ("Contributor", f"{CS}/write", False, True),
    ("Contributor", f"{CS}/listKeys/action", False, True),
    ("Contributor", "Microsoft.Authorization/roleAssignments/write", False, False),
    ("Contributor", "Microsoft.Authorization/roleAssignments/delete", False, False),
    ("Contributor", "Microsoft.Authorization/roleAssignments/read", False, True),
    ("Contributor", "Microsoft.Authorization/elevateAccess/action", False, False),
    ("Contributor", f"{OAI}/deployments/chat/completions/action", True, False),
    ("Reader", f"{CS}/read", False, True),
    ("Reader", f"{CS}/write", False, False),
    ("Reader", f"{CS}/listKeys/action", False, False),
    ("Reader", f"{OAI}/deployments/read", True, False),
    ("User Access Administrator", "Microsoft.Authorization/roleAssignments/write", False, True),
    ("User Access Administrator", f"{CS}/write", False, False),
    ("Role Based Access Control Administrator", "Microsoft.Authorization/roleAssignments/write", False, True),
    ("Role Based Access Control Administrator", "Microsoft.Authorization/roleDefinitions/write", False, False),
    ("Cognitive Services User", f"{CS}/listKeys/action", False, True),
    ("Cognitive Services User", f"{CS}/write", False, False),
    ("Cognitive Services User", f"{OAI}/deployments/chat/completions/action", True, True),
    ("Cognitive Services User", f"{OAI}/stored-completions/read", True, True),
    ("Cognitive Services Contributor", f"{CS}/listKeys/action", False, True),
    ("Cognitive Services Contributor", f"{CS}/regenerateKey/action", False, True),
    ("Cognitive Services Contributor", f"{OAI}/deployments/chat/completions/action", True, False),
    ("Cognitive Services OpenAI User", f"{CS}/listKeys/action", False, False),
    ("Cognitive Services OpenAI User", f"{CS}/read", False, True),
    ("Cognitive Services OpenAI User", f"{CS}/deployments/write", False, False),
    ("Cognitive Services OpenAI User", f"{OAI}/deployments/chat/completions/action", True, True),
    ("Cognitive Services OpenAI User", f"{OAI}/deployments/embeddings/action", True, True),
    ("Cognitive Services OpenAI User", f"{OAI}/deployments/realtime/action", True, True),
    ("Cognitive Services OpenAI User", f"{OAI}/assistants/threads/messages/files/read", True, True),
    ("Cognitive Services OpenAI User", f"{OAI}/assistants/write", True, True),
    ("Cognitive Services OpenAI User", f"{OAI}/stored-completions/read", True, False),
    ("Cognitive Services OpenAI User", f"{OAI}/deployments/write", True, False),
    ("Cognitive Services OpenAI User", f"{OAI}/fine-tunes/write", True, False),
    ("Cognitive Services OpenAI User", f"{OAI}/deployments/rainbow/action", True, False),
    ("Cognitive Services OpenAI User", f"{OAI}/deployments/chat/completions/action", False, False),
    ("Cognitive Services OpenAI Contributor", f"{OAI}/fine-tunes/write", True, True),
    ("Cognitive Services OpenAI Contributor", f"{OAI}/stored-completions/read", True, True),
    ("Cognitive Services OpenAI Contributor", f"{CS}/deployments/write", False, True),
    ("Cognitive Services OpenAI Contributor", f"{CS}/listKeys/action", False, False),
    ("Cognitive Services OpenAI Contributor", f"{CS}/write", False, False),
    ("Cognitive Services Usages Reader", "Microsoft.CognitiveServices/locations/usages/read", False, True),
    ("Cognitive Services Usages Reader", f"{CS}/read", False, False),
]


@pytest.mark.parametrize(("role", "action", "data_action", "expected"), CASES)
def test_what_each_builtin_role_allows(role: str, action: str, data_action: bool, expected: bool) -> None:
    index = RbacIndex()
    user = str(uuid.uuid4())
    index.add_assignment(RoleAssignment(str(uuid.uuid4()), RG, builtin_role(role).id, user))
    decision = index.authorize(Principal(user), action, f"{ACCOUNT}/deployments/gpt-4o", data_action=data_action)
    assert decision.allowed is expected, decision.reason
