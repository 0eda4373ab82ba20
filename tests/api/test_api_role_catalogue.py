"""The whole built-in role catalogue over ARM, in-process: list, filter and get role definitions, assign any built-in
(a service Cielo does not serve included) by GUID as a template would, custom roles beside ~930 built-ins, the
unknown actions checkAccess reports, and Microsoft.Authorization/providerOperations (docs/rbac.md)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from inproc import ARM_RESOURCE, World, arm_call, arm_error, bearer, new_principal, sp_token, unique
from inproc_cli import Cli, signed_in_cli

from cielo.rbac import BUILTIN_ROLES

AUTHZ = "providers/Microsoft.Authorization"
AI_DEVELOPER = "64702f94-c441-49e6-a78b-ef80e0188fee"
BLOB_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
CHAT = "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action"


def _rd(scope: str, guid: str | None = None) -> str:
    return f"{'' if scope == '/' else scope}/{AUTHZ}/roleDefinitions" + (f"/{guid}" if guid else "")


async def _list(client: httpx.AsyncClient, world: World, flt: str | None = None) -> list[dict[str, Any]]:
    answer = await arm_call(client, world, "GET", _rd(world.sub_path) + (f"?$filter={flt}" if flt else ""))
    assert answer.status_code == 200, answer.text
    value: list[dict[str, Any]] = answer.json()["value"]
    return value


async def _group(client: httpx.AsyncClient, world: World) -> str:
    path = world.rg_path(unique("catalogue-rg"))
    assert (await arm_call(client, world, "PUT", path, {"location": "local"})).status_code == 201
    return path


async def _custom_role(client: httpx.AsyncClient, world: World, name: str, actions: list[str],
                       data_actions: list[str] | None = None) -> httpx.Response:
    return await arm_call(client, world, "PUT", _rd(world.sub_path, str(uuid.uuid4())), {"properties": {
        "roleName": name, "description": "test", "type": "CustomRole", "assignableScopes": [world.sub_path],
        "permissions": [{"actions": actions, "notActions": [], "dataActions": data_actions or [],
                         "notDataActions": []}]}})


async def test_list_and_filter_the_whole_catalogue(client: httpx.AsyncClient, world: World) -> None:
    custom = await _custom_role(client, world, unique("Catalogue Custom"), ["Microsoft.Resources/subscriptions/read"])
    assert custom.status_code == 201, custom.text
    everything = await _list(client, world)
    builtins = await _list(client, world, "type eq 'BuiltInRole'")
    customs = await _list(client, world, "type eq 'CustomRole'")
    assert len(builtins) == len(BUILTIN_ROLES) == 928
    assert {r["properties"]["type"] for r in builtins} == {"BuiltInRole"}
    assert {r["properties"]["type"] for r in customs} == {"CustomRole"} and custom.json()["name"] in {
        r["name"] for r in customs}
    assert len(everything) == len(builtins) + len(customs)
    [developer] = await _list(client, world, "roleName eq 'azure ai developer'")
    assert developer["name"] == AI_DEVELOPER
    assert developer["id"] == f"{world.sub_path}/{AUTHZ}/roleDefinitions/{AI_DEVELOPER}"
    props = developer["properties"]
    assert props["roleName"] == "Azure AI Developer" and props["assignableScopes"] == ["/"]
    assert "Microsoft.CognitiveServices/accounts/OpenAI/*" in props["permissions"][0]["dataActions"]


async def test_get_by_guid_and_a_condition_in_the_shape(client: httpx.AsyncClient, world: World) -> None:
    blob = await arm_call(client, world, "GET", _rd("/", BLOB_CONTRIBUTOR))
    assert blob.status_code == 200, blob.text
    assert blob.json()["id"] == f"/{AUTHZ}/roleDefinitions/{BLOB_CONTRIBUTOR}"
    assert blob.json()["properties"]["roleName"] == "Storage Blob Data Contributor"
    assert "condition" not in blob.json()["properties"]["permissions"][0]
    kv_admin = await arm_call(client, world, "GET", _rd(world.sub_path, "8b54135c-b56d-4d72-a534-26097cfdc8d8"))
    [perm] = kv_admin.json()["properties"]["permissions"]
    assert perm["conditionVersion"] == "2.0" and perm["condition"].startswith("((!(ActionMatches{")


async def test_template_assignment_of_an_unserved_services_role(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    who = await new_principal(client, world)
    for guid in (BLOB_CONTRIBUTOR, KEY_VAULT_SECRETS_USER, AI_DEVELOPER):
        # As a Bicep/ARM template writes it: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', guid).
        name = str(uuid.uuid4())
        body = {"properties": {"roleDefinitionId": f"{world.sub_path}/{AUTHZ}/roleDefinitions/{guid}",
                               "principalId": who.sp_id, "principalType": "ServicePrincipal"}}
        created = await arm_call(client, world, "PUT", f"{rg}/{AUTHZ}/roleAssignments/{name}", body)
        assert created.status_code == 201, created.text
        assert created.json()["properties"]["roleDefinitionId"].endswith(guid)
    # Storage and Key Vault roles grant nothing Cielo serves; Azure AI Developer grants the OpenAI data actions.
    check = await arm_call(client, world, "POST", f"{rg}/{AUTHZ}/checkAccess", {
        "principalId": who.sp_id, "action": "Microsoft.Resources/subscriptions/resourceGroups/read"})
    assert check.status_code == 200 and check.json()["allowed"] is False
    check = await arm_call(client, world, "POST", f"{rg}/{AUTHZ}/checkAccess", {
        "principalId": who.sp_id, "action": CHAT, "isDataAction": True})
    assert check.json()["allowed"] is True and check.json()["unknownActions"] == []


async def test_custom_roles_beside_the_catalogue(client: httpx.AsyncClient, world: World) -> None:
    arm_error(await _custom_role(client, world, "storage blob data reader", ["Microsoft.Resources/subscriptions/read"]),
              409, "RoleDefinitionWithSameNameExists")
    conditioned = await arm_call(client, world, "PUT", _rd(world.sub_path, str(uuid.uuid4())), {"properties": {
        "roleName": unique("Conditioned"), "type": "CustomRole", "assignableScopes": [world.sub_path],
        "permissions": [{"actions": ["Microsoft.Authorization/roleAssignments/write"], "condition": "@x",
                         "conditionVersion": "2.0"}]}})
    arm_error(conditioned, 400, "ConditionsNotSupported")
    name = unique("Half Known")
    created = await _custom_role(client, world, name, ["Microsoft.Resources/subscriptions/resourceGroups/read",
                                                       "Microsoft.Storage/storageAccounts/read"],
                                 ["Microsoft.CognitiveServices/accounts/OpenAI/nothing-like-this/action"])
    assert created.status_code == 201, created.text  # accepted: Azure checks only an action's form
    rg = await _group(client, world)
    who = await new_principal(client, world)
    put = await arm_call(client, world, "PUT", f"{rg}/{AUTHZ}/roleAssignments/{uuid.uuid4()}", {"properties": {
        "roleDefinitionId": created.json()["id"], "principalId": who.sp_id, "principalType": "ServicePrincipal"}})
    assert put.status_code == 201, put.text
    check = await arm_call(client, world, "POST", f"{rg}/{AUTHZ}/checkAccess", {
        "principalId": who.sp_id, "action": "Microsoft.Resources/subscriptions/resourceGroups/read"})
    assert check.json()["allowed"] is True
    unknown = {(u["field"], u["action"]) for u in check.json()["unknownActions"]}
    assert unknown == {("actions", "Microsoft.Storage/storageAccounts/read"),
                       ("dataActions", "Microsoft.CognitiveServices/accounts/OpenAI/nothing-like-this/action")}
    assert all(u["roleName"] == name and "matches no operation" in u["message"]
               for u in check.json()["unknownActions"])


async def test_provider_operations_list_and_show(client: httpx.AsyncClient, world: World) -> None:
    listed = await arm_call(client, world, "GET", f"/{AUTHZ}/providerOperations", api_version="2022-04-01")
    assert listed.status_code == 200, listed.text
    names = [p["name"] for p in listed.json()["value"]]
    assert set(names) == {"Microsoft.Authorization", "Microsoft.CognitiveServices", "Microsoft.Compute",
                          "Microsoft.Insights", "Microsoft.ManagedIdentity", "Microsoft.Resources", "microsoft.web"}
    shown = await arm_call(client, world, "GET", f"/{AUTHZ}/providerOperations/microsoft.cognitiveservices"
                                                 "?$expand=resourceTypes", api_version="2022-04-01")
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["id"] == f"/{AUTHZ}/providerOperations/Microsoft.CognitiveServices"
    assert body["type"] == "Microsoft.Authorization/providerOperations"
    assert body["displayName"] == "Microsoft Cognitive Services"
    ops = {o["name"]: o for t in body["resourceTypes"] for o in t["operations"]}
    assert ops[CHAT]["isDataAction"] is True and ops[CHAT]["properties"] is None
    assert ops["Microsoft.CognitiveServices/accounts/read"]["isDataAction"] is False
    assert set(ops[CHAT]) == {"name", "displayName", "description", "origin", "isDataAction", "properties"}


async def test_provider_operations_need_only_a_signed_in_caller(client: httpx.AsyncClient, world: World) -> None:
    nobody = await new_principal(client, world)  # no role assignment anywhere
    headers = bearer(await sp_token(client, world, nobody, ARM_RESOURCE))
    answer = await arm_call(client, world, "GET", f"/{AUTHZ}/providerOperations/Microsoft.Authorization",
                            headers=headers, api_version="2022-04-01")
    assert answer.status_code == 200, answer.text
    assert "Microsoft.Authorization/roleAssignments/write" in {
        o["name"] for t in answer.json()["resourceTypes"] for o in t["operations"]}
    anonymous = await arm_call(client, world, "GET", f"/{AUTHZ}/providerOperations", headers={})
    assert anonymous.status_code == 401


async def test_provider_operations_refusals(client: httpx.AsyncClient, world: World) -> None:
    arm_error(await arm_call(client, world, "GET", f"/{AUTHZ}/providerOperations/Microsoft.Storage"),
              404, "InvalidResourceNamespace")
    arm_error(await arm_call(client, world, "GET", f"/{AUTHZ}/providerOperations?$expand=everything"),
              400, "InvalidQueryParameterValue")


# ----------------------------------------------------------------------------- the cielo CLI
@pytest.fixture()
def cli(world: World, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Cli]:
    with signed_in_cli(world, tmp_path_factory, tmp_path) as runner:
        yield runner


def test_cli_definition_list_like_az(cli: Cli) -> None:
    everything = cli.json("role", "definition", "list", "--custom-role-only", "false")
    custom = cli.json("role", "definition", "list", "--custom-role-only", "true")
    assert cli.json("role", "definition", "list", "--custom-role-only") == custom
    assert len(everything) == len(BUILTIN_ROLES) + len(custom)
    assert all(r["roleType"] == "CustomRole" for r in custom)
    [developer] = cli.json("role", "definition", "list", "--name", "Azure AI Developer")
    assert developer["name"] == AI_DEVELOPER
    assert cli.json("role", "definition", "list", "--name", "Azure AI Developer", "--custom-role-only") == []


def test_cli_role_check_warns_of_actions_that_match_nothing(cli: Cli, world: World) -> None:
    rg_name = unique("cli-check-rg")
    cli.ok("group", "create", "-n", rg_name, "-l", "local", "-o", "none")
    role_name = unique("Storage Too")
    definition = {"Name": role_name, "Description": "t", "Actions": [
        "Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.Storage/storageAccounts/listKeys/action"],
        "AssignableScopes": [world.sub_path]}
    cli.ok("role", "definition", "create", "--role-definition", json.dumps(definition), "-o", "none")
    sp = cli.json("ad", "sp", "create-for-rbac", "-n", unique("cli-check-app"))
    cli.ok("role", "assignment", "create", "--role", role_name, "--assignee", sp["appId"],
           "--scope", world.rg_path(rg_name), "-o", "none")
    result = cli("role", "check", "--assignee", sp["appId"], "-g", rg_name,
                 "--action", "Microsoft.Resources/subscriptions/resourceGroups/read", "-o", "json")
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["allowed"] is True
    assert [u["action"] for u in body["unknownActions"]] == ["Microsoft.Storage/storageAccounts/listKeys/action"]
    assert "WARNING: 'Microsoft.Storage/storageAccounts/listKeys/action' in actions of custom role" in result.stderr
