"""Function apps on the resource manager: `Microsoft.Web/sites` whose `kind` says functionapp, served as web apps
are (PUT/GET/PATCH/DELETE, lists by resource group and by subscription, every `identity` block), the paths
`az functionapp create|show` also call that Cielo does not serve (each a 404 naming it), and a function app's
system-assigned identity getting a token through the host agent's App Service protocol that the data plane
accepts once the identity holds a role."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pytest
from inproc import COG_RESOURCE, World, arm_call, arm_error, assign, new_principal, sp_token, unique
from test_api_agent import APP_Q, HEADER, agent_for

SITE = "Microsoft.Web/sites"
WEB_API = "2023-01-01"


def _site(world: World, group: str, name: str) -> str:
    return f"{world.rg_path(group)}/providers/{SITE}/{name}"


async def _ok(client: httpx.AsyncClient, world: World, method: str, path: str, body: Any = None,
              status: int = 200) -> dict[str, Any]:
    answer = await arm_call(client, world, method, path, body, api_version=WEB_API)
    assert answer.status_code == status, answer.text
    out: dict[str, Any] = answer.json()
    return out


@pytest.fixture()
async def group(client: httpx.AsyncClient, world: World) -> Any:
    name = unique("fa")
    # A resource group takes Microsoft.Resources' api-versions (the default one), not the web one.
    created = await arm_call(client, world, "PUT", world.rg_path(name), {"location": "local"})
    assert created.status_code == 201, created.text
    yield name
    answer = await arm_call(client, world, "DELETE", world.rg_path(name))
    assert answer.status_code in (200, 202), answer.text


def _principal_exists(world: World, object_id: str) -> bool:
    return world.services.directory.repo.find_service_principal(object_id) is not None


@pytest.mark.parametrize("kind", ["functionapp", "functionapp,linux", "functionapp,linux,container"])
async def test_a_function_app_keeps_its_kind_through_put_patch_and_get(client: httpx.AsyncClient, world: World,
                                                                       group: str, kind: str) -> None:
    path = _site(world, group, "func")
    created = await _ok(client, world, "PUT", path, {"kind": kind, "location": "local",
                                                    "identity": {"type": "SystemAssigned"}}, 200)
    assert (created["kind"], created["type"], created["name"]) == (kind, SITE, "func")
    assert created["properties"]["serverFarmId"] is None  # no App Service plan: said, not left out
    principal = created["identity"]["principalId"]
    assert created["identity"] == {"type": "SystemAssigned", "principalId": principal, "tenantId": world.tenant}
    assert _principal_exists(world, principal)
    assert (await _ok(client, world, "GET", path))["kind"] == kind
    # A PATCH without kind keeps it (and the identity); a PUT again without kind too.
    patched = await _ok(client, world, "PATCH", path, {"tags": {"team": "a"}})
    assert (patched["kind"], patched["tags"], patched["identity"]["principalId"]) == (kind, {"team": "a"}, principal)
    assert (await _ok(client, world, "PUT", path, {"location": "local"}))["kind"] == kind
    assert (await arm_call(client, world, "DELETE", path, api_version=WEB_API)).status_code == 200
    assert (await arm_call(client, world, "DELETE", path, api_version=WEB_API)).status_code == 204
    assert not _principal_exists(world, principal)
    gone = await arm_call(client, world, "GET", path, api_version=WEB_API)
    arm_error(gone, 404, "ResourceNotFound")


async def test_every_identity_block_on_a_function_app(client: httpx.AsyncClient, world: World, group: str) -> None:
    uami_path = f"{world.rg_path(group)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/fa-uami"
    uami = await _ok(client, world, "PUT", uami_path, {}, 201)
    path = _site(world, group, "func-ids")
    user_only = await _ok(client, world, "PUT", path, {"kind": "functionapp", "identity": {
        "type": "UserAssigned", "userAssignedIdentities": {uami["id"]: {}}}}, 200)
    assert user_only["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {
        uami["id"]: {"principalId": uami["properties"]["principalId"], "clientId": uami["properties"]["clientId"]}}}
    both = await _ok(client, world, "PATCH", path, {"identity": {"type": "SystemAssigned, UserAssigned"}})
    assert both["identity"]["type"] == "SystemAssigned, UserAssigned" and list(
        both["identity"]["userAssignedIdentities"]) == [uami["id"]]
    system = both["identity"]["principalId"]
    # Detaching the user-assigned identity (null) leaves the system-assigned one.
    only_system = await _ok(client, world, "PATCH", path, {"identity": {
        "type": "SystemAssigned", "userAssignedIdentities": {uami["id"]: None}}})
    assert only_system["identity"] == {"type": "SystemAssigned", "principalId": system, "tenantId": world.tenant}
    none = await _ok(client, world, "PATCH", path, {"identity": {"type": "None"}})
    assert "identity" not in none or none["identity"] is None, none
    assert not _principal_exists(world, system)
    assert none["kind"] == "functionapp"


async def test_lists_by_group_and_subscription_hold_both_kinds(client: httpx.AsyncClient, world: World,
                                                               group: str) -> None:
    await _ok(client, world, "PUT", _site(world, group, "web"), {}, 200)
    await _ok(client, world, "PUT", _site(world, group, "func"), {"kind": "functionapp,linux"}, 200)
    in_group = (await _ok(client, world, "GET", f"{world.rg_path(group)}/providers/{SITE}"))["value"]
    assert sorted((s["name"], s["kind"]) for s in in_group) == [("func", "functionapp,linux"), ("web", "app")]
    in_sub = (await _ok(client, world, "GET", f"{world.sub_path}/providers/{SITE}"))["value"]
    mine = sorted((s["name"], s["kind"]) for s in in_sub if s["id"].startswith(world.rg_path(group) + "/"))
    assert mine == [("func", "functionapp,linux"), ("web", "app")]
    # az's own filter: a kind containing "functionapp".
    assert [s["name"] for s in in_group if "functionapp" in s["kind"]] == ["func"]


async def test_a_subscription_list_needs_a_read_right(client: httpx.AsyncClient, world: World, group: str) -> None:
    await _ok(client, world, "PUT", _site(world, group, "func"), {"kind": "functionapp"}, 200)
    stranger = await new_principal(client, world)
    token = await sp_token(client, world, stranger, "https://management.azure.com/")
    headers = {"Authorization": f"Bearer {token}"}
    denied = await arm_call(client, world, "GET", f"{world.sub_path}/providers/{SITE}", headers=headers,
                            api_version=WEB_API)
    arm_error(denied, 403, "AuthorizationFailed")
    # Reader on the group: the subscription list shows that group's sites only.
    await assign(client, world, "Reader", stranger.sp_id, world.rg_path(group))
    seen = await arm_call(client, world, "GET", f"{world.sub_path}/providers/{SITE}", headers=headers,
                          api_version=WEB_API)
    assert seen.status_code == 200, seen.text
    assert [s["name"] for s in seen.json()["value"]] == ["func"]


@pytest.mark.parametrize("type_", ["Microsoft.Compute/virtualMachines", "Microsoft.Compute/virtualMachineScaleSets",
                                   "Microsoft.ManagedIdentity/userAssignedIdentities"])
async def test_the_other_types_are_listed_by_subscription_too(client: httpx.AsyncClient, world: World, group: str,
                                                              type_: str) -> None:
    name = unique("listed")
    await _ok(client, world, "PUT", f"{world.rg_path(group)}/providers/{type_}/{name}", {}, 201)
    listed = (await _ok(client, world, "GET", f"{world.sub_path}/providers/{type_}"))["value"]
    assert [r["type"] for r in listed if r["name"] == name] == [type_]
    assert {r["type"] for r in listed} == {type_}


async def test_a_site_read_can_be_put_back_as_az_does(client: httpx.AsyncClient, world: World, group: str) -> None:
    """az's `functionapp identity assign` GETs the site and PUTs it back, properties and all, with the identity."""
    path = _site(world, group, "func-rt")
    read = await _ok(client, world, "PUT", path, {"kind": "functionapp,linux"}, 200)
    put_back = {**read, "identity": {"type": "SystemAssigned"}}
    again = await _ok(client, world, "PUT", path, put_back)
    assert again["properties"] == read["properties"] and again["identity"]["type"] == "SystemAssigned"
    # Nulls say nothing, and are taken.
    assert (await _ok(client, world, "PUT", path, {"properties": {"serverFarmId": None, "siteConfig": None}}))[
        "kind"] == "functionapp,linux"


@pytest.mark.parametrize(("properties", "field"), [
    ({"siteConfig": {"cors": {"allowedOrigins": ["*"]}}}, "siteConfig.cors"),
    ({"state": "Stopped"}, "state"),
    ({"hostNamesDisabled": True}, "hostNamesDisabled"),
])
async def test_site_properties_cielo_does_not_honour_are_refused(client: httpx.AsyncClient, world: World, group: str,
                                                                 properties: dict[str, Any], field: str) -> None:
    principals_before = len(world.services.directory.repo.list_service_principals(world.tenant))
    answer = await arm_call(client, world, "PUT", _site(world, group, "func-bad"), {
        "kind": "functionapp", "identity": {"type": "SystemAssigned"}, "properties": properties}, api_version=WEB_API)
    assert f"'properties.{field}' is not served" in arm_error(answer, 400, "InvalidRequestContent")["message"]
    # Refused before anything was made: no site, no principal.
    arm_error(await arm_call(client, world, "GET", _site(world, group, "func-bad"), api_version=WEB_API), 404,
              "ResourceNotFound")
    assert len(world.services.directory.repo.list_service_principals(world.tenant)) == principals_before


@pytest.mark.parametrize("kind", [7, ["functionapp"], {"k": "functionapp"}])
async def test_a_kind_that_is_not_a_string_is_refused(client: httpx.AsyncClient, world: World, group: str,
                                                      kind: Any) -> None:
    answer = await arm_call(client, world, "PUT", _site(world, group, "bad-kind"), {"kind": kind},
                            api_version=WEB_API)
    assert "kind" in arm_error(answer, 400, "InvalidRequestContent")["message"]


async def test_paths_under_a_site_that_cielo_does_not_serve(client: httpx.AsyncClient, world: World,
                                                            group: str) -> None:
    """A path under a site other than those az's `functionapp` commands read (`config/web`, `publishxml`,
    `config/appsettings/list`, `config/slotConfigNames`: tests/api/test_api_web_storage.py) is a 404 naming it,
    never an empty success."""
    await _ok(client, world, "PUT", _site(world, group, "func"), {"kind": "functionapp"}, 200)
    for method, path, code, named in [
        ("GET", f"{_site(world, group, 'func')}/config/logs", "InvalidResourceType", "'config/logs' under 'func'"),
        ("GET", f"{_site(world, group, 'func')}/slots", "InvalidResourceType", "'slots' under 'func'"),
    ]:
        answer = await arm_call(client, world, method, path, api_version=WEB_API)
        error = arm_error(answer, 404, code)
        assert named in error["message"] and "not served" in error["message"], (path, error)


async def test_a_function_apps_identity_gets_a_token_through_app_service_that_the_data_plane_takes(
        client: httpx.AsyncClient, world: World, group: str) -> None:
    path = _site(world, group, unique("func-mi"))
    created = await _ok(client, world, "PUT", path, {"kind": "functionapp,linux",
                                                    "identity": {"type": "SystemAssigned"}}, 200)
    principal = created["identity"]["principalId"]
    issued = await _ok(client, world, "POST", f"{path}/issueHostCredential")
    assert issued["resourceId"] == path
    source, agent = agent_for(world, issued["credential"])
    try:
        answer = await agent.get("/msi/token", params=APP_Q, headers={"X-IDENTITY-HEADER": HEADER})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["resource"], body["token_type"]) == (COG_RESOURCE, "Bearer")
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert (claims["oid"], claims["aud"], claims["xms_mirid"]) == (
            principal, COG_RESOURCE, path.replace("/resourceGroups/", "/resourcegroups/"))
        url = world.openai_url("chat/completions")
        chat = {"messages": [{"role": "user", "content": "hi"}]}
        bearer = {"Authorization": f"Bearer {body['access_token']}"}
        refused = await client.post(url, json=chat, headers=bearer)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "PermissionDenied", refused.text
        await assign(client, world, "Cognitive Services User", principal, world.account_path())
        served = await client.post(url, json=chat, headers=bearer)
        assert served.status_code == 200, served.text
        # Deleting the function app ends it: its principal and role assignment go, the token is refused.
        assert (await arm_call(client, world, "DELETE", path, api_version=WEB_API)).status_code == 200
        after = await client.post(url, json=chat, headers=bearer)
        assert after.status_code == 401, after.text
    finally:
        await agent.aclose()
        await source.close()
