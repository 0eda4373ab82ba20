"""The resource manager's refusals: ARM error codes for versions, bodies, names and missing things;
401 for bad tokens; 403 AuthorizationFailed with Azure's message; and tenant isolation, both between
two Cielo servers and between two tenants of one Cielo."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    new_name,
)

from support.server import CLI_CLIENT_ID, CieloServer, start_server

pytest_plugins = ("conftest_arm",)  # the `arm` fixture: one private Cielo for all test_arm_* modules
pytestmark = pytest.mark.e2e

MISSING_SUB = "/subscriptions/00000000-0000-0000-0000-000000000000"


# ----------------------------------------------------------------------------- api-version
def test_api_version_is_required(arm: Arm) -> None:
    routes = [("GET", "/subscriptions"), ("GET", "/tenants"), ("GET", arm.sub_path),
              ("PUT", arm.rg_path("no-version")), ("GET", arm.ra_path(arm.sub_path)),
              ("POST", f"{arm.sub_path}/providers/Microsoft.Authorization/checkAccess")]
    for method, path in routes:
        for who in (arm.admin, None):
            response = arm.call(method, path, who, {"location": "local"}, api_version=None)
            message = error_of(response, 400, "MissingApiVersionParameter")
            assert "api-version" in message
        for bad in ("bogus", "latest", "2022-12-01;drop", "2" * 40):
            error_of(arm.call(method, path, arm.admin, {"location": "local"}, api_version=bad), 400,
                     "InvalidApiVersionParameter")
    error_of(arm.call("GET", arm.rg_path("no-version"), arm.admin), 404, "ResourceGroupNotFound")


# ----------------------------------------------------------------------------- bodies and names
def test_malformed_bodies_are_refused_and_change_nothing(arm: Arm) -> None:
    rg = arm.new_rg()
    account = arm.new_account(rg)
    targets = [
        ("PUT", arm.rg_path(new_name("json"))),
        ("PATCH", arm.rg_path(rg)),
        ("PUT", arm.account_path(rg, new_name("json"))),
        ("PUT", arm.deployment_path(rg, account, "json")),
        ("PUT", arm.ra_path(arm.rg_path(rg), str(uuid.uuid4()))),
        ("PUT", arm.rd_path(arm.sub_path, str(uuid.uuid4()))),
        ("POST", f"{arm.rg_path(rg)}/providers/Microsoft.Authorization/checkAccess"),
        ("POST", arm.account_path(rg, account) + "/regenerateKey"),
    ]
    for method, path in targets:
        for content in (b'{"location": "local",', b"[1, 2]", b'"text"', b"\xff\xfe"):
            error_of(arm.call(method, path, arm.admin, content=content), 400, "InvalidRequestContent")
    error_of(arm.call("PUT", arm.rg_path(new_name("big")), arm.admin, content=b" " * (1024 * 1024 + 1)), 413,
             "RequestContentTooLarge")
    for method, path in targets[:4]:
        if method == "PUT":
            assert arm.call("GET", path, arm.admin).status_code == 404
    assert arm.call("GET", arm.rg_path(rg), arm.admin).json()["tags"] is None
    assert arm.assignments(arm.rg_path(rg), "atScope()") == arm.assignments(arm.sub_path, "atScope()")


@pytest.mark.parametrize(("name", "body", "code"), [
    ("bad!name", {"location": "local"}, "InvalidResourceGroupName"),
    ("ends-with-dot.", {"location": "local"}, "InvalidResourceGroupName"),
    ("x" * 91, {"location": "local"}, "InvalidResourceGroupName"),
    ("no-location", {}, "LocationRequired"),
    ("blank-location", {"location": "  "}, "LocationRequired"),
    ("odd-location", {"location": "west/europe"}, "LocationNotAvailableForResourceGroup"),
    ("bad-tags", {"location": "local", "tags": {"a": 1}}, "InvalidTag"),
])
def test_bad_resource_group_puts(arm: Arm, name: str, body: dict[str, object], code: str) -> None:
    path = arm.rg_path(name)
    error_of(arm.call("PUT", path, arm.admin, body), 400, code)
    assert arm.call("HEAD", path, arm.admin).status_code == 404


def test_bad_account_and_deployment_puts(arm: Arm) -> None:
    rg = arm.new_rg()
    good = {"location": "local", "kind": "OpenAI", "sku": {"name": "S0"}}
    accounts = [
        ("-starts-with-dash", good, "InvalidResourceName"),
        (new_name("nokind"), {**good, "kind": None}, "KindRequired"),
        (new_name("kind"), {**good, "kind": "Storage"}, "InvalidKind"),
        (new_name("sku"), {**good, "sku": {"name": "P9"}}, "InvalidSkuName"),
        (new_name("sku"), {**good, "sku": "S0"}, "InvalidRequestContent"),
        (new_name("loc"), {**good, "location": None}, "LocationRequired"),
        (new_name("auth"), {**good, "properties": {"disableLocalAuth": "yes"}}, "InvalidRequestContent"),
        (new_name("net"), {**good, "properties": {"publicNetworkAccess": "Sometimes"}}, "InvalidRequestContent"),
    ]
    for name, body, code in accounts:
        path = arm.account_path(rg, name)
        error_of(arm.call("PUT", path, arm.admin, body), 400, code)
        error_of(arm.call("GET", path, arm.admin), 404, "ResourceNotFound")

    account = arm.new_account(rg)
    deployments = [
        ("x", {"sku": {"name": "Standard", "capacity": 1}, "properties": {"model": MODEL}}, "InvalidResourceName"),
        ("no-model", {"sku": {"name": "Standard", "capacity": 1}, "properties": {}}, "InvalidRequestContent"),
        ("zero", {"sku": {"name": "Standard", "capacity": 0}, "properties": {"model": MODEL}}, "InvalidCapacity"),
        ("text", {"sku": {"name": "Standard", "capacity": "ten"}, "properties": {"model": MODEL}},
         "InvalidCapacity"),
        ("ptu", {"sku": {"name": "ProvisionedManaged", "capacity": 1}, "properties": {"model": MODEL}},
         "InvalidSkuName"),
        ("props", {"sku": {"name": "Standard", "capacity": 1}, "properties": []}, "InvalidRequestContent"),
    ]
    for name, body, code in deployments:
        path = arm.deployment_path(rg, account, name)
        error_of(arm.call("PUT", path, arm.admin, body), 400, code)
        error_of(arm.call("GET", path, arm.admin), 404, "ResourceNotFound")


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
        ("GET", f"{arm.rg_path(rg)}/providers/Microsoft.Storage/storageAccounts/s1", "InvalidResourceType"),
        ("GET", f"{arm.account_path(rg, account)}/models", "InvalidResourceType"),
        ("GET", f"{arm.sub_path}/providers/Microsoft.Compute/virtualMachines", "InvalidResourceType"),
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


# ----------------------------------------------------------------------------- tokens
def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_bad_tokens_get_401(arm: Arm) -> None:
    header, payload, signature = arm.admin.token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged_claims = _b64({**claims, "oid": str(uuid.uuid4())})
    graph = arm.server.admin_token("https://graph.microsoft.com")
    cognitive = arm.server.admin_token("https://cognitiveservices.azure.com")
    bad_tokens = {
        "garbage": "garbage",
        "tampered-signature": f"{header}.{payload}.{signature[:-6]}AAAAAA",
        "forged-claims": f"{header}.{forged_claims}.{signature}",
        "alg-none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "graph-audience": graph,
        "cognitiveservices-audience": cognitive,
    }
    routes = [("GET", "/subscriptions"), ("GET", "/tenants"), ("GET", arm.sub_path),
              ("PUT", arm.rg_path("token-test")),
              ("PUT", arm.ra_path(arm.rg_path("cielo-rg"), str(uuid.uuid4())))]
    body = {"location": "local", "properties": {"roleDefinitionId": OWNER, "principalId": arm.admin.object_id}}
    for method, path in routes:
        assert_unauthenticated(arm.call(method, path, None, body))
        for scheme in ("Basic YWRtaW46cGFzcw==", "Bearer", arm.admin.token):
            response = arm.client.request(method, path, params={"api-version": "2022-04-01"}, json=body,
                                          headers={"Authorization": scheme})
            assert_unauthenticated(response)
        for why, token in bad_tokens.items():
            response = arm.call(method, path, token, body)
            assert_unauthenticated(response)
            if why.endswith("audience"):
                assert "wrong audience" in response.json()["error"]["message"]
    error_of(arm.call("GET", arm.rg_path("token-test"), arm.admin), 404, "ResourceGroupNotFound")
    # The other ARM audience is accepted.
    azure = arm.server.admin_token("https://management.azure.com")
    assert arm.call("GET", arm.sub_path, azure).status_code == 200


def test_denials_name_the_client_object_id_action_and_scope(arm: Arm) -> None:
    user, sp = arm.new_user(), arm.new_sp()
    rg = arm.rg_path("cielo-rg")
    account = arm.account_path("cielo-rg", "cielo-openai")
    deployment = arm.deployment_path("cielo-rg", "cielo-openai", "smollm2")
    for who in (user, sp):
        checks: list[tuple[str, str, dict[str, Any] | None, str, str]] = [
            ("GET", rg, None, RG_READ, rg),
            ("PUT", rg, {"location": "local"}, "Microsoft.Resources/subscriptions/resourceGroups/write", rg),
            ("PATCH", rg, {"tags": {}}, "Microsoft.Resources/subscriptions/resourceGroups/write", rg),
            ("DELETE", rg, None, "Microsoft.Resources/subscriptions/resourceGroups/delete", rg),
            ("GET", arm.sub_path + "/resourcegroups", None, RG_READ, arm.sub_path),
            ("GET", account, None, "Microsoft.CognitiveServices/accounts/read", account),
            ("PUT", account, {}, "Microsoft.CognitiveServices/accounts/write", account),
            ("DELETE", account, None, "Microsoft.CognitiveServices/accounts/delete", account),
            ("POST", account + "/listKeys", None, "Microsoft.CognitiveServices/accounts/listKeys/action", account),
            ("GET", account + "/deployments", None, "Microsoft.CognitiveServices/accounts/deployments/read", account),
            ("GET", deployment, None, "Microsoft.CognitiveServices/accounts/deployments/read", deployment),
            ("GET", arm.ra_path(rg), None, "Microsoft.Authorization/roleAssignments/read", rg),
            ("PUT", arm.ra_path(rg, str(uuid.uuid4())), {"properties": {"roleDefinitionId": OWNER,
                                                                        "principalId": who.object_id}},
             "Microsoft.Authorization/roleAssignments/write", rg),
            ("DELETE", arm.ra_path(rg, str(uuid.uuid4())), None, "Microsoft.Authorization/roleAssignments/delete",
             rg),
            ("PUT", arm.rd_path(rg, str(uuid.uuid4())), {"properties": {"roleName": "x", "assignableScopes": [rg]}},
             "Microsoft.Authorization/roleDefinitions/write", rg),
        ]
        for method, path, body, action, scope in checks:
            assert_denied(arm.call(method, path, who, body), who, action, scope)
    assert arm.call("GET", deployment, arm.admin).status_code == 200


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
