"""Fixtures and helpers for the data-plane end-to-end tests (test_dataplane_*.py).

The tests change role assignments, keys and `disableLocalAuth`, so they run against their own `cielo up`
with the test-only `mock` model enabled, never the shared session server. Test modules load this file
with `pytest_plugins = ("conftest_dataplane",)`, so all of them share one server.

Setup, as an administrator would do it through the resource manager: a SmolLM2 deployment `chat`, an
e5 deployment `embed` and a mock deployment `mock`, each with enough capacity that the suite never
meets a rate limit unless it means to; and a service principal holding "Cognitive Services OpenAI User"
on the `cielo-openai` account. The bootstrap's `smollm2` and `e5-small` deployments stay as they are.
"""

from __future__ import annotations

import secrets
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.cli_helpers import Cli, make_cli
from support.server import CieloServer, start_server

COGNITIVE = "https://cognitiveservices.azure.com"
COGNITIVE_SCOPE = f"{COGNITIVE}/.default"
ARM_RESOURCE = "https://management.core.windows.net/"  # as az asks for it: scope `...net//.default`
API_VERSION = "2024-10-21"
ARM_API = "2023-05-01"
RBAC_API = "2022-04-01"

OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"  # Cognitive Services OpenAI User
COGNITIVE_SERVICES_USER = "a97b65f3-24c7-4388-baec-2e87135dc908"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"

SMOLLM2 = {"format": "HuggingFace", "name": "SmolLM2-135M-Instruct", "version": "1"}
E5 = {"format": "HuggingFace", "name": "multilingual-e5-small", "version": "1"}
MOCK = {"format": "Cielo", "name": "mock", "version": "1"}
ACCOUNT = "cielo-openai"
RESOURCE_GROUP = "cielo-rg"
CHAT = "chat"
EMBED = "embed"
MOCK_DEPLOYMENT = "mock"

BEARER_DENIED = ("Unauthorized. Access token is missing, invalid, audience is incorrect "
                 "(https://cognitiveservices.azure.com), or have expired.")
KEY_DENIED = ("Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
              "for an active subscription and use a correct regional API endpoint for your resource.")
MISSING_KEY = ("Access denied due to missing subscription key. Make sure to include subscription key when making "
               "requests to an API.")


@dataclass
class DataPlane:
    """One private Cielo, its `cielo-openai` account and a service principal allowed to call it."""

    server: CieloServer
    work_dir: Path
    arm_token: str = ""
    account_id: str = ""
    endpoint: str = ""  # `{base}/accounts/cielo-openai/`, with the trailing slash as ARM gives it
    app: dict[str, Any] = field(default_factory=dict)
    _http: httpx.Client | None = None

    # ------------------------------------------------------------------ plumbing
    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(verify=self.tls(), timeout=120)
        return self._http

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.server.bundle)

    def client_env(self) -> dict[str, str]:
        return {**self.server.client_env(), "CIELO_CONFIG_DIR": str(self.work_dir / "cielo-config")}

    def arm(self, method: str, path: str, body: Any = None, *, api_version: str = ARM_API) -> httpx.Response:
        return self.http.request(method, self.server.base_url + path, params={"api-version": api_version},
                                 json=body, headers={"Authorization": f"Bearer {self.arm_token}"})

    def rg_id(self, rg: str = RESOURCE_GROUP) -> str:
        return f"/subscriptions/{self.server.subscription_id}/resourceGroups/{rg}"

    def account_path(self, name: str, rg: str = RESOURCE_GROUP) -> str:
        return f"{self.rg_id(rg)}/providers/Microsoft.CognitiveServices/accounts/{name}"

    # ------------------------------------------------------------------ resources (as the administrator)
    def new_account(self, prefix: str = "acct") -> tuple[str, str]:
        """A new OpenAI account in cielo-rg: (name, endpoint)."""
        name = f"{prefix}-{secrets.token_hex(3)}"
        response = self.arm("PUT", self.account_path(name), {
            "location": "local", "kind": "OpenAI", "sku": {"name": "S0"},
            "properties": {"customSubDomainName": name}})
        assert response.status_code in (200, 201), response.text
        return name, str(response.json()["properties"]["endpoint"])

    def deploy(self, name: str, model: dict[str, str], capacity: int, account: str = ACCOUNT) -> None:
        response = self.arm("PUT", f"{self.account_path(account)}/deployments/{name}", {
            "sku": {"name": "Standard", "capacity": capacity}, "properties": {"model": model}})
        assert response.status_code in (200, 201), response.text

    def assign(self, role: str, principal_id: str, scope: str, principal_type: str = "ServicePrincipal") -> str:
        name = str(uuid.uuid4())
        response = self.arm("PUT", f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}", {
            "properties": {"roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{role}",
                           "principalId": principal_id, "principalType": principal_type}}, api_version=RBAC_API)
        assert response.status_code == 201, response.text
        return name

    def new_app(self, name: str, role: str | None = OPENAI_USER) -> dict[str, Any]:
        """An app with a secret and a service principal, holding `role` on the account."""
        app = self.server.create_app(f"{name}-{secrets.token_hex(3)}")
        if role:
            self.assign(role, app["spObjectId"], self.account_id)
        return app

    # ------------------------------------------------------------------ tokens and calls
    def sp_token(self, app: dict[str, Any] | None = None, scope: str = COGNITIVE_SCOPE) -> str:
        app = app or self.app
        return str(self.server.token({"grant_type": "client_credentials", "client_id": app["appId"],
                                      "client_secret": app["secret"], "scope": scope})["access_token"])

    def url(self, deployment: str, operation: str, endpoint: str | None = None) -> str:
        return f"{endpoint or self.endpoint}openai/deployments/{deployment}/{operation}"

    def post(self, deployment: str, operation: str, body: Any = None, *, token: str | None = None,
             headers: dict[str, str] | None = None, content: bytes | None = None,
             api_version: str | None = API_VERSION, endpoint: str | None = None) -> httpx.Response:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if content is not None:
            sent.setdefault("Content-Type", "application/json")
        params = {"api-version": api_version} if api_version else None
        return self.http.post(self.url(deployment, operation, endpoint), params=params,
                              json=body if content is None else None, content=content, headers=sent)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        self.server.stop()


def _start(tmp_path_factory: pytest.TempPathFactory) -> DataPlane:
    work = tmp_path_factory.mktemp("dataplane")
    server = start_server(work / "data", env={"CIELO_ENABLE_MOCK_MODEL": "1"})
    plane = DataPlane(server, work)
    try:
        plane.arm_token = server.admin_token(ARM_RESOURCE)
        plane.account_id = plane.account_path(ACCOUNT)
        account = plane.arm("GET", plane.account_id)
        assert account.status_code == 200, account.text
        plane.endpoint = str(account.json()["properties"]["endpoint"])
        assert plane.endpoint == f"{server.base_url}/accounts/{ACCOUNT}/"
        plane.deploy(CHAT, SMOLLM2, 400)
        plane.deploy(EMBED, E5, 400)
        plane.deploy(MOCK_DEPLOYMENT, MOCK, 400)
        plane.app = plane.new_app("dataplane-e2e")
    except BaseException:
        plane.close()
        raise
    return plane


@pytest.fixture(scope="session")
def dataplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataPlane]:
    plane = _start(tmp_path_factory)
    yield plane
    plane.close()


@pytest.fixture()
def dp_env(dataplane: DataPlane, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This test process's clients trust the private server and use it as their authority."""
    env = dataplane.client_env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_USERNAME", "AZURE_PASSWORD",
                 "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_AD_TOKEN", "AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION",
                 "OPENAI_API_KEY", "OPENAI_BASE_URL", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    return env


@pytest.fixture(scope="session")
def dp_admin(dataplane: DataPlane, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The `cielo` command signed in as the administrator (Owner of the subscription) of the private server."""
    work = tmp_path_factory.mktemp("dataplane-admin")
    cli = make_cli(dataplane.server, {**dataplane.client_env(), "CIELO_CONFIG_DIR": str(work / "config")}, work)
    cli.login_admin()
    return cli


# ----------------------------------------------------------------------------- assertions
def azure_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Azure OpenAI's envelope `{"error": {"code", "message", ...}}`, with `x-ms-error-code`."""
    assert response.status_code == status, f"{response.status_code} {response.text}"
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, response.text
    assert isinstance(error["message"], str) and error["message"], response.text
    assert response.headers.get("x-ms-error-code") == code
    assert response.headers.get("apim-request-id")
    return error


def gateway_401(response: httpx.Response, message: str = BEARER_DENIED) -> None:
    """The gateway's bearer/credential refusal: `{"statusCode": 401, "message"}`, no `error` wrapper."""
    assert response.status_code == 401, f"{response.status_code} {response.text}"
    assert response.json() == {"statusCode": 401, "message": message}


def assert_filters(body: dict[str, Any]) -> None:
    """Azure's content-filter annotations on a non-streamed answer
    (learn.microsoft.com/azure/ai-services/openai/concepts/content-filter)."""
    prompt = body["prompt_filter_results"]
    assert prompt and prompt[0]["prompt_index"] == 0
    for category in ("hate", "self_harm", "sexual", "violence"):
        assert prompt[0]["content_filter_results"][category] == {"filtered": False, "severity": "safe"}
        for choice in body["choices"]:
            assert choice["content_filter_results"][category] == {"filtered": False, "severity": "safe"}


def sse_events(lines: Iterator[str]) -> list[Any]:
    """The `data:` payloads of an SSE stream, in order (`[DONE]` kept as the string)."""
    import json

    events: list[Any] = []
    for line in lines:
        if not line.startswith("data:"):
            assert line == "", f"unexpected SSE line {line!r}"
            continue
        data = line[5:].strip()
        events.append(data if data == "[DONE]" else json.loads(data))
    return events
