"""The real az 2.9x against a private `cielo up`, signed in as the administrator (Owner of the subscription and
Global Administrator of the directory): `az storage account create`, `az functionapp create` on a Consumption
location and on an App Service plan (`az appservice plan create`), `az functionapp identity assign`, `az
functionapp config appsettings list` (the storage connection string az built from `listKeys`); and `az ad app
update --web-redirect-uris / --public-client-redirect-uris` (Graph's PATCH of an application).

The identity getting a token through `cielo agent` is tested in test_mi_functionapp.py; here the app exists with
its identity.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_az_cli import Az, az_exe, make_az
from test_az_parity import _az_device_login

from support.server import CieloServer, start_server

pytestmark = pytest.mark.e2e

__all__ = ["az_exe"]  # the real az's fixture (installed once per cache dir)

RG = "cielo-rg"
STORAGE = "stfunc1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CieloServer]:
    started = start_server(tmp_path_factory.mktemp("az-functionapp") / "data")
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def az(az_exe: Path, server: CieloServer, tmp_path_factory: pytest.TempPathFactory) -> Az:
    runner = make_az(az_exe, server, tmp_path_factory.mktemp("az-functionapp-config"))
    runner.ok("cloud", "register", "--name", "Cielo", "--endpoint-resource-manager", f"{server.base_url}/")
    runner.ok("cloud", "set", "--name", "Cielo")
    _az_device_login(runner, server)
    return runner


@pytest.fixture(scope="module")
def storage_key(az: Az) -> str:
    created = az.ok("storage", "account", "create", "-g", RG, "-n", STORAGE, "-l", "local", "--sku", "Standard_LRS")
    assert (created["name"], created["kind"], created["provisioningState"]) == (STORAGE, "StorageV2", "Succeeded")
    keys = az.ok("storage", "account", "keys", "list", "-g", RG, "-n", STORAGE)
    assert [k["keyName"] for k in keys] == ["key1", "key2"]
    az.hidden.extend(k["value"] for k in keys)
    return str(keys[0]["value"])


def _settings(az: Az, name: str) -> dict[str, str]:
    return {s["name"]: s["value"] for s in az.ok("functionapp", "config", "appsettings", "list", "-g", RG, "-n", name)}


def test_az_functionapp_create_on_consumption_then_identity(az: Az, storage_key: str) -> None:
    created = az.ok("functionapp", "create", "--resource-group", RG, "--name", "f1", "--consumption-plan-location",
                    "local", "--storage-account", STORAGE, "--functions-version", "4", "--runtime", "python",
                    "--os-type", "linux")
    assert (created["name"], created["kind"], created["reserved"]) == ("f1", "functionapp,linux", True)
    settings = _settings(az, "f1")
    assert settings["FUNCTIONS_WORKER_RUNTIME"] == "python" and settings["FUNCTIONS_EXTENSION_VERSION"] == "~4"
    assert f"AccountName={STORAGE};AccountKey={storage_key}" in settings["AzureWebJobsStorage"]

    identity = az.ok("functionapp", "identity", "assign", "-g", RG, "-n", "f1")
    assert identity["type"] == "SystemAssigned" and identity["principalId"], identity
    assert az.ok("functionapp", "identity", "show", "-g", RG, "-n", "f1")["principalId"] == identity["principalId"]
    shown = az.ok("functionapp", "show", "-g", RG, "-n", "f1")  # reads the site, then its config/web
    assert shown["name"] == "f1" and shown["identity"]["principalId"] == identity["principalId"]
    assert shown["siteConfig"]["linuxFxVersion"] == created["siteConfig"]["linuxFxVersion"]
    listed = {a["name"]: a for a in az.ok("functionapp", "list", "-g", RG)}
    assert listed["f1"]["identity"]["principalId"] == identity["principalId"]
    # The identity assign PUT the site back: its settings are still there.
    assert _settings(az, "f1")["AzureWebJobsStorage"] == settings["AzureWebJobsStorage"]


def test_az_functionapp_create_on_a_plan(az: Az, storage_key: str) -> None:
    plan = az.ok("appservice", "plan", "create", "-g", RG, "-n", "plan1", "--sku", "B1", "--is-linux")
    assert (plan["sku"]["tier"], plan["reserved"]) == ("Basic", True)
    created = az.ok("functionapp", "create", "-g", RG, "-n", "f2", "--plan", "plan1", "--storage-account", STORAGE,
                    "--functions-version", "4", "--runtime", "python", "--assign-identity")
    assert created["serverFarmId"].lower() == plan["id"].lower()
    assert created["identity"]["type"] == "SystemAssigned"
    assert created["siteConfig"]["alwaysOn"] is True and created["siteConfig"]["linuxFxVersion"].startswith("Python|")
    shown = az.ok("appservice", "plan", "show", "-g", RG, "-n", "plan1")
    assert shown["properties"]["numberOfSites"] == 1, shown  # az 2.91 shows a plan (AAZ) with its properties
    # A plan with a site on it is not deleted.
    busy = az.run("appservice", "plan", "delete", "-g", RG, "-n", "plan1", "--yes")
    assert busy.returncode != 0 and "f2" in busy.stderr, str(busy)
    assert az.run("functionapp", "delete", "-g", RG, "-n", "f2").returncode == 0
    assert az.run("appservice", "plan", "delete", "-g", RG, "-n", "plan1", "--yes").returncode == 0


def test_az_ad_app_update_redirect_uris(az: Az) -> None:
    app = az.ok("ad", "app", "create", "--display-name", "az-redirects", "--web-redirect-uris", "https://old/cb",
                "--public-client-redirect-uris", "http://localhost:7000")
    assert az.run("ad", "app", "update", "--id", app["appId"], "--web-redirect-uris", "https://x/cb",
                  "https://x/cb2").returncode == 0
    shown = az.ok("ad", "app", "show", "--id", app["appId"])
    assert shown["web"]["redirectUris"] == ["https://x/cb", "https://x/cb2"]
    assert shown["publicClient"]["redirectUris"] == ["http://localhost:7000"]
    assert az.run("ad", "app", "update", "--id", app["appId"], "--public-client-redirect-uris",
                  "http://localhost:7100").returncode == 0
    shown = az.ok("ad", "app", "show", "--id", app["appId"])
    assert shown["publicClient"]["redirectUris"] == ["http://localhost:7100"]
    assert shown["web"]["redirectUris"] == ["https://x/cb", "https://x/cb2"]
    # What the PATCH still refuses is said, never dropped.
    home = az.run("ad", "app", "update", "--id", app["appId"], "--web-home-page-url", "https://x")
    assert home.returncode != 0 and "web.homePageUrl" in home.stderr, str(home)
