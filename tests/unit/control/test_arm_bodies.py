"""The resource manager's request bodies (cielo.control.arm_bodies): what each model accepts, and the ARM error (class,
code, message naming the property's path) that `parse` raises for what it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from cielo.control import arm_bodies as ab
from cielo.errors import ArmError

GUID = "0b2a1c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
ASSIGNMENT = {"properties": {"roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/r",
                             "principalId": GUID}}


def refused(model: type[ab.ArmBody], body: Any, *, at: str = "") -> ArmError:
    with pytest.raises(ArmError) as caught:
        ab.parse(model, body, at=at)
    return caught.value


# ----------------------------------------------------------------------------- wrong types
@pytest.mark.parametrize(("model", "body", "code", "message"), [
    (ab.RoleAssignmentBody, {"properties": "p"}, "InvalidRequestContent",
     "The property 'properties' is invalid: an object is expected."),
    (ab.RoleAssignmentBody, {"properties": {"roleDefinitionId": 7, "principalId": GUID}}, "InvalidRequestContent",
     "The property 'properties.roleDefinitionId' is invalid: a string is expected."),
    (ab.RoleAssignmentBody, {"properties": {"roleDefinitionId": "r", "principalId": 7}}, "InvalidPrincipalId",
     "The property 'properties.principalId' is invalid: a string is expected."),
    (ab.RoleAssignmentBody, {"properties": {"roleDefinitionId": "r", "principalId": "nope"}}, "InvalidPrincipalId",
     "The property 'properties.principalId' is invalid: an object id (GUID) is expected."),
    (ab.RoleAssignmentBody, {"properties": {**ASSIGNMENT["properties"], "principalType": 1}},
     "UnmatchedPrincipalType", "The property 'properties.principalType' is invalid: a string is expected."),
    (ab.RoleDefinitionBody, {"properties": {"assignableScopes": "/"}}, "InvalidRoleDefinition",
     "The property 'properties.assignableScopes' is invalid: a list is expected."),
    (ab.RoleDefinitionBody, {"properties": {"assignableScopes": ["/", 2]}}, "InvalidRoleDefinition",
     "The property 'properties.assignableScopes[1]' is invalid: a string is expected."),
    (ab.RoleDefinitionBody, {"properties": {"assignableScopes": ["/"], "permissions": {"actions": []}}},
     "InvalidRoleDefinition", "The property 'properties.permissions' is invalid: a list is expected."),
    (ab.ResourceGroupBody, {"location": 5}, "LocationRequired",
     "The property 'location' is invalid: a string is expected."),
    (ab.ResourceGroupBody, {"location": "x", "tags": ["a"]}, "InvalidTag",
     "The property 'tags' is invalid: an object is expected."),
    (ab.AccountBody, {"sku": "S0"}, "InvalidRequestContent", "The property 'sku' is invalid: an object is expected."),
    (ab.AccountBody, {"properties": {"disableLocalAuth": "true"}}, "InvalidRequestContent",
     "The property 'properties.disableLocalAuth' is invalid: true or false is expected."),
    (ab.AccountBody, {"properties": {"disableLocalAuth": None}}, "InvalidRequestContent",
     "The property 'properties.disableLocalAuth' is invalid: true or false is expected."),
    (ab.AccountBody, {"properties": {"publicNetworkAccess": "Sometimes"}}, "InvalidRequestContent",
     "The property 'properties.publicNetworkAccess' is invalid: 'Enabled' or 'Disabled' is expected."),
    (ab.DeploymentBody, {"properties": []}, "InvalidRequestContent",
     "The property 'properties' is invalid: an object is expected."),
    (ab.DeploymentBody, {"sku": {"capacity": True}}, "InvalidCapacity",
     "The property 'sku.capacity' is invalid: an integer is expected."),
    (ab.DeploymentBody, {"sku": {"capacity": 2.0}}, "InvalidCapacity",
     "The property 'sku.capacity' is invalid: an integer is expected."),
    (ab.DeploymentBody, {"sku": {"capacity": 0}}, "InvalidCapacity",
     "The property 'sku.capacity' is invalid: a number of at least 1 is expected."),
    (ab.RegenerateKeyBody, {"keyName": "Key3"}, "InvalidRequestContent",
     "The property 'keyName' is invalid: Key1 or Key2 is expected."),
    (ab.RegenerateKeyBody, {"keyName": 1}, "InvalidRequestContent",
     "The property 'keyName' is invalid: a string is expected."),
    (ab.CheckAccessSubject, {"principalId": 5}, "InvalidRequestContent",
     "The property 'principalId' is invalid: a string is expected."),
    (ab.CheckAccessBody, {"action": ""}, "InvalidRequestContent",
     "The property 'action' is invalid: it must not be empty."),
])
def test_wrong_types_are_refused_naming_the_property(model: type[ab.ArmBody], body: Any, code: str,
                                                     message: str) -> None:
    error = refused(model, body)
    assert (error.status, error.code, str(error)) == (400, code, message)


# ----------------------------------------------------------------------------- missing required properties
@pytest.mark.parametrize(("model", "body", "code", "path"), [
    (ab.RoleAssignmentBody, {}, "InvalidRequestContent", "properties"),
    (ab.RoleAssignmentBody, {"properties": {"principalId": GUID}}, "InvalidRequestContent",
     "properties.roleDefinitionId"),
    (ab.RoleAssignmentBody, {"properties": {"roleDefinitionId": "r"}}, "InvalidPrincipalId", "properties.principalId"),
    (ab.RoleDefinitionScopes, {"properties": {}}, "InvalidRoleDefinition", "properties.assignableScopes"),
    (ab.DeploymentBody, {"properties": {"model": {"format": "OpenAI"}}}, "InvalidRequestContent",
     "properties.model.name"),
    (ab.RegenerateKeyBody, {}, "InvalidRequestContent", "keyName"),
    (ab.CheckAccessBody, {}, "InvalidRequestContent", "action"),
])
def test_a_missing_property_is_named(model: type[ab.ArmBody], body: Any, code: str, path: str) -> None:
    error = refused(model, body)
    assert (error.code, str(error)) == (code, f"The property '{path}' is required.")


@pytest.mark.parametrize("scopes", [None, [], ""])
def test_assignable_scopes_must_name_one(scopes: Any) -> None:
    error = refused(ab.RoleDefinitionBody, {"properties": {"assignableScopes": scopes}})
    assert (error.code, str(error)) == (
        "InvalidRoleDefinition", "The property 'properties.assignableScopes' is invalid: it must not be empty.")


# ----------------------------------------------------------------------------- nested paths
def test_nested_paths_carry_list_indices_and_object_keys() -> None:
    body = {"properties": {"assignableScopes": ["/"], "permissions": [{"actions": ["*"]}, {"notActions": ["a", 3]}]}}
    error = refused(ab.RoleDefinitionBody, body)
    assert (error.code, str(error)) == (
        "InvalidRoleDefinition", "The property 'properties.permissions[1].notActions[1]' is invalid: a string is "
                                 "expected.")
    assert str(refused(ab.RoleDefinitionBody, {"properties": {"assignableScopes": ["/"], "permissions": [1]}})) == (
        "The property 'properties.permissions[0]' is invalid: an object is expected.")
    tags = refused(ab.DeploymentBody, {"tags": {"env": "dev", "owner": {"name": "x"}}})
    assert (tags.code, str(tags)) == ("InvalidTag", "The property 'tags.owner' is invalid: a string is expected.")


def test_the_first_fault_in_field_order_is_the_one_named() -> None:
    """A role assignment's condition is named before anything else it lacks, and a role's assignable scopes
    before its permissions, in the order the operation has always checked them."""
    condition = refused(ab.RoleAssignmentBody, {"properties": {"condition": "@x", "principalId": "nope"}})
    assert condition.code == "ConditionsNotSupported"
    assert "create the assignment without 'condition'" in str(condition)
    both = refused(ab.RoleDefinitionBody, {"properties": {"assignableScopes": [], "permissions": [1]}})
    assert "properties.assignableScopes" in str(both)
    in_permission = refused(ab.RoleDefinitionBody, {"properties": {"assignableScopes": ["/"], "permissions": [
        {"actions": ["*"]}, {"conditionVersion": "2.0", "actions": 5}]}})
    assert in_permission.code == "ConditionsNotSupported"
    assert "remove 'condition'" in str(in_permission)


def test_an_identity_block_read_on_its_own_is_named_from_identity() -> None:
    not_object = refused(ab.IdentityBlock, "SystemAssigned", at="identity")
    assert (not_object.code, str(not_object)) == (
        "InvalidIdentity", "The property 'identity' is invalid: an object is expected.")
    no_type = refused(ab.IdentityBlock, {}, at="identity")
    assert no_type.code == "InvalidIdentityType"
    assert str(no_type).startswith("identity.type is required")
    wrong = refused(ab.IdentityBlock, {"type": 1}, at="identity")
    assert (wrong.code, str(wrong)) == ("InvalidIdentityType",
                                        "The property 'identity.type' is invalid: a string is expected.")
    magic = refused(ab.IdentityBlock, {"type": "SystemAssigned, Magic"}, at="identity")
    assert (magic.code, "'SystemAssigned, Magic'" in str(magic)) == ("InvalidIdentityType", True)
    users = refused(ab.IdentityBlock, {"type": "UserAssigned", "userAssignedIdentities": []}, at="identity")
    assert (users.code, str(users)) == (
        "InvalidIdentity", "The property 'identity.userAssignedIdentities' is invalid: an object is expected.")
    assert refused(ab.IdentityBlock, {"type": "None, SystemAssigned"}, at="identity").code == "InvalidIdentityType"


@pytest.mark.parametrize(("type_", "system", "user"), [
    ("None", False, False), ("", False, False), ("systemassigned", True, False), ("UserAssigned", False, True),
    ("SystemAssigned, UserAssigned", True, True), ("UserAssigned,SystemAssigned", True, True),
])
def test_identity_types(type_: str, system: bool, user: bool) -> None:
    block = ab.parse(ab.IdentityBlock, {"type": type_, "userAssignedIdentities": {"/x": {}, "/y": None}})
    assert (block.system_assigned, block.user_assigned) == (system, user)
    assert block.user_assigned_identities == {"/x": {}, "/y": None}


# ----------------------------------------------------------------------------- unknown properties
def test_unknown_properties_are_taken_at_every_level() -> None:
    """What az, the SDKs and templates send that Cielo does not model is accepted (nothing in these bodies is
    refused for being unknown) and kept apart from what Cielo reads."""
    account = ab.parse(ab.AccountBody, {
        "kind": "OpenAI", "location": "local", "id": "/subscriptions/x", "etag": '"1"', "systemData": {},
        "sku": {"name": "S0", "tier": "Standard"},
        "properties": {"customSubDomainName": "a", "networkAcls": {"defaultAction": "Allow"}, "endpoint": "https://"},
        "identity": {"type": "SystemAssigned", "principalId": GUID}})
    assert (account.kind, account.sku and account.sku.name) == ("OpenAI", "S0")
    assert account.model_extra == {"id": "/subscriptions/x", "etag": '"1"', "systemData": {}}
    assert account.properties is not None and account.properties.model_extra == {
        "networkAcls": {"defaultAction": "Allow"}, "endpoint": "https://"}
    assert ab.parse(ab.IdentityBlock, {"type": "SystemAssigned", "principalId": GUID, "tenantId": GUID}).model_extra
    assignment = ab.parse(ab.RoleAssignmentBody, {**ASSIGNMENT, "name": "n", "properties": {
        **ASSIGNMENT["properties"], "delegatedManagedIdentityResourceId": None, "scope": "/"}})
    assert assignment.properties.principal_id == GUID
    role = ab.parse(ab.RoleDefinitionBody, {"name": GUID, "properties": {
        "assignableScopes": ["/"], "type": "CustomRole", "permissions": [{"actions": ["*"], "extra": 1}]}})
    assert role.properties.permissions[0].to_stored() == {"actions": ["*"], "notActions": [], "dataActions": [],
                                                          "notDataActions": []}
    assert ab.parse(ab.DeploymentBody, {"properties": {"model": {"name": "m", "source": "x"}, "dynamicThrottling": 1},
                                        "sku": {"name": "Standard", "family": "f"}}).sku is not None
    assert ab.parse(ab.ResourceGroupBody, {"location": "local", "managedBy": "x"}).location == "local"
    assert ab.parse(ab.RegenerateKeyBody, {"keyName": "key2", "other": 1}).key_name == "key2"
    assert ab.parse(ab.CheckAccessBody, {"action": "a", "why": 1}).action == "a"


# ----------------------------------------------------------------------------- lenient readings kept as they were
def test_lenient_readings() -> None:
    """Values Cielo has always read leniently are still accepted, read the same way."""
    account = ab.parse(ab.AccountBody, {"kind": 5, "sku": {"name": None}, "location": [], "properties": None})
    assert (account.kind, account.sku and account.sku.name, account.location, account.properties) == (
        "5", None, None, None)
    role = ab.parse(ab.RoleDefinitionBody, {"properties": {"assignableScopes": ["/"], "permissions": None,
                                                           "roleName": 5, "description": ["d"]}})
    assert (role.properties.permissions, role.properties.role_name, role.properties.description) == ([], "", None)
    assignment = ab.parse(ab.RoleAssignmentBody, {"properties": {**ASSIGNMENT["properties"], "description": 1,
                                                                 "condition": "", "conditionVersion": None}})
    assert assignment.properties.description is None
    deployment = ab.parse(ab.DeploymentBody, {"sku": {}, "properties": {"model": {}, "raiPolicyName": 5}})
    assert (deployment.sku, deployment.properties and deployment.properties.model) == (None, None)
    assert deployment.properties is not None and deployment.properties.rai_policy_name == 5
    assert ab.parse(ab.DeploymentBody, {"sku": {"name": None}}).sku == ab.DeploymentSku(name="None")
    model = ab.parse(ab.DeploymentBody, {"properties": {"model": {"name": "m", "format": 5}}})
    assert model.properties is not None and model.properties.model is not None
    assert model.properties.model.format is None
    subject = ab.parse(ab.CheckAccessSubject, {"principalId": ""})
    assert subject.principal_id is None
    assert ab.parse(ab.CheckAccessBody, {"action": "a", "isDataAction": "yes"}).is_data_action is True


def test_which_properties_a_body_named() -> None:
    """Left out and null differ where the resource keeps its value when a property is left out."""
    left_out = ab.parse(ab.AccountBody, {"properties": {}})
    assert left_out.properties is not None and not left_out.properties.sent("disable_local_auth")
    named = ab.parse(ab.AccountBody, {"properties": {"disableLocalAuth": False}})
    assert named.properties is not None and named.properties.sent("disable_local_auth")
    assert ab.parse(ab.ResourceGroupPatch, {"tags": None}).sent("tags")
    assert not ab.parse(ab.ResourceGroupPatch, {}).sent("tags")
