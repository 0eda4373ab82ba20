"""The activity log, in-process: ARM writes (Started and Succeeded/Failed), token issuances and failed sign-ins,
data-plane denials, read back through Azure's Activity Log API with its filters, `$select`, paging and errors,
and RBAC on the read (`Microsoft.Insights/eventtypes/values/read`)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from inproc import (
    ACCOUNT,
    ARM_RESOURCE,
    COG_RESOURCE,
    RG,
    World,
    arm_call,
    arm_error,
    assign,
    bearer,
    new_principal,
    sp_token,
    unique,
)
from inproc_cli import Cli, signed_in_cli

from cielo.core.clock import FrozenClock
from cielo.store.activity import ActivityRow

API = "2015-04-01"
EVENT_FIELDS = {"authorization", "caller", "channels", "claims", "correlationId", "description", "eventDataId",
                "eventName", "category", "eventTimestamp", "id", "level", "operationId", "operationName",
                "resourceGroupName", "resourceProviderName", "resourceType", "resourceId", "status", "subStatus",
                "submissionTimestamp", "subscriptionId", "tenantId", "httpRequest", "properties"}


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _filter(world: World, *clauses: str, hours: float = 1) -> str:
    now = world.clock.now()
    return " and ".join([f"eventTimestamp ge '{_iso(now - hours * 3600)}'", f"eventTimestamp le '{_iso(now + 1)}'",
                         *clauses])


async def _events(client: httpx.AsyncClient, world: World, flt: str | None, *, headers: dict[str, str] | None = None,
                  select: str | None = None, api_version: str = API) -> httpx.Response:
    params = {"api-version": api_version}
    if flt is not None:
        params["$filter"] = flt
    if select is not None:
        params["$select"] = select
    return await client.get(f"{world.sub_path}/providers/Microsoft.Insights/eventtypes/management/values",
                            params=params, headers=headers if headers is not None else world.arm)


async def _values(client: httpx.AsyncClient, world: World, *clauses: str,
                  headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    answer = await _events(client, world, _filter(world, *clauses), headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) <= {"value", "nextLink"}
    values: list[dict[str, Any]] = body["value"]
    return values


async def test_a_resource_group_write_is_listed_as_azure_lists_it(client: httpx.AsyncClient, world: World) -> None:
    rg = unique("act-rg")
    correlation = str(uuid.uuid4())
    put = await arm_call(client, world, "PUT", world.rg_path(rg), {"location": "local"},
                         headers={**world.arm, "x-ms-correlation-request-id": correlation})
    assert put.status_code == 201, put.text
    events = await _values(client, world, f"resourceGroupName eq '{rg.upper()}'")  # case-insensitive, as Azure's
    assert [e["status"]["value"] for e in events] == ["Succeeded", "Started"], events
    for event in events:
        assert set(event) == EVENT_FIELDS, set(event) ^ EVENT_FIELDS
        assert event["operationName"]["value"] == "Microsoft.Resources/subscriptions/resourceGroups/write"
        assert event["authorization"] == {"action": "Microsoft.Resources/subscriptions/resourceGroups/write",
                                          "scope": world.rg_path(rg)}
        assert event["correlationId"] == correlation and event["caller"] == "admin@cielo.local"
        assert event["resourceId"] == world.rg_path(rg) and event["resourceGroupName"] == rg
        assert event["subscriptionId"] == world.sub and event["tenantId"] == world.tenant
        assert event["category"] == {"value": "Administrative", "localizedValue": "Administrative"}
        assert event["httpRequest"]["method"] == "PUT" and event["httpRequest"]["clientIpAddress"]
        assert event["claims"]["oid"] == world.admin_id
        assert event["id"].startswith(world.rg_path(rg) + "/events/" + event["eventDataId"] + "/ticks/")
        assert event["eventTimestamp"].endswith("Z") and len(event["eventTimestamp"]) == 28
    assert events[0]["subStatus"] == {"value": "Created", "localizedValue": "Created (HTTP Status Code: 201)"}
    assert events[0]["eventName"]["value"] == "EndRequest" and events[1]["eventName"]["value"] == "BeginRequest"
    text = json.dumps(events)
    token = world.admin_tokens[ARM_RESOURCE]
    assert token not in text and token.split(".")[2] not in text and "Bearer" not in text
    # A GET is not an event.
    assert (await arm_call(client, world, "GET", world.rg_path(rg))).status_code == 200
    assert len(await _values(client, world, f"resourceGroupName eq '{rg}'")) == 2


async def test_filters_by_correlation_id_resource_uri_caller_and_status(client: httpx.AsyncClient, world: World,
                                                                        moved_clock: FrozenClock) -> None:
    rg = unique("act-f")
    correlation = str(uuid.uuid4())
    assert (await arm_call(client, world, "PUT", world.rg_path(rg), {"location": "local"})).status_code == 201
    principal = await new_principal(client, world)
    name = str(uuid.uuid4())
    path = f"{world.rg_path(rg)}/providers/Microsoft.Authorization/roleAssignments/{name}"
    put = await arm_call(client, world, "PUT", path, {"properties": {
        "roleDefinitionId": world.role_id("Reader"), "principalId": principal.sp_id,
        "principalType": "ServicePrincipal"}}, headers={**world.arm, "x-ms-correlation-request-id": correlation})
    assert put.status_code == 201, put.text
    by_correlation = await _values(client, world, f"correlationId eq '{correlation}'")
    assert {e["operationName"]["value"] for e in by_correlation} == {"Microsoft.Authorization/roleAssignments/write"}
    assert by_correlation[0]["resourceId"] == path and by_correlation[0]["resourceGroupName"] == rg
    assert len(by_correlation) == 2
    by_uri = await _values(client, world, f"resourceUri eq '{path.lower()}'")
    assert {e["eventDataId"] for e in by_uri} == {e["eventDataId"] for e in by_correlation}
    mine = await _values(client, world, "caller eq 'ADMIN@cielo.local'", f"resourceGroupName eq '{rg}'",
                         "status eq 'Succeeded'")
    assert len(mine) == 2 and {e["status"]["value"] for e in mine} == {"Succeeded"}
    nobody = await _values(client, world, "caller eq 'nobody@cielo.local'", f"resourceGroupName eq '{rg}'")
    assert nobody == []
    moved_clock.advance(1)  # newest first
    deleted = await arm_call(client, world, "DELETE", path)
    assert deleted.status_code == 200, deleted.text
    ops = await _values(client, world, f"resourceUri eq '{path}'", "status eq 'Succeeded'")
    assert [e["operationName"]["value"] for e in ops] == ["Microsoft.Authorization/roleAssignments/delete",
                                                          "Microsoft.Authorization/roleAssignments/write"]


async def test_select_returns_only_the_named_properties(client: httpx.AsyncClient, world: World) -> None:
    rg = unique("act-s")
    assert (await arm_call(client, world, "PUT", world.rg_path(rg), {"location": "local"})).status_code == 201
    answer = await _events(client, world, _filter(world, f"resourceGroupName eq '{rg}'"),
                           select="eventTimestamp, operationName,caller ,status")
    assert answer.status_code == 200, answer.text
    assert [set(e) for e in answer.json()["value"]] == [{"eventTimestamp", "operationName", "caller", "status"}] * 2
    bad = await _events(client, world, _filter(world), select="caller,password")
    assert "password" in arm_error(bad, 400, "BadRequest")["message"]


async def test_refusals_in_the_arm_envelope(client: httpx.AsyncClient, world: World) -> None:
    now = world.clock.now()
    missing = arm_error(await _events(client, world, None), 400, "BadRequest")
    assert "$filter" in missing["message"] and "eventTimestamp ge" in missing["message"]
    only_le = await _events(client, world, f"eventTimestamp le '{_iso(now)}'")
    assert "eventTimestamp ge" in arm_error(only_le, 400, "BadRequest")["message"]
    too_long = await _events(client, world, f"eventTimestamp ge '{_iso(now - 91 * 86400)}' and "
                                            f"eventTimestamp le '{_iso(now - 0.5 * 86400)}'")
    assert "90 days" in arm_error(too_long, 400, "BadRequest")["message"]
    too_old = await _events(client, world, f"eventTimestamp ge '{_iso(now - 95 * 86400)}' and "
                                          f"eventTimestamp le '{_iso(now - 94 * 86400)}'")
    assert "90 days" in arm_error(too_old, 400, "BadRequest")["message"]
    unknown = await _events(client, world, _filter(world, "levels eq 'Error'"))
    assert "'levels'" in arm_error(unknown, 400, "BadRequest")["message"]
    reversed_window = await _events(client, world, f"eventTimestamp ge '{_iso(now)}' and "
                                                   f"eventTimestamp le '{_iso(now - 60)}'")
    arm_error(reversed_window, 400, "BadRequest")
    not_a_time = await _events(client, world, "eventTimestamp ge 'yesterday'")
    assert "yesterday" in arm_error(not_a_time, 400, "BadRequest")["message"]
    version = await _events(client, world, _filter(world), api_version="2022-12-01")
    assert "2015-04-01" in arm_error(version, 400, "InvalidApiVersionParameter")["message"]
    skip = await client.get(f"{world.sub_path}/providers/Microsoft.Insights/eventtypes/management/values",
                            params={"api-version": API, "$filter": _filter(world), "$skipToken": "!!"},
                            headers=world.arm)
    arm_error(skip, 400, "BadRequest")


async def test_reading_needs_the_insights_read_action(client: httpx.AsyncClient, world: World,
                                                      moved_clock: FrozenClock) -> None:
    principal = await new_principal(client, world)
    headers = bearer(await sp_token(client, world, principal, ARM_RESOURCE))
    denied = arm_error(await _events(client, world, _filter(world), headers=headers), 403, "AuthorizationFailed")
    assert "Microsoft.Insights/eventtypes/values/read" in denied["message"]
    # A write it was refused is itself an event (Failed, Forbidden), readable by the administrator.
    rg = unique("act-denied")
    moved_clock.advance(1)
    refused = await arm_call(client, world, "PUT", world.rg_path(rg), {"location": "local"}, headers=headers)
    arm_error(refused, 403, "AuthorizationFailed")
    events = await _values(client, world, f"resourceGroupName eq '{rg}'")
    assert [e["status"]["value"] for e in events] == ["Failed", "Started"]
    assert events[0]["subStatus"]["value"] == "Forbidden" and events[0]["caller"] == principal.app_id
    assert "AuthorizationFailed" in events[0]["properties"]["statusMessage"]
    # Reader at the subscription may read; tenant-wide events (sign-ins, tokens) are the administrators' only.
    await assign(client, world, "Reader", principal.sp_id, world.sub_path)
    seen = await _values(client, world, f"resourceGroupName eq '{rg}'", headers=headers)
    assert len(seen) == 2
    all_seen = await _values(client, world, headers=headers)
    assert all(e["subscriptionId"] == world.sub for e in all_seen)


async def test_token_issuances_and_failed_sign_ins(client: httpx.AsyncClient, world: World,
                                                   moved_clock: FrozenClock) -> None:
    principal = await new_principal(client, world)
    await sp_token(client, world, principal, COG_RESOURCE)
    moved_clock.advance(1)  # newest first
    wrong = await client.post(world.token_url(), data={
        "grant_type": "client_credentials", "client_id": principal.app_id, "client_secret": "not-the-secret-x",
        "scope": "https://management.azure.com/.default"})
    assert wrong.status_code == 401, wrong.text
    events = await _values(client, world, f"caller eq '{principal.app_id}'")
    tokens = [e for e in events if e["operationName"]["value"] == "Microsoft.AAD/tokens/action"]
    assert [e["status"]["value"] for e in tokens] == ["Failed", "Succeeded"], events
    failed, issued = tokens
    assert failed["subStatus"]["value"] == "AADSTS7000215" and failed["properties"]["error"] == "invalid_client"
    assert issued["properties"]["grantType"] == "client_credentials"
    assert issued["claims"]["appid"] == principal.app_id and issued["subscriptionId"] == ""
    assert issued["category"]["value"] == "Security" and issued["tenantId"] == world.tenant
    text = json.dumps(events)
    assert principal.secret not in text and "not-the-secret-x" not in text
    assert principal.tokens[COG_RESOURCE].split(".")[2] not in text
    # A wrong password is a failed sign-in, with its AADSTS code; the password is nowhere.
    user = unique("act-user") + "@cielo.local"
    bad = await client.post(world.token_url(v1=True), data={
        "client_id": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "grant_type": "password", "username": user,
        "password": "Wrong-Passw0rd!x", "resource": ARM_RESOURCE})
    assert bad.status_code == 400, bad.text
    signins = await _values(client, world, f"caller eq '{user}'")
    assert [(e["operationName"]["value"], e["status"]["value"], e["subStatus"]["value"]) for e in signins] == [
        ("Microsoft.AAD/signIns/action", "Failed", "AADSTS50126")]
    assert "Wrong-Passw0rd!x" not in json.dumps(signins)


async def test_a_data_plane_denial_is_recorded(client: httpx.AsyncClient, world: World) -> None:
    principal = await new_principal(client, world)
    token = await sp_token(client, world, principal, COG_RESOURCE)
    denied = await client.post(world.openai_url("chat/completions"),
                               json={"messages": [{"role": "user", "content": "hi"}]}, headers=bearer(token))
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "PermissionDenied", denied.text
    events = await _values(client, world, f"caller eq '{principal.app_id}'", "status eq 'Failed'")
    denial = [e for e in events if e["resourceProviderName"]["value"] == "Microsoft.CognitiveServices"]
    assert len(denial) == 1, events
    event = denial[0]
    assert event["operationName"]["value"] == \
        "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action"
    assert event["resourceId"] == world.account_path() and event["resourceGroupName"] == RG
    assert event["subStatus"]["value"] == "PermissionDenied"
    assert event["correlationId"] == denied.headers["apim-request-id"]
    assert token.split(".")[2] not in json.dumps(event) and ACCOUNT in event["resourceId"]


async def test_pages_follow_next_link(client: httpx.AsyncClient, world: World) -> None:
    activity = world.app.state.activity
    rg = unique("act-page").lower()
    now = world.clock.now()
    activity.record([ActivityRow(str(uuid.uuid4()), world.tenant, world.sub, now - i, "Administrative",
                                 "Informational", "Microsoft.Resources/subscriptions/resourceGroups/write",
                                 "Succeeded", "admin@cielo.local", str(uuid.uuid4()), world.rg_path(rg), rg,
                                 "Microsoft.Resources", {}) for i in range(205)])
    first = await _events(client, world, _filter(world, f"resourceGroupName eq '{rg}'"))
    assert first.status_code == 200, first.text
    body = first.json()
    assert len(body["value"]) == 200 and "nextLink" in body
    link = urlsplit(body["nextLink"])
    second = await client.get(f"{link.path}?{link.query}", headers=world.arm)
    assert second.status_code == 200, second.text
    rest = second.json()
    assert len(rest["value"]) == 5 and "nextLink" not in rest
    ids = [e["eventDataId"] for e in body["value"] + rest["value"]]
    assert len(set(ids)) == 205
    stamps = [e["eventTimestamp"] for e in body["value"] + rest["value"]]
    assert stamps == sorted(stamps, reverse=True)


async def test_retention_deletes_old_events(world: World) -> None:
    activity = world.app.state.activity
    rg = unique("act-old").lower()
    now = world.clock.now()
    old = now - activity.retention_s - 10
    activity.record([ActivityRow(str(uuid.uuid4()), world.tenant, world.sub, ts, "Administrative", "Informational",
                                 "x/write", "Succeeded", "admin@cielo.local", "c", world.rg_path(rg), rg, "x", {})
                     for ts in (old, now)])
    activity.flush()
    assert activity.purge() >= 1
    from cielo.control.activity import EventFilter
    page = activity.page(world.sub, world.tenant, EventFilter(old - 1, now + 1, resource_group=rg),
                         tenant_events=False)
    assert [r.event_ts for r in page.events] == [now]


@pytest.fixture()
def cli(world: World, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Cli]:
    with signed_in_cli(world, tmp_path_factory, tmp_path) as runner:
        yield runner


def test_cli_monitor_activity_log_list(cli: Cli, world: World) -> None:
    name = unique("cli-act")
    cli.json("group", "create", "-n", name, "-l", "local")
    events = cli.json("monitor", "activity-log", "list", "-g", name)
    assert [e["status"]["value"] for e in events] == ["Succeeded", "Started"]
    assert events[0]["operationName"]["value"] == "Microsoft.Resources/subscriptions/resourceGroups/write"
    assert len(cli.json("monitor", "activity-log", "list", "-g", name, "--max-events", "1")) == 1
    assert cli.json("monitor", "activity-log", "list", "-g", name, "--status", "failed") == []
    correlation = events[0]["correlationId"]
    assert len(cli.json("monitor", "activity-log", "list", "--correlation-id", correlation, "--offset", "1d",
                        "--caller", "admin@cielo.local")) == 2
    table = cli.ok("monitor", "activity-log", "list", "-g", name, "-o", "table").splitlines()
    assert table[0].split() == ["EventTimestamp", "Operation", "Status", "Caller", "ResourceGroup", "CorrelationId"]
    assert "Succeeded" in table[2] and name in table[2]
    selected = cli.json("monitor", "activity-log", "list", "-g", name, "--select", "caller,status")
    assert [set(e) for e in selected] == [{"caller", "status"}] * 2
    assert "##d##h" in cli.fails("monitor", "activity-log", "list", "--offset", "2x")
    assert "cannot be used together" in cli.fails("monitor", "activity-log", "list", "-g", name,
                                                  "--correlation-id", correlation)
    long_ago = cli.fails("monitor", "activity-log", "list", "--start-time", "2001-01-01T00:00:00Z")
    assert "90 days" in long_ago
