"""ARM template deployments, in-process: real templates (tests/templates/README.md names their sources) deployed
through `Microsoft.Resources/deployments`, each resource created through the route table as the deploying caller
(docs/templates.md)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from inproc import ROLES, World, arm_call, arm_error, assign, bearer, new_principal, sp_token, unique

TEMPLATES = Path(__file__).parent.parent / "templates"
ARM = "https://management.azure.com/"
DEPLOY_API = "2024-03-01"


def _template(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((TEMPLATES / name).read_text())
    return loaded


async def _group(client: httpx.AsyncClient, world: World) -> str:
    name = unique("rg-deploy")
    answer = await arm_call(client, world, "PUT", world.rg_path(name), {"location": "local"})
    assert answer.status_code == 201, answer.text
    return name


def _path(world: World, rg: str, name: str) -> str:
    return f"{world.rg_path(rg)}/providers/Microsoft.Resources/deployments/{name}"


async def _start(client: httpx.AsyncClient, world: World, rg: str, name: str, template: dict[str, Any],
                 parameters: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"properties": {"template": template, "mode": "Incremental",
                           "parameters": {k: {"value": v} for k, v in (parameters or {}).items()}}}
    return await arm_call(client, world, "PUT", _path(world, rg, name), body, headers=headers,
                          api_version=DEPLOY_API)


async def _deploy(client: httpx.AsyncClient, world: World, rg: str, template: dict[str, Any],
                  parameters: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """PUT, then follow Azure-AsyncOperation as az's poller does until it leaves Running; the final GET."""
    name = unique("dep")
    started = await _start(client, world, rg, name, template, parameters, headers)
    assert started.status_code == 201, started.text
    assert started.json()["properties"]["provisioningState"] == "Accepted"
    status_url = started.headers["Azure-AsyncOperation"]
    assert "/operationStatuses/" in status_url
    path = status_url.split("127.0.0.1:8443", 1)[1]
    for _ in range(500):
        status = await client.get(path, headers=headers or world.arm)
        assert status.status_code == 200, status.text
        if status.json()["status"] != "Running":
            break
        await asyncio.sleep(0.01)
    final = await arm_call(client, world, "GET", _path(world, rg, name), headers=headers, api_version=DEPLOY_API)
    assert final.status_code == 200, final.text
    assert final.json()["properties"]["provisioningState"] == status.json()["status"]
    body: dict[str, Any] = final.json()
    return body


async def test_the_quickstart_openai_account_and_model_deployment(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    account = unique("foundry")
    dep = await _deploy(client, world, rg, _template("openai-account-deployment.json"),
                        {"foundryName": account, "modelDeploymentName": "chat"})
    props = dep["properties"]
    assert props["provisioningState"] == "Succeeded", props
    assert dep["type"] == "Microsoft.Resources/deployments" and props["mode"] == "Incremental"
    account_path = world.account_path(account, rg)
    assert props["outputs"]["foundryId"] == {"type": "String", "value": account_path}
    got = await arm_call(client, world, "GET", account_path)
    assert got.status_code == 200 and got.json()["kind"] == "AIServices"
    assert props["outputs"]["foundryEndpoint"]["value"] == got.json()["properties"]["endpoint"]
    model = await arm_call(client, world, "GET", f"{account_path}/deployments/chat")
    assert model.status_code == 200, model.text
    assert model.json()["properties"]["model"]["name"] == "SmolLM2-135M-Instruct"
    assert {r["id"] for r in props["outputResources"]} == {account_path, f"{account_path}/deployments/chat"}
    assert props["parameters"]["modelCapacity"] == {"type": "Int", "value": 1}
    assert props["correlationId"] and props["timestamp"] and props["duration"].startswith("PT")
    ops = await arm_call(client, world, "GET", _path(world, rg, dep["name"]) + "/operations", api_version=DEPLOY_API)
    assert sorted(o["properties"]["provisioningState"] for o in ops.json()["value"]) == ["Succeeded", "Succeeded"]
    listed = await arm_call(client, world, "GET", f"{world.rg_path(rg)}/providers/Microsoft.Resources/deployments",
                            api_version=DEPLOY_API)
    assert [d["name"] for d in listed.json()["value"]] == [dep["name"]]


async def test_an_unserved_resource_type_fails_the_deployment_naming_it(client: httpx.AsyncClient,
                                                                       world: World) -> None:
    rg = await _group(client, world)
    dep = await _deploy(client, world, rg, _template("foundry-getting-started.json"),
                        {"foundryName": unique("foundry"), "modelName": "SmolLM2-135M-Instruct",
                         "modelFormat": "HuggingFace", "modelVersion": "1"})
    props = dep["properties"]
    assert props["provisioningState"] == "Failed"
    assert props["error"]["code"] == "DeploymentFailed"
    [detail] = props["error"]["details"]
    assert "Microsoft.CognitiveServices/accounts/projects" in detail["message"], detail
    assert detail["target"].endswith("-proj")
    assert "outputs" not in props


async def test_a_user_assigned_identity_and_its_role_assignment_by_guid(client: httpx.AsyncClient,
                                                                        world: World) -> None:
    rg = await _group(client, world)
    identity = unique("mi")
    dep = await _deploy(client, world, rg, _template("rbac-managedidentity.json"),
                        {"managedIdentityName": identity, "location": "local"})
    assert dep["properties"]["provisioningState"] == "Succeeded", dep
    uami = await arm_call(client, world, "GET", f"{world.rg_path(rg)}/providers/Microsoft.ManagedIdentity/"
                                                f"userAssignedIdentities/{identity}")
    principal = uami.json()["properties"]["principalId"]
    found = await arm_call(client, world, "GET", f"{world.rg_path(rg)}/providers/Microsoft.Authorization/"
                                                 f"roleAssignments?$filter=principalId eq '{principal}'")
    [ra] = found.json()["value"]
    assert ra["properties"]["roleDefinitionId"].endswith(ROLES["Contributor"])
    assert ra["properties"]["scope"].lower() == world.rg_path(rg).lower()
    # Deploying again changes nothing: the guid() name is the same, and the assignment is answered 200.
    again = await _deploy(client, world, rg, _template("rbac-managedidentity.json"),
                          {"managedIdentityName": identity, "location": "local"})
    assert again["properties"]["provisioningState"] == "Succeeded", again


async def test_a_vm_system_identity_granted_a_role_on_an_account(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    vm, account = unique("vm"), unique("acct")
    dep = await _deploy(client, world, rg, _template("vm-system-identity-role.json"),
                        {"vmName": vm, "accountName": account})
    assert dep["properties"]["provisioningState"] == "Succeeded", dep
    got = await arm_call(client, world, "GET", f"{world.rg_path(rg)}/providers/Microsoft.Compute/virtualMachines/{vm}")
    principal = got.json()["identity"]["principalId"]
    assert dep["properties"]["outputs"]["principalId"]["value"] == principal
    found = await arm_call(client, world, "GET", f"{world.account_path(account, rg)}/providers/"
                                                 f"Microsoft.Authorization/roleAssignments")
    assigned = [a for a in found.json()["value"] if a["properties"]["principalId"] == principal]
    assert [a["properties"]["roleDefinitionId"].rsplit("/", 1)[1] for a in assigned] == [
        "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"]  # Cognitive Services OpenAI User
    deps = {d["resourceName"]: [x["resourceName"] for x in d["dependsOn"]] for d in dep["properties"]["dependencies"]}
    assert sorted(next(v for k, v in deps.items() if k not in (vm, account))) == sorted([vm, account])


async def test_a_caller_without_rights_on_a_resource_gets_its_authorization_failed(client: httpx.AsyncClient,
                                                                                  world: World) -> None:
    rg = await _group(client, world)
    sp = await new_principal(client, world)
    await assign(client, world, "Contributor", sp.sp_id, world.rg_path(rg))
    headers = bearer(await sp_token(client, world, sp, ARM))
    identity = unique("mi")
    dep = await _deploy(client, world, rg, _template("rbac-managedidentity.json"),
                        {"managedIdentityName": identity, "location": "local"}, headers)
    props = dep["properties"]
    assert props["provisioningState"] == "Failed"
    [detail] = props["error"]["details"]
    assert detail["code"] == "AuthorizationFailed" and "Microsoft.Authorization/roleAssignments/write" in \
        detail["message"]
    assert "/providers/Microsoft.Authorization/roleAssignments/" in detail["target"]
    # The identity, which the Contributor may create, was created; nothing was granted.
    assert [r["id"].rsplit("/", 1)[1] for r in props["outputResources"]] == [identity]
    # validate says so before anything runs (ARM's preflight).
    body = {"properties": {"template": _template("rbac-managedidentity.json"), "mode": "Incremental",
                           "parameters": {"managedIdentityName": {"value": identity}, "location": {"value": "local"}}}}
    checked = await arm_call(client, world, "POST", _path(world, rg, "pre") + "/validate", body, headers=headers,
                             api_version=DEPLOY_API)
    error = arm_error(checked, 400, "InvalidTemplateDeployment")
    assert "Microsoft.Authorization/roleAssignments/write" in error["message"]
    # A Reader may not start a deployment at all.
    reader = await new_principal(client, world)
    await assign(client, world, "Reader", reader.sp_id, world.rg_path(rg))
    refused = await _start(client, world, rg, unique("dep"), _template("rbac-managedidentity.json"),
                           {"managedIdentityName": identity, "location": "local"},
                           bearer(await sp_token(client, world, reader, ARM)))
    arm_error(refused, 403, "AuthorizationFailed")


_BASE = {"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
         "contentVersion": "1.0.0.0"}
_UAMI = "Microsoft.ManagedIdentity/userAssignedIdentities"


@pytest.mark.parametrize(("template", "parameters", "says"), [
    ({"contentVersion": "1.0.0.0", "resources": []}, {}, "$schema"),
    ({**_BASE, "resources": [{"type": _UAMI, "apiVersion": "2023-01-31", "name": "[concat('a']"}]}, {}, "Expected"),
    ({**_BASE, "resources": [{"type": _UAMI, "apiVersion": "2023-01-31", "name": "[nosuch()]"}]}, {}, "nosuch"),
    ({**_BASE, "resources": []}, {"stray": 1}, "stray"),
    ({**_BASE, "parameters": {"n": {"type": "string"}}, "resources": []}, {}, "'n' is not provided"),
    ({**_BASE, "parameters": {"n": {"type": "string", "allowedValues": ["a"]}}, "resources": []}, {"n": "b"},
     "must be one of"),
    ({**_BASE, "parameters": {"n": {"type": "int"}}, "resources": []}, {"n": "1"}, "Expected a value of type 'Int'"),
    ({**_BASE, "resources": [{"type": _UAMI, "apiVersion": "2023-01-31", "name": "a", "dependsOn": ["b"]},
                             {"type": _UAMI, "apiVersion": "2023-01-31", "name": "b", "dependsOn": ["a"]}]}, {},
     "Circular dependency"),
    ({**_BASE, "resources": [{"type": _UAMI, "apiVersion": "2023-01-31", "name": "a", "dependsOn": ["zz"]}]}, {},
     "'zz' is not defined"),
    ({**_BASE, "resources": [{"type": _UAMI, "apiVersion": "2023-01-31", "name": "a", "zones": ["1"]}]}, {}, "zones"),
])
async def test_bad_templates_are_invalid_template(client: httpx.AsyncClient, world: World, template: dict[str, Any],
                                                  parameters: dict[str, Any], says: str) -> None:
    answer = await _start(client, world, "cielo-rg", unique("bad"), template, parameters)
    error = arm_error(answer, 400, "InvalidTemplate")
    assert says in error["message"], error


async def test_unserved_deployment_options_are_refused_by_name(client: httpx.AsyncClient, world: World) -> None:
    path = _path(world, "cielo-rg", unique("opt"))
    # (mode Complete is served at a group: tests/api/test_api_deployments_scope.py)
    sideways = {"properties": {"template": {**_BASE, "resources": []}, "mode": "Sideways"}}
    arm_error(await arm_call(client, world, "PUT", path, sideways, api_version=DEPLOY_API), 400,
              "InvalidDeploymentMode")
    linked = {"properties": {"templateLink": {"uri": "https://example.invalid/t.json"}, "mode": "Incremental"}}
    error = arm_error(await arm_call(client, world, "PUT", path, linked, api_version=DEPLOY_API), 400,
                      "InvalidDeploymentProperties")
    assert "templateLink" in error["message"]
    missing = await arm_call(client, world, "GET", _path(world, "cielo-rg", unique("none")), api_version=DEPLOY_API)
    arm_error(missing, 404, "DeploymentNotFound")
    gone = await arm_call(client, world, "GET", _path(world, unique("nogroup"), "x"), api_version=DEPLOY_API)
    arm_error(gone, 404, "ResourceGroupNotFound")


async def test_copy_condition_secure_parameters_and_outputs(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    prefix = unique("id")
    template = {**_BASE, "parameters": {
        "count": {"type": "int", "defaultValue": 3, "minValue": 1, "maxValue": 5},
        "secret": {"type": "securestring"}, "skipLast": {"type": "bool", "defaultValue": True}},
        "variables": {"names": "[createArray('a', 'b', 'c')]"},
        "resources": [{"type": _UAMI, "apiVersion": "2023-01-31", "name": "[format('{0}-{1}', '" + prefix +
                       "', variables('names')[copyIndex()])]", "location": "[resourceGroup().location]",
                       "condition": "[or(not(parameters('skipLast')), less(copyIndex(), 2))]",
                       "tags": {"n": "[string(copyIndex(1))]"},
                       "copy": {"name": "ids", "count": "[parameters('count')]", "mode": "serial", "batchSize": 1}}],
        "outputs": {"names": {"type": "array", "copy": {"count": 2, "input": "[format('{0}-{1}', '" + prefix +
                                                         "', variables('names')[copyIndex()])]"}},
                    "upper": {"type": "string", "value": "[toUpper(substring(variables('names')[0], 0, 1))]"},
                    "hidden": {"type": "securestring", "value": "[parameters('secret')]"}}}
    dep = await _deploy(client, world, rg, template, {"secret": "s3cr3t"})
    props = dep["properties"]
    assert props["provisioningState"] == "Succeeded", props
    assert props["parameters"]["secret"] == {"type": "SecureString"}
    assert "s3cr3t" not in json.dumps(dep)
    assert props["outputs"]["names"]["value"] == [f"{prefix}-a", f"{prefix}-b"]
    assert props["outputs"]["upper"]["value"] == "A" and props["outputs"]["hidden"] == {"type": "SecureString"}
    made = sorted(r["id"].rsplit("/", 1)[1] for r in props["outputResources"])
    assert made == [f"{prefix}-a", f"{prefix}-b"]
    tagged = await arm_call(client, world, "GET", f"{world.rg_path(rg)}/providers/{_UAMI}/{prefix}-b")
    assert tagged.json()["tags"] == {"n": "2"}


async def test_validate_what_if_and_delete(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    identity = unique("mi")
    template = {**_BASE, "resources": [{"type": _UAMI, "apiVersion": "2023-01-31", "name": identity,
                                        "location": "local", "tags": {"v": "1"}}]}
    body = {"properties": {"template": template, "mode": "Incremental"}}
    checked = await arm_call(client, world, "POST", _path(world, rg, "v") + "/validate", body, api_version=DEPLOY_API)
    assert checked.status_code == 200, checked.text
    assert checked.json()["properties"]["validatedResources"][0]["id"].endswith(identity)
    before = await arm_call(client, world, "POST", _path(world, rg, "w") + "/whatIf", body, api_version=DEPLOY_API)
    assert [c["changeType"] for c in before.json()["properties"]["changes"]] == ["Create"]
    dep = await _deploy(client, world, rg, template)
    same = await arm_call(client, world, "POST", _path(world, rg, "w") + "/whatIf", body, api_version=DEPLOY_API)
    assert [c["changeType"] for c in same.json()["properties"]["changes"]] == ["NoChange"], same.text
    template["resources"][0]["tags"] = {"v": "2"}
    changed = await arm_call(client, world, "POST", _path(world, rg, "w") + "/whatIf", body, api_version=DEPLOY_API)
    [change] = changed.json()["properties"]["changes"]
    assert change["changeType"] == "Modify" and change["delta"] == [
        {"path": "tags.v", "propertyChangeType": "Modify", "before": "1", "after": "2"}]
    deleted = await arm_call(client, world, "DELETE", _path(world, rg, dep["name"]), api_version=DEPLOY_API)
    assert deleted.status_code == 204
    # The deployment's record is gone; the resource it made stays, as in ARM.
    arm_error(await arm_call(client, world, "GET", _path(world, rg, dep["name"]), api_version=DEPLOY_API), 404,
              "DeploymentNotFound")
    kept = await arm_call(client, world, "GET", f"{world.rg_path(rg)}/providers/{_UAMI}/{identity}")
    assert kept.status_code == 200


async def test_the_quickstart_role_assignment_at_a_resource_group(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    sp = await new_principal(client, world)
    dep = await _deploy(client, world, rg, _template("rbac-builtinrole-resourcegroup.json"),
                        {"roleDefinitionID": ROLES["Reader"], "principalId": sp.sp_id})
    assert dep["properties"]["provisioningState"] == "Succeeded", dep
    found = await arm_call(client, world, "GET", f"{world.rg_path(rg)}/providers/Microsoft.Authorization/"
                                                 f"roleAssignments?$filter=principalId eq '{sp.sp_id}'")
    [ra] = found.json()["value"]
    assert ra["properties"]["roleDefinitionId"].endswith(ROLES["Reader"])
    # The Reader it granted now reads the group with its own token.
    headers = bearer(await sp_token(client, world, sp, ARM))
    assert (await arm_call(client, world, "GET", world.rg_path(rg), headers=headers)).status_code == 200


async def test_a_body_as_az_splices_it_with_comments_and_a_bare_key(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    identity = unique("mi")
    text = ('{"properties": {"parameters": {}, "mode": "Incremental", template:{\r\n'
            '  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",\r\n'
            '  // az sends the file as it is, comments included\r\n  "contentVersion": "1.0.0.0",\r\n'
            f'  "resources": [{{"type": "{_UAMI}", "apiVersion": "2023-01-31", "name": "{identity}"}}]\r\n}}}}}}')
    answer = await client.put(f"{_path(world, rg, 'az')}?api-version={DEPLOY_API}", content=text.encode(),
                              headers={**world.arm, "Content-Type": "application/json"})
    assert answer.status_code == 201, answer.text
    bad = text.replace(f'"name": "{identity}"', '"name": "[concat(]"')
    answer = await client.put(f"{_path(world, rg, 'az3')}?api-version={DEPLOY_API}", content=bad.encode(),
                              headers={**world.arm, "Content-Type": "application/json"})
    error = arm_error(answer, 400, "InvalidTemplate")
    assert "(at 'resources[0].name', line '5' and column '114')" in error["message"], error
    broken = await client.put(f"{_path(world, rg, 'az2')}?api-version={DEPLOY_API}", content=b'{"properties": {',
                              headers={**world.arm, "Content-Type": "application/json"})
    arm_error(broken, 400, "InvalidRequestContent")
