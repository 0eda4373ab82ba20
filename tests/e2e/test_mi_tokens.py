"""Managed-identity tokens through a host agent, with unmodified clients (the IMDS and App Service
protocols of learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token and
learn.microsoft.com/azure/app-service/overview-managed-identity).

One VM with a system-assigned identity and one user-assigned identity; its host agent runs as a
subprocess. azure-identity's ManagedIdentityCredential (sync: MSAL underneath; async: azure-identity's
own client), DefaultAzureCredential and msal.ManagedIdentityClient reach it through the App Service
variables, through IMDS (AZURE_POD_IDENTITY_AUTHORITY_HOST) and through the 2017 MSI_ENDPOINT/MSI_SECRET
protocol (which azure-identity treats as Azure Machine Learning). Every token is verified against the
server's keys and has the claims of an Azure managed-identity token.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import msal
import pytest
import requests
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.identity.aio import DefaultAzureCredential as AsyncDefaultAzureCredential
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential
from mi_support import (
    COGNITIVE,
    COGNITIVE_SCOPE,
    DAY,
    Agent,
    Identity,
    MiServer,
    Pacer,
    start_agent,
    start_mi_server,
    use_env,
)

pytestmark = pytest.mark.e2e


@dataclass
class World:
    mi: MiServer
    agent: Agent
    system: Identity
    uami: Identity


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    mi = start_mi_server(tmp_path_factory, "mi-tokens")
    try:
        uami = mi.create_uami("uami-tokens")
        vm = mi.put_vm("vm-tokens", uamis=(uami,))
        system = mi.system_identity(vm)
        agent = start_agent(mi, mi.host_credential_api("vm-tokens"), "tokens")
        yield World(mi, agent, system, uami)
    finally:
        mi.stop()  # every agent started in this module, then the server


_PACER = Pacer()


@pytest.fixture(autouse=True)
def _paced() -> None:
    _PACER.wait()


SELECTORS = ("system", "client_id", "object_id", "resource_id")


def _kwargs(world: World, selector: str) -> dict[str, Any]:
    if selector == "client_id":
        return {"client_id": world.uami.client_id}
    if selector == "object_id":
        return {"identity_config": {"object_id": world.uami.principal_id}}
    if selector == "resource_id":
        return {"identity_config": {"resource_id": world.uami.resource_id}}
    return {}


def _expected(world: World, selector: str) -> Identity:
    return world.system if selector == "system" else world.uami


def _check_lifetime(expires_on: int) -> None:
    assert DAY - 900 < expires_on - time.time() <= DAY + 5


# ----------------------------------------------------------------------------- the agent's environment
def test_agent_env_prints_each_protocol(world: World) -> None:
    port = world.agent.port
    header = world.agent.identity_header
    assert len(header) >= 32
    printed = {protocol: world.agent.env_from_cli(protocol) for protocol in ("appservice", "imds", "legacy")}
    assert printed["appservice"] == {"IDENTITY_ENDPOINT": f"http://127.0.0.1:{port}/msi/token",
                                     "IDENTITY_HEADER": header}
    assert printed["imds"] == {"AZURE_POD_IDENTITY_AUTHORITY_HOST": f"http://127.0.0.1:{port}"}
    assert printed["legacy"] == {"MSI_ENDPOINT": f"http://127.0.0.1:{port}/msi/legacy", "MSI_SECRET": header}
    for protocol, values in printed.items():  # what the other tests use
        assert world.agent.env(protocol) == values
    answer = httpx.get(f"{world.agent.base}/metadata/identity/info?api-version=2018-02-01",
                                     headers={"Metadata": "true"})
    assert answer.json() == {"tenantId": world.mi.tenant}


# ----------------------------------------------------------------------------- ManagedIdentityCredential
@pytest.mark.parametrize("protocol", ["appservice", "imds"])
@pytest.mark.parametrize("selector", SELECTORS)
def test_sync_credential(world: World, monkeypatch: pytest.MonkeyPatch, protocol: str, selector: str) -> None:
    use_env(monkeypatch, world.agent.env(protocol))
    token = ManagedIdentityCredential(**_kwargs(world, selector)).get_token(COGNITIVE_SCOPE)
    world.mi.check_token(token.token, _expected(world, selector))
    _check_lifetime(token.expires_on)


@pytest.mark.parametrize("protocol", ["appservice", "imds"])
@pytest.mark.parametrize("selector", SELECTORS)
async def test_async_credential(world: World, monkeypatch: pytest.MonkeyPatch, protocol: str, selector: str) -> None:
    use_env(monkeypatch, world.agent.env(protocol))
    async with AsyncManagedIdentityCredential(**_kwargs(world, selector)) as credential:
        token = await credential.get_token(COGNITIVE_SCOPE)
    world.mi.check_token(token.token, _expected(world, selector))
    _check_lifetime(token.expires_on)


@pytest.mark.parametrize("selector", SELECTORS)
async def test_legacy_msi_protocol(world: World, monkeypatch: pytest.MonkeyPatch, selector: str) -> None:
    """MSI_ENDPOINT + MSI_SECRET: azure-identity's Azure ML path, sync (MSAL: integer expires_on only) and async."""
    use_env(monkeypatch, world.agent.env("legacy"))
    token = ManagedIdentityCredential(**_kwargs(world, selector)).get_token(COGNITIVE_SCOPE)
    world.mi.check_token(token.token, _expected(world, selector))
    _check_lifetime(token.expires_on)
    async with AsyncManagedIdentityCredential(**_kwargs(world, selector)) as credential:
        token = await credential.get_token(COGNITIVE_SCOPE)
    world.mi.check_token(token.token, _expected(world, selector))
    _check_lifetime(token.expires_on)


# ----------------------------------------------------------------------------- DefaultAzureCredential
@pytest.mark.parametrize("protocol", ["appservice", "imds"])
def test_default_credential_lands_on_managed_identity(world: World, monkeypatch: pytest.MonkeyPatch,
                                                      protocol: str) -> None:
    use_env(monkeypatch, world.agent.env(protocol))
    token = DefaultAzureCredential().get_token(COGNITIVE_SCOPE)
    world.mi.check_token(token.token, world.system)


def test_default_credential_with_azure_client_id_picks_the_user_assigned_identity(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    use_env(monkeypatch, {**world.agent.env("appservice"), "AZURE_CLIENT_ID": world.uami.client_id})
    token = DefaultAzureCredential().get_token(COGNITIVE_SCOPE)
    world.mi.check_token(token.token, world.uami)


async def test_async_default_credential(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    use_env(monkeypatch, world.agent.env("imds"))
    async with AsyncDefaultAzureCredential() as credential:
        token = await credential.get_token(COGNITIVE_SCOPE)
    world.mi.check_token(token.token, world.system)


# ----------------------------------------------------------------------------- msal.ManagedIdentityClient
@pytest.mark.parametrize("protocol", ["appservice", "imds"])
@pytest.mark.parametrize("selector", SELECTORS)
def test_msal_managed_identity_client(world: World, monkeypatch: pytest.MonkeyPatch, protocol: str,
                                      selector: str) -> None:
    use_env(monkeypatch, world.agent.env(protocol))
    managed_identity: Any
    if selector == "system":
        managed_identity = msal.SystemAssignedManagedIdentity()
    elif selector == "client_id":
        managed_identity = msal.UserAssignedManagedIdentity(client_id=world.uami.client_id)
    elif selector == "object_id":
        managed_identity = msal.UserAssignedManagedIdentity(object_id=world.uami.principal_id)
    else:
        managed_identity = msal.UserAssignedManagedIdentity(resource_id=world.uami.resource_id)
    with requests.Session() as session:
        client = msal.ManagedIdentityClient(managed_identity, http_client=session)
        result = client.acquire_token_for_client(resource=COGNITIVE)
    assert "access_token" in result, result
    world.mi.check_token(result["access_token"], _expected(world, selector))
    assert DAY - 900 < result["expires_in"] <= DAY


# ----------------------------------------------------------------------------- the wire, per protocol
@pytest.mark.parametrize("param", ["client_id", "object_id", "msi_res_id", "resource_id"])
def test_imds_selector_names(world: World, param: str) -> None:
    """IMDS: sync clients send msi_res_id for a resource id, async ones resource_id."""
    value = {"client_id": world.uami.client_id, "object_id": world.uami.principal_id}.get(param,
                                                                                         world.uami.resource_id)
    answer = world.agent.imds({"api-version": "2018-02-01", "resource": COGNITIVE, param: value})
    assert answer.status_code == 200, answer.text
    world.mi.check_token(answer.json()["access_token"], world.uami)


@pytest.mark.parametrize("param", ["client_id", "object_id", "principal_id", "mi_res_id", "resource_id"])
def test_app_service_selector_names(world: World, param: str) -> None:
    """App Service: docs name principal_id, MSAL sends object_id and mi_res_id, async azure-identity resource_id."""
    value = {"client_id": world.uami.client_id, "object_id": world.uami.principal_id,
             "principal_id": world.uami.principal_id}.get(param, world.uami.resource_id)
    answer = world.agent.app_service({"api-version": "2019-08-01", "resource": COGNITIVE, param: value})
    assert answer.status_code == 200, answer.text
    world.mi.check_token(answer.json()["access_token"], world.uami)


@pytest.mark.parametrize("resource", ["https://management.azure.com/", "https://management.azure.com",
                                      "https://cognitiveservices.azure.com/"])
def test_imds_response_shape_and_audience_as_requested(world: World, resource: str) -> None:
    answer = world.agent.imds({"api-version": "2018-02-01", "resource": resource})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) >= {"access_token", "refresh_token", "expires_in", "expires_on", "not_before", "resource",
                         "token_type"}
    assert all(isinstance(v, str) for v in body.values()), body  # IMDS sends every value as a string
    assert body["token_type"] == "Bearer"
    assert body["resource"] == resource
    assert DAY - 900 < int(body["expires_in"]) <= DAY
    assert abs(int(body["expires_on"]) - time.time() - int(body["expires_in"])) < 5
    assert body["client_id"] == world.system.client_id
    world.mi.check_token(body["access_token"], world.system, audience=resource)


def test_app_service_and_legacy_response_shapes(world: World) -> None:
    answer = world.agent.app_service({"api-version": "2019-08-01", "resource": COGNITIVE,
                                      "client_id": world.uami.client_id})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert body["expires_on"].isdigit() and body["client_id"] == world.uami.client_id
    _check_lifetime(int(body["expires_on"]))
    legacy = httpx.get(f"{world.agent.base}/msi/legacy",
                                     params={"api-version": "2017-09-01", "resource": COGNITIVE},
                                     headers={"secret": world.agent.identity_header})
    assert legacy.status_code == 200, legacy.text
    assert legacy.json()["expires_on"].isdigit()
    world.mi.check_token(legacy.json()["access_token"], world.system)
