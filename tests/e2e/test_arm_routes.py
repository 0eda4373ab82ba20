"""The resource manager's routes: subscriptions, tenants, cloud metadata, resource groups, Cognitive
Services accounts (keys included) and deployments, against a real `cielo up` (Microsoft.CognitiveServices
2023-05-01 in Azure/azure-rest-api-specs)."""

from __future__ import annotations

import pytest
from arm_support import (
    COGNITIVE_SERVICES_USER,
    MODEL,
    READER,
    RG_READ,
    Arm,
    assert_denied,
    error_of,
    new_name,
)

pytest_plugins = ("conftest_arm",)  # the `arm` fixture: one private Cielo for all test_arm_* modules
pytestmark = pytest.mark.e2e

ACCOUNT_READ = "Microsoft.CognitiveServices/accounts/read"


# ----------------------------------------------------------------------------- subscriptions, tenants, metadata
def test_subscriptions_are_listed_only_where_the_caller_holds_a_role(arm: Arm) -> None:
    response = arm.call("GET", "/subscriptions", arm.admin)
    assert response.status_code == 200, response.text
    [sub] = response.json()["value"]
    assert sub["subscriptionId"] == arm.sub and sub["id"] == f"/subscriptions/{arm.sub}"
    assert sub["tenantId"] == arm.tenant and sub["state"] == "Enabled"

    user = arm.new_user()
    response = arm.call("GET", "/subscriptions", user)
    assert response.status_code == 200 and response.json()["value"] == []
    assert_denied(arm.call("GET", arm.sub_path, user), user, "Microsoft.Resources/subscriptions/read", arm.sub_path)

    # A role on one resource group is enough to see (and read) the subscription, as in Azure.
    rg = arm.new_rg()
    name = arm.assign(READER, user, arm.rg_path(rg))
    assert [s["subscriptionId"] for s in arm.call("GET", "/subscriptions", user).json()["value"]] == [arm.sub]
    response = arm.call("GET", arm.sub_path, user)
    assert response.status_code == 200 and response.json()["subscriptionId"] == arm.sub

    arm.unassign(arm.rg_path(rg), name)
    assert arm.call("GET", "/subscriptions", user).json()["value"] == []
    assert arm.call("GET", arm.sub_path, user).status_code == 403


# ----------------------------------------------------------------------------- resource groups
def test_resource_group_lifecycle(arm: Arm) -> None:
    name = new_name("Arm-Mixed")
    path = arm.rg_path(name)
    created = arm.call("PUT", path, arm.admin, {"location": "local", "tags": {"team": "a"}})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"] == path and body["name"] == name
    assert body["type"] == "Microsoft.Resources/resourceGroups" and body["location"] == "local"
    assert body["tags"] == {"team": "a"} and body["properties"]["provisioningState"] == "Succeeded"

    # `resourcegroups` and another case of the name reach the same group, whose case is kept.
    lower_path = f"/subscriptions/{arm.sub}/resourcegroups/{name.lower()}"
    again = arm.call("PUT", lower_path, arm.admin, {"location": "local", "tags": {"team": "b"}})
    assert again.status_code == 200, again.text
    assert again.json()["name"] == name and again.json()["id"] == path
    found = arm.call("GET", f"/subscriptions/{arm.sub}/RESOURCEGROUPS/{name.upper()}", arm.admin)
    assert found.status_code == 200 and found.json()["name"] == name and found.json()["tags"] == {"team": "b"}

    assert arm.call("HEAD", lower_path, arm.admin).status_code == 204
    assert arm.call("HEAD", arm.rg_path(new_name("nope")), arm.admin).status_code == 404

    patched = arm.call("PATCH", path, arm.admin, {"tags": {"env": "test"}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["tags"] == {"env": "test"} and patched.json()["location"] == "local"

    listed = arm.call("GET", f"{arm.sub_path}/resourcegroups", arm.admin)
    assert listed.status_code == 200
    names = [g["name"] for g in listed.json()["value"]]
    assert name in names and "cielo-rg" in names

    assert arm.call("DELETE", lower_path, arm.admin).status_code == 200
    error_of(arm.call("GET", path, arm.admin), 404, "ResourceGroupNotFound")
    assert arm.call("HEAD", path, arm.admin).status_code == 404
    error_of(arm.call("DELETE", path, arm.admin), 404, "ResourceGroupNotFound")
    assert name not in [g["name"] for g in arm.call("GET", f"{arm.sub_path}/resourceGroups", arm.admin).json()["value"]]


def test_bootstrap_resources_are_found_case_insensitively(arm: Arm) -> None:
    group = arm.call("GET", f"/subscriptions/{arm.sub}/resourceGroups/CIELO-RG", arm.admin)
    assert group.status_code == 200 and group.json()["name"] == "cielo-rg"
    account = arm.call("GET", f"/subscriptions/{arm.sub}/resourcegroups/Cielo-RG/providers/microsoft.cognitiveservices"
                              "/ACCOUNTS/CIELO-OPENAI", arm.admin)
    assert account.status_code == 200 and account.json()["name"] == "cielo-openai"
    assert account.json()["properties"]["endpoint"] == f"{arm.server.base_url}/accounts/cielo-openai/"
    deployments = arm.call("GET", arm.account_path("cielo-rg", "cielo-openai") + "/deployments", arm.admin)
    [smollm2] = [d for d in deployments.json()["value"] if d["name"] == "smollm2"]
    assert smollm2["sku"] == {"name": "Standard", "capacity": 50}
    assert smollm2["properties"]["rateLimits"] == [{"key": "request", "renewalPeriod": 10, "count": 50},
                                                   {"key": "token", "renewalPeriod": 60, "count": 50000}]


def test_resources_in_a_group_are_listed(arm: Arm) -> None:
    rg = arm.new_rg()
    account = arm.new_account(rg)
    arm.new_deployment(rg, account)
    response = arm.call("GET", arm.rg_path(rg) + "/resources", arm.admin)
    assert response.status_code == 200, response.text
    types = sorted(r["type"] for r in response.json()["value"])
    assert types == ["Microsoft.CognitiveServices/accounts"]  # top-level resources only, as ARM lists them
    error_of(arm.call("DELETE", arm.rg_path(rg) + "/resources", arm.admin), 400, "MethodNotAllowed")


def test_deleting_a_group_deletes_its_accounts_deployments_and_role_assignments(arm: Arm) -> None:
    rg = arm.new_rg()
    account = arm.new_account(rg)
    deployment = arm.new_deployment(rg, account)
    account_scope = arm.account_path(rg, account)
    deployment_scope = arm.deployment_path(rg, account, deployment)
    user = arm.new_user()
    arm.assign(READER, user, account_scope)
    arm.assign(COGNITIVE_SERVICES_USER, user, deployment_scope)
    arm.assign(READER, user, arm.rg_path(rg))
    assert arm.call("GET", account_scope, user).status_code == 200
    assert len(arm.assignments(arm.sub_path, f"principalId eq '{user.object_id}'")) == 3

    assert arm.call("DELETE", arm.rg_path(rg), arm.admin).status_code == 200
    error_of(arm.call("GET", account_scope, arm.admin), 404, "ResourceGroupNotFound")
    error_of(arm.call("GET", deployment_scope, arm.admin), 404, "ResourceGroupNotFound")
    assert arm.assignments(arm.sub_path, f"principalId eq '{user.object_id}'") == []

    # A group and account created again under the same names do not bring the old grants back.
    assert arm.call("PUT", arm.rg_path(rg), arm.admin, {"location": "local"}).status_code == 201
    recreated = arm.call("PUT", account_scope, arm.admin, {"location": "local", "kind": "OpenAI", "sku": {"name": "S0"},
                                                           "properties": {"customSubDomainName": account}})
    assert recreated.status_code == 201, recreated.text
    assert_denied(arm.call("GET", account_scope, user), user, ACCOUNT_READ, account_scope)
    assert_denied(arm.call("GET", arm.rg_path(rg), user), user, RG_READ, arm.rg_path(rg))
    assert arm.call("DELETE", arm.rg_path(rg), arm.admin).status_code == 200


def test_deleting_an_account_or_deployment_deletes_the_role_assignments_there(arm: Arm) -> None:
    rg = arm.new_rg()
    account = arm.new_account(rg)
    deployment = arm.new_deployment(rg, account)
    account_scope = arm.account_path(rg, account)
    deployment_scope = arm.deployment_path(rg, account, deployment)
    sp = arm.new_sp()
    arm.assign(READER, sp, deployment_scope)
    assert arm.call("GET", deployment_scope, sp).status_code == 200

    assert arm.call("DELETE", deployment_scope, arm.admin).status_code == 200
    assert arm.assignments(arm.rg_path(rg), f"assignedTo('{sp.object_id}')") == []
    arm.new_deployment(rg, account, name=deployment)  # the same name again grants nothing
    assert_denied(arm.call("GET", deployment_scope, sp), sp, "Microsoft.CognitiveServices/accounts/deployments/read",
                  deployment_scope)

    arm.assign(READER, sp, account_scope)
    arm.assign(COGNITIVE_SERVICES_USER, sp, deployment_scope)
    assert arm.call("DELETE", account_scope, arm.admin).status_code == 200
    error_of(arm.call("GET", deployment_scope, arm.admin), 404, "ResourceNotFound")
    assert arm.assignments(arm.rg_path(rg), f"assignedTo('{sp.object_id}')") == []
    recreated = arm.call("PUT", account_scope, arm.admin, {"location": "local", "kind": "OpenAI", "sku": {"name": "S0"},
                                                           "properties": {"customSubDomainName": account}})
    assert recreated.status_code == 201, recreated.text
    assert_denied(arm.call("GET", account_scope, sp), sp, ACCOUNT_READ, account_scope)


# ----------------------------------------------------------------------------- accounts
def test_account_lifecycle(arm: Arm) -> None:
    rg = arm.new_rg()
    name = new_name("Acct")
    path = arm.account_path(rg, name)
    body = {"location": "local", "kind": "OpenAI", "sku": {"name": "S0"}, "tags": {"a": "1"},
            "properties": {"customSubDomainName": name.lower(), "publicNetworkAccess": "Enabled"}}
    created = arm.call("PUT", path, arm.admin, body)
    assert created.status_code == 201, created.text
    account = created.json()
    assert account["id"] == path and account["name"] == name
    assert account["type"] == "Microsoft.CognitiveServices/accounts" and account["kind"] == "OpenAI"
    assert account["sku"] == {"name": "S0"} and account["location"] == "local" and account["tags"] == {"a": "1"}
    props = account["properties"]
    assert props["endpoint"] == f"{arm.server.base_url}/accounts/{name.lower()}/"
    assert props["customSubDomainName"] == name.lower() and props["provisioningState"] == "Succeeded"
    assert props["disableLocalAuth"] is False
    assert account["systemData"]["createdBy"] == arm.admin.display
    assert account["systemData"]["createdByType"] == "User"

    again = arm.call("PUT", path, arm.admin, body)
    assert again.status_code == 200 and again.json()["properties"]["dateCreated"] == props["dateCreated"]

    got = arm.call("GET", path.replace("/accounts/", "/ACCOUNTS/").replace(name, name.upper()), arm.admin)
    assert got.status_code == 200 and got.json()["name"] == name

    patched = arm.call("PATCH", path, arm.admin, {"tags": {"b": "2"}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["tags"] == {"b": "2"} and patched.json()["properties"]["endpoint"] == props["endpoint"]
    # An account does not move: its deployments and their quota belong to its location.
    error_of(arm.call("PUT", path, arm.admin, {**body, "location": "westeurope"}), 409, "InvalidResourceLocation")
    error_of(arm.call("PATCH", path, arm.admin, {"location": "westeurope"}), 409, "InvalidResourceLocation")
    assert arm.call("GET", path, arm.admin).json()["location"] == "local"

    in_group = arm.call("GET", arm.rg_path(rg) + "/providers/Microsoft.CognitiveServices/accounts", arm.admin)
    assert [a["name"] for a in in_group.json()["value"]] == [name]
    in_sub = arm.call("GET", arm.sub_path + "/providers/Microsoft.CognitiveServices/accounts", arm.admin)
    assert {name, "cielo-openai"} <= {a["name"] for a in in_sub.json()["value"]}

    assert arm.call("DELETE", path, arm.admin).status_code == 200
    error_of(arm.call("GET", path, arm.admin), 404, "ResourceNotFound")
    assert arm.call("DELETE", path, arm.admin).status_code == 204


def test_account_lists_show_only_what_the_caller_may_read(arm: Arm) -> None:
    rg = arm.new_rg()
    mine, other = arm.new_account(rg), arm.new_account(rg)
    user = arm.new_sp()
    arm.assign(READER, user, arm.account_path(rg, mine))
    in_sub = arm.call("GET", arm.sub_path + "/providers/Microsoft.CognitiveServices/accounts", user)
    assert [a["name"] for a in in_sub.json()["value"]] == [mine]
    in_group = arm.call("GET", arm.rg_path(rg) + "/providers/Microsoft.CognitiveServices/accounts", user)
    assert [a["name"] for a in in_group.json()["value"]] == [mine]
    assert_denied(arm.call("GET", arm.account_path(rg, other), user), user, ACCOUNT_READ,
                  arm.account_path(rg, other))


def test_custom_subdomain_names_are_unique(arm: Arm) -> None:
    rg = arm.new_rg()
    taken = arm.new_account(rg)
    body = {"location": "local", "kind": "OpenAI", "sku": {"name": "S0"},
            "properties": {"customSubDomainName": taken.upper()}}
    other = arm.account_path(arm.new_rg(), new_name("acct"))
    error_of(arm.call("PUT", other, arm.admin, body), 409, "CustomDomainInUse")
    error_of(arm.call("GET", other, arm.admin), 404, "ResourceNotFound")
    body["properties"] = {"customSubDomainName": "cielo-openai"}
    error_of(arm.call("PUT", other, arm.admin, body), 409, "CustomDomainInUse")
    error_of(arm.call("PATCH", arm.account_path(rg, taken), arm.admin,
                      {"properties": {"customSubDomainName": new_name("x")}}), 400,
             "CustomSubDomainNameCannotBeChanged")


def test_list_and_regenerate_keys(arm: Arm) -> None:
    rg = arm.new_rg()
    path = arm.account_path(rg, arm.new_account(rg))
    first = arm.call("POST", path + "/listKeys", arm.admin)
    assert first.status_code == 200, first.text
    keys = first.json()
    assert set(keys) == {"key1", "key2"} and keys["key1"] != keys["key2"]
    assert arm.call("POST", path + "/listkeys", arm.admin).json() == keys

    regenerated = arm.call("POST", path + "/regenerateKey", arm.admin, {"keyName": "Key1"})
    assert regenerated.status_code == 200, regenerated.text
    new = regenerated.json()
    assert new["key1"] != keys["key1"] and new["key2"] == keys["key2"]
    assert arm.call("POST", path + "/listKeys", arm.admin).json() == new
    second = arm.call("POST", path + "/regenerateKey", arm.admin, {"keyName": "key2"}).json()
    assert second["key1"] == new["key1"] and second["key2"] != new["key2"]
    error_of(arm.call("POST", path + "/regenerateKey", arm.admin, {"keyName": "Key3"}), 400, "InvalidRequestContent")
    assert arm.call("POST", path + "/listKeys", arm.admin).json() == second


def test_list_keys_is_refused_when_local_auth_is_disabled(arm: Arm) -> None:
    rg = arm.new_rg()
    path = arm.account_path(rg, arm.new_account(rg))
    patched = arm.call("PATCH", path, arm.admin, {"properties": {"disableLocalAuth": True}})
    assert patched.status_code == 200 and patched.json()["properties"]["disableLocalAuth"] is True
    message = error_of(arm.call("POST", path + "/listKeys", arm.admin), 400, "BadRequest")
    assert message == "Failed to list key. disableLocalAuth is set to be true"
    error_of(arm.call("POST", path + "/regenerateKey", arm.admin, {"keyName": "Key1"}), 400, "BadRequest")
    created = arm.call("PUT", arm.account_path(rg, new_name("noauth")), arm.admin, {
        "location": "local", "kind": "OpenAI", "sku": {"name": "S0"}, "properties": {"disableLocalAuth": True}})
    assert created.status_code == 201
    error_of(arm.call("POST", created.json()["id"] + "/listKeys", arm.admin), 400, "BadRequest")


def test_key_actions_are_authorized(arm: Arm) -> None:
    rg = arm.new_rg()
    path = arm.account_path(rg, arm.new_account(rg))
    reader, cs_user = arm.new_sp(), arm.new_sp()
    arm.assign(READER, reader, arm.rg_path(rg))
    arm.assign(COGNITIVE_SERVICES_USER, cs_user, arm.rg_path(rg))
    assert_denied(arm.call("POST", path + "/listKeys", reader), reader,
                  "Microsoft.CognitiveServices/accounts/listKeys/action", path)
    assert arm.call("POST", path + "/listKeys", cs_user).status_code == 200
    before = arm.call("POST", path + "/listKeys", arm.admin).json()
    assert_denied(arm.call("POST", path + "/regenerateKey", cs_user, {"keyName": "Key1"}), cs_user,
                  "Microsoft.CognitiveServices/accounts/regenerateKey/action", path)
    assert arm.call("POST", path + "/listKeys", arm.admin).json() == before


# ----------------------------------------------------------------------------- deployments
def deployment_body(capacity: int, model: dict[str, str] | None = None) -> dict[str, object]:
    return {"sku": {"name": "Standard", "capacity": capacity}, "properties": {"model": model or MODEL}}


def test_deployment_lifecycle_and_rate_limits(arm: Arm) -> None:
    rg = arm.new_rg()
    account = arm.new_account(rg)
    path = arm.deployment_path(rg, account, "chat-1")
    created = arm.call("PUT", path, arm.admin, deployment_body(1))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"] == path and body["name"] == "chat-1"
    assert body["type"] == "Microsoft.CognitiveServices/accounts/deployments"
    assert body["sku"] == {"name": "Standard", "capacity": 1}
    assert body["properties"]["model"] == MODEL and body["properties"]["provisioningState"] == "Succeeded"
    assert body["properties"]["rateLimits"] == [{"key": "request", "renewalPeriod": 10, "count": 2},
                                                {"key": "token", "renewalPeriod": 60, "count": 1000}]

    updated = arm.call("PUT", path, arm.admin, deployment_body(10))
    assert updated.status_code == 200, updated.text
    assert updated.json()["properties"]["rateLimits"] == [{"key": "request", "renewalPeriod": 10, "count": 10},
                                                          {"key": "token", "renewalPeriod": 60, "count": 10000}]
    got = arm.call("GET", path.replace("chat-1", "CHAT-1"), arm.admin)
    assert got.status_code == 200 and got.json()["sku"]["capacity"] == 10 and got.json()["name"] == "chat-1"

    listed = arm.call("GET", arm.account_path(rg, account) + "/deployments", arm.admin)
    assert [d["name"] for d in listed.json()["value"]] == ["chat-1"]

    assert arm.call("DELETE", path, arm.admin).status_code == 200
    error_of(arm.call("GET", path, arm.admin), 404, "ResourceNotFound")
    assert arm.call("DELETE", path, arm.admin).status_code == 204
    assert arm.call("GET", arm.account_path(rg, account) + "/deployments", arm.admin).json()["value"] == []


def test_unknown_model_is_refused(arm: Arm) -> None:
    rg = arm.new_rg()
    account = arm.new_account(rg)
    path = arm.deployment_path(rg, account, "gpt")
    model = {"format": "OpenAI", "name": "gpt-35-turbo", "version": "0613"}
    error_of(arm.call("PUT", path, arm.admin, deployment_body(1, model)), 400, "DeploymentModelNotSupported")
    error_of(arm.call("PUT", path, arm.admin, deployment_body(1, {**MODEL, "version": "999"})), 400,
             "DeploymentModelNotSupported")
    error_of(arm.call("GET", path, arm.admin), 404, "ResourceNotFound")


def test_quota_exceeded_changes_nothing(arm: Arm) -> None:
    rg = arm.new_rg()
    account = arm.new_account(rg)
    path = arm.deployment_path(rg, account, arm.new_deployment(rg, account, capacity=5))
    before = arm.call("GET", path, arm.admin).json()
    message = error_of(arm.call("PUT", path, arm.admin, deployment_body(10**6)), 400, "InsufficientQuota")
    assert "Tokens Per Minute (thousands) - SmolLM2-135M-Instruct" in message
    assert arm.call("GET", path, arm.admin).json() == before

    other = arm.deployment_path(rg, account, "too-big")
    error_of(arm.call("PUT", other, arm.admin, deployment_body(10**6)), 400, "InsufficientQuota")
    error_of(arm.call("GET", other, arm.admin), 404, "ResourceNotFound")


def test_deployment_writes_are_authorized(arm: Arm) -> None:
    rg = arm.new_rg()
    account = arm.new_account(rg)
    path = arm.deployment_path(rg, account, arm.new_deployment(rg, account))
    reader = arm.new_sp()
    arm.assign(READER, reader, arm.rg_path(rg))
    assert arm.call("GET", path, reader).status_code == 200
    before = arm.call("GET", path, arm.admin).json()
    assert_denied(arm.call("PUT", path, reader, deployment_body(3)), reader,
                  "Microsoft.CognitiveServices/accounts/deployments/write", path)
    assert_denied(arm.call("DELETE", path, reader), reader,
                  "Microsoft.CognitiveServices/accounts/deployments/delete", path)
    assert arm.call("GET", path, arm.admin).json() == before
