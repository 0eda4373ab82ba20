"""Template deployment records live in the database (docs/templates.md, Records): a new app on the same data
directory (a restart) answers GET, list, operationStatuses and operations for a finished deployment, and a
deployment its process left Running reads as Failed, naming the interruption."""

from __future__ import annotations

import asyncio
import dataclasses
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from inproc import World, arm_call, unique
from test_api_deployments import DEPLOY_API, _deploy, _group, _path, _start, _template

from cielo.api import arm_deployments
from cielo.api.app import build_services, create_app
from cielo.store.template_deployments import StoredDeployment


def _restarted(world: World) -> World:
    """A new app with new services on the same data directory, as after `cielo up` restarts."""
    settings = world.services.settings
    services = build_services(settings, world.clock)
    return dataclasses.replace(world, app=create_app(settings, services), services=services)


async def _reads(client: httpx.AsyncClient, world: World, rg: str, name: str) -> dict[str, Any]:
    got = await arm_call(client, world, "GET", _path(world, rg, name), api_version=DEPLOY_API)
    assert got.status_code == 200, got.text
    listed = await arm_call(client, world, "GET", f"{world.rg_path(rg)}/providers/Microsoft.Resources/deployments",
                            api_version=DEPLOY_API)
    assert listed.status_code == 200, listed.text
    ops = await arm_call(client, world, "GET", f"{world.rg_path(rg)}/deployments/{name}/operations",
                         api_version=DEPLOY_API)
    assert ops.status_code == 200, ops.text
    return {"get": got.json(), "list": listed.json()["value"], "operations": ops.json()["value"]}


async def test_a_finished_deployment_survives_a_restart(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    dep = await _deploy(client, world, rg, _template("rbac-managedidentity.json"),
                        {"managedIdentityName": unique("mi"), "location": "local"})
    assert dep["properties"]["provisioningState"] == "Succeeded", dep
    before = await _reads(client, world, rg, dep["name"])
    assert len(before["operations"]) == 2 and before["list"] == [before["get"]]
    later = _restarted(world)
    async with later.client() as fresh:
        after = await _reads(fresh, later, rg, dep["name"])
        assert after == before
        deleted = await arm_call(fresh, later, "DELETE", _path(later, rg, dep["name"]), api_version=DEPLOY_API)
        assert deleted.status_code == 204
    gone = await arm_call(client, world, "GET", _path(world, rg, dep["name"]), api_version=DEPLOY_API)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "DeploymentNotFound"


async def test_a_deployment_left_running_by_a_stopped_process_reads_as_failed(
        client: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    rg = await _group(client, world)
    name = unique("dep")
    started_put = asyncio.Event()

    async def hangs(self: object, resource_id: str, api_version: str, body: dict[str, Any]) -> tuple[int, Any]:
        started_put.set()
        await asyncio.Event().wait()  # never answers: the process "dies" while this resource is being made
        raise AssertionError("unreachable")

    monkeypatch.setattr(arm_deployments.RouteClient, "put", hangs)
    started = await _start(client, world, rg, name, _template("rbac-managedidentity.json"),
                           {"managedIdentityName": unique("mi"), "location": "local"})
    assert started.status_code == 201, started.text
    status_path = started.headers["Azure-AsyncOperation"].split("127.0.0.1:8443", 1)[1]
    await asyncio.wait_for(started_put.wait(), 10)
    running = await client.get(status_path, headers=world.arm)
    assert running.json() == {"status": "Running"}
    # A second PUT while it runs is refused.
    again = await _start(client, world, rg, name, {"$schema": "https://schema.management.azure.com/schemas/"
                         "2019-04-01/deploymentTemplate.json#", "contentVersion": "1.0.0.0", "resources": []})
    assert again.status_code == 409 and again.json()["error"]["code"] == "DeploymentActive"

    records: arm_deployments.Records = world.app.state.template_deployments
    [task] = [t for k, t in records.tasks.items() if k.endswith(name.lower())]
    task.cancel()  # the process stops: its task ends without writing anything
    await asyncio.gather(task, return_exceptions=True)

    later = _restarted(world)
    async with later.client() as fresh:
        status = await fresh.get(status_path, headers=later.arm)
        assert status.status_code == 200 and status.json()["status"] == "Failed", status.text
        assert status.json()["error"]["details"][0]["code"] == "DeploymentInterrupted"
        seen = await _reads(fresh, later, rg, name)
        props = seen["get"]["properties"]
        assert props["provisioningState"] == "Failed" and props["error"]["code"] == "DeploymentFailed"
        assert "stopped before the deployment finished" in props["error"]["details"][0]["message"]
        [op] = seen["operations"]
        assert op["properties"]["provisioningState"] == "Failed"
        assert op["properties"]["statusMessage"]["error"]["code"] == "DeploymentInterrupted"
        # No longer active: it may be deleted (or deployed again).
        deleted = await arm_call(fresh, later, "DELETE", _path(later, rg, name), api_version=DEPLOY_API)
        assert deleted.status_code == 204


async def test_forgetting_a_group_deletes_its_records_only(client: httpx.AsyncClient, world: World) -> None:
    kept, dropped = await _group(client, world), await _group(client, world)
    template = {"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
                "contentVersion": "1.0.0.0", "resources": []}
    names = {rg: (await _deploy(client, world, rg, template))["name"] for rg in (kept, dropped)}
    request = SimpleNamespace(app=world.app)
    assert arm_deployments.forget_group(request, world.sub, dropped.upper()) == 1  # type: ignore[arg-type]
    gone = await arm_call(client, world, "GET", _path(world, dropped, names[dropped]), api_version=DEPLOY_API)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "DeploymentNotFound"
    assert (await _reads(client, world, kept, names[kept]))["get"]["name"] == names[kept]


async def test_of_two_workers_accepting_one_deployment_only_one_runs_it(client: httpx.AsyncClient,
                                                                         world: World) -> None:
    rg = await _group(client, world)
    await _deploy(client, world, rg, {"$schema": "https://schema.management.azure.com/schemas/2019-04-01/"
                  "deploymentTemplate.json#", "contentVersion": "1.0.0.0", "resources": []})  # opens the store
    repo = world.app.state.template_deployments.repo
    fields: dict[str, Any] = {"deployment_id": _path(world, rg, "raced"), "group_id": world.rg_path(rg),
                              "name": "raced", "state": "Accepted", "operation_id": "op-1", "record": {},
                              "operations": [], "owner": "a", "created_at": 1.0, "now": 1.0}
    assert repo.start(**fields)
    assert not repo.start(**{**fields, "operation_id": "op-2", "owner": "b"})  # the first is still active
    assert repo.find(fields["deployment_id"]).operation_id == "op-1"
    repo.save(**{**fields, "state": "Succeeded"})
    assert repo.start(**{**fields, "operation_id": "op-3", "owner": "b"})  # an ended one is replaced
    assert repo.find(fields["deployment_id"]).owner == "b"
    assert repo.delete(fields["deployment_id"])


def _stored(owner: str, heartbeat: float) -> StoredDeployment:
    return StoredDeployment("k", "n", "Running", "op", {}, [], owner, heartbeat, heartbeat)


def test_another_hosts_deployment_is_interrupted_only_once_its_heartbeat_is_stale() -> None:
    records = arm_deployments.Records(repo=None)  # type: ignore[arg-type]  # _interrupted reads no store
    elsewhere = "another-host.invalid:1:" + "0" * 32
    assert not arm_deployments._interrupted(records, _stored(elsewhere, 1000.0), 1000.0 + arm_deployments.STALE_S)
    assert arm_deployments._interrupted(records, _stored(elsewhere, 1000.0), 1001.0 + arm_deployments.STALE_S)
    # This app's own record with no task running it (its task ended without writing) is interrupted at once.
    assert arm_deployments._interrupted(records, _stored(records.owner, 1000.0), 1000.0)


async def test_deleting_a_group_deletes_its_deployment_records(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    template = {"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
                "contentVersion": "1.0.0.0", "resources": []}
    name = (await _deploy(client, world, rg, template))["name"]
    assert (await arm_call(client, world, "DELETE", world.rg_path(rg))).status_code == 200
    assert (await arm_call(client, world, "PUT", world.rg_path(rg), {"location": "local"})).status_code == 201
    gone = await arm_call(client, world, "GET", _path(world, rg, name), api_version=DEPLOY_API)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "DeploymentNotFound"
    listed = await arm_call(client, world, "GET", world.rg_path(rg) + "/providers/Microsoft.Resources/deployments",
                            api_version=DEPLOY_API)
    assert listed.status_code == 200 and listed.json()["value"] == []
