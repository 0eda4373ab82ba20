"""The activity log, in-process: directory (Graph `/v1.0`) writes recorded under Entra's audit activity names as
tenant-wide events (listed to directory administrators only, as sign-ins are), never with a secret; and each resource
write of a template deployment recorded as a write of its own, with the deployment's correlation id."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from typing import Any

import httpx
from inproc import ARM_RESOURCE, World, arm_call, assign, bearer, new_principal, sp_token, unique

from cielo.core.clock import FrozenClock

API = "2015-04-01"
DEPLOY_API = "2024-03-01"
CREDENTIALS = "Update application \u2013 Certificates and secrets management"


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def _values(client: httpx.AsyncClient, world: World, *clauses: str,
                  headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    now = world.clock.now()
    flt = " and ".join([f"eventTimestamp ge '{_iso(now - 3600)}'", f"eventTimestamp le '{_iso(now + 3600)}'",
                        *clauses])
    answer = await client.get(f"{world.sub_path}/providers/Microsoft.Insights/eventtypes/management/values",
                              params={"api-version": API, "$filter": flt}, headers=headers or world.arm)
    assert answer.status_code == 200, answer.text
    values: list[dict[str, Any]] = answer.json()["value"]
    return values


def _directory(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["resourceProviderName"]["value"] == "Microsoft.Graph"]


async def test_directory_writes_are_recorded_as_entra_names_them(client: httpx.AsyncClient, world: World,
                                                                 moved_clock: FrozenClock) -> None:
    graph = world.graph
    correlation = str(uuid.uuid4())  # Graph clients send `client-request-id`; each write here shares one
    headers = {**graph, "client-request-id": correlation}
    upn = unique("act-dir") + "@cielo.local"
    password = "Dir-Passw0rd!" + uuid.uuid4().hex[:8]
    user = await client.post("/v1.0/users", headers=headers, json={
        "accountEnabled": True, "displayName": "Audit Me", "userPrincipalName": upn, "mailNickname": "a",
        "passwordProfile": {"password": password, "forceChangePasswordNextSignIn": False}})
    assert user.status_code == 201, user.text
    user_id = user.json()["id"]
    moved_clock.advance(1)
    new_password = "Dir-Passw0rd!" + uuid.uuid4().hex[:8]
    assert (await client.patch(f"/v1.0/users/{user_id}", headers=headers, json={
        "passwordProfile": {"password": new_password}})).status_code == 204
    moved_clock.advance(1)
    group = await client.post("/v1.0/groups", headers=headers, json={
        "displayName": unique("act-g"), "mailEnabled": False, "mailNickname": "g", "securityEnabled": True})
    assert group.status_code == 201, group.text
    group_id = group.json()["id"]
    moved_clock.advance(1)
    member = await client.post(f"/v1.0/groups/{group_id}/members/$ref", headers=headers,
                               json={"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{user_id}"})
    assert member.status_code == 204, member.text
    moved_clock.advance(1)
    app = await client.post("/v1.0/applications", headers=headers, json={"displayName": unique("act-app")})
    assert app.status_code == 201, app.text
    app_id, client_id = app.json()["id"], app.json()["appId"]
    moved_clock.advance(1)
    secret = await client.post(f"/v1.0/applications/{app_id}/addPassword", headers=headers,
                               json={"passwordCredential": {"displayName": "ci"}})
    assert secret.status_code == 200, secret.text
    secret_text = secret.json()["secretText"]
    moved_clock.advance(1)
    sp = await client.post("/v1.0/servicePrincipals", headers=headers, json={"appId": client_id})
    assert sp.status_code == 201, sp.text
    moved_clock.advance(1)
    missing = await client.delete(f"/v1.0/users/{uuid.uuid4()}", headers=headers)
    assert missing.status_code == 404, missing.text

    events = _directory(await _values(client, world, f"correlationId eq '{correlation}'"))
    assert [(e["operationName"]["value"], e["status"]["value"]) for e in events] == [
        ("Delete user", "Failed"), ("Add service principal", "Succeeded"), (CREDENTIALS, "Succeeded"),
        ("Add application", "Succeeded"), ("Add member to group", "Succeeded"), ("Add group", "Succeeded"),
        ("Update user", "Succeeded"), ("Add user", "Succeeded")]
    by_name = {e["operationName"]["value"]: e for e in reversed(events)}
    added = by_name["Add user"]
    assert added["resourceId"] == f"/tenants/{world.tenant}/users/{user_id}"
    assert added["category"]["value"] == "Administrative" and added["subscriptionId"] == ""
    assert added["caller"] == "admin@cielo.local" and added["tenantId"] == world.tenant
    assert added["claims"]["oid"] == world.admin_id and added["eventName"]["value"] == "EndRequest"
    assert added["properties"]["auditCategory"] == "UserManagement"
    assert added["properties"]["userPrincipalName"] == upn and added["subStatus"]["value"] == "Created"
    assert by_name["Add member to group"]["resourceId"] == f"/tenants/{world.tenant}/groups/{group_id}"
    assert by_name["Add member to group"]["properties"]["auditCategory"] == "GroupManagement"
    credentials = by_name[CREDENTIALS]
    assert credentials["resourceId"] == f"/tenants/{world.tenant}/applications/{app_id}"
    assert credentials["properties"]["keyId"] == secret.json()["keyId"]
    assert by_name["Delete user"]["subStatus"]["value"] == "NotFound"
    # No secret, password or token in any entry.
    text = json.dumps(events)
    assert secret_text not in text and "secretText" not in text
    assert password not in text and new_password not in text
    assert world.admin_tokens[ARM_RESOURCE].split(".")[2] not in text
    assert graph["Authorization"].split(".")[2] not in text


async def test_directory_events_are_listed_to_directory_administrators_only(client: httpx.AsyncClient,
                                                                           world: World) -> None:
    correlation = str(uuid.uuid4())
    made = await client.post("/v1.0/groups", headers={**world.graph, "client-request-id": correlation}, json={
        "displayName": unique("act-hidden"), "mailEnabled": False, "mailNickname": "h", "securityEnabled": True})
    assert made.status_code == 201, made.text
    assert len(_directory(await _values(client, world, f"correlationId eq '{correlation}'"))) == 1
    reader = await new_principal(client, world)
    await assign(client, world, "Reader", reader.sp_id, world.sub_path)
    headers = bearer(await sp_token(client, world, reader, ARM_RESOURCE))
    assert await _values(client, world, f"correlationId eq '{correlation}'", headers=headers) == []


async def test_a_refused_directory_write_is_not_a_directory_event(client: httpx.AsyncClient, world: World) -> None:
    """A caller who is no administrator never reaches the directory: nothing of theirs is recorded as done."""
    correlation = str(uuid.uuid4())
    principal = await new_principal(client, world)
    token = await sp_token(client, world, principal, "https://graph.microsoft.com")
    refused = await client.post("/v1.0/groups", headers={**bearer(token), "client-request-id": correlation},
                                json={"displayName": "x", "mailEnabled": False, "mailNickname": "x",
                                      "securityEnabled": True})
    assert refused.status_code == 403, refused.text
    assert _directory(await _values(client, world, f"correlationId eq '{correlation}'")) == []


async def _deploy(client: httpx.AsyncClient, world: World, rg: str, template: dict[str, Any],
                  correlation: str | None) -> dict[str, Any]:
    name = unique("dep")
    path = f"{world.rg_path(rg)}/providers/Microsoft.Resources/deployments/{name}"
    headers = {**world.arm, **({"x-ms-correlation-request-id": correlation} if correlation else {})}
    started = await arm_call(client, world, "PUT", path, {"properties": {"template": template,
                                                                          "mode": "Incremental"}},
                             headers=headers, api_version=DEPLOY_API)
    assert started.status_code == 201, started.text
    for _ in range(500):
        final = await arm_call(client, world, "GET", path, api_version=DEPLOY_API)
        if final.json()["properties"]["provisioningState"] not in ("Accepted", "Running"):
            break
        await asyncio.sleep(0.01)
    body: dict[str, Any] = final.json()
    return body


_TEMPLATE = {
    "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
    "contentVersion": "1.0.0.0",
    "resources": [
        {"type": "Microsoft.ManagedIdentity/userAssignedIdentities", "apiVersion": "2023-01-31", "name": "mi-one",
         "location": "local"},
        {"type": "Microsoft.ManagedIdentity/userAssignedIdentities", "apiVersion": "2023-01-31", "name": "mi-two",
         "location": "local", "dependsOn": ["mi-one"]},
        {"type": "Microsoft.Nope/things", "apiVersion": "2023-01-01", "name": "unserved", "location": "local"},
    ],
}


async def test_each_resource_a_deployment_writes_is_its_own_event(client: httpx.AsyncClient, world: World) -> None:
    rg = unique("act-dep")
    assert (await arm_call(client, world, "PUT", world.rg_path(rg), {"location": "local"})).status_code == 201
    correlation = str(uuid.uuid4())
    deployed = await _deploy(client, world, rg, _TEMPLATE, correlation)
    assert deployed["properties"]["provisioningState"] == "Failed", deployed  # the unserved type; the rest is made
    assert deployed["properties"]["correlationId"] == correlation
    events = await _values(client, world, f"correlationId eq '{correlation}'")
    ends = {(e["resourceId"].rsplit("/", 1)[-1], e["operationName"]["value"], e["status"]["value"])
            for e in events if e["eventName"]["value"] == "EndRequest"}
    uami = "Microsoft.ManagedIdentity/userAssignedIdentities/write"
    assert {("mi-one", uami, "Succeeded"), ("mi-two", uami, "Succeeded")} <= ends, ends
    assert any(name.startswith("dep-") and op == "Microsoft.Resources/deployments/write" for name, op, _ in ends)
    # A path no route serves is no write (as for a client's own request): the unserved type has no event.
    assert not any(name == "unserved" for name, _, _ in ends), ends
    one = [e for e in events if e["resourceId"].endswith("/mi-one")]
    assert [e["status"]["value"] for e in one] == ["Succeeded", "Started"]
    assert one[0]["caller"] == "admin@cielo.local" and one[0]["resourceGroupName"] == rg
    assert one[0]["subStatus"]["value"] == "Created"
    # Without a client correlation id, the deployment's own (its properties.correlationId) links them.
    again = await _deploy(client, world, rg, {**_TEMPLATE, "resources": _TEMPLATE["resources"][:1]}, None)
    own = again["properties"]["correlationId"]
    linked = await _values(client, world, f"correlationId eq '{own}'")
    names = {e["resourceId"].rsplit("/", 1)[-1] for e in linked}
    assert "mi-one" in names and again["name"] in names, names
