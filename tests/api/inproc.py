"""The in-process API tier's world: the real app from `create_app`, on a temporary data directory (SQLite),
with a frozen clock and the test-only mock model, reached through `httpx.ASGITransport`.

Tokens come from the token endpoint in-process. The administrator's (ROPC: argon2, ~0.2 s each) are taken once
per session; other callers are applications created through Graph with client_credentials (SHA-256: fast).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from cielo.api.app import Services
from cielo.core.clock import FrozenClock

BASE_URL = "https://127.0.0.1:8443"
ADMIN = "admin@cielo.local"
PASSWORD = "InProc-Passw0rd!x"
CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
ARM_API = "2022-12-01"
OPENAI_API = "2024-10-21"
ARM_RESOURCE = "https://management.azure.com/"
GRAPH_RESOURCE = "https://graph.microsoft.com"
COG_RESOURCE = "https://cognitiveservices.azure.com"
ACCOUNT = "cielo-openai"
RG = "cielo-rg"
MOCK_DEPLOYMENT = "mock"

ROLES = {
    "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "Reader": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "User Access Administrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "Cognitive Services User": "a97b65f3-24c7-4388-baec-2e87135dc908",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Principal:
    """An application with a service principal and a secret, as `cielo ad sp create-for-rbac` makes one."""

    app_id: str
    app_object_id: str
    sp_id: str
    secret: str
    tokens: dict[str, str] = field(default_factory=dict)


@dataclass
class World:
    app: FastAPI
    services: Services
    clock: FrozenClock
    data_dir: Path
    tenant: str
    sub: str
    api_key: str
    admin_id: str
    admin_tokens: dict[str, str]

    # ------------------------------------------------------------------ paths
    @property
    def sub_path(self) -> str:
        return f"/subscriptions/{self.sub}"

    def rg_path(self, rg: str) -> str:
        return f"{self.sub_path}/resourceGroups/{rg}"

    def account_path(self, account: str = ACCOUNT, rg: str = RG) -> str:
        return f"{self.rg_path(rg)}/providers/Microsoft.CognitiveServices/accounts/{account}"

    def role_id(self, name: str) -> str:
        return f"{self.sub_path}/providers/Microsoft.Authorization/roleDefinitions/{ROLES[name]}"

    def token_url(self, tenant: str | None = None, v1: bool = False) -> str:
        return f"/{tenant or self.tenant}/oauth2/{'token' if v1 else 'v2.0/token'}"

    def openai_url(self, op: str, deployment: str = MOCK_DEPLOYMENT, *, account: str = ACCOUNT,
                   api_version: str | None = OPENAI_API) -> str:
        query = f"?api-version={api_version}" if api_version else ""
        return f"/accounts/{account}/openai/deployments/{deployment}/{op}{query}"

    # ------------------------------------------------------------------ callers
    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=BASE_URL)

    @property
    def arm(self) -> dict[str, str]:
        return bearer(self.admin_tokens[ARM_RESOURCE])

    @property
    def graph(self) -> dict[str, str]:
        return bearer(self.admin_tokens[GRAPH_RESOURCE])

    @property
    def cog(self) -> dict[str, str]:
        return bearer(self.admin_tokens[COG_RESOURCE])


async def arm_call(client: httpx.AsyncClient, world: World, method: str, path: str, body: Any = None, *,
                   headers: dict[str, str] | None = None, api_version: str | None = ARM_API) -> httpx.Response:
    sep = "&" if "?" in path else "?"
    url = path + (f"{sep}api-version={api_version}" if api_version else "")
    return await client.request(method, url, json=body, headers=headers if headers is not None else world.arm)


async def new_principal(client: httpx.AsyncClient, world: World, name: str | None = None) -> Principal:
    name = name or unique("inproc-app")
    app = await client.post("/v1.0/applications", json={"displayName": name}, headers=world.graph)
    assert app.status_code == 201, app.text
    app_json = app.json()
    secret = await client.post(f"/v1.0/applications/{app_json['id']}/addPassword",
                               json={"passwordCredential": {"displayName": "t"}}, headers=world.graph)
    assert secret.status_code == 200, secret.text
    sp = await client.post("/v1.0/servicePrincipals", json={"appId": app_json["appId"]}, headers=world.graph)
    assert sp.status_code == 201, sp.text
    return Principal(app_json["appId"], app_json["id"], sp.json()["id"], secret.json()["secretText"])


async def sp_token(client: httpx.AsyncClient, world: World, principal: Principal, resource: str) -> str:
    if resource not in principal.tokens:
        answer = await client.post(world.token_url(), data={
            "grant_type": "client_credentials", "client_id": principal.app_id,
            "client_secret": principal.secret, "scope": resource.rstrip("/") + "/.default"})
        assert answer.status_code == 200, answer.text
        principal.tokens[resource] = str(answer.json()["access_token"])
    return principal.tokens[resource]


async def assign(client: httpx.AsyncClient, world: World, role: str, principal_id: str, scope: str,
                 principal_type: str = "ServicePrincipal") -> dict[str, Any]:
    name = str(uuid.uuid4())
    answer = await arm_call(client, world, "PUT", f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}",
                            {"properties": {"roleDefinitionId": world.role_id(role), "principalId": principal_id,
                                            "principalType": principal_type}})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def arm_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The ARM envelope, `{"error": {"code", "message", "target"?, "details"?}}`, with this status and code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["code"] == code, error
    assert set(error) <= {"code", "message", "target", "details", "additionalInfo"}, error
    assert isinstance(error["message"], str) and error["message"], error
    return error


def oauth_error(response: httpx.Response, status: int, error: str, aadsts: int) -> dict[str, Any]:
    """Entra's envelope: error, error_description (AADSTSnnnn: … Trace ID … Correlation ID … Timestamp …),
    error_codes, timestamp, trace_id, correlation_id, error_uri."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    assert body["error_codes"] == [aadsts], body
    assert body["error_description"].startswith(f"AADSTS{aadsts}: "), body
    for part in ("\r\nTrace ID: ", "\r\nCorrelation ID: ", "\r\nTimestamp: "):
        assert part in body["error_description"], body
    assert {"timestamp", "trace_id", "correlation_id", "error_uri"} <= set(body), body
    return body


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """`{"error": {"code", "message"}}` with this status and code: the directory API's and Azure OpenAI's shape."""
    assert response.status_code == status, response.text
    body = response.json()
    error: dict[str, Any] = body["error"]
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"], body
    return error
