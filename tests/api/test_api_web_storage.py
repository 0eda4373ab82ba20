"""What `az functionapp create` reads and writes besides the site, in-process: `Microsoft.Web/geoRegions`, the
function app stacks, App Service plans (`Microsoft.Web/serverfarms`) and storage accounts
(`Microsoft.Storage/storageAccounts`, `checkNameAvailability`, `listKeys`, `regenerateKey`), each with its RBAC
action and its api-versions; and a site's App Service properties (`siteConfig` with app settings kept sealed,
`serverFarmId` naming a plan that must exist, `httpsOnly`, `reserved`)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from inproc import ARM_RESOURCE, World, arm_call, arm_error, assign, bearer, new_principal, sp_token, unique
from sqlalchemy import text

from cielo.store.db import open_engine

WEB_API = "2025-05-01"
STORAGE_API = "2025-08-01"


@pytest.fixture()
async def group(client: httpx.AsyncClient, world: World) -> Any:
    name = unique("ws")
    created = await arm_call(client, world, "PUT", world.rg_path(name), {"location": "local"})
    assert created.status_code == 201, created.text
    yield name
    await arm_call(client, world, "DELETE", world.rg_path(name))


def _storage(world: World, group: str, name: str) -> str:
    return f"{world.rg_path(group)}/providers/Microsoft.Storage/storageAccounts/{name}"


def _plan(world: World, group: str, name: str) -> str:
    return f"{world.rg_path(group)}/providers/Microsoft.Web/serverfarms/{name}"


def _site(world: World, group: str, name: str) -> str:
    return f"{world.rg_path(group)}/providers/Microsoft.Web/sites/{name}"


async def _ok(client: httpx.AsyncClient, world: World, method: str, path: str, body: Any = None,
              api: str = WEB_API, **kw: Any) -> Any:
    answer = await arm_call(client, world, method, path, body, api_version=api, **kw)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _account_name() -> str:
    return unique("st").replace("-", "")[:24]


async def test_geo_regions_and_stacks(client: httpx.AsyncClient, world: World) -> None:
    regions = await _ok(client, world, "GET", f"{world.sub_path}/providers/Microsoft.Web/geoRegions?sku=Dynamic")
    assert regions["value"][0]["name"] == "local"
    assert regions["value"][0]["type"] == "Microsoft.Web/geoRegions"
    stacks = (await _ok(client, world, "GET", "/providers/Microsoft.Web/functionAppStacks?stackOsType=Linux"))["value"]
    python = next(s for s in stacks if s["name"] == "python")
    minor = python["properties"]["majorVersions"][0]["minorVersions"][0]
    linux = minor["stackSettings"]["linuxRuntimeSettings"]
    assert linux["appSettingsDictionary"] == {"FUNCTIONS_WORKER_RUNTIME": "python"}
    assert linux["siteConfigPropertiesDictionary"]["linuxFxVersion"] == f"Python|{minor['value']}"
    assert linux["appInsightsSettings"] == {"isSupported": False}  # Cielo serves no Application Insights
    assert "windowsRuntimeSettings" not in minor["stackSettings"]
    bad = await arm_call(client, world, "GET", "/providers/Microsoft.Web/functionAppStacks?stackOsType=Mac",
                         api_version=WEB_API)
    assert "stackOsType" in arm_error(bad, 400, "InvalidRequestContent")["message"]
    old = await arm_call(client, world, "GET", "/providers/Microsoft.Web/functionAppStacks", api_version="2099-01-01")
    arm_error(old, 400, "InvalidApiVersionParameter")


async def test_storage_account_lifecycle_and_keys(client: httpx.AsyncClient, world: World, group: str) -> None:
    name = _account_name()
    check = f"{world.sub_path}/providers/Microsoft.Storage/checkNameAvailability"
    assert (await _ok(client, world, "POST", check, {"name": name, "type": "Microsoft.Storage/storageAccounts"},
                      STORAGE_API))["nameAvailable"] is True
    body = {"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": "local",
            "properties": {"encryption": {"keySource": "Microsoft.Storage", "services": {"blob": {}}}}}
    created = await _ok(client, world, "PUT", _storage(world, group, name), body, STORAGE_API)
    assert (created["sku"], created["kind"]) == ({"name": "Standard_LRS", "tier": "Standard"}, "StorageV2")
    assert created["properties"]["primaryEndpoints"]["blob"] == f"https://{name}.blob.local/"
    assert created["properties"]["networkAcls"]["defaultAction"] == "Allow"
    taken = await _ok(client, world, "POST", check, {"name": name}, STORAGE_API)
    assert (taken["nameAvailable"], taken["reason"]) == (False, "AlreadyExists")
    invalid = await _ok(client, world, "POST", check, {"name": "No-Caps"}, STORAGE_API)
    assert invalid["reason"] == "AccountNameInvalid"
    keys = (await _ok(client, world, "POST", f"{_storage(world, group, name)}/listKeys", None, STORAGE_API))["keys"]
    assert [k["keyName"] for k in keys] == ["key1", "key2"] and len(keys[0]["value"]) == 88
    again = (await _ok(client, world, "POST", f"{_storage(world, group, name)}/listKeys", None, STORAGE_API))["keys"]
    assert again == keys
    rotated = (await _ok(client, world, "POST", f"{_storage(world, group, name)}/regenerateKey", {"keyName": "key2"},
                         STORAGE_API))["keys"]
    assert rotated[0]["value"] == keys[0]["value"] and rotated[1]["value"] != keys[1]["value"]
    # The keys are stored sealed: neither appears in the database.
    engine = open_engine(world.services.settings.database)  # SQLite, or PostgreSQL on its pass (docs/testing.md)
    with engine.connect() as conn:
        dump = "\n".join(str(row) for table in ("account_keys", "resources")
                         for row in conn.execute(text(f"SELECT * FROM {table}")))
    assert rotated[0]["value"] not in dump and rotated[1]["value"] not in dump
    # Listed by group and by subscription; the same name elsewhere is taken.
    listed = await _ok(client, world, "GET", f"{world.rg_path(group)}/providers/Microsoft.Storage/storageAccounts",
                       None, STORAGE_API)
    assert [a["name"] for a in listed["value"]] == [name]
    everywhere = await _ok(client, world, "GET", f"{world.sub_path}/providers/Microsoft.Storage/storageAccounts",
                           None, STORAGE_API)
    assert name in [a["name"] for a in everywhere["value"]]
    other = unique("ws2")
    assert (await arm_call(client, world, "PUT", world.rg_path(other), {"location": "local"})).status_code == 201
    dup = await arm_call(client, world, "PUT", _storage(world, other, name), body, api_version=STORAGE_API)
    arm_error(dup, 409, "StorageAccountAlreadyTaken")
    await arm_call(client, world, "DELETE", world.rg_path(other))
    assert (await arm_call(client, world, "DELETE", _storage(world, group, name),
                           api_version=STORAGE_API)).status_code == 200
    arm_error(await arm_call(client, world, "GET", _storage(world, group, name), api_version=STORAGE_API), 404,
              "ResourceNotFound")


@pytest.mark.parametrize(("body", "code", "says"), [
    ({"sku": {"name": "Standard_LRS"}, "location": "local"}, "InvalidRequestContent", "'kind' is required"),
    ({"sku": {"name": "Gold"}, "kind": "StorageV2", "location": "local"}, "InvalidSkuName", "Gold"),
    ({"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": "local",
      "properties": {"isHnsEnabled": True}}, "InvalidRequestContent", "'properties.isHnsEnabled' is not served"),
    ({"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": "local",
      "properties": {"encryption": {"keySource": "Microsoft.Keyvault"}}}, "InvalidRequestContent", "keySource"),
    ({"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": "local",
      "properties": {"networkAcls": {"defaultAction": "Deny"}}}, "InvalidRequestContent", "networkAcls"),
])
async def test_storage_bodies_cielo_would_not_honour_are_refused(client: httpx.AsyncClient, world: World, group: str,
                                                                 body: dict[str, Any], code: str, says: str) -> None:
    name = _account_name()
    answer = await arm_call(client, world, "PUT", _storage(world, group, name), body, api_version=STORAGE_API)
    assert says in arm_error(answer, 400, code)["message"]
    arm_error(await arm_call(client, world, "GET", _storage(world, group, name), api_version=STORAGE_API), 404,
              "ResourceNotFound")
    bad_name = await arm_call(client, world, "PUT", _storage(world, group, "Bad_Name"), body, api_version=STORAGE_API)
    arm_error(bad_name, 400, "AccountNameInvalid")


async def test_plan_and_a_function_app_on_it(client: httpx.AsyncClient, world: World, group: str) -> None:
    plan = await _ok(client, world, "PUT", _plan(world, group, "plan1"), {
        "location": "local", "kind": "linux", "sku": {"name": "B1", "capacity": 1}, "properties": {"reserved": True}})
    assert (plan["sku"]["tier"], plan["properties"]["reserved"], plan["properties"]["numberOfSites"]) == (
        "Basic", True, 0)
    secret = "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=c2VjcmV0LWtleS12YWx1ZQ=="
    site = await _ok(client, world, "PUT", _site(world, group, "fa1"), {
        "location": "local", "kind": "functionapp,linux",
        "properties": {"serverFarmId": "plan1", "reserved": True, "httpsOnly": False, "siteConfig": {
            "alwaysOn": True, "linuxFxVersion": "Python|3.12",
            "appSettings": [{"name": "FUNCTIONS_WORKER_RUNTIME", "value": "python"},
                            {"name": "AzureWebJobsStorage", "value": secret}]}}})
    props = site["properties"]
    assert props["serverFarmId"] == plan["id"] and props["reserved"] is True
    assert props["siteConfig"] == {"alwaysOn": True, "linuxFxVersion": "Python|3.12", "appSettings": None}
    settings = await _ok(client, world, "POST", f"{_site(world, group, 'fa1')}/config/appsettings/list")
    assert settings["properties"] == {"FUNCTIONS_WORKER_RUNTIME": "python", "AzureWebJobsStorage": secret}
    engine = open_engine(world.services.settings.database)  # SQLite, or PostgreSQL on its pass (docs/testing.md)
    with engine.connect() as conn:
        dump = "\n".join(str(r) for r in conn.execute(text("SELECT * FROM resources")))
    assert "c2VjcmV0LWtleS12YWx1ZQ" not in dump  # the app settings are sealed
    # az's identity assign: the site as read, put back with an identity; the settings stay.
    back = await _ok(client, world, "PUT", _site(world, group, "fa1"), {**site, "identity": {"type": "SystemAssigned"}})
    assert back["identity"]["principalId"] and back["properties"]["serverFarmId"] == plan["id"]
    assert (await _ok(client, world, "POST", f"{_site(world, group, 'fa1')}/config/appsettings/list"))[
        "properties"]["AzureWebJobsStorage"] == secret
    # What az's `functionapp show` reads after the site: its configuration (no app settings in it) and a publishing
    # profile that carries no credential (Cielo deploys no code).
    web = await _ok(client, world, "GET", f"{_site(world, group, 'fa1')}/config/web")
    assert web["properties"] == {"alwaysOn": True, "linuxFxVersion": "Python|3.12", "appSettings": None}
    profile = await arm_call(client, world, "POST", f"{_site(world, group, 'fa1')}/publishxml", {"format": "WebDeploy"},
                             api_version=WEB_API)
    assert profile.status_code == 200 and profile.headers["content-type"].startswith("application/xml")
    assert 'publishMethod="None"' in profile.text and 'userPWD=""' in profile.text and secret not in profile.text
    shown = await _ok(client, world, "GET", _plan(world, group, "plan1"))
    assert shown["properties"]["numberOfSites"] == 1
    busy = await arm_call(client, world, "DELETE", _plan(world, group, "plan1"), api_version=WEB_API)
    assert "fa1" in arm_error(busy, 409, "Conflict")["message"]
    # A plan that does not exist is refused before anything is made.
    missing = await arm_call(client, world, "PUT", _site(world, group, "fa2"), {
        "kind": "functionapp", "properties": {"serverFarmId": "nope"}}, api_version=WEB_API)
    arm_error(missing, 404, "ServerFarmNotFound")
    arm_error(await arm_call(client, world, "GET", _site(world, group, "fa2"), api_version=WEB_API), 404,
              "ResourceNotFound")
    assert (await arm_call(client, world, "DELETE", _site(world, group, "fa1"), api_version=WEB_API)).status_code == 200
    assert (await arm_call(client, world, "DELETE", _plan(world, group, "plan1"),
                           api_version=WEB_API)).status_code == 200
    bad_sku = await arm_call(client, world, "PUT", _plan(world, group, "plan2"), {"location": "local",
                                                                                 "sku": {"name": "Z9"}},
                             api_version=WEB_API)
    arm_error(bad_sku, 400, "InvalidSkuName")


async def test_rbac_names_the_real_actions(client: httpx.AsyncClient, world: World, group: str) -> None:
    name = _account_name()
    await _ok(client, world, "PUT", _storage(world, group, name), {"sku": {"name": "Standard_LRS"},
                                                                   "kind": "StorageV2", "location": "local"},
              STORAGE_API)
    reader = await new_principal(client, world)
    await assign(client, world, "Reader", reader.sp_id, world.rg_path(group))
    headers = bearer(await sp_token(client, world, reader, ARM_RESOURCE))
    shown = await arm_call(client, world, "GET", _storage(world, group, name), headers=headers,
                           api_version=STORAGE_API)
    assert shown.status_code == 200, shown.text
    keys = await arm_call(client, world, "POST", f"{_storage(world, group, name)}/listKeys", headers=headers,
                          api_version=STORAGE_API)
    assert "Microsoft.Storage/storageAccounts/listkeys/action" in arm_error(keys, 403, "AuthorizationFailed")[
        "message"]
    plan = await arm_call(client, world, "PUT", _plan(world, group, "p"), {"location": "local"}, headers=headers,
                          api_version=WEB_API)
    assert "Microsoft.Web/serverfarms/write" in arm_error(plan, 403, "AuthorizationFailed")["message"]
    wrong = await arm_call(client, world, "GET", _storage(world, group, name), api_version=WEB_API)
    arm_error(wrong, 400, "InvalidApiVersionParameter")
    unserved = await arm_call(client, world, "GET", f"{_storage(world, group, name)}/blobServices/default",
                              api_version=STORAGE_API)
    assert "not served" in arm_error(unserved, 404, "InvalidResourceType")["message"]
