"""Privilege escalation through the resource manager (and what it grants on the data plane): who may create role
assignments, that a revoked grant (assignment, user, service principal, group membership) stops working at the
next request, and path tricks (`..`, encoded slashes, double slashes, case and Unicode case aliases) that try to
reach a scope the caller holds nothing on. Refusals are ARM's 403 AuthorizationFailed, naming the client, its
object id, the action and the scope, and the data plane's 401 PermissionDenied.

These tests run against the resource-manager tests' private Cielo (the `arm` fixture of tests/e2e/conftest_arm.py):
they change role assignments at subscription scope and delete principals.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from arm_support import (
    COGNITIVE_SERVICES_CONTRIBUTOR,
    COGNITIVE_SERVICES_USER,
    CONTRIBUTOR,
    OWNER,
    PASSWORD,
    RA_WRITE,
    READER,
    RG_READ,
    USER_ACCESS_ADMINISTRATOR,
    Arm,
    Who,
    assert_denied,
    error_of,
    new_name,
)

from support.server import CLI_CLIENT_ID

pytest_plugins = ("conftest_arm",)  # the `arm` fixture: one private Cielo, shared with the test_arm_* modules
pytestmark = pytest.mark.e2e

ACCOUNT_WRITE = "Microsoft.CognitiveServices/accounts/write"
OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"  # Cognitive Services OpenAI User
OPENAI_CONTRIBUTOR = "a001fd3d-188f-4b5d-821b-7da978bf7442"  # Cognitive Services OpenAI Contributor
MODELS_ACTION = "Microsoft.CognitiveServices/accounts/OpenAI/models/read"


def assignment_body(role: str, principal: str) -> dict[str, object]:
    return {"properties": {"roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{role}",
                           "principalId": principal}}


def held(arm: Arm, who: Who) -> list[tuple[str, str]]:
    """(role GUID, scope) of every assignment of `who` in the subscription."""
    return sorted((a["properties"]["roleDefinitionId"].rsplit("/", 1)[-1], a["properties"]["scope"])
                  for a in arm.assignments(arm.sub_path, f"principalId eq '{who.object_id}'"))


# ----------------------------------------------------------------------------- who may assign roles
@pytest.mark.parametrize("at", ["resourceGroup", "subscription"])
@pytest.mark.parametrize("role", [COGNITIVE_SERVICES_USER, CONTRIBUTOR, READER, COGNITIVE_SERVICES_CONTRIBUTOR,
                                  OPENAI_CONTRIBUTOR, OPENAI_USER],
                         ids=["cognitive-services-user", "contributor", "reader", "cognitive-services-contributor",
                              "cognitive-services-openai-contributor", "cognitive-services-openai-user"])
def test_non_administrators_cannot_create_role_assignments(arm: Arm, role: str, at: str) -> None:
    rg = arm.new_rg()
    account = arm.account_path(rg, arm.new_account(rg))
    rg_scope = arm.rg_path(rg)
    user = arm.new_user() if role in (COGNITIVE_SERVICES_USER, CONTRIBUTOR, READER) else arm.new_sp()
    victim = arm.new_sp()
    arm.assign(role, user, rg_scope if at == "resourceGroup" else arm.sub_path)
    before = held(arm, user)

    for scope in (rg_scope, account, arm.sub_path):
        for target, granted in ((user, OWNER), (user, USER_ACCESS_ADMINISTRATOR), (victim, CONTRIBUTOR)):
            response = arm.call("PUT", arm.ra_path(scope, str(uuid.uuid4())), user,
                                assignment_body(granted, target.object_id))
            assert_denied(response, user, RA_WRITE, scope)
    # Nor a custom role that would let them.
    custom = {"properties": {"roleName": f"escalate-{uuid.uuid4()}", "assignableScopes": [rg_scope],
                             "permissions": [{"actions": ["Microsoft.Authorization/*"]}]}}
    assert_denied(arm.call("PUT", arm.rd_path(rg_scope, str(uuid.uuid4())), user, custom), user,
                  "Microsoft.Authorization/roleDefinitions/write", rg_scope)
    assert held(arm, user) == before
    assert held(arm, victim) == []


def test_contributor_cannot_make_itself_owner(arm: Arm) -> None:
    user = arm.new_user()
    admin_grant = arm.assignments(arm.sub_path, f"principalId eq '{arm.admin.object_id}'")[0]
    arm.assign(CONTRIBUTOR, user, arm.sub_path)
    rg = arm.new_rg()
    # A real Contributor: it may create and change resources...
    account = arm.account_path(rg, "contrib-made")
    response = arm.call("PUT", account, user, {"location": "local", "kind": "OpenAI", "sku": {"name": "S0"},
                                               "properties": {"customSubDomainName": f"cm-{uuid.uuid4().hex[:8]}"}})
    assert response.status_code == 201, response.text
    assert response.json()["systemData"]["createdBy"] == user.display
    # ...but not grant anything: Owner for itself at any scope, or remove the administrator's Owner.
    for scope in (arm.sub_path, arm.rg_path(rg), account):
        assert_denied(arm.call("PUT", arm.ra_path(scope, str(uuid.uuid4())), user,
                               assignment_body(OWNER, user.object_id)), user, RA_WRITE, scope)
    assert_denied(arm.call("DELETE", admin_grant["id"], user), user, "Microsoft.Authorization/roleAssignments/delete",
                  arm.sub_path)
    assert [(r, s) for r, s in held(arm, user)] == [(CONTRIBUTOR, arm.sub_path)]
    assert arm.call("GET", admin_grant["id"], arm.admin).status_code == 200


def test_user_access_administrator_can_assign_roles(arm: Arm) -> None:
    rg = arm.new_rg()
    rg_scope = arm.rg_path(rg)
    uaa, other = arm.new_user(), arm.new_sp()
    arm.assign(USER_ACCESS_ADMINISTRATOR, uaa, rg_scope)
    account = arm.account_path(rg, "uaa-made")
    body = {"location": "local", "kind": "OpenAI", "sku": {"name": "S0"},
            "properties": {"customSubDomainName": f"uaa-{uuid.uuid4().hex[:8]}"}}
    assert_denied(arm.call("PUT", account, uaa, body), uaa, ACCOUNT_WRITE, account)

    # It may grant others a role at its scope, and make itself Owner there...
    name = str(uuid.uuid4())
    response = arm.call("PUT", arm.ra_path(rg_scope, name), uaa, assignment_body(READER, other.object_id))
    assert response.status_code == 201, response.text
    assert response.json()["properties"]["createdBy"] == uaa.object_id
    assert arm.call("GET", rg_scope, other).status_code == 200
    response = arm.call("PUT", arm.ra_path(rg_scope, str(uuid.uuid4())), uaa, assignment_body(OWNER, uaa.object_id))
    assert response.status_code == 201, response.text
    assert arm.call("PUT", account, uaa, body).status_code == 201
    assert arm.call("DELETE", arm.ra_path(rg_scope, name), uaa).status_code == 200
    assert_denied(arm.call("GET", rg_scope, other), other, RG_READ, rg_scope)
    # ...but not above it.
    assert_denied(arm.call("PUT", arm.ra_path(arm.sub_path, str(uuid.uuid4())), uaa,
                           assignment_body(OWNER, uaa.object_id)), uaa, RA_WRITE, arm.sub_path)
    other_rg = arm.rg_path("cielo-rg")
    assert_denied(arm.call("PUT", arm.ra_path(other_rg, str(uuid.uuid4())), uaa,
                           assignment_body(READER, other.object_id)), uaa, RA_WRITE, other_rg)


def test_resource_group_owner_can_assign_only_inside_its_group(arm: Arm) -> None:
    rg = arm.rg_path(arm.new_rg())
    owner, other = arm.new_sp(), arm.new_sp()
    arm.assign(OWNER, owner, rg)
    assert arm.call("PUT", arm.ra_path(rg, str(uuid.uuid4())), owner,
                    assignment_body(READER, other.object_id)).status_code == 201
    for scope in (arm.sub_path, arm.rg_path("cielo-rg")):
        assert_denied(arm.call("PUT", arm.ra_path(scope, str(uuid.uuid4())), owner,
                               assignment_body(READER, other.object_id)), owner, RA_WRITE, scope)
    # A custom role it defines cannot be made assignable above its group.
    custom = {"properties": {"roleName": f"wide-{uuid.uuid4()}", "assignableScopes": [rg, arm.sub_path],
                             "permissions": [{"actions": ["*"]}]}}
    assert_denied(arm.call("PUT", arm.rd_path(rg, str(uuid.uuid4())), owner, custom), owner,
                  "Microsoft.Authorization/roleDefinitions/write", arm.sub_path)
    # An assignment elsewhere cannot be reached by naming it under the owner's own scope.
    admin_grant = arm.assignments(arm.sub_path, f"principalId eq '{arm.admin.object_id}'")[0]
    assert arm.call("DELETE", arm.ra_path(rg, admin_grant["name"]), owner).status_code == 204
    error_of(arm.call("GET", arm.ra_path(rg, admin_grant["name"]), owner), 404, "RoleAssignmentNotFound")
    assert arm.call("GET", admin_grant["id"], arm.admin).status_code == 200


# ----------------------------------------------------------------------------- revocation is immediate
def test_deleted_role_assignment_stops_granting_at_once(arm: Arm) -> None:
    rg = arm.rg_path(arm.new_rg())
    user = arm.new_user()
    name = arm.assign(READER, user, rg)
    assert arm.call("GET", rg, user).status_code == 200
    arm.unassign(rg, name)
    assert_denied(arm.call("GET", rg, user), user, RG_READ, rg)
    assert arm.call("GET", "/subscriptions", user).json()["value"] == []


def test_deleted_user_is_denied_at_once_and_its_assignments_disappear(arm: Arm) -> None:
    rg = arm.rg_path(arm.new_rg())
    user = arm.new_user()
    arm.assign(OWNER, user, rg)
    arm.assign(READER, user, arm.sub_path)
    assert arm.call("GET", rg, user).status_code == 200
    arm.graph("DELETE", f"/users/{user.object_id}")

    # The token is still unexpired; the principal behind it is gone.
    for method, path, body in [("GET", rg, None), ("PUT", rg, {"location": "local"}),
                               ("PUT", arm.ra_path(rg, str(uuid.uuid4())), assignment_body(OWNER, user.object_id))]:
        response = arm.call(method, path, user, body)
        assert response.status_code in (401, 403), response.text
        assert response.json()["error"]["code"] in ("AuthorizationFailed", "InvalidAuthenticationToken")
    assert arm.call("GET", "/subscriptions", user).json().get("value", []) == []
    assert held(arm, user) == []
    assert arm.assignments(rg, f"assignedTo('{user.object_id}')") == []


@pytest.mark.parametrize("delete", ["servicePrincipal", "application"])
def test_deleted_service_principal_is_denied_at_once(arm: Arm, delete: str) -> None:
    rg = arm.rg_path(arm.new_rg())
    sp = arm.new_sp()
    arm.assign(CONTRIBUTOR, sp, rg)
    assert arm.call("GET", rg, sp).status_code == 200
    if delete == "servicePrincipal":
        arm.graph("DELETE", f"/servicePrincipals/{sp.object_id}")
    else:
        arm.graph("DELETE", f"/applications/{sp.app_object_id}")
    response = arm.call("GET", rg, sp)
    assert response.status_code in (401, 403), response.text
    if response.status_code == 403:
        assert_denied(response, sp, RG_READ, rg)
    assert held(arm, sp) == []


def test_group_membership_grants_and_removal_revokes_at_once(arm: Arm) -> None:
    rg = arm.rg_path(arm.new_rg())
    user = arm.new_user()
    group = arm.new_group()
    arm.assign(READER, group, rg, principal_type="Group")
    assert_denied(arm.call("GET", rg, user), user, RG_READ, rg)

    arm.graph("POST", f"/groups/{group}/members/$ref",
              {"@odata.id": f"{arm.server.base_url}/v1.0/directoryObjects/{user.object_id}"})
    assert arm.call("GET", rg, user).status_code == 200
    assert [s["subscriptionId"] for s in arm.call("GET", "/subscriptions", user).json()["value"]] == [arm.sub]

    arm.graph("DELETE", f"/groups/{group}/members/{user.object_id}/$ref")
    assert_denied(arm.call("GET", rg, user), user, RG_READ, rg)


def test_group_membership_is_explained_and_listed(arm: Arm) -> None:
    rg = arm.rg_path(arm.new_rg())
    sp = arm.new_sp()
    group = arm.new_group()
    name = arm.assign(READER, group, rg)
    arm.graph("POST", f"/groups/{group}/members/$ref",
              {"@odata.id": f"{arm.server.base_url}/v1.0/directoryObjects/{sp.object_id}"})
    assert [a["name"] for a in arm.assignments(rg, f"assignedTo('{sp.object_id}')")] == [name]
    arm.graph("DELETE", f"/groups/{group}/members/{sp.object_id}/$ref")
    assert arm.assignments(rg, f"assignedTo('{sp.object_id}')") == []
    assert_denied(arm.call("GET", rg, sp), sp, RG_READ, rg)


def test_deleted_group_loses_its_assignments(arm: Arm) -> None:
    rg = arm.rg_path(arm.new_rg())
    group = arm.new_group()
    arm.assign(CONTRIBUTOR, group, rg)
    assert len(arm.assignments(rg, f"principalId eq '{group}'")) == 1
    arm.graph("DELETE", f"/groups/{group}")
    assert arm.assignments(rg, f"principalId eq '{group}'") == []


# ----------------------------------------------------------------------------- scope tricks in the URL
def test_path_tricks_never_reach_another_scope(arm: Arm) -> None:
    mine = arm.new_rg()
    theirs = arm.new_rg()
    their_account = arm.new_account(theirs)
    owner = arm.new_sp()
    arm.assign(OWNER, owner, arm.rg_path(mine))
    sub = arm.sub_path
    ra = "providers/Microsoft.Authorization/roleAssignments"
    reads = [
        f"{sub}/resourceGroups/{mine}/../{theirs}",
        f"{sub}/resourceGroups/{mine}/%2e%2e/{theirs}",
        f"{sub}/resourceGroups/{mine}%2F..%2F{theirs}",
        f"{sub}/resourceGroups/{mine}/./../{theirs}/providers/Microsoft.CognitiveServices/accounts/{their_account}",
        f"{sub}/resourceGroups/{mine}/providers/Microsoft.CognitiveServices/accounts/%2e%2e/%2e%2e/%2e%2e/%2e%2e/"
        f"{theirs}",
        f"{sub}/resourceGroups/{mine}/resources/../../{theirs}",
        f"{sub}/resourceGroups/{mine}/{ra}/../../../../{theirs}/{ra}",
        f"{sub}/resourceGroups/{mine}/%2e%2e/%2e%2e/{ra}",
    ]
    for path in reads:
        status, text = arm.raw("GET", path, owner)
        assert status in (400, 404), f"{path}: {status} {text}"
    body = f'{{"properties": {{"roleDefinitionId": "{OWNER}", "principalId": "{owner.object_id}"}}}}'.encode()
    writes = [
        f"{sub}/resourceGroups/{mine}/../{theirs}/{ra}/{uuid.uuid4()}",
        f"{sub}/resourceGroups/{mine}/%2e%2e/{theirs}/{ra}/{uuid.uuid4()}",
        f"{sub}/resourceGroups/{mine}%2F..%2F..%2F/{ra}/{uuid.uuid4()}",
        f"{sub}/resourceGroups/{mine}/%2e%2e/%2e%2e/{ra}/{uuid.uuid4()}",
        f"{sub}/resourceGroups/{mine}/{ra}/{uuid.uuid4()}/../../../../../{ra}/{uuid.uuid4()}",
        f"{sub}/resourceGroups/{mine}/{ra}/{uuid.uuid4()}/%2e%2e/{uuid.uuid4()}",
        f"{sub}/resourceGroups/{mine}/{ra}/{uuid.uuid4()}%2F..%2F..%2F..%2F..",
    ]
    for path in writes:
        status, text = arm.raw("PUT", path, owner, body)
        assert status in (400, 404), f"{path}: {status} {text}"
    # Double slashes collapse into the plain path, which is authorized as such.
    status, _ = arm.raw("GET", f"{sub}/resourceGroups//{theirs}", owner)
    assert status == 403
    # Nothing was granted: the Owner of one group holds exactly that, and nothing on the other.
    assert held(arm, owner) == [(OWNER, arm.rg_path(mine))]
    assert_denied(arm.call("GET", arm.rg_path(theirs), owner), owner, RG_READ, arm.rg_path(theirs))


def test_unicode_case_aliases_are_refused(arm: Arm) -> None:
    """The Kelvin sign (U+212A) lower-cases to `k`: `\u212aeep` must not become a second name of `keep`."""
    name = f"keep-{uuid.uuid4().hex[:6]}"
    arm.call("PUT", arm.rg_path(name), arm.admin, {"location": "local"})
    alias = arm.rg_path("\u212a" + name[1:])
    sp = arm.new_sp()
    response = arm.call("PUT", arm.ra_path(alias, str(uuid.uuid4())), arm.admin,
                        {"properties": {"roleDefinitionId": OWNER, "principalId": sp.object_id}})
    error_of(response, 400, "InvalidResourceName")
    for method in ("GET", "PUT", "DELETE"):
        error_of(arm.call(method, alias, arm.admin, {"location": "local"}), 400, "InvalidResourceName")
    assert arm.call("GET", arm.rg_path(name), arm.admin).status_code == 200
    custom = {"properties": {"roleName": f"alias-{uuid.uuid4()}", "assignableScopes": [alias],
                             "permissions": [{"actions": ["*/read"]}]}}
    error_of(arm.call("PUT", arm.rd_path(arm.sub_path, str(uuid.uuid4())), arm.admin, custom), 400,
             "InvalidResourceName")
    assert held(arm, sp) == []


def test_case_aliases_name_the_same_scope_and_grant_nothing_more(arm: Arm) -> None:
    """ARM names are case-insensitive: another spelling of a group is that group, authorized as such."""
    mine, theirs = arm.new_rg(), arm.new_rg()
    owner = arm.new_sp()
    arm.assign(OWNER, owner, arm.rg_path(mine))
    sub = arm.sub_path
    for alias in (f"{sub}/resourcegroups/{theirs.upper()}", f"{sub}/RESOURCEGROUPS/{theirs.title()}",
                  f"/subscriptions/{arm.sub.upper()}/resourceGroups/{theirs}"):
        error_of(arm.call("GET", alias, owner), 403, "AuthorizationFailed")
        error_of(arm.call("PUT", arm.ra_path(alias, str(uuid.uuid4())), owner,
                          assignment_body(OWNER, owner.object_id)), 403, "AuthorizationFailed")
    # Azure also routes `/SUBSCRIPTIONS/…`; Cielo does not (404), which grants nothing either.
    alias = f"/SUBSCRIPTIONS/{arm.sub}/resourceGroups/{theirs}"
    assert arm.call("GET", alias, owner).status_code in (403, 404)
    assert arm.call("PUT", arm.ra_path(alias, str(uuid.uuid4())), owner,
                    assignment_body(OWNER, owner.object_id)).status_code in (403, 404)
    assert arm.call("GET", f"{sub}/RESOURCEGROUPS/{mine.upper()}", owner).status_code == 200
    assert held(arm, owner) == [(OWNER, arm.rg_path(mine))]


# ----------------------------------------------------------------------------- revocation reaches the data plane
def _data_plane_principal(arm: Arm, kind: str) -> Who:
    """A user or service principal holding a token for the data plane (https://cognitiveservices.azure.com)."""
    scope = "https://cognitiveservices.azure.com/.default"
    if kind == "user":
        upn = f"{new_name('dp-user')}@cielo.local"
        user = arm.graph("POST", "/users", {"userPrincipalName": upn, "displayName": "dp",
                                            "passwordProfile": {"password": PASSWORD}})
        body = arm.server.token({"client_id": CLI_CLIENT_ID, "grant_type": "password", "username": upn,
                                 "password": PASSWORD, "scope": scope})
        return Who(user["id"], upn, str(body["access_token"]))
    app = arm.graph("POST", "/applications", {"displayName": new_name("dp-sp")})
    secret = arm.graph("POST", f"/applications/{app['id']}/addPassword",
                       {"passwordCredential": {"displayName": "dp"}})["secretText"]
    sp = arm.graph("POST", "/servicePrincipals", {"appId": app["appId"]})
    body = arm.server.token({"client_id": app["appId"], "client_secret": secret,
                             "grant_type": "client_credentials", "scope": scope})
    return Who(sp["id"], app["appId"], str(body["access_token"]), "ServicePrincipal", app["id"])


def _list_models(arm: Arm, account: str, who: Who) -> httpx.Response:
    return arm.client.get(f"/accounts/{account}/openai/v1/models", headers={"Authorization": f"Bearer {who.token}"})


@pytest.mark.parametrize("revoke", ["assignment", "group-membership", "user", "service-principal", "application"])
def test_revocation_reaches_the_data_plane_at_the_next_request(arm: Arm, revoke: str) -> None:
    """The data plane serves role assignments and principals from in-memory indexes and caches validated tokens:
    a revocation must still apply to the very next request, with the token unexpired."""
    rg = arm.new_rg()
    account = arm.new_account(rg)
    scope = arm.account_path(rg, account)
    who = _data_plane_principal(arm, "user" if revoke == "user" else "sp")
    group = arm.new_group() if revoke == "group-membership" else None
    name = arm.assign(OPENAI_USER, group or who, scope, principal_type="Group" if group else None)
    if group:
        arm.graph("POST", f"/groups/{group}/members/$ref",
                  {"@odata.id": f"{arm.server.base_url}/v1.0/directoryObjects/{who.object_id}"})
    granted = _list_models(arm, account, who)
    assert granted.status_code == 200, granted.text

    if revoke == "assignment":
        arm.unassign(scope, name)
    elif revoke == "group-membership":
        arm.graph("DELETE", f"/groups/{group}/members/{who.object_id}/$ref")
    elif revoke == "user":
        arm.graph("DELETE", f"/users/{who.object_id}")
    elif revoke == "service-principal":
        arm.graph("DELETE", f"/servicePrincipals/{who.object_id}")
    else:
        arm.graph("DELETE", f"/applications/{who.app_object_id}")

    refused = _list_models(arm, account, who)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "PermissionDenied", refused.text
    assert MODELS_ACTION in refused.json()["error"]["message"]
