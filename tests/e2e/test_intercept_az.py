"""The real azure-cli on its default cloud (AzureCloud: login.microsoftonline.com, management.azure.com,
graph.microsoft.com) run against Cielo in intercept mode, with no `az cloud register` and no
AZURE_CORE_INSTANCE_DISCOVERY: only the variables `cielo env --intercept` prints.

The how-to's steps: `az login`, `az account show`, `az group show`, `az role assignment create --assignee <upn>
--role "Cognitive Services User" --scope <group>`, `az account get-access-token --resource
https://cognitiveservices.azure.com`, and the how-to's call to `https://{account}.openai.azure.com/...` with that
token: refused before the assignment, answered after."""

from __future__ import annotations

import json
import os
import secrets
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from frameworks_support import cached_venv
from intercept_support import intercept_env
from test_az_cli import Az, _clean_env, az_exe, jwt_claims

from support.server import ADMIN_PASSWORD, ADMIN_USER, CieloServer, free_port, start_server

pytestmark = pytest.mark.e2e
__all__ = ["az_exe"]  # the session fixture that installs the real az (test_az_cli.py)

ACCOUNT = "cielo-openai"
PASSWORD = "Az-Intercept-Passw0rd!"
SEED_REQUIREMENTS = Path(__file__).parent / "frameworks" / "requirements-seed.txt"

# The how-to's Python as published, with only its placeholders filled: DefaultAzureCredential() with no arguments
# (here it finds the signed-in az), openai 0.28 with api_type="azure_ad" and the account's Azure host.
SEED_SNIPPET = f'''
import json
import openai
from azure.identity import DefaultAzureCredential

default_credential = DefaultAzureCredential()
token = default_credential.get_token("https://cognitiveservices.azure.com/.default")

openai.api_type = "azure_ad"
openai.api_base = "https://{ACCOUNT}.openai.azure.com/"
openai.api_version = "2022-12-01"
openai.api_key = token.token

response = openai.Completion.create(
    engine="smollm2",
    prompt="<|im_start|>system\\nYou are a helpful assistant.\\n<|im_end|>\\n<|im_start|>user\\nHello\\n<|im_end|>\\n"
           "<|im_start|>assistant\\n",
    temperature=0,
    max_tokens=16,
    stop=["<|im_end|>"])
print(json.dumps(response))
'''


@dataclass
class World:
    server: CieloServer
    env: dict[str, str]  # `cielo env --intercept --format dotenv`
    upn: str
    user_id: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    server = start_server(tmp_path_factory.mktemp("intercept-az") / "data",
                          extra_args=("--intercept-port", str(free_port())))
    try:
        upn = f"howto-{secrets.token_hex(4)}@cielo.local"
        user = server.graph("POST", "/users", {"userPrincipalName": upn, "displayName": "how-to user",
                                               "passwordProfile": {"password": PASSWORD}})
        yield World(server, intercept_env(server.data_dir), upn, user["id"])
    finally:
        server.stop()


def _az(exe: Path, world: World, config_dir: Path) -> Az:
    """az with its defaults (AzureCloud, instance discovery on) and nothing of Cielo's but the printed variables."""
    inherited = {k: v for k, v in _clean_env().items() if not k.lower().endswith("_proxy")}
    return Az(exe, {**inherited, **world.env, "AZURE_CONFIG_DIR": str(config_dir),
                    "AZURE_CORE_COLLECT_TELEMETRY": "false", "AZURE_CORE_NO_COLOR": "true"})


def _how_to_call(world: World, token: str) -> httpx.Response:
    """The how-to's curl, to the account's Azure host, through the proxy (httpx reads HTTPS_PROXY and the bundle
    from the environment it is given)."""
    proxy = world.env["HTTPS_PROXY"]
    verify = ssl.create_default_context(cafile=world.env["SSL_CERT_FILE"])
    with httpx.Client(proxy=proxy, verify=verify, timeout=120, trust_env=False) as client:
        return client.post(f"https://{ACCOUNT}.openai.azure.com/openai/deployments/smollm2/completions",
                           params={"api-version": "2022-12-01"}, headers={"Authorization": f"Bearer {token}"},
                           json={"prompt": "Once upon a time", "max_tokens": 4})


def test_the_how_to_with_az_on_its_default_cloud(az_exe: Path, world: World,
                                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    admin = _az(az_exe, world, tmp_path_factory.mktemp("az-admin"))
    admin.hidden.append(ADMIN_PASSWORD)
    cloud = admin.ok("cloud", "show")
    assert cloud["name"] == "AzureCloud" and cloud["endpoints"]["resourceManager"] == "https://management.azure.com/"
    admin.ok("login", "--username", ADMIN_USER, "--password", ADMIN_PASSWORD, "--tenant", world.server.tenant_id)
    account = admin.ok("account", "show")
    assert account["id"] == world.server.subscription_id and account["environmentName"] == "AzureCloud"
    assert account["user"] == {"name": ADMIN_USER, "type": "user"}
    group = admin.ok("group", "show", "--name", "cielo-rg")
    assert group["id"] == f"/subscriptions/{world.server.subscription_id}/resourceGroups/cielo-rg"

    user = _az(az_exe, world, tmp_path_factory.mktemp("az-user"))
    user.hidden.append(PASSWORD)
    user.ok("login", "--username", world.upn, "--password", PASSWORD, "--tenant", world.server.tenant_id,
            "--allow-no-subscriptions")
    token = user.ok("account", "get-access-token", "--resource", "https://cognitiveservices.azure.com")
    claims = jwt_claims(token["accessToken"])
    assert claims["oid"] == world.user_id and claims["aud"] == "https://cognitiveservices.azure.com"
    refused = _how_to_call(world, token["accessToken"])
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "PermissionDenied", refused.text

    # The assignee by UPN: az looks the user up on graph.microsoft.com, through the proxy.
    created = admin.ok("role", "assignment", "create", "--assignee", world.upn, "--role", "Cognitive Services User",
                       "--scope", group["id"])
    assert created["principalId"] == world.user_id and created["scope"] == group["id"]
    answered = _how_to_call(world, token["accessToken"])
    assert answered.status_code == 200, answered.text
    assert answered.json()["choices"][0]["text"] is not None


def test_nothing_points_az_at_cielo_but_the_variables(world: World) -> None:
    assert not any(name.startswith("AZURE_") for name in world.env)
    assert set(world.env) >= {"HTTPS_PROXY", "REQUESTS_CA_BUNDLE", "NO_PROXY"}
    assert os.path.exists(world.env["REQUESTS_CA_BUNDLE"])


def test_the_how_tos_python_verbatim(az_exe: Path, world: World, tmp_path_factory: pytest.TempPathFactory) -> None:
    """DefaultAzureCredential() finds the az signed in on its default cloud (AzureCliCredential runs
    `az account get-access-token`), and openai 0.28 calls https://cielo-openai.openai.azure.com/ through the proxy."""
    python = cached_venv(SEED_REQUIREMENTS, "seed")
    upn = f"seed-{secrets.token_hex(4)}@cielo.local"
    user = world.server.graph("POST", "/users", {"userPrincipalName": upn, "displayName": "seed user",
                                                 "passwordProfile": {"password": PASSWORD}})
    az = _az(az_exe, world, tmp_path_factory.mktemp("az-seed"))
    az.hidden.append(PASSWORD)
    az.ok("login", "--username", upn, "--password", PASSWORD, "--tenant", world.server.tenant_id,
          "--allow-no-subscriptions")
    scope = f"/subscriptions/{world.server.subscription_id}/resourceGroups/cielo-rg"
    verify = ssl.create_default_context(cafile=world.server.bundle)
    with httpx.Client(verify=verify, timeout=60) as client:
        granted = client.put(
            f"{world.server.base_url}{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
            params={"api-version": "2022-04-01"},
            headers={"Authorization": f"Bearer {world.server.admin_token('https://management.core.windows.net/')}"},
            json={"properties": {"roleDefinitionId": f"{scope}/providers/Microsoft.Authorization/roleDefinitions/"
                                                     "a97b65f3-24c7-4388-baec-2e87135dc908",  # Cognitive Services User
                                 "principalId": user["id"], "principalType": "User"}})
    assert granted.status_code == 201, granted.text
    script = tmp_path_factory.mktemp("seed") / "howto.py"
    script.write_text(SEED_SNIPPET)
    env = {**az.env, "PATH": f"{az_exe.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([str(python), str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    response = json.loads(done.stdout.strip().splitlines()[-1])
    assert response["object"] == "text_completion" and response["choices"][0]["finish_reason"] in ("stop", "length")
    assert "<|im_end|>" not in response["choices"][0]["text"]
