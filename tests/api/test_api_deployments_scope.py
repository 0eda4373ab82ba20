"""Template deployments at subscription scope and nested deployments, in-process: a subscription template that creates
a resource group and deploys into it with a nested `Microsoft.Resources/deployments` (Microsoft's quickstart,
tests/templates/README.md), inner and outer expression scopes, and what is refused (docs/templates.md)."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from inproc import ROLES, World, arm_call, arm_error, assign, bearer, new_principal, sp_token, unique
from inproc_cli import Cli, signed_in_cli

from cielo.cli import deployment

TEMPLATES = Path(__file__).parent.parent / "templates"
ARM = "https://management.azure.com/"
API = "2024-03-01"
SUB_SCHEMA = "https://schema.management.azure.com/schemas/2018-05-01/subscriptionDeploymentTemplate.json#"
RG_SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
UAMI = "Microsoft.ManagedIdentity/userAssignedIdentities"


def _quickstart() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((TEMPLATES / "sub-create-rg-lock-role-assignment.json").read_text())
    return loaded


def _without_lock(template: dict[str, Any]) -> dict[str, Any]:
    """The quickstart less its `Microsoft.Authorization/locks` resource (a type Cielo does not serve)."""
    out = copy.deepcopy(template)
    nested = out["resources"][1]["properties"]["template"]
    nested["resources"] = [r for r in nested["resources"] if r["type"] != "Microsoft.Authorization/locks"]
    return out


def _sub_path(world: World, name: str) -> str:
    return f"{world.sub_path}/providers/Microsoft.Resources/deployments/{name}"


def _body(template: dict[str, Any], parameters: dict[str, Any] | None = None, location: str | None = "local",
          mode: str = "Incremental") -> dict[str, Any]:
    body: dict[str, Any] = {"properties": {"template": template, "mode": mode,
                                           "parameters": {k: {"value": v} for k, v in (parameters or {}).items()}}}
    if location is not None:
        body["location"] = location
    return body


async def _finish(client: httpx.AsyncClient, world: World, path: str, started: httpx.Response,
                  headers: dict[str, str] | None = None) -> dict[str, Any]:
    assert started.status_code == 201, started.text
    assert started.json()["properties"]["provisioningState"] == "Accepted"
    status_url = started.headers["Azure-AsyncOperation"].split("127.0.0.1:8443", 1)[1]
    for _ in range(1000):
        status = await client.get(status_url, headers=headers or world.arm)
        assert status.status_code == 200, status.text
        if status.json()["status"] != "Running":
            break
        await asyncio.sleep(0.01)
    final = await arm_call(client, world, "GET", path, headers=headers, api_version=API)
    assert final.status_code == 200, final.text
    body: dict[str, Any] = final.json()
    return body


async def _deploy_sub(client: httpx.AsyncClient, world: World, template: dict[str, Any],
                      parameters: dict[str, Any] | None = None, headers: dict[str, str] | None = None
                      ) -> dict[str, Any]:
    path = _sub_path(world, unique("subdep"))
    started = await arm_call(client, world, "PUT", path, _body(template, parameters), headers=headers, api_version=API)
    return await _finish(client, world, path, started, headers)


async def test_the_quickstart_creates_a_group_and_grants_a_role_in_it(client: httpx.AsyncClient,
                                                                       world: World) -> None:
    rg = unique("rg-sub")
    sp = await new_principal(client, world)
    dep = await _deploy_sub(client, world, _without_lock(_quickstart()),
                            {"rgName": rg, "rgLocation": "local", "principalId": sp.sp_id,
                             "roleDefinitionId": ROLES["Reader"]})
    props = dep["properties"]
    assert props["provisioningState"] == "Succeeded", props
    assert dep["location"] == "local" and dep["id"] == _sub_path(world, dep["name"])
    group = await arm_call(client, world, "GET", world.rg_path(rg))
    assert group.status_code == 200 and group.json()["tags"] == {"Note": "subscription level deployment"}
    nested_id = f"{world.rg_path(rg)}/providers/Microsoft.Resources/deployments/applyLock"
    assert {r["id"] for r in props["outputResources"]} == {world.rg_path(rg), nested_id}
    # The nested deployment is a deployment of the group, with its own record and resources.
    nested = await arm_call(client, world, "GET", nested_id, api_version=API)
    assert nested.json()["properties"]["provisioningState"] == "Succeeded", nested.text
    [assigned] = nested.json()["properties"]["outputResources"]
    assert "/providers/Microsoft.Authorization/roleAssignments/" in assigned["id"]
    # The role it granted works: the principal reads the new group with its own token.
    reader = bearer(await sp_token(client, world, sp, ARM))
    assert (await arm_call(client, world, "GET", world.rg_path(rg), headers=reader)).status_code == 200
    # Listed at the subscription (not in the group), with operations; the group's list holds the nested one.
    listed = await arm_call(client, world, "GET", f"{world.sub_path}/providers/Microsoft.Resources/deployments",
                            api_version=API)
    assert dep["name"] in [d["name"] for d in listed.json()["value"]]
    in_group = await arm_call(client, world, "GET", f"{world.rg_path(rg)}/providers/Microsoft.Resources/deployments",
                              api_version=API)
    assert [d["name"] for d in in_group.json()["value"]] == ["applyLock"]
    ops = await arm_call(client, world, "GET", _sub_path(world, dep["name"]) + "/operations", api_version=API)
    assert sorted(o["properties"]["targetResource"]["resourceType"] for o in ops.json()["value"]) == [
        "Microsoft.Resources/deployments", "Microsoft.Resources/resourceGroups"]
    # What-if now: the group unchanged, the nested deployment's resources listed as its own what-if says.
    again = await arm_call(client, world, "POST", _sub_path(world, "wi") + "/whatIf", _body(
        _without_lock(_quickstart()), {"rgName": rg, "rgLocation": "local", "principalId": sp.sp_id,
                                       "roleDefinitionId": ROLES["Reader"]}), api_version=API)
    assert again.status_code == 200, again.text
    changes = {c["resourceId"]: c["changeType"] for c in again.json()["properties"]["changes"]}
    assert changes[world.rg_path(rg)] == "NoChange" and changes[assigned["id"]] in ("NoChange", "Modify"), changes
    deleted = await arm_call(client, world, "DELETE", _sub_path(world, dep["name"]), api_version=API)
    assert deleted.status_code == 204
    arm_error(await arm_call(client, world, "GET", _sub_path(world, dep["name"]), api_version=API), 404,
              "DeploymentNotFound")


async def test_the_quickstart_as_published_fails_naming_the_lock_type(client: httpx.AsyncClient,
                                                                      world: World) -> None:
    rg = unique("rg-lock")
    sp = await new_principal(client, world)
    dep = await _deploy_sub(client, world, _quickstart(), {"rgName": rg, "rgLocation": "local",
                                                           "principalId": sp.sp_id})
    props = dep["properties"]
    assert props["provisioningState"] == "Failed"
    [detail] = props["error"]["details"]
    assert detail["target"].endswith("/deployments/applyLock")
    assert "Microsoft.Authorization/locks" in detail["message"], detail
    # The group the template made before the nested deployment stays, as in ARM.
    assert (await arm_call(client, world, "GET", world.rg_path(rg))).status_code == 200


def _inner_template(rg: str, identity: str) -> dict[str, Any]:
    """A subscription template as Bicep writes a module: a group, then a nested deployment with inner scope whose
    own parameters and outputs the parent passes and reads."""
    return {
        "$schema": SUB_SCHEMA, "contentVersion": "1.0.0.0",
        "parameters": {"rgName": {"type": "string"}, "identityName": {"type": "string"}},
        "resources": [
            {"type": "Microsoft.Resources/resourceGroups", "apiVersion": "2022-09-01", "name": "[parameters('rgName')]",
             "location": "[deployment().location]"},
            {"type": "Microsoft.Resources/deployments", "apiVersion": "2022-09-01", "name": "identity",
             "resourceGroup": "[parameters('rgName')]",
             "dependsOn": ["[subscriptionResourceId('Microsoft.Resources/resourceGroups', parameters('rgName'))]"],
             "properties": {
                 "expressionEvaluationOptions": {"scope": "inner"}, "mode": "Incremental",
                 "parameters": {"name": {"value": "[parameters('identityName')]"}},
                 "template": {
                     "$schema": RG_SCHEMA, "contentVersion": "1.0.0.0",
                     "parameters": {"name": {"type": "string"}},
                     "resources": [{"type": UAMI, "apiVersion": "2023-01-31", "name": "[parameters('name')]",
                                    "location": "[resourceGroup().location]", "tags": {"literal": "[[kept]"}}],
                     "outputs": {"principalId": {"type": "string", "value": "[reference(resourceId('" + UAMI +
                                                 "', parameters('name')), '2023-01-31').principalId]"}}}}}],
        "outputs": {"principalId": {"type": "string",
                                    "value": "[reference('identity').outputs.principalId.value]"},
                    "groupId": {"type": "string",
                                "value": "[subscriptionResourceId('Microsoft.Resources/resourceGroups', "
                                         "parameters('rgName'))]"}}}


async def test_an_inner_scope_nested_deployment_passes_parameters_and_outputs(client: httpx.AsyncClient,
                                                                              world: World) -> None:
    rg, identity = unique("rg-inner"), unique("mi")
    dep = await _deploy_sub(client, world, _inner_template(rg, identity), {"rgName": rg, "identityName": identity})
    props = dep["properties"]
    assert props["provisioningState"] == "Succeeded", props
    got = await arm_call(client, world, "GET", f"{world.rg_path(rg)}/providers/{UAMI}/{identity}")
    assert got.status_code == 200, got.text
    assert got.json()["tags"] == {"literal": "[kept]"} and got.json()["location"] == "local"
    assert props["outputs"]["principalId"]["value"] == got.json()["properties"]["principalId"]
    assert props["outputs"]["groupId"]["value"] == world.rg_path(rg)


async def test_an_outer_scope_nested_deployment_in_a_group(client: httpx.AsyncClient, world: World) -> None:
    rg = unique("rg-outer")
    assert (await arm_call(client, world, "PUT", world.rg_path(rg), {"location": "local"})).status_code == 201
    identity = unique("mi")
    template = {
        "$schema": RG_SCHEMA, "contentVersion": "1.0.0.0",
        "parameters": {"name": {"type": "string"}},
        "variables": {"tagValue": "[concat('[', 'x]')]"},
        "resources": [{"type": "Microsoft.Resources/deployments", "apiVersion": "2022-09-01", "name": "outer",
                       "properties": {"mode": "Incremental", "template": {
                           "$schema": RG_SCHEMA, "contentVersion": "1.0.0.0",
                           "resources": [{"type": UAMI, "apiVersion": "2023-01-31", "name": "[parameters('name')]",
                                          "location": "[resourceGroup().location]",
                                          "tags": {"v": "[variables('tagValue')]"}}]}}}]}
    path = f"{world.rg_path(rg)}/providers/Microsoft.Resources/deployments/{unique('dep')}"
    started = await arm_call(client, world, "PUT", path, _body(template, {"name": identity}, location=None),
                             api_version=API)
    dep = await _finish(client, world, path, started)
    assert dep["properties"]["provisioningState"] == "Succeeded", dep
    got = await arm_call(client, world, "GET", f"{world.rg_path(rg)}/providers/{UAMI}/{identity}")
    # The parent's parameter and variable were used, and a value starting with '[' stayed a literal.
    assert got.status_code == 200 and got.json()["tags"] == {"v": "[x]"}, got.text


async def test_subscription_deployments_need_a_location_and_refuse_what_they_cannot_do(client: httpx.AsyncClient,
                                                                                     world: World) -> None:
    template = {"$schema": SUB_SCHEMA, "contentVersion": "1.0.0.0", "resources": []}
    path = _sub_path(world, unique("bad"))
    error = arm_error(await arm_call(client, world, "PUT", path, _body(template, location=None), api_version=API),
                      400, "LocationRequired")
    assert "location" in error["message"]
    arm_error(await arm_call(client, world, "PUT", path, _body(template, mode="Complete"), api_version=API), 400,
              "InvalidDeploymentMode")
    no_group = {**template, "outputs": {"g": {"type": "string", "value": "[resourceGroup().name]"}},
                "resources": [{"type": UAMI, "apiVersion": "2023-01-31", "name": "[resourceGroup().name]"}]}
    error = arm_error(await arm_call(client, world, "PUT", path, _body(no_group), api_version=API), 400,
                      "InvalidTemplate")
    assert "resourceGroup" in error["message"]
    # A subscription template is refused at a group, as before.
    in_group = f"{world.rg_path('cielo-rg')}/providers/Microsoft.Resources/deployments/{unique('x')}"
    error = arm_error(await arm_call(client, world, "PUT", in_group, _body(template, location=None), api_version=API),
                      400, "InvalidTemplate")
    assert "$schema" in error["message"]
    # templateLink on a nested deployment: Cielo cannot fetch it, and says so.
    linked = {**template, "resources": [{"type": "Microsoft.Resources/deployments", "apiVersion": "2022-09-01",
                                         "name": "linked", "resourceGroup": "cielo-rg", "properties": {
                                             "mode": "Incremental",
                                             "templateLink": {"uri": "https://example.invalid/t.json"}}}]}
    error = arm_error(await arm_call(client, world, "PUT", path, _body(linked), api_version=API), 400,
                      "InvalidTemplate")
    assert "templateLink" in error["message"] and "URL" in error["message"]
    # resourceGroup on anything but a nested deployment.
    stray = {**template, "resources": [{"type": UAMI, "apiVersion": "2023-01-31", "name": "x",
                                        "resourceGroup": "cielo-rg"}]}
    arm_error(await arm_call(client, world, "PUT", path, _body(stray), api_version=API), 400, "InvalidTemplate")


async def test_validate_what_if_and_rights_at_subscription_scope(client: httpx.AsyncClient, world: World) -> None:
    rg, identity = unique("rg-wi"), unique("mi")
    body = _body(_inner_template(rg, identity), {"rgName": rg, "identityName": identity})
    checked = await arm_call(client, world, "POST", _sub_path(world, "v") + "/validate", body, api_version=API)
    assert checked.status_code == 200, checked.text
    assert {r["id"] for r in checked.json()["properties"]["validatedResources"]} == {
        world.rg_path(rg), f"{world.rg_path(rg)}/providers/Microsoft.Resources/deployments/identity"}
    before = await arm_call(client, world, "POST", _sub_path(world, "w") + "/whatIf", body, api_version=API)
    changes = before.json()["properties"]["changes"]
    assert [c["changeType"] for c in changes] == ["Create", "Unsupported"], changes
    assert "ResourceGroupNotFound" in changes[1]["unsupportedReason"]
    # A Contributor on one group may not deploy at the subscription (403 before anything runs), and validate
    # names the first resource it may not write.
    sp = await new_principal(client, world)
    await assign(client, world, "Contributor", sp.sp_id, world.rg_path("cielo-rg"))
    headers = bearer(await sp_token(client, world, sp, ARM))
    arm_error(await arm_call(client, world, "PUT", _sub_path(world, unique("x")), body, headers=headers,
                             api_version=API), 403, "AuthorizationFailed")
    owner = await new_principal(client, world)
    await assign(client, world, "Contributor", owner.sp_id, world.sub_path)
    deployer = bearer(await sp_token(client, world, owner, ARM))
    await assign(client, world, "Reader", sp.sp_id, world.sub_path)
    arm_error(await arm_call(client, world, "POST", _sub_path(world, "v") + "/validate", body, headers=headers,
                             api_version=API), 403, "AuthorizationFailed")
    dep = await _deploy_sub(client, world, _inner_template(rg, identity), {"rgName": rg, "identityName": identity},
                            deployer)
    assert dep["properties"]["provisioningState"] == "Succeeded", dep
    after = await arm_call(client, world, "POST", _sub_path(world, "w") + "/whatIf", body, api_version=API)
    assert [c["changeType"] for c in after.json()["properties"]["changes"]] == ["NoChange", "NoChange"], after.text


# ----------------------------------------------------------------------------- cielo deployment sub
@pytest.fixture()
def cli(world: World, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    monkeypatch.setattr(deployment, "POLL_INTERVAL_S", 0)
    with signed_in_cli(world, tmp_path_factory, tmp_path) as runner:
        yield runner


def test_cli_deployment_sub(cli: Cli, world: World, tmp_path: Path) -> None:
    rg, identity = unique("rg-clisub"), unique("mi")
    template = tmp_path / "module.json"
    template.write_text(json.dumps(_inner_template(rg, identity)))
    args = ("--template-file", str(template), "--parameters", f"rgName={rg}", f"identityName={identity}")
    missing = cli.fails("deployment", "sub", "create", *args, code=2)  # az: a usage error
    assert "--location" in missing
    what_if = cli.json("deployment", "sub", "what-if", "-l", "local", *args)
    assert [c["changeType"] for c in what_if["properties"]["changes"]] == ["Create", "Unsupported"]
    validated = cli.json("deployment", "sub", "validate", "-l", "local", *args)
    assert validated["properties"]["provisioningState"] == "Succeeded"
    created = cli.json("deployment", "sub", "create", "-l", "local", *args)
    assert created["name"] == "module" and created["location"] == "local"
    assert created["properties"]["provisioningState"] == "Succeeded"
    assert cli.ok("deployment", "sub", "show", "-n", "module", "--query", "properties.outputs.groupId.value",
                  "-o", "tsv").strip() == world.rg_path(rg)
    assert "module" in [d["name"] for d in cli.json("deployment", "sub", "list")]
    assert "module" in cli.ok("deployment", "sub", "list", "-o", "table")
    cli.ok("deployment", "sub", "delete", "-n", "module")
    assert "module" not in [d["name"] for d in cli.json("deployment", "sub", "list")]
    cli.ok("group", "delete", "-n", rg, "--yes")


# ----------------------------------------------------------------------------- mode Complete
def _identities(names: list[str]) -> dict[str, Any]:
    return {"$schema": RG_SCHEMA, "contentVersion": "1.0.0.0",
            "resources": [{"type": UAMI, "apiVersion": "2023-01-31", "name": n, "location": "local"} for n in names]}


async def _group_with(client: httpx.AsyncClient, world: World, names: list[str]) -> str:
    rg = unique("rg-complete")
    assert (await arm_call(client, world, "PUT", world.rg_path(rg), {"location": "local"})).status_code == 201
    for n in names:
        made = await arm_call(client, world, "PUT", f"{world.rg_path(rg)}/providers/{UAMI}/{n}", {"location": "local"})
        assert made.status_code in (200, 201), made.text
    return rg


async def test_complete_mode_deletes_what_the_template_does_not_name(client: httpx.AsyncClient,
                                                                     world: World) -> None:
    keep, gone1, gone2, new = unique("keep"), unique("gone"), unique("gone"), unique("new")
    rg = await _group_with(client, world, [keep, gone1, gone2])
    base = f"{world.rg_path(rg)}/providers/Microsoft.Resources/deployments"
    body = _body(_identities([keep, new]), location=None, mode="Complete")
    what_if = await arm_call(client, world, "POST", f"{base}/wi/whatIf", body, api_version=API)
    assert what_if.status_code == 200, what_if.text
    changes = {c["resourceId"].rsplit("/", 1)[1]: c["changeType"] for c in what_if.json()["properties"]["changes"]}
    assert changes == {keep: "NoChange", new: "Create", gone1: "Delete", gone2: "Delete"}, changes
    # Incremental would delete nothing.
    incremental = await arm_call(client, world, "POST", f"{base}/wi/whatIf", {**body, "properties": {
        **body["properties"], "mode": "Incremental"}}, api_version=API)
    assert "Delete" not in {c["changeType"] for c in incremental.json()["properties"]["changes"]}
    path = f"{base}/{unique('dep')}"
    dep = await _finish(client, world, path, await arm_call(client, world, "PUT", path, body, api_version=API))
    props = dep["properties"]
    assert props["provisioningState"] == "Succeeded" and props["mode"] == "Complete", props
    assert {r["id"].rsplit("/", 1)[1] for r in props["outputResources"]} == {keep, new}
    for name, status in ((keep, 200), (new, 200), (gone1, 404), (gone2, 404)):
        got = await arm_call(client, world, "GET", f"{world.rg_path(rg)}/providers/{UAMI}/{name}")
        assert got.status_code == status, (name, got.text)
    ops = (await arm_call(client, world, "GET", f"{path}/operations", api_version=API)).json()["value"]
    deleted = sorted(o["properties"]["targetResource"]["resourceName"] for o in ops
                     if o["properties"]["provisioningOperation"] == "Delete")
    assert deleted == sorted([gone1, gone2])
    assert all(o["properties"]["provisioningState"] == "Succeeded" for o in ops)


async def test_complete_mode_deletes_only_with_the_callers_delete_right(client: httpx.AsyncClient,
                                                                        world: World) -> None:
    keep, other = unique("keep"), unique("other")
    rg = await _group_with(client, world, [keep, other])
    group = world.rg_path(rg)
    role = str(uuid.uuid4())
    actions = ["Microsoft.Resources/deployments/*", "Microsoft.Resources/subscriptions/resourceGroups/read",
               f"{UAMI}/read", f"{UAMI}/write"]  # no delete
    made = await arm_call(client, world, "PUT", f"{group}/providers/Microsoft.Authorization/roleDefinitions/{role}",
                          {"properties": {"roleName": unique("Deployer no delete"), "type": "CustomRole",
                                          "permissions": [{"actions": actions, "notActions": []}],
                                          "assignableScopes": [group]}})
    assert made.status_code == 201, made.text
    sp = await new_principal(client, world)
    role_id = f"{group}/providers/Microsoft.Authorization/roleDefinitions/{role}"
    granted = await arm_call(client, world, "PUT", f"{group}/providers/Microsoft.Authorization/roleAssignments/"
                             f"{uuid.uuid4()}", {"properties": {"roleDefinitionId": role_id, "principalId": sp.sp_id,
                                                                "principalType": "ServicePrincipal"}})
    assert granted.status_code == 201, granted.text
    headers = bearer(await sp_token(client, world, sp, ARM))
    path = f"{group}/providers/Microsoft.Resources/deployments/{unique('dep')}"
    started = await arm_call(client, world, "PUT", path, _body(_identities([keep]), location=None, mode="Complete"),
                             headers=headers, api_version=API)
    dep = await _finish(client, world, path, started, headers)
    props = dep["properties"]
    assert props["provisioningState"] == "Failed", props
    [detail] = props["error"]["details"]
    assert detail["code"] == "AuthorizationFailed" and f"{UAMI}/delete" in detail["message"], detail
    assert detail["target"].endswith(f"/{other}")
    assert (await arm_call(client, world, "GET", f"{group}/providers/{UAMI}/{other}")).status_code == 200


async def test_complete_mode_waits_for_the_templates_resources(client: httpx.AsyncClient, world: World) -> None:
    """A failed resource stops the deployment before anything is deleted."""
    other = unique("other")
    rg = await _group_with(client, world, [other])
    template = {"$schema": RG_SCHEMA, "contentVersion": "1.0.0.0", "resources": [
        {"type": "Microsoft.Nope/things", "apiVersion": "2023-01-01", "name": "x"}]}
    path = f"{world.rg_path(rg)}/providers/Microsoft.Resources/deployments/{unique('dep')}"
    started = await arm_call(client, world, "PUT", path, _body(template, location=None, mode="Complete"),
                             api_version=API)
    dep = await _finish(client, world, path, started)
    assert dep["properties"]["provisioningState"] == "Failed"
    assert (await arm_call(client, world, "GET", f"{world.rg_path(rg)}/providers/{UAMI}/{other}")).status_code == 200


def test_cli_deployment_group_mode_complete(cli: Cli, world: World, tmp_path: Path) -> None:
    keep, gone = unique("keep"), unique("gone")
    rg = unique("rg-clicomplete")
    cli.ok("group", "create", "-n", rg, "-l", "local", "-o", "none")
    template = tmp_path / "ids.json"
    template.write_text(json.dumps(_identities([keep, gone])))
    cli.json("deployment", "group", "create", "-g", rg, "--template-file", str(template))
    template.write_text(json.dumps(_identities([keep])))
    what_if = cli.json("deployment", "group", "what-if", "-g", rg, "--template-file", str(template), "--mode",
                       "Complete")
    assert sorted(c["changeType"] for c in what_if["properties"]["changes"]) == ["Delete", "NoChange"]
    created = cli.json("deployment", "group", "create", "-g", rg, "--template-file", str(template), "--mode",
                       "Complete")
    assert created["properties"]["mode"] == "Complete"
    ops = cli.json("deployment", "group", "show", "-g", rg, "-n", "ids", "--query", "properties.outputResources")
    assert [r["id"].rsplit("/", 1)[1] for r in ops] == [keep]
    again = cli.json("deployment", "group", "what-if", "-g", rg, "--template-file", str(template), "--mode", "Complete")
    assert [c["changeType"] for c in again["properties"]["changes"]] == ["NoChange"]  # the other one is gone
    cli.ok("group", "delete", "-n", rg, "--yes")


async def test_a_template_link_is_refused_saying_why(client: httpx.AsyncClient, world: World) -> None:
    for link in ({"uri": "https://example.invalid/t.json"}, {"relativePath": "nested/t.json"}):
        body = {"properties": {"templateLink": link, "mode": "Incremental"}}
        path = f"{world.rg_path('cielo-rg')}/providers/Microsoft.Resources/deployments/{unique('link')}"
        error = arm_error(await arm_call(client, world, "PUT", path, body, api_version=API), 400,
                          "InvalidDeploymentProperties")
        assert "templateLink" in error["message"] and "URL" in error["message"] and "relativePath" in error["message"]
