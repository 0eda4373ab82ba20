"""Intercept mode with a managed identity: code written for an Azure VM — `ManagedIdentityCredential()` with no
arguments and `https://{account}.openai.azure.com/` — run unchanged beside `cielo agent`.

`cielo up --intercept-imds HOST:PORT` makes the proxy hand plain-HTTP requests for IMDS's address
(`http://169.254.169.254/metadata/identity/oauth2/token`) to the agent at HOST:PORT; `cielo env --intercept`
then prints HTTP_PROXY too. The workload's only settings are those printed variables: no
AZURE_POD_IDENTITY_AUTHORITY_HOST, no IDENTITY_ENDPOINT, no endpoint or authority in the code."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from intercept_support import intercept_env, run_python
from mi_support import ACCOUNT, MiServer, start_agent

from support.server import free_port, start_server

pytestmark = pytest.mark.e2e

DEPLOYMENT = "mock"


@dataclass
class World:
    mi: MiServer
    env: dict[str, str]
    principal_id: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    work = tmp_path_factory.mktemp("intercept-imds")
    agent_port = free_port()
    server = start_server(work / "data", env={"CIELO_ENABLE_MOCK_MODEL": "1"},
                          extra_args=("--intercept-port", str(free_port()),
                                      "--intercept-imds", f"127.0.0.1:{agent_port}"))
    mi = MiServer(server, work)
    try:
        mi.arm_ok("PUT", f"{mi.account_id}/deployments/{DEPLOYMENT}", {
            "sku": {"name": "Standard", "capacity": 100},
            "properties": {"model": {"format": "Cielo", "name": "mock", "version": "1"}}}, api="2023-05-01")
        vm = mi.put_vm("vm-intercept")
        principal_id = mi.system_identity(vm).principal_id
        start_agent(mi, mi.host_credential_api("vm-intercept"), "intercept", port=agent_port)
        env = intercept_env(server.data_dir)
        yield World(mi, env, principal_id)
    finally:
        mi.stop()


VM_CODE = f"""
    import json
    import openai
    from azure.identity import ManagedIdentityCredential, get_bearer_token_provider

    credential = ManagedIdentityCredential()
    token = credential.get_token("https://cognitiveservices.azure.com/.default")
    client = openai.AzureOpenAI(
        azure_endpoint="https://{ACCOUNT}.openai.azure.com/", api_version="2024-10-21", max_retries=0,
        azure_ad_token_provider=get_bearer_token_provider(credential, "https://cognitiveservices.azure.com/.default"))
    try:
        answer = client.chat.completions.create(model="{DEPLOYMENT}", max_tokens=8,
                                                messages=[{{"role": "user", "content": "hello from a VM"}}])
        result = {{"status": 200, "content": answer.choices[0].message.content}}
    except openai.APIStatusError as exc:
        result = {{"status": exc.status_code}}
    print(json.dumps({{"token": token.token, **result}}))
"""


def test_env_sets_http_proxy_for_imds(world: World) -> None:
    assert world.env["HTTP_PROXY"] == world.env["HTTPS_PROXY"] == world.env["http_proxy"]
    assert "169.254.169.254" not in world.env["NO_PROXY"]
    assert not any(name.startswith(("AZURE_", "IDENTITY_", "MSI_")) for name in world.env)


def test_managed_identity_credential_with_no_settings(world: World, tmp_path: Path) -> None:
    """The VM's system identity through IMDS's own address; refused by the data plane until it holds a data role,
    then answered."""
    first = run_python(VM_CODE, world.env, tmp_path)
    claims = world.mi.verify(first["token"], "https://cognitiveservices.azure.com")
    assert claims["oid"] == world.principal_id and claims["appidacr"] == "2"
    assert first["status"] in (401, 403)
    world.mi.assign_role(world.principal_id, world.mi.account_id)
    second = run_python(VM_CODE, world.env, tmp_path)
    assert second["status"] == 200 and second["content"]


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def test_imds_rules_still_hold_through_the_proxy(world: World) -> None:
    port = int(world.env["HTTP_PROXY"].rsplit(":", 1)[1])
    target = "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://x"
    no_header = _raw(port, f"GET {target} HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n".encode())
    assert no_header.startswith(b"HTTP/1.1 400"), no_header[:200]
    assert b"Required metadata header not specified" in no_header
    posted = _raw(port, f"POST {target} HTTP/1.1\r\nHost: 169.254.169.254\r\nContent-Length: 2\r\n\r\n{{}}".encode())
    assert posted.startswith(b"HTTP/1.1 405"), posted[:200]
    other = _raw(port, b"GET http://169.254.169.253/metadata HTTP/1.1\r\nHost: 169.254.169.253\r\n\r\n")
    assert other.startswith(b"HTTP/1.1 403"), other[:200]
