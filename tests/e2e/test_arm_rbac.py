"""Microsoft.Authorization over ARM: role definitions (built-in and custom), role assignments at any
scope with their filters and refusals, and Cielo's checkAccess explain API
(learn.microsoft.com/azure/role-based-access-control, and Microsoft.Authorization 2022-04-01 in
Azure/azure-rest-api-specs)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from arm_support import (
    COGNITIVE_SERVICES_USER,
    CONTRIBUTOR,
    OWNER,
    READER,
    RG_READ,
    Arm,
    Who,
    assert_denied,
    error_of,
)

pytest_plugins = ("conftest_arm",)  # the `arm` fixture: one private Cielo for all test_arm_* modules
pytestmark = pytest.mark.e2e

CHAT = "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action"
LIST_KEYS = "Microsoft.CognitiveServices/accounts/listKeys/action"


def put_assignment(arm: Arm, scope: str, props: Mapping[str, object], name: str | None = None,
                   who: Who | None = None) -> tuple[str, httpx.Response]:
    name = name or str(uuid.uuid4())
    response = arm.call("PUT", arm.ra_path(scope, name), who or arm.admin, {"properties": props})
    return name, response


# ----------------------------------------------------------------------------- role definitions
def test_role_definitions_list_and_filter_by_name(arm: Arm) -> None:
    listed = arm.call("GET", arm.rd_path(arm.sub_path), arm.admin)
    assert listed.status_code == 200, listed.text
    names = {r["properties"]["roleName"] for r in listed.json()["value"]}
    assert {"Owner", "Contributor", "Reader", "User Access Administrator", "Cognitive Services User",
            "Cognitive Services OpenAI User"} <= names

    response = arm.call("GET", arm.rd_path(arm.sub_path), arm.admin,
                        params={"$filter": "roleName eq 'Cognitive Services User'"})
    assert response.status_code == 200, response.text
    [role] = response.json()["value"]
    assert role["name"] == COGNITIVE_SERVICES_USER
    assert role["id"] == f"/subscriptions/{arm.sub}/providers/Microsoft.Authorization/roleDefinitions/" \
                         f"{COGNITIVE_SERVICES_USER}"
    assert role["type"] == "Microsoft.Authorization/roleDefinitions"
    props = role["properties"]
    assert props["type"] == "BuiltInRole" and props["assignableScopes"] == ["/"]
    assert props["description"] == "Lets you read and list keys of Cognitive Services."
    [perm] = props["permissions"]
    assert perm["dataActions"] == ["Microsoft.CognitiveServices/*"]
    assert "Microsoft.CognitiveServices/accounts/OpenAI/fine-tunes-deployments/write" in perm["notDataActions"]
    assert {"Microsoft.CognitiveServices/*/read", "Microsoft.CognitiveServices/accounts/listkeys/action",
            "Microsoft.Resources/subscriptions/resourceGroups/read"} <= set(perm["actions"])
    assert perm["notActions"] == []

    # Any user of the tenant may read role definitions (as `az role definition list` does).
    sp = arm.new_sp()
    by_sp = arm.call("GET", arm.rd_path(arm.sub_path), sp, params={"$filter": "roleName eq 'reader'"})
    assert [r["name"] for r in by_sp.json()["value"]] == [READER]
    error_of(arm.call("GET", arm.rd_path(arm.sub_path), arm.admin, params={"$filter": "roleName ne 'x'"}),
             400, "InvalidFilterInQueryString")


def test_get_role_definition_by_id(arm: Arm) -> None:
    at_sub = arm.call("GET", arm.rd_path(arm.sub_path, OWNER), arm.admin)
    assert at_sub.status_code == 200, at_sub.text
    assert at_sub.json()["properties"]["roleName"] == "Owner"
    assert at_sub.json()["properties"]["permissions"][0]["actions"] == ["*"]
    at_root = arm.call("GET", f"/providers/Microsoft.Authorization/roleDefinitions/{CONTRIBUTOR}", arm.admin)
    assert at_root.status_code == 200
    assert at_root.json()["id"] == f"/providers/Microsoft.Authorization/roleDefinitions/{CONTRIBUTOR}"
    assert "Microsoft.Authorization/*/Write" in at_root.json()["properties"]["permissions"][0]["notActions"]
    error_of(arm.call("GET", arm.rd_path(arm.sub_path, str(uuid.uuid4())), arm.admin), 404,
             "RoleDefinitionDoesNotExist")


def test_custom_role_lifecycle(arm: Arm) -> None:
    rg = arm.new_rg()
    account = arm.new_account(rg)
    deployment = arm.new_deployment(rg, account)
    rg_scope = arm.rg_path(rg)
    guid = str(uuid.uuid4())
    role_name = f"Deployment Reader {guid[:8]}"
    body = {"properties": {"roleName": role_name, "description": "Reads deployments.", "type": "CustomRole",
                           "permissions": [{"actions": ["Microsoft.CognitiveServices/accounts/deployments/read"],
                                            "notActions": [], "dataActions": [], "notDataActions": []}],
                           "assignableScopes": [rg_scope]}}
    created = arm.call("PUT", arm.rd_path(arm.sub_path, guid), arm.admin, body)
    assert created.status_code == 201, created.text
    role = created.json()
    assert role["name"] == guid and role["properties"]["type"] == "CustomRole"
    assert role["properties"]["assignableScopes"] == [rg_scope]
    assert arm.call("PUT", arm.rd_path(arm.sub_path, guid), arm.admin, body).status_code == 200
    assert arm.call("GET", arm.rd_path(arm.sub_path, guid), arm.admin).json() == role
    custom = arm.call("GET", arm.rd_path(rg_scope), arm.admin, params={"$filter": "type eq 'CustomRole'"})
    assert guid in [r["name"] for r in custom.json()["value"]]
    by_name = arm.call("GET", arm.rd_path(arm.sub_path), arm.admin, params={"$filter": f"roleName eq '{role_name}'"})
    assert [r["name"] for r in by_name.json()["value"]] == [guid]

    # Role names are unique in the directory.
    error_of(arm.call("PUT", arm.rd_path(arm.sub_path, str(uuid.uuid4())), arm.admin, body), 409,
             "RoleDefinitionWithSameNameExists")

    # Assignable only within its assignableScopes; there it grants exactly its actions.
    sp = arm.new_sp()
    other_rg = arm.rg_path(arm.new_rg())
    _, outside = put_assignment(arm, other_rg, {"roleDefinitionId": guid, "principalId": sp.object_id})
    assert outside.status_code == 400, outside.text
    name = arm.assign(guid, sp, rg_scope)
    deployment_path = arm.deployment_path(rg, account, deployment)
    assert arm.call("GET", deployment_path, sp).status_code == 200
    assert_denied(arm.call("GET", arm.account_path(rg, account), sp), sp,
                  "Microsoft.CognitiveServices/accounts/read", arm.account_path(rg, account))

    error_of(arm.call("DELETE", arm.rd_path(arm.sub_path, guid), arm.admin), 409, "RoleDefinitionHasAssignments")
    arm.unassign(rg_scope, name)
    deleted = arm.call("DELETE", arm.rd_path(arm.sub_path, guid), arm.admin)
    assert deleted.status_code == 200 and deleted.json()["name"] == guid
    error_of(arm.call("GET", arm.rd_path(arm.sub_path, guid), arm.admin), 404, "RoleDefinitionDoesNotExist")
    assert arm.call("GET", deployment_path, sp).status_code == 403


def test_custom_role_needs_existing_assignable_scopes(arm: Arm) -> None:
    body = {"properties": {"roleName": f"r-{uuid.uuid4()}", "permissions": [{"actions": ["*/read"]}],
                           "assignableScopes": [arm.rg_path("no-such-group")]}}
    guid = str(uuid.uuid4())
    error_of(arm.call("PUT", arm.rd_path(arm.sub_path, guid), arm.admin, body), 404, "ResourceGroupNotFound")
    body["properties"]["assignableScopes"] = []  # type: ignore[index]
    error_of(arm.call("PUT", arm.rd_path(arm.sub_path, guid), arm.admin, body), 400, "InvalidRoleDefinition")
    error_of(arm.call("GET", arm.rd_path(arm.sub_path, guid), arm.admin), 404, "RoleDefinitionDoesNotExist")
    error_of(arm.call("PUT", arm.rd_path(arm.sub_path, READER), arm.admin, {"properties": {
        "roleName": "Reader", "permissions": [{"actions": ["*"]}], "assignableScopes": [arm.sub_path]}}),
        400, "InvalidRoleDefinition")


# ----------------------------------------------------------------------------- role assignments
def test_role_assignment_lifecycle(arm: Arm) -> None:
    rg_scope = arm.rg_path(arm.new_rg())
    user = arm.new_user()
    role_id = f"/subscriptions/{arm.sub}/providers/Microsoft.Authorization/roleDefinitions/{READER}"
    props = {"roleDefinitionId": role_id, "principalId": user.object_id, "principalType": "User",
             "description": "read the group"}
    name, created = put_assignment(arm, rg_scope, props)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == name and body["type"] == "Microsoft.Authorization/roleAssignments"
    assert body["id"] == f"{rg_scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
    p = body["properties"]
    assert p["roleDefinitionId"] == role_id and p["principalId"] == user.object_id
    assert p["principalType"] == "User" and p["scope"] == rg_scope and p["description"] == "read the group"
    assert p["createdBy"] == arm.admin.object_id and p["createdOn"] and p["condition"] is None

    # The same PUT again is idempotent: nothing changes, not even the metadata.
    _, again = put_assignment(arm, rg_scope, props, name)
    assert again.status_code == 200 and again.json() == body
    got = arm.call("GET", arm.ra_path(rg_scope, name), arm.admin)
    assert got.status_code == 200 and got.json() == body
    assert body in arm.assignments(rg_scope)
    # Only the description may change under the same name.
    _, described = put_assignment(arm, rg_scope, {**props, "description": "renamed"}, name)
    assert described.status_code == 200
    assert arm.call("GET", arm.ra_path(rg_scope, name), arm.admin).json()["properties"]["description"] == "renamed"
    _, changed = put_assignment(arm, rg_scope, {**props, "roleDefinitionId": OWNER}, name)
    error_of(changed, 409, "RoleAssignmentUpdateNotPermitted")
    assert arm.call("GET", arm.ra_path(rg_scope, name), arm.admin).json()["properties"]["roleDefinitionId"] == role_id

    assert arm.call("GET", rg_scope, user).status_code == 200
    deleted = arm.call("DELETE", arm.ra_path(rg_scope, name), arm.admin)
    assert deleted.status_code == 200 and deleted.json()["name"] == name
    error_of(arm.call("GET", arm.ra_path(rg_scope, name), arm.admin), 404, "RoleAssignmentNotFound")
    assert arm.call("DELETE", arm.ra_path(rg_scope, name), arm.admin).status_code == 204
    assert arm.assignments(rg_scope, f"principalId eq '{user.object_id}'") == []


def test_role_assignment_with_a_bare_guid_infers_the_principal_type(arm: Arm) -> None:
    rg_scope = arm.rg_path(arm.new_rg())
    sp = arm.new_sp()
    group = arm.new_group()
    _, for_sp = put_assignment(arm, rg_scope, {"roleDefinitionId": READER, "principalId": sp.object_id.upper()})
    assert for_sp.status_code == 201, for_sp.text
    p = for_sp.json()["properties"]
    assert p["principalType"] == "ServicePrincipal" and p["principalId"] == sp.object_id
    assert p["roleDefinitionId"].endswith(f"/roleDefinitions/{READER}")
    _, for_group = put_assignment(arm, rg_scope, {"roleDefinitionId": READER, "principalId": group})
    assert for_group.json()["properties"]["principalType"] == "Group"
    _, wrong = put_assignment(arm, rg_scope, {"roleDefinitionId": CONTRIBUTOR, "principalId": sp.object_id,
                                              "principalType": "User"})
    error_of(wrong, 400, "UnmatchedPrincipalType")
    assert len(arm.assignments(rg_scope, f"principalId eq '{sp.object_id}'")) == 1


def test_role_assignment_filters(arm: Arm) -> None:
    rg = arm.new_rg()
    account = arm.new_account(rg)
    rg_scope, account_scope = arm.rg_path(rg), arm.account_path(rg, account)
    sp, other = arm.new_sp(), arm.new_sp()
    group = arm.new_group()
    arm.graph("POST", f"/groups/{group}/members/$ref",
              {"@odata.id": f"{arm.server.base_url}/v1.0/directoryObjects/{sp.object_id}"})
    at_rg = arm.assign(READER, sp, rg_scope)
    below = arm.assign(COGNITIVE_SERVICES_USER, sp, account_scope)
    via_group = arm.assign(CONTRIBUTOR, group, rg_scope)
    others = arm.assign(READER, other, rg_scope)

    def names(flt: str | None, scope: str = rg_scope) -> set[str]:
        return {a["name"] for a in arm.assignments(scope, flt)}

    everything = names(None)
    assert {at_rg, below, via_group, others} <= everything  # at, below, and inherited from above:
    admin_owner = {a["name"] for a in arm.assignments(arm.sub_path, "atScope()")
                   if a["properties"]["principalId"] == arm.admin.object_id}
    assert admin_owner and admin_owner <= everything
    at_scope = names("atScope()")
    assert {at_rg, via_group, others} <= at_scope and below not in at_scope and admin_owner <= at_scope
    assert names(f"principalId eq '{sp.object_id}'") == {at_rg, below}
    assert names(f"principalId eq '{sp.object_id.upper()}'") == {at_rg, below}
    assert names(f"assignedTo('{sp.object_id}')") == {at_rg, below, via_group}
    assert names(f"assignedTo('{other.object_id}')") == {others}
    assert names(f"principalId eq '{sp.object_id}'", account_scope) == {at_rg, below}
    error_of(arm.call("GET", arm.ra_path(rg_scope), arm.admin, params={"$filter": "startswith(name,'a')"}),
             400, "InvalidFilterInQueryString")


def test_duplicate_assignment_under_another_name_is_a_conflict(arm: Arm) -> None:
    rg_scope = arm.rg_path(arm.new_rg())
    sp = arm.new_sp()
    first = arm.assign(READER, sp, rg_scope)
    name, response = put_assignment(arm, rg_scope, {"roleDefinitionId": READER, "principalId": sp.object_id})
    message = error_of(response, 409, "RoleAssignmentExists")
    assert message.startswith("The role assignment already exists.") and first.replace("-", "") in message
    assert [a["name"] for a in arm.assignments(rg_scope, f"principalId eq '{sp.object_id}'")] == [first]
    error_of(arm.call("GET", arm.ra_path(rg_scope, name), arm.admin), 404, "RoleAssignmentNotFound")


@pytest.mark.parametrize(("props", "status", "code"), [
    ({"roleDefinitionId": READER, "condition": "@Resource[Microsoft.Storage/x] StringEquals 'y'",
      "conditionVersion": "2.0"}, 400, "ConditionsNotSupported"),
    ({"roleDefinitionId": READER, "principalId": "unknown"}, 400, "PrincipalNotFound"),
    ({"roleDefinitionId": str(uuid.uuid4())}, 400, "RoleDefinitionDoesNotExist"),
    ({"roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{uuid.uuid4()}"}, 400,
     "RoleDefinitionDoesNotExist"),
    ({"principalId": "mine"}, 400, "InvalidRequestContent"),
    ({"roleDefinitionId": READER, "principalId": "not-a-guid"}, 400, "InvalidPrincipalId"),
], ids=["condition", "unknown-principal", "unknown-role", "unknown-role-id", "no-role", "bad-principal-id"])
def test_refused_assignments_are_not_created(arm: Arm, props: dict[str, str], status: int, code: str) -> None:
    rg_scope = arm.rg_path(arm.new_rg())
    sp = arm.new_sp()
    principal = {"mine": sp.object_id, "unknown": str(uuid.uuid4())}
    full = {"principalId": sp.object_id, **props}
    full["principalId"] = principal.get(full["principalId"], full["principalId"])
    name, response = put_assignment(arm, rg_scope, full)
    message = error_of(response, status, code)
    if code == "PrincipalNotFound":
        assert message == (f"Principal {full['principalId'].replace('-', '')} does not exist in the directory "
                           f"{arm.tenant}. Check that you have the correct principal ID.")
    error_of(arm.call("GET", arm.ra_path(rg_scope, name), arm.admin), 404, "RoleAssignmentNotFound")
    assert arm.assignments(rg_scope, f"principalId eq '{sp.object_id}'") == []
    assert_denied(arm.call("GET", rg_scope, sp), sp, RG_READ, rg_scope)


def test_assignment_names_must_be_guids(arm: Arm) -> None:
    rg_scope = arm.rg_path(arm.new_rg())
    sp = arm.new_sp()
    _, response = put_assignment(arm, rg_scope, {"roleDefinitionId": READER, "principalId": sp.object_id},
                                 "not-a-guid")
    error_of(response, 400, "InvalidRoleAssignmentId")


def test_assignments_need_an_existing_scope(arm: Arm) -> None:
    sp = arm.new_sp()
    props = {"roleDefinitionId": READER, "principalId": sp.object_id}
    rg = arm.new_rg()
    cases = [
        (arm.rg_path("no-such-group"), "ResourceGroupNotFound"),
        (arm.account_path(rg, "no-such-account"), "ResourceNotFound"),
        (arm.deployment_path("cielo-rg", "cielo-openai", "no-such-deployment"), "ResourceNotFound"),
        (f"{arm.sub_path}/providers/Microsoft.CognitiveServices/accounts/cielo-openai", "ResourceNotFound"),
    ]
    for scope, code in cases:
        _, response = put_assignment(arm, scope, props)
        error_of(response, 404, code)
    _, response = put_assignment(arm, "/subscriptions/00000000-0000-0000-0000-000000000000", props)
    error_of(response, 404, "SubscriptionNotFound")
    assert arm.assignments(arm.sub_path, f"principalId eq '{sp.object_id}'") == []


def test_body_scope_does_not_move_the_assignment(arm: Arm) -> None:
    rg_scope = arm.rg_path(arm.new_rg())
    sp = arm.new_sp()
    _, response = put_assignment(arm, rg_scope, {"roleDefinitionId": OWNER, "principalId": sp.object_id,
                                                 "scope": arm.sub_path})
    assert response.json()["properties"]["scope"] == rg_scope
    [only] = arm.assignments(arm.sub_path, f"principalId eq '{sp.object_id}'")
    assert only["properties"]["scope"] == rg_scope
    assert_denied(arm.call("GET", arm.rg_path("cielo-rg"), sp), sp, RG_READ, arm.rg_path("cielo-rg"))


def test_assignments_at_resource_scopes_grant_there_only(arm: Arm) -> None:
    rg = arm.new_rg()
    account = arm.new_account(rg)
    other = arm.new_account(rg)
    sp = arm.new_sp()
    arm.assign(READER, sp, arm.account_path(rg, account))
    assert arm.call("GET", arm.account_path(rg, account), sp).status_code == 200
    assert_denied(arm.call("GET", arm.account_path(rg, other), sp), sp, "Microsoft.CognitiveServices/accounts/read",
                  arm.account_path(rg, other))
    assert_denied(arm.call("GET", arm.rg_path(rg), sp), sp, RG_READ, arm.rg_path(rg))


# ----------------------------------------------------------------------------- checkAccess
def check(arm: Arm, scope: str, who: Who, action: str, **extra: object) -> dict[str, Any]:
    response = arm.call("POST", f"{scope}/providers/Microsoft.Authorization/checkAccess", who,
                        {"action": action, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_check_access_explains_grants_and_denials(arm: Arm) -> None:
    rg = arm.new_rg()
    account_scope = arm.account_path(rg, arm.new_account(rg))
    sp = arm.new_sp()
    name = arm.assign(COGNITIVE_SERVICES_USER, sp, arm.rg_path(rg))

    allowed = check(arm, account_scope, sp, LIST_KEYS)
    assert allowed["allowed"] is True and allowed["principalId"] == sp.object_id
    assert allowed["scope"] == account_scope and allowed["action"] == LIST_KEYS
    [match] = allowed["matchedAssignments"]
    assert match["name"] == name
    assert "Cognitive Services User" in str(allowed["reason"]) and name in str(allowed["reason"])

    denied = check(arm, account_scope, sp, "Microsoft.CognitiveServices/accounts/write")
    assert denied["allowed"] is False and denied["matchedAssignments"] == []
    assert "does not include it" in str(denied["reason"]) and "Cognitive Services User" in str(denied["reason"])

    data = check(arm, account_scope, sp, CHAT, isDataAction=True)
    assert data["allowed"] is True and data["isDataAction"] is True

    # Owner's `*` is control plane only: it never grants a data action.
    owner = check(arm, account_scope, arm.admin, CHAT, isDataAction=True)
    assert owner["allowed"] is False and "control-plane" in str(owner["reason"])

    nobody = arm.new_sp()
    none = check(arm, account_scope, nobody, RG_READ)
    assert none["allowed"] is False and "no role assignments" in str(none["reason"])


def test_check_access_about_others_needs_role_assignment_read(arm: Arm) -> None:
    rg = arm.new_rg()
    scope = arm.rg_path(rg)
    sp, nosy = arm.new_sp(), arm.new_sp()
    arm.assign(READER, sp, scope)
    about = check(arm, scope, arm.admin, RG_READ, principalId=sp.object_id)
    assert about["allowed"] is True and about["principalId"] == sp.object_id

    response = arm.call("POST", f"{scope}/providers/Microsoft.Authorization/checkAccess", nosy,
                        {"action": RG_READ, "principalId": sp.object_id})
    assert_denied(response, nosy, "Microsoft.Authorization/roleAssignments/read", scope)

    unknown = check(arm, scope, arm.admin, RG_READ, principalId=str(uuid.uuid4()))
    assert unknown["allowed"] is False and "does not exist" in str(unknown["reason"])
    error_of(arm.call("POST", f"{scope}/providers/Microsoft.Authorization/checkAccess", sp, {}), 400,
             "InvalidRequestContent")
