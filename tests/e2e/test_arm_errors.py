"""The resource manager's refusals: ARM error codes for versions, bodies, names and missing things;
401 for bad tokens; 403 AuthorizationFailed with Azure's message; and tenant isolation, both between
two Cielo servers and between two tenants of one Cielo."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from arm_support import (
    ARM_SCOPE,
    MODEL,
    OWNER,
    PASSWORD,
    READER,
    RG_READ,
    Arm,
    Who,
    assert_denied,
    assert_unauthenticated,
    error_of,
)

from support.server import CLI_CLIENT_ID, CieloServer, start_server

pytest_plugins = ("conftest_arm",)  # the `arm` fixture: one private Cielo for all test_arm_* modules
pytestmark = pytest.mark.e2e

MISSING_SUB = "/subscriptions/00000000-0000-0000-0000-000000000000"


# ----------------------------------------------------------------------------- missing things
def test_missing_things_have_arm_not_found_codes(arm: Arm) -> None:
    rg = arm.new_rg()
    account = arm.new_account(rg)
    gone = arm.rg_path("no-such-group")
    cases = [
        ("GET", MISSING_SUB, "SubscriptionNotFound"),
        ("GET", f"{MISSING_SUB}/resourcegroups", "SubscriptionNotFound"),
        ("PUT", f"{MISSING_SUB}/resourceGroups/x", "SubscriptionNotFound"),
        ("GET", f"{MISSING_SUB}/providers/Microsoft.CognitiveServices/accounts", "SubscriptionNotFound"),
        ("GET", arm.ra_path(MISSING_SUB), "SubscriptionNotFound"),
        ("GET", gone, "ResourceGroupNotFound"),
        ("PATCH", gone, "ResourceGroupNotFound"),
        ("DELETE", gone, "ResourceGroupNotFound"),
        ("GET", gone + "/resources", "ResourceGroupNotFound"),
        ("GET", gone + "/providers/Microsoft.CognitiveServices/accounts", "ResourceGroupNotFound"),
        ("GET", arm.account_path("no-such-group", "a1"), "ResourceGroupNotFound"),
        ("PUT", arm.account_path("no-such-group", "a1"), "ResourceGroupNotFound"),
        ("GET", arm.deployment_path("no-such-group", "a1", "d1"), "ResourceGroupNotFound"),
        ("GET", arm.account_path(rg, "no-such-account"), "ResourceNotFound"),
        ("PATCH", arm.account_path(rg, "no-such-account"), "ResourceNotFound"),
        ("POST", arm.account_path(rg, "no-such-account") + "/listKeys", "ResourceNotFound"),
        ("GET", arm.account_path(rg, "no-such-account") + "/deployments", "ResourceNotFound"),
        ("PUT", arm.deployment_path(rg, "no-such-account", "d1"), "ResourceNotFound"),
        ("GET", arm.deployment_path(rg, account, "no-such-deployment"), "ResourceNotFound"),
        ("PATCH", arm.deployment_path(rg, account, "no-such-deployment"), "ResourceNotFound"),
        ("GET", arm.ra_path(arm.rg_path(rg), str(uuid.uuid4())), "RoleAssignmentNotFound"),
        ("GET", f"{arm.rg_path(rg)}/providers/Microsoft.Sql/servers/s1", "InvalidResourceType"),
        ("GET", f"{arm.account_path(rg, account)}/commitmentPlans", "InvalidResourceType"),
        ("GET", f"{arm.sub_path}/providers/Microsoft.Compute/disks", "InvalidResourceType"),
        ("GET", "/providers/Microsoft.Compute/operations", "InvalidResourceNamespace"),
        ("GET", f"{arm.rg_path(rg)}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}/x",
         "InvalidResourceType"),
    ]
    body = {"location": "local", "kind": "OpenAI", "sku": {"name": "S0"},
            "properties": {"model": MODEL}}
    for method, path, code in cases:
        error_of(arm.call(method, path, arm.admin, body if method in ("PUT", "PATCH") else None), 404, code)


def test_callers_without_access_learn_nothing_about_existence(arm: Arm) -> None:
    sp = arm.new_sp()
    for rg in ("cielo-rg", "no-such-group"):
        path = arm.rg_path(rg)
        assert_denied(arm.call("GET", path, sp), sp, RG_READ, path)
    account = arm.account_path("cielo-rg", "cielo-openai")
    missing = arm.account_path("cielo-rg", "no-such-account")
    for path in (account, missing):
        assert_denied(arm.call("GET", path, sp), sp, "Microsoft.CognitiveServices/accounts/read", path)


# ----------------------------------------------------------------------------- two tenants in one Cielo
# (a second server too: its tokens are signed by other keys than `arm`'s)
@dataclass
class TwoTenants:
    arm: Arm  # tenant A: the one bootstrap made
    tenant_b: str
    sub_b: str
    owner_b: Who


def _seed_second_tenant(data_dir: Path) -> tuple[str, str, str, str]:
    """Tenant B with a subscription, a resource group and an Owner, written with Cielo's own services (Cielo has
    no API to create a tenant; bootstrap makes the first one)."""
    from cielo.api.app import build_services
    from cielo.control.resources import ResourceWriter
    from cielo.core.ids import new_guid
    from cielo.settings import Settings
    from cielo.store.models import Subscription, Tenant
    from cielo.store.resources import StoredAssignment

    services = build_services(Settings(data_dir=data_dir))
    now = services.clock.now()
    tenant = Tenant(new_guid(), "Other", "other.local", now)
    services.directory.repo.create_tenant(tenant)
    sub = Subscription(new_guid(), tenant.id, "Other Subscription", "Enabled")
    services.directory.repo.create_subscription(sub)
    upn = "owner@other.local"
    owner = services.directory.create_user(tenant, upn, "Other Owner", PASSWORD)
    services.access.add_assignment(StoredAssignment(
        name=str(uuid.uuid4()), scope=f"/subscriptions/{sub.id}", tenant_id=tenant.id, role_definition_name=OWNER,
        principal_id=owner.object_id, principal_type="User", description=None, condition=None,
        condition_version=None, created_on=now, updated_on=now, created_by=None, updated_by=None))
    services.resources.put_group(sub.id, "other-rg", {"location": "local"}, ResourceWriter(upn, "User"))
    return tenant.id, sub.id, upn, owner.object_id


@pytest.fixture(scope="module")
def two_tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoTenants]:
    data_dir = tmp_path_factory.mktemp("arm-tenants") / "data"
    server: CieloServer = start_server(data_dir)
    try:
        # The running server sees the new tenant through its change markers, as it sees any directory write.
        tenant_b, sub_b, upn_b, owner_id = _seed_second_tenant(data_dir)
        client = Arm(server)
        token = server.token({"client_id": CLI_CLIENT_ID, "grant_type": "password", "username": upn_b,
                              "password": PASSWORD, "scope": ARM_SCOPE}, tenant=tenant_b)["access_token"]
        assert [t["tenantId"] for t in client.call("GET", "/tenants", token).json()["value"]] == [tenant_b]
        yield TwoTenants(client, tenant_b, sub_b, Who(owner_id, upn_b, token))
        client.close()
    finally:
        server.stop()


def test_a_tenant_b_token_cannot_see_or_touch_tenant_a(two_tenants: TwoTenants) -> None:
    arm, owner_b = two_tenants.arm, two_tenants.owner_b
    subs = arm.call("GET", "/subscriptions", owner_b).json()["value"]
    assert [s["subscriptionId"] for s in subs] == [two_tenants.sub_b]
    assert arm.call("GET", f"/subscriptions/{two_tenants.sub_b}/resourceGroups/other-rg", owner_b).status_code == 200

    for method, path, body in [
        ("GET", arm.sub_path, None),
        ("GET", arm.rg_path("cielo-rg"), None),
        ("PUT", arm.rg_path("planted"), {"location": "local"}),
        ("GET", arm.account_path("cielo-rg", "cielo-openai"), None),
        ("POST", arm.account_path("cielo-rg", "cielo-openai") + "/listKeys", None),
        ("GET", arm.ra_path(arm.sub_path), None),
        ("PUT", arm.ra_path(arm.sub_path, str(uuid.uuid4())),
         {"properties": {"roleDefinitionId": OWNER, "principalId": owner_b.object_id}}),
        ("POST", f"{arm.sub_path}/providers/Microsoft.Authorization/checkAccess", {"action": RG_READ}),
    ]:
        message = error_of(arm.call(method, path, owner_b, body), 401, "InvalidAuthenticationTokenTenant")
        assert f"must match the tenant '{arm.tenant}'" in message
    error_of(arm.call("GET", arm.rg_path("planted"), arm.admin), 404, "ResourceGroupNotFound")
    assert arm.assignments(arm.sub_path, f"principalId eq '{owner_b.object_id}'") == []
    # Root-scope listings do not cross tenants either.
    assert arm.call("GET", "/providers/Microsoft.Authorization/roleAssignments", owner_b).status_code == 403


def test_tenant_a_cannot_see_or_touch_tenant_b(two_tenants: TwoTenants) -> None:
    arm, owner_b = two_tenants.arm, two_tenants.owner_b
    sub_b = f"/subscriptions/{two_tenants.sub_b}"
    assert [s["subscriptionId"] for s in arm.call("GET", "/subscriptions", arm.admin).json()["value"]] == [arm.sub]
    assert [t["tenantId"] for t in arm.call("GET", "/tenants", arm.admin).json()["value"]] == [arm.tenant]
    for method, path in [("GET", sub_b), ("GET", f"{sub_b}/resourceGroups/other-rg"),
                         ("DELETE", f"{sub_b}/resourceGroups/other-rg"), ("GET", arm.ra_path(sub_b))]:
        error_of(arm.call(method, path, arm.admin), 401, "InvalidAuthenticationTokenTenant")
    assert arm.call("GET", f"{sub_b}/resourceGroups/other-rg", owner_b).status_code == 200

    # Tenant B's principals do not exist for tenant A: no assignment, and checkAccess does not tell.
    rg = arm.rg_path("cielo-rg")
    response = arm.call("PUT", arm.ra_path(rg, str(uuid.uuid4())), arm.admin,
                        {"properties": {"roleDefinitionId": READER, "principalId": owner_b.object_id}})
    error_of(response, 400, "PrincipalNotFound")
    explained = arm.call("POST", f"{rg}/providers/Microsoft.Authorization/checkAccess", arm.admin,
                         {"action": RG_READ, "principalId": owner_b.object_id}).json()
    unknown = arm.call("POST", f"{rg}/providers/Microsoft.Authorization/checkAccess", arm.admin,
                       {"action": RG_READ, "principalId": str(uuid.uuid4())}).json()
    assert explained["allowed"] is False and explained["reason"] == unknown["reason"]
    assert arm.assignments(rg, f"assignedTo('{owner_b.object_id}')") == []


# ----------------------------------------------------------------------------- two servers
def test_tokens_of_another_cielo_are_not_accepted(arm: Arm, two_tenants: TwoTenants) -> None:
    """Another Cielo's administrator (same UPN and password) holds a token signed by that server's keys."""
    other_server = two_tenants.arm
    foreign = other_server.admin
    secret_bits = [arm.sub, arm.tenant, "cielo-rg", "Cielo Subscription"]
    for method, path in [("GET", "/subscriptions"), ("GET", "/tenants"), ("GET", arm.sub_path),
                         ("GET", arm.rg_path("cielo-rg")), ("GET", arm.ra_path(arm.sub_path)),
                         ("PUT", arm.ra_path(arm.rg_path("cielo-rg"), str(uuid.uuid4())))]:
        response = arm.call(method, path, foreign, {"properties": {"roleDefinitionId": OWNER,
                                                                   "principalId": foreign.object_id}})
        assert_unauthenticated(response)
        assert not any(bit in response.text for bit in secret_bits)
    # And B knows nothing of A's subscription.
    error_of(other_server.call("GET", arm.sub_path, foreign), 404, "SubscriptionNotFound")
    assert arm.assignments(arm.sub_path, f"principalId eq '{foreign.object_id}'") == []
