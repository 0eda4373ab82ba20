"""Function apps over HTTPS with a real `cielo up`: `cielo functionapp …`, code in a function app getting tokens
with the real azure-identity `ManagedIdentityCredential` in App Service mode (IDENTITY_ENDPOINT/IDENTITY_HEADER,
what Functions set) from `cielo agent`, and Azure OpenAI answering the openai client once the identity holds a
role; then the real az: `az functionapp identity assign|show|remove`, `list`, `delete`, and what `az functionapp
show` needs that Cielo does not serve (a clear ARM error, never a silent success).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from azure.identity import ManagedIdentityCredential, get_bearer_token_provider
from mi_support import COGNITIVE_SCOPE, RG, MiServer, mirid, start_agent, start_mi_server, use_env
from test_az_cli import Az, az_exe, make_az, register_discovered

pytestmark = pytest.mark.e2e

__all__ = ["az_exe"]  # the real az's fixture (installed once per cache dir)

DEPLOYMENT = "mock"
API_VERSION = "2024-10-21"
OWNER_ROLE = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
PROMPT = [{"role": "user", "content": "ping from a function app"}]


@pytest.fixture(scope="module")
def mi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MiServer]:
    server = start_mi_server(tmp_path_factory, "mi-functionapp")
    try:
        server.arm_ok("PUT", f"{server.account_id}/deployments/{DEPLOYMENT}", {
            "sku": {"name": "Standard", "capacity": 100},
            "properties": {"model": {"format": "Cielo", "name": "mock", "version": "1"}}}, api="2023-05-01")
        yield server
    finally:
        server.stop()  # every agent started in this module, then the server


def _client(mi: MiServer, credential: ManagedIdentityCredential) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(
        azure_endpoint=mi.endpoint, api_version=API_VERSION, max_retries=0,
        azure_ad_token_provider=get_bearer_token_provider(credential, COGNITIVE_SCOPE),
        http_client=httpx.Client(verify=mi.tls(), timeout=60))


def _chat(client: openai.AzureOpenAI) -> str:
    answer = client.chat.completions.create(model=DEPLOYMENT, messages=PROMPT, max_tokens=16)
    return answer.choices[0].message.content or ""


def test_function_app_code_calls_azure_openai_with_its_identity(mi: MiServer,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    created = mi.cli.json("functionapp", "create", "-g", RG, "-n", "func-openai", "--os-type", "Linux",
                          "--assign-identity")
    assert created["kind"] == "functionapp,linux"
    principal_id = created["identity"]["principalId"]
    agent = start_agent(mi, mi.host_credential("func-openai", kind="functionapp"), "func")
    try:
        use_env(monkeypatch, agent.env("appservice"))  # what Functions set: IDENTITY_ENDPOINT, IDENTITY_HEADER
        credential = ManagedIdentityCredential()
        token = credential.get_token(COGNITIVE_SCOPE).token
        claims = mi.verify(token, "https://cognitiveservices.azure.com")
        assert (claims["oid"], claims["xms_mirid"]) == (principal_id, mirid(created["id"]))
        client = _client(mi, credential)
        with pytest.raises(openai.AuthenticationError) as caught:
            _chat(client)
        assert caught.value.response.json()["error"]["code"] == "PermissionDenied"
        # az's `functionapp identity assign --role --scope`: the role, where the how-to puts it.
        mi.cli.json("functionapp", "identity", "assign", "-g", RG, "-n", "func-openai", "--role",
                    "Cognitive Services OpenAI User", "--scope", mi.account_id)
        assert _chat(client)
        # The function app deleted: its identity and role go; the same, unexpired token is refused.
        mi.cli.run("functionapp", "delete", "-g", RG, "-n", "func-openai")
        with pytest.raises(openai.AuthenticationError):
            _chat(client)
    finally:
        agent.stop()


# ----------------------------------------------------------------------------- the real az
@pytest.fixture(scope="module")
def az(az_exe: Path, mi: MiServer, tmp_path_factory: pytest.TempPathFactory) -> Az:
    """The real az, signed in as a service principal that is Owner of the subscription."""
    app = mi.server.create_app("az-functionapp")
    mi.assign_role(app["spObjectId"], f"/subscriptions/{mi.sub}", role=OWNER_ROLE)
    runner = make_az(az_exe, mi.server, tmp_path_factory.mktemp("az-functionapp"))
    register_discovered(runner, mi.server)
    runner.login(mi.server, app)
    return runner


def test_az_functionapp_identity_list_and_delete(az: Az, mi: MiServer) -> None:
    mi.cli.run("functionapp", "create", "-g", RG, "-n", "func-az")
    mi.cli.run("webapp", "create", "-g", RG, "-n", "site-az")
    uami = mi.create_uami("id-func-az")

    system: dict[str, Any] = az.ok("functionapp", "identity", "assign", "-g", RG, "-n", "func-az")
    assert system["type"] == "SystemAssigned" and system["tenantId"] == mi.tenant, system
    both = az.ok("functionapp", "identity", "assign", "-g", RG, "-n", "func-az", "--identities", uami.resource_id)
    assert both["type"] == "SystemAssigned, UserAssigned" and both["principalId"] == system["principalId"], both
    assert [k.lower() for k in both["userAssignedIdentities"]] == [uami.resource_id.lower()]
    shown = az.ok("functionapp", "identity", "show", "-g", RG, "-n", "func-az")
    assert shown["principalId"] == system["principalId"]
    # --role/--scope: az gives the system-assigned identity the role after the PUT.
    az.ok("functionapp", "identity", "assign", "-g", RG, "-n", "func-az", "--role", "Cognitive Services OpenAI User",
          "--scope", mi.account_id)
    assert [a["properties"]["scope"].lower() for a in mi.assignments_of(system["principalId"])] == [
        mi.account_id.lower()]
    # Cielo's record agrees, and keeps the kind az does not send back differently.
    assert mi.cli.json("functionapp", "show", "-g", RG, "-n", "func-az")["kind"] == "functionapp"

    # az filters the sites by kind: function apps only, by group and by subscription.
    assert [a["name"] for a in az.ok("functionapp", "list", "-g", RG)] == ["func-az"]
    assert "func-az" in [a["name"] for a in az.ok("functionapp", "list")]
    assert "site-az" in [a["name"] for a in az.ok("webapp", "list", "-g", RG)]

    removed = az.ok("functionapp", "identity", "remove", "-g", RG, "-n", "func-az", "--identities", "[system]")
    assert removed["type"] == "UserAssigned", removed
    assert mi.graph_status(f"/servicePrincipals/{system['principalId']}") == 404
    assert mi.assignments_of(system["principalId"]) == []  # its role assignment went with it

    # az reads the site, then its `config/web` and its publishing profile (one without any credential).
    show = az.ok("functionapp", "show", "-g", RG, "-n", "func-az")
    assert show["name"] == "func-az" and show["identity"]["type"] == "UserAssigned"
    # (`az functionapp create` itself works: tests/e2e/test_az_functionapp.py.)

    assert az.run("functionapp", "delete", "-g", RG, "-n", "func-az").returncode == 0
    assert mi.cli.json("functionapp", "list", "-g", RG) == []
