"""The resource manager, in-process: resource groups, accounts, keys, deployments, role assignments and definitions,
permissions and checkAccess, with ARM's envelope for every refusal (docs/resource-manager.md)."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from typing import Any

import httpx
import pytest
from inproc import (
    ADMIN,
    ARM_RESOURCE,
    CLI_CLIENT_ID,
    PASSWORD,
    ROLES,
    World,
    arm_call,
    arm_error,
    assign,
    bearer,
    new_principal,
    sp_token,
    unique,
)

CHAT_MODEL = {"format": "HuggingFace", "name": "SmolLM2-135M-Instruct", "version": "1"}
MOCK_MODEL = {"format": "Cielo", "name": "mock", "version": "1"}


async def _group(client: httpx.AsyncClient, world: World, name: str | None = None) -> str:
    name = name or unique("rg")
    answer = await arm_call(client, world, "PUT", world.rg_path(name), {"location": "local"})
    assert answer.status_code == 201, answer.text
    return name


async def _account(client: httpx.AsyncClient, world: World, rg: str, name: str | None = None,
                   **props: Any) -> dict[str, Any]:
    name = name or unique("acct")
    answer = await arm_call(client, world, "PUT", world.account_path(name, rg), {
        "location": "local", "kind": "OpenAI", "sku": {"name": "S0"}, "properties": props})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


# ----------------------------------------------------------------------------- fixed routes
async def test_api_version_is_required(client: httpx.AsyncClient, world: World) -> None:
    answer = await arm_call(client, world, "GET", world.sub_path, api_version=None)
    arm_error(answer, 400, "MissingApiVersionParameter")
    answer = await arm_call(client, world, "GET", world.sub_path, api_version="latest")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "InvalidApiVersionParameter"


async def test_subscription_tenants_and_metadata(client: httpx.AsyncClient, world: World) -> None:
    sub = (await arm_call(client, world, "GET", world.sub_path)).json()
    assert sub["subscriptionId"] == world.sub and sub["tenantId"] == world.tenant and sub["state"] == "Enabled"
    tenants = (await arm_call(client, world, "GET", "/tenants")).json()["value"]
    assert [t["tenantId"] for t in tenants] == [world.tenant]
    assert sub["displayName"] == "Cielo Subscription"
    upper = await arm_call(client, world, "GET", f"/subscriptions/{world.sub.upper()}")
    assert upper.status_code == 200 and upper.json()["subscriptionId"] == world.sub
    assert tenants[0]["id"] == f"/tenants/{world.tenant}" and tenants[0]["defaultDomain"] == "cielo.local"
    # A service principal's token lists the same tenant.
    sp = await new_principal(client, world)
    sp_tenants = await arm_call(client, world, "GET", "/tenants",
                                headers=bearer(await sp_token(client, world, sp, ARM_RESOURCE)))
    assert [t["tenantId"] for t in sp_tenants.json()["value"]] == [world.tenant]
    # Cloud metadata needs no token.
    answer = await client.get("/metadata/endpoints?api-version=2022-09-01")
    assert answer.status_code == 200, answer.text
    meta = answer.json()
    assert meta["resourceManager"] == "https://127.0.0.1:8443/"
    assert meta["authentication"]["loginEndpoint"] == "https://127.0.0.1:8443"
    assert "https://management.core.windows.net/" in meta["authentication"]["audiences"]


async def test_unknown_subscription_and_paths(client: httpx.AsyncClient, world: World) -> None:
    arm_error(await arm_call(client, world, "GET", f"/subscriptions/{uuid.uuid4()}"), 404, "SubscriptionNotFound")
    arm_error(await arm_call(client, world, "GET", f"{world.sub_path}/providers/Microsoft.Nope/things"),
              404, "InvalidResourceType")
    arm_error(await arm_call(client, world, "GET", "/providers/Microsoft.Nope"), 404, "InvalidResourceNamespace")
    answer = await arm_call(client, world, "POST", world.sub_path)
    assert answer.status_code in (400, 405) and answer.json()["error"]["code"] == "MethodNotAllowed", answer.text


async def test_no_token_and_a_token_for_another_audience(client: httpx.AsyncClient, world: World) -> None:
    answer = await arm_call(client, world, "GET", world.sub_path, headers={})
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] in ("AuthenticationFailed", "InvalidAuthenticationToken")
    assert "www-authenticate" in {k.lower() for k in answer.headers}
    answer = await arm_call(client, world, "GET", world.sub_path, headers=world.graph)
    error = arm_error(answer, 401, "InvalidAuthenticationToken")
    assert "wrong audience" in error["message"] and "https://graph.microsoft.com" in error["message"]


async def test_expired_token_is_refused(client: httpx.AsyncClient, world: World, moved_clock: Any) -> None:
    moved_clock.advance(5400 + 301)  # past any lifetime, past the 300 s skew
    answer = await arm_call(client, world, "GET", world.sub_path)
    error = arm_error(answer, 401, "ExpiredAuthenticationToken")
    assert error["message"] == "The access token expiry UTC time is earlier than current UTC time."


# ----------------------------------------------------------------------------- resource groups
async def test_resource_group_lifecycle(client: httpx.AsyncClient, world: World) -> None:
    name = unique("Rg.Case")
    created = await arm_call(client, world, "PUT", world.rg_path(name), {"location": "Local", "tags": {"a": "1"}})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"] == f"{world.sub_path}/resourceGroups/{name}"
    assert body["name"] == name and body["location"] == "local" and body["tags"] == {"a": "1"}
    assert body["properties"] == {"provisioningState": "Succeeded"}
    assert body["type"] == "Microsoft.Resources/resourceGroups"
    again = await arm_call(client, world, "PUT", world.rg_path(name.lower()), {"location": "local"})
    assert again.status_code == 200 and again.json()["name"] == name  # names keep their first case
    patched = await arm_call(client, world, "PATCH", world.rg_path(name), {"tags": {"b": "2"}})
    assert patched.status_code == 200 and patched.json()["tags"] == {"b": "2"}
    head = await arm_call(client, world, "HEAD", world.rg_path(name))
    assert head.status_code == 204
    listed = (await arm_call(client, world, "GET", f"{world.sub_path}/resourcegroups")).json()["value"]
    assert name in [g["name"] for g in listed]
    assert (await arm_call(client, world, "DELETE", world.rg_path(name))).status_code == 200
    assert (await arm_call(client, world, "HEAD", world.rg_path(name))).status_code == 404
    arm_error(await arm_call(client, world, "GET", world.rg_path(name)), 404, "ResourceGroupNotFound")
    arm_error(await arm_call(client, world, "DELETE", world.rg_path(name)), 404, "ResourceGroupNotFound")


@pytest.mark.parametrize(("name", "body", "code"), [
    ("ends-with-dot.", {"location": "local"}, "InvalidResourceGroupName"),
    ("x" * 91, {"location": "local"}, "InvalidResourceGroupName"),
    ("tags-not-strings", {"location": "local", "tags": {"a": 1}}, "InvalidTag"),
    ("no-location", {}, "LocationRequired"),
])
async def test_resource_group_validation(client: httpx.AsyncClient, world: World, name: str,
                                         body: dict[str, Any], code: str) -> None:
    answer = await arm_call(client, world, "PUT", world.rg_path(name), body)
    assert answer.status_code == 400, answer.text
    if code != "LocationRequired":
        arm_error(answer, 400, code)
    assert (await arm_call(client, world, "HEAD", world.rg_path(name))).status_code == 404  # nothing written


@pytest.mark.parametrize(("raw", "code"), [
    (b"{not json", "InvalidRequestContent"),
    (b"[1, 2]", "InvalidRequestContent"),
    (b"[" * 200 + b"]" * 200, "InvalidRequestContent"),
])
async def test_bodies_that_are_not_a_json_object(client: httpx.AsyncClient, world: World, raw: bytes,
                                                 code: str) -> None:
    name = unique("rg-body")
    answer = await client.put(world.rg_path(name) + "?api-version=2022-12-01", content=raw,
                              headers={**world.arm, "Content-Type": "application/json"})
    arm_error(answer, 400, code)


async def test_moving_a_group_to_another_location_is_refused(client: httpx.AsyncClient, world: World) -> None:
    name = await _group(client, world)
    answer = await arm_call(client, world, "PUT", world.rg_path(name), {"location": "westeurope"})
    arm_error(answer, 400, "InvalidResourceGroupLocation")
    assert (await arm_call(client, world, "GET", world.rg_path(name))).json()["location"] == "local"


async def test_kelvin_sign_names_are_refused(client: httpx.AsyncClient, world: World) -> None:
    answer = await arm_call(client, world, "PUT", world.rg_path("\u212aeep"), {"location": "local"})
    arm_error(answer, 400, "InvalidResourceName")


async def test_resources_in_a_group(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    account = await _account(client, world, rg)
    listed = (await arm_call(client, world, "GET", f"{world.rg_path(rg)}/resources")).json()["value"]
    assert [(r["name"], r["type"]) for r in listed] == [(account["name"], "Microsoft.CognitiveServices/accounts")]
    arm_error(await arm_call(client, world, "GET", f"{world.rg_path(unique('none'))}/resources"),
              404, "ResourceGroupNotFound")


# ----------------------------------------------------------------------------- accounts and keys
async def test_account_lifecycle_and_keys(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    name = unique("acct")
    account = await _account(client, world, rg, name)
    assert account["kind"] == "OpenAI" and account["sku"] == {"name": "S0"}
    assert account["properties"]["endpoint"] == f"https://127.0.0.1:8443/accounts/{name}/"
    assert account["properties"]["customSubDomainName"] == name
    assert account["systemData"]["createdByType"] == "User"
    got = await arm_call(client, world, "GET", world.account_path(name, rg))
    assert got.status_code == 200 and got.json()["id"] == account["id"]
    in_rg = (await arm_call(client, world, "GET", f"{world.rg_path(rg)}/providers/Microsoft.CognitiveServices/"
                                                  "accounts")).json()["value"]
    in_sub = (await arm_call(client, world, "GET", f"{world.sub_path}/providers/Microsoft.CognitiveServices/"
                                                   "accounts")).json()["value"]
    assert [a["name"] for a in in_rg] == [name] and name in [a["name"] for a in in_sub]
    keys = (await arm_call(client, world, "POST", world.account_path(name, rg) + "/listKeys")).json()
    assert set(keys) == {"key1", "key2"} and all(len(k) == 32 for k in keys.values())
    int(keys["key1"], 16)
    regenerated = (await arm_call(client, world, "POST", world.account_path(name, rg) + "/regenerateKey",
                                  {"keyName": "Key2"})).json()
    assert regenerated["key1"] == keys["key1"] and regenerated["key2"] != keys["key2"]
    arm_error(await arm_call(client, world, "POST", world.account_path(name, rg) + "/regenerateKey",
                             {"keyName": "Key3"}), 400, "InvalidRequestContent")
    wrong_method = await arm_call(client, world, "GET", world.account_path(name, rg) + "/listKeys")
    assert wrong_method.json()["error"]["code"] == "MethodNotAllowed", wrong_method.text
    not_an_object = arm_error(await arm_call(client, world, "PATCH", world.account_path(name, rg),
                                             {"properties": "x"}), 400, "InvalidRequestContent")
    assert "'properties'" in not_an_object["message"]  # was a 500 while merging
    patched = await arm_call(client, world, "PATCH", world.account_path(name, rg),
                             {"properties": {"disableLocalAuth": True}})
    assert patched.status_code == 200 and patched.json()["properties"]["disableLocalAuth"] is True
    refused = await arm_call(client, world, "POST", world.account_path(name, rg) + "/listKeys")
    error = arm_error(refused, 400, "BadRequest")
    assert error["message"] == "Failed to list key. disableLocalAuth is set to be true"
    assert (await arm_call(client, world, "DELETE", world.account_path(name, rg))).status_code == 200
    assert (await arm_call(client, world, "DELETE", world.account_path(name, rg))).status_code == 204
    arm_error(await arm_call(client, world, "GET", world.account_path(name, rg)), 404, "ResourceNotFound")


@pytest.mark.parametrize(("body", "code"), [
    ({"location": "local", "kind": "Speech", "sku": {"name": "S0"}}, "InvalidKind"),
    ({"location": "local", "sku": {"name": "S0"}}, "KindRequired"),
    ({"location": "local", "kind": "OpenAI", "sku": {"name": "Z9"}}, "InvalidSkuName"),
    ({"location": "local", "kind": "OpenAI", "sku": "S0"}, "InvalidRequestContent"),
    ({"location": "local", "kind": "OpenAI", "sku": {"name": "S0"}, "properties": {"disableLocalAuth": "yes"}},
     "InvalidRequestContent"),
    ({"location": "local", "kind": "OpenAI", "sku": {"name": "S0"},
      "properties": {"publicNetworkAccess": "Sometimes"}}, "InvalidRequestContent"),
])
async def test_account_validation(client: httpx.AsyncClient, world: World, body: dict[str, Any], code: str) -> None:
    rg = await _group(client, world)
    name = unique("bad")
    arm_error(await arm_call(client, world, "PUT", world.account_path(name, rg), body), 400, code)
    arm_error(await arm_call(client, world, "GET", world.account_path(name, rg)), 404, "ResourceNotFound")


async def test_account_name_and_subdomain_rules(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    answer = await arm_call(client, world, "PUT", world.account_path("-bad", rg),
                            {"location": "local", "kind": "OpenAI", "sku": {"name": "S0"}})
    assert answer.status_code == 400, answer.text
    taken = unique("taken")
    await _account(client, world, rg, taken)
    clash = await arm_call(client, world, "PUT", world.account_path(unique("other"), rg), {
        "location": "local", "kind": "OpenAI", "sku": {"name": "S0"},
        "properties": {"customSubDomainName": taken.upper()}})
    arm_error(clash, 409, "CustomDomainInUse")
    change = await arm_call(client, world, "PUT", world.account_path(taken, rg), {
        "location": "local", "kind": "OpenAI", "sku": {"name": "S0"},
        "properties": {"customSubDomainName": unique("new")}})
    arm_error(change, 400, "CustomSubDomainNameCannotBeChanged")
    arm_error(await arm_call(client, world, "GET", world.account_path("x1", unique("none"))),
              404, "ResourceGroupNotFound")


# ----------------------------------------------------------------------------- deployments
async def test_deployment_lifecycle(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    account = (await _account(client, world, rg))["name"]
    path = world.account_path(account, rg) + "/deployments/chat"
    created = await arm_call(client, world, "PUT", path, {"sku": {"name": "Standard", "capacity": 5},
                                                          "properties": {"model": CHAT_MODEL}})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["properties"]["model"] == CHAT_MODEL
    assert body["properties"]["rateLimits"] == [
        {"key": "request", "renewalPeriod": 10, "count": 5},
        {"key": "token", "renewalPeriod": 60, "count": 5000}]
    assert body["properties"]["provisioningState"] == "Succeeded"
    patched = await arm_call(client, world, "PATCH", path, {"sku": {"name": "Standard", "capacity": 1}})
    assert patched.status_code == 200
    assert patched.json()["properties"]["rateLimits"][0]["count"] == 2  # at least 2 requests per 10 s
    listed = (await arm_call(client, world, "GET", world.account_path(account, rg) + "/deployments")).json()
    assert [d["name"] for d in listed["value"]] == ["chat"]
    assert (await arm_call(client, world, "DELETE", path)).status_code == 200
    assert (await arm_call(client, world, "DELETE", path)).status_code == 204
    arm_error(await arm_call(client, world, "GET", path), 404, "ResourceNotFound")


@pytest.mark.parametrize(("body", "code"), [
    ({"properties": {"model": {"format": "OpenAI", "name": "gpt-4o", "version": "2024-05-13"}}},
     "DeploymentModelNotSupported"),
    ({"properties": {}}, "InvalidRequestContent"),
    ({"sku": {"name": "Provisioned"}, "properties": {"model": MOCK_MODEL}}, "InvalidSkuName"),
    ({"sku": {"name": "Standard", "capacity": 0}, "properties": {"model": MOCK_MODEL}}, "InvalidCapacity"),
    ({"sku": {"name": "Standard", "capacity": True}, "properties": {"model": MOCK_MODEL}}, "InvalidCapacity"),
    ({"sku": {"name": "Standard", "capacity": 5000}, "properties": {"model": MOCK_MODEL}}, "InsufficientQuota"),
])
async def test_deployment_validation(client: httpx.AsyncClient, world: World, body: dict[str, Any],
                                     code: str) -> None:
    path = world.account_path() + "/deployments/" + unique("d")
    arm_error(await arm_call(client, world, "PUT", path, body), 400, code)
    arm_error(await arm_call(client, world, "GET", path), 404, "ResourceNotFound")


# ----------------------------------------------------------------------------- RBAC
async def test_denials_name_the_caller_action_and_scope(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    nobody = await new_principal(client, world)
    headers = bearer(await sp_token(client, world, nobody, ARM_RESOURCE))
    answer = await arm_call(client, world, "GET", world.rg_path(rg), headers=headers)
    error = arm_error(answer, 403, "AuthorizationFailed")
    assert error["message"] == (
        f"The client '{nobody.app_id}' with object id '{nobody.sp_id}' does not have authorization to perform "
        f"action 'Microsoft.Resources/subscriptions/resourceGroups/read' over scope '{world.rg_path(rg)}' or the "
        "scope is invalid. If access was recently granted, please refresh your credentials.")
    # Nothing anywhere: the subscription list is empty and the subscription itself is refused.
    assert (await arm_call(client, world, "GET", "/subscriptions", headers=headers)).json()["value"] == []
    arm_error(await arm_call(client, world, "GET", world.sub_path, headers=headers), 403, "AuthorizationFailed")
    write = await arm_call(client, world, "PUT", world.rg_path(unique("denied")), {"location": "local"},
                           headers=headers)
    arm_error(write, 403, "AuthorizationFailed")


async def test_reader_reads_but_does_not_write(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    account = (await _account(client, world, rg))["name"]
    reader = await new_principal(client, world)
    await assign(client, world, "Reader", reader.sp_id, world.rg_path(rg))
    headers = bearer(await sp_token(client, world, reader, ARM_RESOURCE))
    assert (await arm_call(client, world, "GET", world.rg_path(rg), headers=headers)).status_code == 200
    assert (await arm_call(client, world, "GET", world.account_path(account, rg), headers=headers)).status_code == 200
    subs = (await arm_call(client, world, "GET", "/subscriptions", headers=headers)).json()["value"]
    assert [s["subscriptionId"] for s in subs] == [world.sub]  # an assignment below the subscription shows it
    assert (await arm_call(client, world, "GET", world.sub_path, headers=headers)).status_code == 200
    for method, path, body in [
        ("PATCH", world.rg_path(rg), {"tags": {}}),
        ("DELETE", world.account_path(account, rg), None),
        ("POST", world.account_path(account, rg) + "/listKeys", None),
        ("PUT", world.account_path(account, rg) + "/deployments/x", {"properties": {"model": MOCK_MODEL}}),
    ]:
        arm_error(await arm_call(client, world, method, path, body, headers=headers), 403, "AuthorizationFailed")
    # Only the group it may read is listed; elsewhere the list is refused.
    groups = (await arm_call(client, world, "GET", f"{world.sub_path}/resourcegroups", headers=headers)).json()
    assert [g["name"] for g in groups["value"]] == [rg]
    permissions = (await arm_call(client, world, "GET",
                                  world.rg_path(rg) + "/providers/Microsoft.Authorization/permissions",
                                  headers=headers)).json()["value"]
    assert permissions == [{"actions": ["*/read"], "notActions": [], "dataActions": [], "notDataActions": []}]


async def test_deleting_an_assignment_applies_to_the_next_request(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    who = await new_principal(client, world)
    assignment = await assign(client, world, "Contributor", who.sp_id, world.rg_path(rg))
    headers = bearer(await sp_token(client, world, who, ARM_RESOURCE))
    assert (await arm_call(client, world, "PATCH", world.rg_path(rg), {"tags": {"x": "y"}},
                           headers=headers)).status_code == 200
    # Contributor cannot assign roles.
    denied = await arm_call(client, world, "PUT", world.rg_path(rg) + "/providers/Microsoft.Authorization/"
                            f"roleAssignments/{uuid.uuid4()}", {"properties": {
                                "roleDefinitionId": world.role_id("Owner"), "principalId": who.sp_id}},
                            headers=headers)
    arm_error(denied, 403, "AuthorizationFailed")
    removed = await arm_call(client, world, "DELETE", assignment["id"])
    assert removed.status_code == 200 and removed.json()["name"] == assignment["name"]
    assert (await arm_call(client, world, "DELETE", assignment["id"])).status_code == 204
    arm_error(await arm_call(client, world, "PATCH", world.rg_path(rg), {"tags": {}}, headers=headers),
              403, "AuthorizationFailed")


# ----------------------------------------------------------------------------- role assignments
def _ra_path(scope: str, name: str | None = None) -> str:
    return f"{scope}/providers/Microsoft.Authorization/roleAssignments" + (f"/{name}" if name else "")


async def test_role_assignment_shape_list_and_conflicts(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    who = await new_principal(client, world)
    scope = world.rg_path(rg)
    created = await assign(client, world, "Reader", who.sp_id, scope)
    assert created["type"] == "Microsoft.Authorization/roleAssignments"
    props = created["properties"]
    assert props["principalId"] == who.sp_id and props["principalType"] == "ServicePrincipal"
    assert props["roleDefinitionId"].lower().endswith(ROLES["Reader"])
    assert props["scope"] == scope and props["createdBy"] == world.admin_id
    got = await arm_call(client, world, "GET", _ra_path(scope, created["name"]))
    assert got.status_code == 200 and got.json()["id"] == created["id"]
    listed = await arm_call(client, world, "GET", _ra_path(scope) + f"?$filter=principalId eq '{who.sp_id}'")
    assert [a["name"] for a in listed.json()["value"]] == [created["name"]]
    body = {"properties": {"roleDefinitionId": world.role_id("Reader"), "principalId": who.sp_id}}
    same_name = await arm_call(client, world, "PUT", _ra_path(scope, created["name"]), body)
    assert same_name.status_code == 200
    exists = await arm_call(client, world, "PUT", _ra_path(scope.upper().replace("SUBSCRIPTIONS", "subscriptions"),
                                                           str(uuid.uuid4())), body)
    error = arm_error(exists, 409, "RoleAssignmentExists")
    assert created["name"].replace("-", "") in error["message"]
    update = await arm_call(client, world, "PUT", _ra_path(scope, created["name"]),
                            {"properties": {"roleDefinitionId": world.role_id("Owner"), "principalId": who.sp_id}})
    arm_error(update, 409, "RoleAssignmentUpdateNotPermitted")


@pytest.mark.parametrize(("name", "props", "code"), [
    ("not-a-guid", {"roleDefinitionId": "R", "principalId": "P"}, "InvalidRoleAssignmentId"),
    (None, None, "InvalidRequestContent"),
    (None, {"roleDefinitionId": "R", "principalId": "P", "condition": "@x"}, "ConditionsNotSupported"),
    (None, {"principalId": "P"}, "InvalidRequestContent"),
    (None, {"roleDefinitionId": "R", "principalId": "nope"}, "InvalidPrincipalId"),
    (None, {"roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{uuid.uuid4()}",
            "principalId": "P"}, "RoleDefinitionDoesNotExist"),
    (None, {"roleDefinitionId": "R", "principalId": str(uuid.uuid4())}, "PrincipalNotFound"),
    (None, {"roleDefinitionId": "R", "principalId": "P", "principalType": "User"}, "UnmatchedPrincipalType"),
])
async def test_role_assignment_validation(client: httpx.AsyncClient, world: World, name: str | None,
                                          props: dict[str, str] | None, code: str) -> None:
    who = await new_principal(client, world)
    if props is not None:
        props = {k: {"R": world.role_id("Reader"), "P": who.sp_id}.get(v, v) for k, v in props.items()}
    path = _ra_path(world.sub_path, name or str(uuid.uuid4()))
    arm_error(await arm_call(client, world, "PUT", path, {"properties": props} if props is not None else {}),
              400, code)
    listed = await arm_call(client, world, "GET", _ra_path(world.sub_path) + f"?$filter=principalId eq '{who.sp_id}'")
    assert listed.json()["value"] == []


async def test_role_assignment_at_a_scope_that_does_not_exist(client: httpx.AsyncClient, world: World) -> None:
    who = await new_principal(client, world)
    answer = await arm_call(client, world, "PUT", _ra_path(world.rg_path(unique("ghost")), str(uuid.uuid4())),
                            {"properties": {"roleDefinitionId": world.role_id("Reader"), "principalId": who.sp_id}})
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] in ("ResourceGroupNotFound", "ResourceNotFound")


async def test_deleting_a_group_drops_its_assignments(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    who = await new_principal(client, world)
    created = await assign(client, world, "Reader", who.sp_id, world.rg_path(rg))
    assert (await arm_call(client, world, "DELETE", world.rg_path(rg))).status_code == 200
    found = await arm_call(client, world, "GET", _ra_path(world.sub_path) + f"?$filter=principalId eq '{who.sp_id}'")
    assert found.json()["value"] == []
    assert created["name"]


# ----------------------------------------------------------------------------- role definitions
def _rd_path(scope: str, guid: str | None = None) -> str:
    return f"{scope}/providers/Microsoft.Authorization/roleDefinitions" + (f"/{guid}" if guid else "")


def _custom(name: str, scopes: list[str], actions: list[str] | None = None) -> dict[str, Any]:
    return {"properties": {"roleName": name, "description": "test", "type": "CustomRole",
                           "permissions": [{"actions": actions or ["Microsoft.Resources/subscriptions/resourceGroups/"
                                                                   "read"], "notActions": []}],
                           "assignableScopes": scopes}}


async def test_builtin_roles_are_public_and_immutable(client: httpx.AsyncClient, world: World) -> None:
    nobody = await new_principal(client, world)
    headers = bearer(await sp_token(client, world, nobody, ARM_RESOURCE))
    listed = await arm_call(client, world, "GET", _rd_path(world.sub_path), headers=headers)
    names = {r["properties"]["roleName"] for r in listed.json()["value"]}
    assert {"Owner", "Reader", "Contributor", "Cognitive Services OpenAI User"} <= names
    reader = await arm_call(client, world, "GET", _rd_path(world.sub_path, ROLES["Reader"]), headers=headers)
    assert reader.status_code == 200 and reader.json()["properties"]["type"] == "BuiltInRole"
    filtered = await arm_call(client, world, "GET", _rd_path(world.sub_path) + "?$filter=roleName eq 'Reader'")
    assert [r["name"] for r in filtered.json()["value"]] == [ROLES["Reader"]]
    error = arm_error(await arm_call(client, world, "DELETE", _rd_path(world.sub_path, ROLES["Reader"])),
                      400, "InvalidRoleDefinition")
    assert "built-in role" in error["message"]
    arm_error(await arm_call(client, world, "PUT", _rd_path(world.sub_path, ROLES["Reader"]),
                             _custom("Reader", [world.sub_path])), 400, "InvalidRoleDefinition")


async def test_custom_role_lifecycle_and_name_conflict(client: httpx.AsyncClient, world: World) -> None:
    guid = str(uuid.uuid4())
    name = unique("Custom Role")
    created = await arm_call(client, world, "PUT", _rd_path(world.sub_path, guid), _custom(name, [world.sub_path]))
    assert created.status_code == 201, created.text
    props = created.json()["properties"]
    assert props["roleName"] == name and props["type"] == "CustomRole"
    assert props["assignableScopes"] == [world.sub_path]
    got = await arm_call(client, world, "GET", _rd_path(world.sub_path, guid))
    assert got.status_code == 200 and got.json()["name"] == guid
    clash = await arm_call(client, world, "PUT", _rd_path(world.sub_path, str(uuid.uuid4())),
                           _custom(name.upper(), [world.sub_path]))
    arm_error(clash, 409, "RoleDefinitionWithSameNameExists")
    # A principal without roleDefinitions/read never learns the role exists.
    nobody = await new_principal(client, world)
    headers = bearer(await sp_token(client, world, nobody, ARM_RESOURCE))
    arm_error(await arm_call(client, world, "GET", _rd_path(world.sub_path, guid), headers=headers),
              404, "RoleDefinitionDoesNotExist")
    arm_error(await arm_call(client, world, "DELETE", _rd_path(world.sub_path, guid), headers=headers),
              403, "AuthorizationFailed")
    deleted = await arm_call(client, world, "DELETE", _rd_path(world.sub_path, guid))
    assert deleted.status_code == 200 and deleted.json()["name"] == guid
    assert (await arm_call(client, world, "DELETE", _rd_path(world.sub_path, guid))).status_code == 204
    arm_error(await arm_call(client, world, "GET", _rd_path(world.sub_path, guid)), 404, "RoleDefinitionDoesNotExist")


async def test_user_access_administrator_of_a_group_cannot_rewrite_a_subscription_role(
        client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    guid = str(uuid.uuid4())
    created = await arm_call(client, world, "PUT", _rd_path(world.sub_path, guid),
                             _custom(unique("Wide"), [world.sub_path]))
    assert created.status_code == 201, created.text
    uaa = await new_principal(client, world)
    await assign(client, world, "User Access Administrator", uaa.sp_id, world.rg_path(rg))
    headers = bearer(await sp_token(client, world, uaa, ARM_RESOURCE))
    narrowed = await arm_call(client, world, "PUT", _rd_path(world.rg_path(rg), guid),
                              _custom(unique("Narrow"), [world.rg_path(rg)]), headers=headers)
    arm_error(narrowed, 403, "AuthorizationFailed")
    still = await arm_call(client, world, "GET", _rd_path(world.sub_path, guid))
    assert still.json()["properties"]["assignableScopes"] == [world.sub_path]


async def test_custom_role_validation(client: httpx.AsyncClient, world: World) -> None:
    guid = str(uuid.uuid4())
    for body in ({"properties": {"roleName": "x", "permissions": [], "assignableScopes": []}},
                 {"properties": {"roleName": "", "assignableScopes": [world.sub_path]}},
                 {"properties": "nope"}):
        answer = await arm_call(client, world, "PUT", _rd_path(world.sub_path, guid), body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"]["code"] in ("BadRequest", "InvalidRoleDefinition", "InvalidRequestContent",
                                                  "InvalidActionOrNotAction", "InvalidAssignableScopes"), answer.text
    arm_error(await arm_call(client, world, "GET", _rd_path(world.sub_path, guid)), 404, "RoleDefinitionDoesNotExist")


# ----------------------------------------------------------------------------- checkAccess
async def test_check_access_explains_a_decision(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    who = await new_principal(client, world)
    assignment = await assign(client, world, "Reader", who.sp_id, world.rg_path(rg))
    url = world.rg_path(rg) + "/providers/Microsoft.Authorization/checkAccess"
    allowed = (await arm_call(client, world, "POST", url, {
        "principalId": who.sp_id, "action": "Microsoft.CognitiveServices/accounts/read"})).json()
    assert allowed["allowed"] is True and "Reader" in allowed["reason"]
    assert [a["name"] for a in allowed["matchedAssignments"]] == [assignment["name"]]
    denied = (await arm_call(client, world, "POST", url, {
        "principalId": who.sp_id, "action": "Microsoft.CognitiveServices/accounts/write"})).json()
    assert denied["allowed"] is False and denied["matchedAssignments"] == []
    data = (await arm_call(client, world, "POST", url, {
        "principalId": who.sp_id, "isDataAction": True,
        "action": "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action"})).json()
    assert data["allowed"] is False and data["isDataAction"] is True
    ghost = (await arm_call(client, world, "POST", url, {"principalId": str(uuid.uuid4()), "action": "x/read"})).json()
    assert ghost == {**ghost, "allowed": False, "reason": "The principal does not exist in the directory."}
    # About oneself: no right needed; about another: roleAssignments/read.
    headers = bearer(await sp_token(client, world, who, ARM_RESOURCE))
    mine = (await arm_call(client, world, "POST", url, {"action": "Microsoft.Resources/subscriptions/resourceGroups/"
                                                                  "read"}, headers=headers)).json()
    assert mine["allowed"] is True and mine["principalId"] == who.sp_id
    nobody = await new_principal(client, world)
    other = bearer(await sp_token(client, world, nobody, ARM_RESOURCE))
    arm_error(await arm_call(client, world, "POST", url, {"principalId": who.sp_id, "action": "x/read"},
                             headers=other), 403, "AuthorizationFailed")
    arm_error(await arm_call(client, world, "POST", url, {"principalId": 5, "action": "x"}), 400,
              "InvalidRequestContent")
    arm_error(await arm_call(client, world, "POST", url, {"principalId": who.sp_id}), 400, "InvalidRequestContent")
    big = await arm_call(client, world, "POST", url, {"action": "x" * 17 * 1024})
    arm_error(big, 413, "RequestContentTooLarge")


async def test_an_account_whose_keys_cannot_be_made_is_not_left_behind(
        client: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """No 500 commits a write: if sealing the new keys fails, the account's create is undone."""
    def broken_seal(_: str) -> str:
        raise OSError("sealing key unreadable")

    monkeypatch.setattr(world.services.resources._sealer, "seal", broken_seal)
    name = unique("nokeys")
    path = world.account_path(name)
    body = {"kind": "OpenAI", "sku": {"name": "S0"}, "location": "eastus", "properties": {"customSubDomainName": name}}
    answer = await arm_call(client, world, "PUT", path, body)
    assert answer.status_code == 500 and answer.json()["error"]["code"] == "InternalServerError"
    monkeypatch.undo()
    arm_error(await arm_call(client, world, "GET", path), 404, "ResourceNotFound")


async def test_denial_reason_is_logged_with_the_request_id(client: httpx.AsyncClient, world: World,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """RBAC's reason for an AuthorizationFailed is logged at debug level, with the x-ms-request-id the answer
    carries, and never sent; the caller's token is not in the log."""
    rg = await _group(client, world)
    nobody = await new_principal(client, world)
    token = await sp_token(client, world, nobody, ARM_RESOURCE)
    with caplog.at_level(logging.DEBUG, logger="cielo"):
        answer = await arm_call(client, world, "GET", world.rg_path(rg), headers=bearer(token))
    error = arm_error(answer, 403, "AuthorizationFailed")
    assert "Denied" not in error["message"]
    request_id = answer.headers["x-ms-request-id"]
    # The access log's line (logger cielo.access) names the request id too; the reason is in one other line.
    reasons = [r for r in caplog.records if request_id in r.getMessage() and r.name != "cielo.access"]
    lines = [r.getMessage() for r in reasons]
    assert len(lines) == 1, caplog.text
    assert lines[0].startswith(f"AuthorizationFailed on GET {world.rg_path(rg)} (request id {request_id}): Denied: ")
    assert f"principal '{nobody.sp_id}'" in lines[0]
    assert "no role assignments" in lines[0]
    assert all(r.levelno == logging.DEBUG for r in reasons)
    assert token not in caplog.text


# ----------------------------------------------------------------------------- refusals across routes
# (the tables that tests/e2e/test_arm_errors.py ran against a real server)
def _across_routes(world: World) -> list[tuple[str, str]]:
    return [("GET", "/subscriptions"), ("GET", "/tenants"), ("GET", world.sub_path),
            ("PUT", world.rg_path("no-version")), ("GET", _ra_path(world.sub_path)),
            ("POST", f"{world.sub_path}/providers/Microsoft.Authorization/checkAccess")]


async def test_api_version_is_required_on_every_route(client: httpx.AsyncClient, world: World) -> None:
    for method, path in _across_routes(world):
        for headers in (world.arm, {}):
            answer = await arm_call(client, world, method, path, {"location": "local"}, headers=headers,
                                    api_version=None)
            assert "api-version" in arm_error(answer, 400, "MissingApiVersionParameter")["message"]
        for bad in ("bogus", "latest", "2022-12-01;drop", "2" * 40):
            arm_error(await arm_call(client, world, method, path, {"location": "local"}, api_version=bad), 400,
                      "InvalidApiVersionParameter")
    arm_error(await arm_call(client, world, "GET", world.rg_path("no-version")), 404, "ResourceGroupNotFound")


async def test_malformed_bodies_are_refused_everywhere_and_change_nothing(client: httpx.AsyncClient,
                                                                         world: World) -> None:
    rg = await _group(client, world)
    account = (await _account(client, world, rg))["name"]
    targets = [
        ("PUT", world.rg_path(unique("json"))),
        ("PATCH", world.rg_path(rg)),
        ("PUT", world.account_path(unique("json"), rg)),
        ("PUT", world.account_path(account, rg) + "/deployments/json"),
        ("PUT", _ra_path(world.rg_path(rg), str(uuid.uuid4()))),
        ("PUT", _rd_path(world.sub_path, str(uuid.uuid4()))),
        ("POST", f"{world.rg_path(rg)}/providers/Microsoft.Authorization/checkAccess"),
        ("POST", world.account_path(account, rg) + "/regenerateKey"),
    ]
    raw = {**world.arm, "Content-Type": "application/json"}
    for method, path in targets:
        for content in (b'{"location": "local",', b"[1, 2]", b'"text"', b"\xff\xfe"):
            answer = await client.request(method, f"{path}?api-version=2022-12-01", content=content, headers=raw)
            arm_error(answer, 400, "InvalidRequestContent")
    big = await client.put(f"{world.rg_path(unique('big'))}?api-version=2022-12-01", content=b" " * (1024 * 1024 + 1),
                           headers=raw)
    arm_error(big, 413, "RequestContentTooLarge")
    for method, path in targets[:4]:
        if method == "PUT":
            assert (await arm_call(client, world, "GET", path)).status_code == 404
    assert (await arm_call(client, world, "GET", world.rg_path(rg))).json()["tags"] == {}
    at_rg = await arm_call(client, world, "GET", _ra_path(world.rg_path(rg)) + "?$filter=atScope()")
    at_sub = await arm_call(client, world, "GET", _ra_path(world.sub_path) + "?$filter=atScope()")
    assert at_rg.json()["value"] == at_sub.json()["value"]


@pytest.mark.parametrize(("name", "body", "code"), [
    ("bad!name", {"location": "local"}, "InvalidResourceGroupName"),
    ("no-location", {}, "LocationRequired"),
    ("blank-location", {"location": "  "}, "LocationRequired"),
    ("odd-location", {"location": "west/europe"}, "LocationNotAvailableForResourceGroup"),
])
async def test_more_resource_group_validation(client: httpx.AsyncClient, world: World, name: str,
                                              body: dict[str, Any], code: str) -> None:
    arm_error(await arm_call(client, world, "PUT", world.rg_path(name), body), 400, code)
    assert (await arm_call(client, world, "HEAD", world.rg_path(name))).status_code == 404


async def test_bad_account_and_deployment_puts_write_nothing(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    good = {"location": "local", "kind": "OpenAI", "sku": {"name": "S0"}}
    for name, body, code in [
        ("-starts-with-dash", good, "InvalidResourceName"),
        (unique("nokind"), {**good, "kind": None}, "KindRequired"),
        (unique("kind"), {**good, "kind": "Storage"}, "InvalidKind"),
        (unique("loc"), {**good, "location": None}, "LocationRequired"),
    ]:
        arm_error(await arm_call(client, world, "PUT", world.account_path(name, rg), body), 400, code)
        arm_error(await arm_call(client, world, "GET", world.account_path(name, rg)), 404, "ResourceNotFound")
    account = (await _account(client, world, rg))["name"]
    for name, body, code in [
        ("x", {"sku": {"name": "Standard", "capacity": 1}, "properties": {"model": CHAT_MODEL}},
         "InvalidResourceName"),
        ("text", {"sku": {"name": "Standard", "capacity": "ten"}, "properties": {"model": CHAT_MODEL}},
         "InvalidCapacity"),
        ("ptu", {"sku": {"name": "ProvisionedManaged", "capacity": 1}, "properties": {"model": CHAT_MODEL}},
         "InvalidSkuName"),
        ("props", {"sku": {"name": "Standard", "capacity": 1}, "properties": []}, "InvalidRequestContent"),
    ]:
        path = world.account_path(account, rg) + f"/deployments/{name}"
        arm_error(await arm_call(client, world, "PUT", path, body), 400, code)
        arm_error(await arm_call(client, world, "GET", path), 404, "ResourceNotFound")


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _unauthenticated(answer: httpx.Response) -> None:
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] in ("AuthenticationFailed", "InvalidAuthenticationToken")
    assert answer.headers["www-authenticate"].startswith("Bearer ")


async def test_bad_tokens_get_401_everywhere(client: httpx.AsyncClient, world: World) -> None:
    token = world.arm["Authorization"].removeprefix("Bearer ")
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    bad_tokens = {
        "garbage": "garbage",
        "tampered-signature": f"{header}.{payload}.{signature[:-6]}AAAAAA",
        "forged-claims": f"{header}.{_b64({**claims, 'oid': str(uuid.uuid4())})}.{signature}",
        "alg-none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "graph-audience": world.graph["Authorization"].removeprefix("Bearer "),
        "cognitiveservices-audience": world.cog["Authorization"].removeprefix("Bearer "),
    }
    routes = [("GET", "/subscriptions"), ("GET", "/tenants"), ("GET", world.sub_path),
              ("PUT", world.rg_path("token-test")), ("PUT", _ra_path(world.rg_path("cielo-rg"), str(uuid.uuid4())))]
    body = {"location": "local", "properties": {"roleDefinitionId": world.role_id("Owner"),
                                                "principalId": world.admin_id}}
    for method, path in routes:
        _unauthenticated(await arm_call(client, world, method, path, body, headers={}))
        for scheme in ("Basic YWRtaW46cGFzcw==", "Bearer", token):
            _unauthenticated(await arm_call(client, world, method, path, body, headers={"Authorization": scheme}))
        for why, bad in bad_tokens.items():
            answer = await arm_call(client, world, method, path, body, headers=bearer(bad))
            _unauthenticated(answer)
            if why.endswith("audience"):
                assert "wrong audience" in answer.json()["error"]["message"]
    arm_error(await arm_call(client, world, "GET", world.rg_path("token-test")), 404, "ResourceGroupNotFound")
    # The other ARM audience (az's) is accepted too.
    other = await client.post(world.token_url(), data={
        "grant_type": "password", "client_id": CLI_CLIENT_ID, "username": ADMIN, "password": PASSWORD,
        "scope": "https://management.core.windows.net//.default"})
    assert other.status_code == 200, other.text
    answer = await arm_call(client, world, "GET", world.sub_path, headers=bearer(other.json()["access_token"]))
    assert answer.status_code == 200, answer.text


async def test_denials_name_user_and_service_principal_for_every_action(client: httpx.AsyncClient,
                                                                        world: World) -> None:
    upn = f"{unique('arm-user')}@cielo.local"
    created = await client.post("/v1.0/users", headers=world.graph, json={
        "userPrincipalName": upn, "displayName": "arm-user", "accountEnabled": True,
        "passwordProfile": {"password": PASSWORD}})
    assert created.status_code == 201, created.text
    signed_in = await client.post(world.token_url(), data={
        "grant_type": "password", "client_id": CLI_CLIENT_ID, "username": upn, "password": PASSWORD,
        "scope": "https://management.core.windows.net//.default"})
    assert signed_in.status_code == 200, signed_in.text
    sp = await new_principal(client, world)
    callers = [(upn, created.json()["id"], bearer(signed_in.json()["access_token"])),
               (sp.app_id, sp.sp_id, bearer(await sp_token(client, world, sp, ARM_RESOURCE)))]
    rg = world.rg_path("cielo-rg")
    account = world.account_path()
    deployment = account + "/deployments/smollm2"
    rg_write = "Microsoft.Resources/subscriptions/resourceGroups/write"
    for display, object_id, headers in callers:
        checks: list[tuple[str, str, dict[str, Any] | None, str, str]] = [
            ("GET", rg, None, "Microsoft.Resources/subscriptions/resourceGroups/read", rg),
            ("PUT", rg, {"location": "local"}, rg_write, rg),
            ("PATCH", rg, {"tags": {}}, rg_write, rg),
            ("DELETE", rg, None, "Microsoft.Resources/subscriptions/resourceGroups/delete", rg),
            ("GET", world.sub_path + "/resourcegroups", None, "Microsoft.Resources/subscriptions/resourceGroups/read",
             world.sub_path),
            ("GET", account, None, "Microsoft.CognitiveServices/accounts/read", account),
            ("PUT", account, {}, "Microsoft.CognitiveServices/accounts/write", account),
            ("DELETE", account, None, "Microsoft.CognitiveServices/accounts/delete", account),
            ("POST", account + "/listKeys", None, "Microsoft.CognitiveServices/accounts/listKeys/action", account),
            ("GET", account + "/deployments", None, "Microsoft.CognitiveServices/accounts/deployments/read", account),
            ("GET", deployment, None, "Microsoft.CognitiveServices/accounts/deployments/read", deployment),
            ("GET", _ra_path(rg), None, "Microsoft.Authorization/roleAssignments/read", rg),
            ("PUT", _ra_path(rg, str(uuid.uuid4())), {"properties": {"roleDefinitionId": world.role_id("Owner"),
                                                                     "principalId": object_id}},
             "Microsoft.Authorization/roleAssignments/write", rg),
            ("DELETE", _ra_path(rg, str(uuid.uuid4())), None, "Microsoft.Authorization/roleAssignments/delete", rg),
            ("PUT", _rd_path(rg, str(uuid.uuid4())), {"properties": {"roleName": "x", "assignableScopes": [rg]}},
             "Microsoft.Authorization/roleDefinitions/write", rg),
        ]
        for method, path, body, action, scope in checks:
            error = arm_error(await arm_call(client, world, method, path, body, headers=headers), 403,
                              "AuthorizationFailed")
            assert error["message"] == (
                f"The client '{display}' with object id '{object_id}' does not have authorization to perform "
                f"action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, "
                "please refresh your credentials."), (method, path)
    assert (await arm_call(client, world, "GET", deployment)).status_code == 200
