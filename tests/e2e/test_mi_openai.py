"""A VM's managed identity calling Azure OpenAI with the openai client
(learn.microsoft.com/azure/ai-services/openai/how-to/managed-identity).

AzureOpenAI(azure_ad_token_provider=get_bearer_token_provider(ManagedIdentityCredential(), ...)) calls
a deployment: refused before the identity holds "Cognitive Services OpenAI User" on the account,
answered after, refused again when the assignment goes, and refused once the VM is deleted, with a
token that has not expired; the agent then gets no new tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import openai
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential, get_bearer_token_provider
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential
from azure.identity.aio import get_bearer_token_provider as async_bearer_token_provider
from mi_support import (
    ACCOUNT,
    COGNITIVE,
    COGNITIVE_SCOPE,
    RG,
    Agent,
    Identity,
    MiServer,
    start_agent,
    start_mi_server,
    use_env,
)

pytestmark = pytest.mark.e2e

DEPLOYMENT = "mock"
API_VERSION = "2024-10-21"
PROMPT = [{"role": "user", "content": "ping from a managed identity"}]


@dataclass
class World:
    mi: MiServer
    agent: Agent
    system: Identity
    uami: Identity


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    mi = start_mi_server(tmp_path_factory, "mi-openai")
    try:
        mi.arm_ok("PUT", f"{mi.account_id}/deployments/{DEPLOYMENT}", {
            "sku": {"name": "Standard", "capacity": 100},
            "properties": {"model": {"format": "Cielo", "name": "mock", "version": "1"}}}, api="2023-05-01")
        uami = mi.create_uami("uami-openai")
        vm = mi.put_vm("vm-openai", uamis=(uami,))
        system = mi.system_identity(vm)
        agent = start_agent(mi, mi.host_credential_api("vm-openai"), "openai")
        yield World(mi, agent, system, uami)
    finally:
        mi.stop()  # every agent started in this module, then the server


def _client(world: World, credential: ManagedIdentityCredential) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(
        azure_endpoint=world.mi.endpoint, api_version=API_VERSION, max_retries=0,
        azure_ad_token_provider=get_bearer_token_provider(credential, COGNITIVE_SCOPE),
        http_client=httpx.Client(verify=world.mi.tls(), timeout=60))


def _chat(client: openai.AzureOpenAI) -> str:
    answer = client.chat.completions.create(model=DEPLOYMENT, messages=PROMPT, max_tokens=16)
    return answer.choices[0].message.content or ""


def _refused(client: openai.AzureOpenAI, principal_id: str) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        _chat(client)
    assert caught.value.status_code == 401
    error = caught.value.response.json()["error"]
    assert error["code"] == "PermissionDenied", error
    assert principal_id in error["message"]


def _raw_chat(world: World, token: str) -> httpx.Response:
    with httpx.Client(verify=world.mi.tls(), timeout=60) as client:
        return client.post(f"{world.mi.endpoint}openai/deployments/{DEPLOYMENT}/chat/completions",
                           params={"api-version": API_VERSION}, json={"messages": PROMPT, "max_tokens": 16},
                           headers={"Authorization": f"Bearer {token}"})


def test_role_assignment_lifecycle_then_vm_deletion(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    mi = world.mi
    use_env(monkeypatch, world.agent.env("appservice"))
    credential = ManagedIdentityCredential()
    client = _client(world, credential)

    # 1. No role on the account yet: Azure OpenAI's 401 PermissionDenied.
    _refused(client, world.system.principal_id)

    # 2. `cielo role assignment create --assignee-object-id ... --assignee-principal-type ServicePrincipal`.
    created = mi.cli.json("role", "assignment", "create", "--assignee-object-id", world.system.principal_id,
                          "--assignee-principal-type", "ServicePrincipal", "--role", "Cognitive Services OpenAI User",
                          "--scope", mi.account_id)
    assert created["principalId"] == world.system.principal_id
    assert created["principalType"] == "ServicePrincipal"
    assert _chat(client)

    # 3. The assignment removed: refused again (same credential, same cached token).
    mi.cli.run("role", "assignment", "delete", "--ids", created["id"])
    _refused(client, world.system.principal_id)

    # 4. Assigned again (ARM API), answered; keep the token the client uses.
    mi.assign_role(world.system.principal_id, mi.account_id)
    assert _chat(client)
    token = credential.get_token(COGNITIVE_SCOPE).token
    assert _raw_chat(world, token).status_code == 200

    # 5. The VM deleted: its unexpired token stops working, and the agent gets no new tokens.
    mi.cli.run("vm", "delete", "-g", RG, "-n", "vm-openai", "--yes")
    _refused(client, world.system.principal_id)
    refused = _raw_chat(world, token)
    assert refused.status_code == 401, refused.text
    for selector in ({}, {"client_id": world.uami.client_id}):  # its user-assigned identity neither
        answer = world.agent.imds({"api-version": "2018-02-01", "resource": COGNITIVE, **selector})
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"] == "unauthorized_client"
    with pytest.raises(ClientAuthenticationError):
        ManagedIdentityCredential().get_token(COGNITIVE_SCOPE)
    assert mi.graph_status(f"/servicePrincipals/{world.system.principal_id}") == 404
    assert mi.assignments_of(world.system.principal_id) == []
    client.close()


async def test_async_client_with_a_user_assigned_identity(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """AsyncAzureOpenAI + azure.identity.aio, over IMDS, with a user-assigned identity that holds the role."""
    mi = world.mi
    vm = mi.put_vm("vm-openai-2", system=False, uamis=(world.uami,))
    agent = start_agent(mi, mi.host_credential("vm-openai-2"), "openai-2")
    try:
        use_env(monkeypatch, agent.env("imds"))
        async with AsyncManagedIdentityCredential(client_id=world.uami.client_id) as credential:
            client = openai.AsyncAzureOpenAI(
                azure_endpoint=mi.endpoint, api_version=API_VERSION, max_retries=0,
                azure_ad_token_provider=async_bearer_token_provider(credential, COGNITIVE_SCOPE),
                http_client=httpx.AsyncClient(verify=mi.tls(), timeout=60))
            with pytest.raises(openai.AuthenticationError):
                await client.chat.completions.create(model=DEPLOYMENT, messages=PROMPT)
            mi.assign_role(world.uami.principal_id, mi.account_id)
            answer = await client.chat.completions.create(model=DEPLOYMENT, messages=PROMPT,
                                                          max_tokens=16)
            assert answer.choices[0].message.content
            await client.close()
    finally:
        agent.stop()
    assert vm["identity"]["type"] == "UserAssigned"
    assert ACCOUNT in mi.endpoint
