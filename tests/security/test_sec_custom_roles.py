"""Custom role definitions as an attack surface: rewriting someone else's role, deleting it, reading roles
(and the resource-group names in their assignable scopes) without any right, built-ins, and checkAccess.

Azure's rule (docs: "Azure custom roles", "Who can create, delete, update, or view a custom role"): changing
or deleting a custom role needs `Microsoft.Authorization/roleDefinitions/write|delete` at every assignable
scope the role has, and creating or widening it needs the right at every new one. Every call here is made by
a real principal with a real bearer token against a real server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from arm_support import (
    OWNER,
    READER,
    RG_READ,
    USER_ACCESS_ADMINISTRATOR,
    Arm,
    Who,
    assert_denied,
    error_of,
)

pytest_plugins = ("conftest_arm",)  # the private Cielo of the ARM tests: these tests assign roles at the subscription
pytestmark = pytest.mark.e2e

RD_WRITE = "Microsoft.Authorization/roleDefinitions/write"
RD_DELETE = "Microsoft.Authorization/roleDefinitions/delete"
RA_READ = "Microsoft.Authorization/roleAssignments/read"
ROOT_ROLES = "/providers/Microsoft.Authorization/roleDefinitions"


def role_body(name: str, scopes: list[str], actions: list[str], data_actions: list[str] | None = None
              ) -> dict[str, Any]:
    return {"properties": {"roleName": name, "description": "A custom role.", "type": "CustomRole",
                           "permissions": [{"actions": actions, "notActions": [], "dataActions": data_actions or [],
                                            "notDataActions": []}],
                           "assignableScopes": scopes}}


def create_role(arm: Arm, scopes: list[str], actions: list[str] | None = None) -> tuple[str, dict[str, Any]]:
    """A custom role made by the administrator; returns its GUID and its body as ARM shows it."""
    guid = str(uuid.uuid4())
    body = role_body(f"sec-role-{guid[:8]}", scopes, actions or [RG_READ])
    response = arm.call("PUT", arm.rd_path(scopes[0], guid), arm.admin, body)
    assert response.status_code == 201, response.text
    shown: dict[str, Any] = arm.call("GET", arm.rd_path(arm.sub_path, guid), arm.admin).json()
    return guid, shown


def role_names(arm: Arm, scope: str, who: Who, flt: str | None = None) -> tuple[list[str], str]:
    """GUIDs listed at `scope` for `who` (and the raw text, to look for leaked names)."""
    path = arm.rd_path(scope) if scope != "/" else ROOT_ROLES
    response = arm.call("GET", path, who, params={"$filter": flt} if flt else None)
    assert response.status_code == 200, response.text
    return [r["name"] for r in response.json()["value"]], response.text


# ----------------------------------------------------------------------------- writes: old and new scopes
def test_group_access_administrator_cannot_hijack_a_subscription_custom_role(arm: Arm) -> None:
    """The reported attack: a User Access Administrator on one resource group rewrote the administrator's
    subscription-wide custom role to `*`/`*` assignable at their group, then deleted it."""
    rg = arm.rg_path(arm.new_rg())
    guid, before = create_role(arm, [arm.sub_path])
    uaa = arm.new_sp()
    arm.assign(USER_ACCESS_ADMINISTRATOR, uaa, rg)
    hijack = role_body(before["properties"]["roleName"], [rg], ["*"], ["*"])

    # Through its own group's URL (it may read the role there: it applies at the group): the scope it lacks.
    assert_denied(arm.call("PUT", arm.rd_path(rg, guid), uaa, hijack), uaa, RD_WRITE, arm.sub_path)
    # Through the subscription's URL, where it may not even read the role: the role's id, nothing more.
    role_id = f"{arm.sub_path}/providers/Microsoft.Authorization/roleDefinitions/{guid}"
    assert_denied(arm.call("PUT", arm.rd_path(arm.sub_path, guid), uaa, hijack), uaa, RD_WRITE, role_id)
    assert arm.call("GET", arm.rd_path(arm.sub_path, guid), arm.admin).json() == before

    # Nor may it delete the role, from either URL.
    assert_denied(arm.call("DELETE", arm.rd_path(rg, guid), uaa), uaa, RD_DELETE, arm.sub_path)
    assert_denied(arm.call("DELETE", arm.rd_path(arm.sub_path, guid), uaa), uaa, RD_DELETE, role_id)
    assert arm.call("GET", arm.rd_path(arm.sub_path, guid), arm.admin).json() == before
    # The role grants nothing new to anyone: assigning it at the group still gives only its old actions.
    sp = arm.new_sp()
    arm.assign(guid, sp, rg)
    assert_denied(arm.call("PUT", rg + "/providers/Microsoft.Authorization/roleAssignments/" + str(uuid.uuid4()),
                           sp, {"properties": {"roleDefinitionId": OWNER, "principalId": sp.object_id}}),
                  sp, "Microsoft.Authorization/roleAssignments/write", rg)


def test_a_role_moves_only_for_a_principal_with_write_at_its_old_and_new_scopes(arm: Arm) -> None:
    rg1, rg2 = arm.rg_path(arm.new_rg("sec-old")), arm.rg_path(arm.new_rg("sec-new"))
    guid, before = create_role(arm, [rg1])
    moved = role_body(before["properties"]["roleName"], [rg2], [RG_READ, "Microsoft.Resources/tags/read"])

    only_new = arm.new_sp()
    arm.assign(USER_ACCESS_ADMINISTRATOR, only_new, rg2)
    response = arm.call("PUT", arm.rd_path(rg2, guid), only_new, moved)
    # It cannot read the role (nothing at rg1): the denial names the role's id, not the group it lives in.
    assert_denied(response, only_new, RD_WRITE, f"{rg2}/providers/Microsoft.Authorization/roleDefinitions/{guid}")
    assert rg1.rsplit("/", 1)[-1] not in response.text
    assert_denied(arm.call("DELETE", arm.rd_path(rg2, guid), only_new), only_new, RD_DELETE,
                  f"{rg2}/providers/Microsoft.Authorization/roleDefinitions/{guid}")

    only_old = arm.new_sp()
    arm.assign(USER_ACCESS_ADMINISTRATOR, only_old, rg1)
    assert_denied(arm.call("PUT", arm.rd_path(rg1, guid), only_old, moved), only_old, RD_WRITE, rg2)
    assert arm.call("GET", arm.rd_path(arm.sub_path, guid), arm.admin).json() == before

    both = arm.new_sp()
    arm.assign(USER_ACCESS_ADMINISTRATOR, both, rg1)
    arm.assign(USER_ACCESS_ADMINISTRATOR, both, rg2)
    response = arm.call("PUT", arm.rd_path(rg2, guid), both, moved)
    assert response.status_code == 200, response.text
    after = arm.call("GET", arm.rd_path(arm.sub_path, guid), arm.admin).json()
    assert after["properties"]["assignableScopes"] == [rg2]
    assert after["properties"]["permissions"][0]["actions"] == [RG_READ, "Microsoft.Resources/tags/read"]
    # Now only rg2 holds it: the principal with rights there alone may delete it.
    assert_denied(arm.call("DELETE", arm.rd_path(rg1, guid), only_old), only_old, RD_DELETE,
                  f"{rg1}/providers/Microsoft.Authorization/roleDefinitions/{guid}")
    deleted = arm.call("DELETE", arm.rd_path(rg2, guid), only_new)
    assert deleted.status_code == 200 and deleted.json()["name"] == guid
    error_of(arm.call("GET", arm.rd_path(arm.sub_path, guid), arm.admin), 404, "RoleDefinitionDoesNotExist")


def test_deleting_an_unknown_role_is_204_only_with_the_right_at_the_scope(arm: Arm) -> None:
    """ARM's delete answers 204 for a role that is not there (azure-rest-api-specs RoleDefinitions_Delete)."""
    rg = arm.rg_path(arm.new_rg())
    uaa = arm.new_sp()
    arm.assign(USER_ACCESS_ADMINISTRATOR, uaa, rg)
    missing = str(uuid.uuid4())
    assert arm.call("DELETE", arm.rd_path(rg, missing), uaa).status_code == 204
    assert_denied(arm.call("DELETE", arm.rd_path(arm.sub_path, missing), uaa), uaa, RD_DELETE, arm.sub_path)


@pytest.fixture(name="nobody")
def nobody_fixture(arm: Arm) -> Iterator[Who]:
    """A signed-in principal of the tenant that holds no role anywhere."""
    yield arm.new_sp("sec-nobody")


def test_built_in_roles_can_never_be_overwritten_or_deleted(arm: Arm, nobody: Who) -> None:
    reader_before = arm.call("GET", f"{ROOT_ROLES}/{READER}", arm.admin).json()
    widened = role_body("Reader", [arm.sub_path], ["*"], ["*"])
    for who in (arm.admin, nobody):
        for at in (arm.sub_path, "/"):
            path = arm.rd_path(at, READER) if at != "/" else f"{ROOT_ROLES}/{READER}"
            error_of(arm.call("PUT", path, who, widened), 400, "InvalidRoleDefinition")
            message = error_of(arm.call("DELETE", path, who), 400, "InvalidRoleDefinition")
            assert "built-in" in message
    assert arm.call("GET", f"{ROOT_ROLES}/{READER}", arm.admin).json() == reader_before
    assert arm.call("GET", f"{ROOT_ROLES}/{OWNER}", nobody).status_code == 200


# ----------------------------------------------------------------------------- reads
def test_custom_roles_are_hidden_from_principals_without_role_definition_read(arm: Arm, nobody: Who) -> None:
    secret = arm.new_rg("sec-secret")
    secret_scope = arm.rg_path(secret)
    guid, role = create_role(arm, [secret_scope])
    unknown = str(uuid.uuid4())

    for scope in (arm.sub_path, "/", secret_scope):
        names, text = role_names(arm, scope, nobody)
        assert {OWNER, READER, USER_ACCESS_ADMINISTRATOR} <= set(names)  # built-ins: every signed-in principal
        assert guid not in names and secret not in text
        names, text = role_names(arm, scope, nobody, "type eq 'CustomRole'")
        assert guid not in names and secret not in text
    names, _ = role_names(arm, arm.sub_path, nobody, f"roleName eq '{role['properties']['roleName']}'")
    assert names == []
    # A hidden role answers as an unknown id does, so probing GUIDs tells nothing.
    for scope in (arm.sub_path, secret_scope):
        hidden = arm.call("GET", arm.rd_path(scope, guid), nobody)
        error_of(hidden, 404, "RoleDefinitionDoesNotExist")
        assert secret not in hidden.text
        error_of(arm.call("GET", arm.rd_path(scope, unknown), nobody), 404, "RoleDefinitionDoesNotExist")
    assert arm.call("GET", arm.rd_path(arm.sub_path, READER), nobody).json()["properties"]["roleName"] == "Reader"

    # A Reader of the subscription holds */read there: it sees the role, in lists and by id.
    reader = arm.new_sp("sec-reader")
    arm.assign(READER, reader, arm.sub_path)
    for scope in (arm.sub_path, "/", secret_scope):
        assert guid in role_names(arm, scope, reader)[0]
    for scope in (arm.sub_path, secret_scope):
        shown = arm.call("GET", arm.rd_path(scope, guid), reader)
        assert shown.status_code == 200, shown.text
        assert shown.json()["properties"] == role["properties"]


def test_a_group_reader_sees_the_roles_that_apply_at_its_group(arm: Arm) -> None:
    rg = arm.rg_path(arm.new_rg())
    other = arm.rg_path(arm.new_rg("sec-other"))
    at_sub, _ = create_role(arm, [arm.sub_path])
    at_group, _ = create_role(arm, [rg])
    elsewhere, _ = create_role(arm, [other])
    reader = arm.new_sp("sec-group-reader")
    arm.assign(READER, reader, rg)

    at_rg, text = role_names(arm, rg, reader)
    assert at_sub in at_rg and at_group in at_rg  # assignable at the group or above it
    assert elsewhere not in at_rg and other.rsplit("/", 1)[-1] not in text
    at_subscription, text = role_names(arm, arm.sub_path, reader)
    assert at_group in at_subscription  # below the subscription, where it may read
    assert at_sub not in at_subscription and elsewhere not in at_subscription  # no read at the subscription
    assert other.rsplit("/", 1)[-1] not in text
    assert arm.call("GET", arm.rd_path(rg, at_sub), reader).status_code == 200
    error_of(arm.call("GET", arm.rd_path(rg, elsewhere), reader), 404, "RoleDefinitionDoesNotExist")


# ----------------------------------------------------------------------------- checkAccess
def test_check_access_authorizes_before_it_trusts_the_body(arm: Arm, nobody: Who) -> None:
    rg = arm.rg_path(arm.new_rg())
    other = arm.new_sp()
    path = f"{rg}/providers/Microsoft.Authorization/checkAccess"

    # Asking about someone else needs roleAssignments/read, decided before anything else in the body counts.
    assert_denied(arm.call("POST", path, nobody, {"principalId": other.object_id}), nobody, RA_READ, rg)
    assert_denied(arm.call("POST", path, nobody, {"principalId": other.object_id.upper(), "action": 7}), nobody,
                  RA_READ, rg)
    # About itself, a principal with no role at all may always ask.
    own = arm.call("POST", path, nobody, {"action": RG_READ})
    assert own.status_code == 200, own.text
    assert own.json()["allowed"] is False and own.json()["principalId"] == nobody.object_id

    # The body is read bounded (16 KiB), for the administrator too, declared length or chunked.
    padded = b'{"action": "' + b"a" * 20_000 + b'"}'
    for who in (nobody, arm.admin):
        error_of(arm.call("POST", path, who, content=padded), 413, "RequestContentTooLarge")
    # Under the bound, brackets nested past Python's recursion limit are a 400, not a crash.
    error_of(arm.call("POST", path, nobody, content=b"[" * 10_000), 400, "InvalidRequestContent")
    # A lone surrogate is no text: 400, not a 500.
    error_of(arm.call("POST", path, nobody, content=b'{"principalId": "\\ud800"}'), 400, "InvalidRequestContent")

    def chunks() -> Iterator[bytes]:
        yield b'{"action": "'
        for _ in range(40):
            yield b"a" * 1024
        yield b'"}'

    chunked = arm.client.post(path, params={"api-version": "2022-04-01"}, content=chunks(),
                              headers={"Authorization": f"Bearer {nobody.token}", "Content-Type": "application/json"})
    error_of(chunked, 413, "RequestContentTooLarge")
