"""Helpers for the resource-manager end-to-end tests (test_arm_*.py); the `arm` fixture is in conftest_arm.py.

Every principal is real: users sign in with the password grant as the Azure CLI does, service principals
with client_credentials, and every call carries a bearer token for `https://management.core.windows.net/`.
"""

from __future__ import annotations

import http.client
import secrets
import ssl
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from support.server import ADMIN_PASSWORD, ADMIN_USER, CLI_CLIENT_ID, CieloServer

API_VERSION = "2022-04-01"
# Routes that serve their provider's api-versions only (docs/resource-manager.md, "Api-versions") get a version
# Azure serves for them: Cognitive Services paths the one `cielo` itself sends, tenants, subscriptions and resource
# groups (and their resource listings) Microsoft.Resources' 2022-12-01 (what az sends for subscriptions); the
# others (Microsoft.Authorization and the rest) API_VERSION.
COGNITIVE_API_VERSION = "2023-05-01"
RESOURCES_API_VERSION = "2022-12-01"


def version_for(path: str) -> str:
    lowered = path.lower().split("?")[0]
    if "/providers/microsoft.cognitiveservices/" in lowered:
        return COGNITIVE_API_VERSION
    if "/providers/" not in lowered and lowered.startswith(("/tenants", "/subscriptions")):
        return RESOURCES_API_VERSION
    return API_VERSION
ARM_SCOPE = "https://management.core.windows.net//.default"  # as az asks for it: aud ends with one '/'
PASSWORD = "Arm-Passw0rd!x"

OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
USER_ACCESS_ADMINISTRATOR = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
COGNITIVE_SERVICES_USER = "a97b65f3-24c7-4388-baec-2e87135dc908"
COGNITIVE_SERVICES_CONTRIBUTOR = "25fbc0a9-bd7c-42a3-aa1a-3b75d497ee68"

MODEL = {"format": "HuggingFace", "name": "SmolLM2-135M-Instruct", "version": "1"}
RG_READ = "Microsoft.Resources/subscriptions/resourceGroups/read"
RA_WRITE = "Microsoft.Authorization/roleAssignments/write"


@dataclass(frozen=True)
class Who:
    """A signed-in principal: its object id, the name ARM's messages give it (UPN or appId), a token."""

    object_id: str
    display: str
    token: str
    kind: str = "User"
    app_object_id: str | None = None


def new_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


class Arm:
    """A client of one Cielo's resource manager, with the administrator (Owner of the subscription)."""

    def __init__(self, server: CieloServer) -> None:
        self.server = server
        self.client = server.http()
        self.tenant = server.tenant_id
        self.sub = server.subscription_id
        self._graph_token = server.admin_token()  # one sign-in: each costs a password hash
        me = self.graph("GET", "/me")
        self.admin = Who(me["id"], ADMIN_USER, self.user_token(ADMIN_USER, ADMIN_PASSWORD))

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------------- HTTP
    def call(self, method: str, path: str, who: Who | str | None, body: Any = None, *,
             content: bytes | None = None, params: dict[str, str] | None = None,
             api_version: str | None = "") -> httpx.Response:
        """`api_version` "" (the default): the version for the path's provider (`version_for`); None: none."""
        query = dict(params or {})
        if api_version is not None:
            query["api-version"] = api_version or version_for(path)
        headers = {}
        token = who.token if isinstance(who, Who) else who
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if content is not None:
            headers["Content-Type"] = "application/json"
            return self.client.request(method, path, params=query, content=content, headers=headers)
        return self.client.request(method, path, params=query, json=body, headers=headers)

    def raw(self, method: str, raw_path: str, who: Who, body: bytes = b"") -> tuple[int, str]:
        """A request whose path is sent byte for byte (httpx would resolve `..` segments itself)."""
        context = ssl.create_default_context(cafile=self.server.bundle)
        conn = http.client.HTTPSConnection("127.0.0.1", self.server.port, context=context, timeout=30)
        try:
            conn.request(method, f"{raw_path}?api-version={version_for(raw_path)}", body=body or None,
                         headers={"Authorization": f"Bearer {who.token}", "Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    # ------------------------------------------------------------------------- principals
    def graph(self, method: str, path: str, body: Any = None) -> Any:
        """The directory API, as the administrator."""
        response = self.client.request(method, "/v1.0" + path, json=body,
                                       headers={"Authorization": f"Bearer {self._graph_token}"})
        assert response.is_success, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def user_token(self, upn: str, password: str = PASSWORD) -> str:
        body = self.server.token({"client_id": CLI_CLIENT_ID, "grant_type": "password", "username": upn,
                                  "password": password, "scope": ARM_SCOPE})
        return str(body["access_token"])

    def new_user(self, prefix: str = "arm-user") -> Who:
        """A user signing in with the password grant, as az does (about 0.8 s: two password hashes)."""
        upn = f"{new_name(prefix)}@cielo.local"
        created = self.graph("POST", "/users", {"userPrincipalName": upn, "displayName": prefix,
                                                      "passwordProfile": {"password": PASSWORD}})
        return Who(created["id"], upn, self.user_token(upn))

    def new_sp(self, prefix: str = "arm-sp") -> Who:
        """A service principal signing in with client_credentials (cheap: no password hashing)."""
        app = self.graph("POST", "/applications", {"displayName": new_name(prefix)})
        secret = self.graph("POST", f"/applications/{app['id']}/addPassword",
                            {"passwordCredential": {"displayName": "arm"}})["secretText"]
        sp = self.graph("POST", "/servicePrincipals", {"appId": app["appId"]})
        body = self.server.token({"client_id": app["appId"], "client_secret": secret,
                                  "grant_type": "client_credentials", "scope": ARM_SCOPE})
        return Who(sp["id"], app["appId"], str(body["access_token"]), "ServicePrincipal", app["id"])

    def new_group(self, prefix: str = "arm-group") -> str:
        name = new_name(prefix)
        return str(self.graph("POST", "/groups", {"displayName": name, "mailNickname": name})["id"])

    # ------------------------------------------------------------------------- paths
    @property
    def sub_path(self) -> str:
        return f"/subscriptions/{self.sub}"

    def rg_path(self, rg: str) -> str:
        return f"{self.sub_path}/resourceGroups/{rg}"

    def account_path(self, rg: str, account: str) -> str:
        return f"{self.rg_path(rg)}/providers/Microsoft.CognitiveServices/accounts/{account}"

    def deployment_path(self, rg: str, account: str, deployment: str) -> str:
        return f"{self.account_path(rg, account)}/deployments/{deployment}"

    @staticmethod
    def ra_path(scope: str, name: str | None = None) -> str:
        base = f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments"
        return f"{base}/{name}" if name else base

    @staticmethod
    def rd_path(scope: str, guid: str | None = None) -> str:
        base = f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleDefinitions"
        return f"{base}/{guid}" if guid else base

    # ------------------------------------------------------------------------- resources (as the admin)
    def new_rg(self, prefix: str = "arm-rg") -> str:
        name = new_name(prefix)
        response = self.call("PUT", self.rg_path(name), self.admin, {"location": "local"})
        assert response.status_code == 201, response.text
        return name

    def new_account(self, rg: str, prefix: str = "acct", **properties: Any) -> str:
        name = new_name(prefix)
        response = self.call("PUT", self.account_path(rg, name), self.admin, {
            "location": "local", "kind": "OpenAI", "sku": {"name": "S0"},
            "properties": {"customSubDomainName": name, **properties}})
        assert response.status_code == 201, response.text
        return name

    def new_deployment(self, rg: str, account: str, capacity: int = 1, name: str = "chat") -> str:
        response = self.call("PUT", self.deployment_path(rg, account, name), self.admin, {
            "sku": {"name": "Standard", "capacity": capacity}, "properties": {"model": MODEL}})
        assert response.status_code == 201, response.text
        return name

    # ------------------------------------------------------------------------- role assignments (as the admin)
    def assign(self, role: str, principal: Who | str, scope: str, *, by: Who | None = None,
               principal_type: str | None = None) -> str:
        name = str(uuid.uuid4())
        props = {"roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{role}",
                 "principalId": principal.object_id if isinstance(principal, Who) else principal}
        if principal_type:
            props["principalType"] = principal_type
        response = self.call("PUT", self.ra_path(scope, name), by or self.admin, {"properties": props})
        assert response.status_code == 201, response.text
        return name

    def unassign(self, scope: str, name: str) -> None:
        response = self.call("DELETE", self.ra_path(scope, name), self.admin)
        assert response.status_code == 200, response.text

    def assignments(self, scope: str, flt: str | None = None, who: Who | None = None) -> list[dict[str, Any]]:
        response = self.call("GET", self.ra_path(scope), who or self.admin,
                             params={"$filter": flt} if flt else None)
        assert response.status_code == 200, response.text
        value: list[dict[str, Any]] = response.json()["value"]
        return value


# ----------------------------------------------------------------------------- assertions
def error_of(response: httpx.Response, status: int, code: str) -> str:
    """ARM's envelope `{"error": {"code", "message"}}` with this status and code; returns the message."""
    assert response.status_code == status, f"{response.status_code} {response.text}"
    error = response.json()["error"]
    assert error["code"] == code, response.text
    assert isinstance(error["message"], str) and error["message"]
    return str(error["message"])


def denial_message(who: Who, action: str, scope: str) -> str:
    return (f"The client '{who.display}' with object id '{who.object_id}' does not have authorization to perform "
            f"action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, "
            "please refresh your credentials.")


def assert_denied(response: httpx.Response, who: Who, action: str, scope: str) -> None:
    """403 AuthorizationFailed with Azure's message naming the client, its object id, the action and scope."""
    assert error_of(response, 403, "AuthorizationFailed") == denial_message(who, action, scope)


def assert_unauthenticated(response: httpx.Response) -> None:
    assert response.status_code == 401, f"{response.status_code} {response.text}"
    assert response.json()["error"]["code"] in (
        "AuthenticationFailed", "InvalidAuthenticationToken", "InvalidAuthenticationTokenTenant",
        "ExpiredAuthenticationToken")
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
