"""The real azure-cli against a private Cielo: the how-to (seed-howto.md) with `az` itself, not `cielo`.

azure-cli is pip-installed once into a virtual environment kept in a cache directory
(`$CIELO_TEST_CACHE_DIR`, else `~/.cache/cielo-tests`): about 40 s and 730 MB the first time, reused after
that while `az --version` works there. If pip cannot install it, the module is skipped with pip's error.

az is configured as we found works with azure-cli 2.91, all through the environment: a private
AZURE_CONFIG_DIR per signed-in principal, REQUESTS_CA_BUNDLE (az uses requests), and
AZURE_CORE_INSTANCE_DISCOVERY=false (otherwise MSAL asks login.microsoftonline.com about the authority).
Cielo is registered as a cloud both ways: from `GET {arm}/metadata/endpoints` (az asks for
`{base}//metadata/endpoints`, Cielo collapses the `//`) and with `--skip-endpoint-discovery` and explicit endpoints.

Principal look-ups go through Microsoft Graph: az sends them to the cloud's `microsoftGraphResourceId`, which
Cielo's `/metadata/endpoints` sets to Cielo's own base URL (the STS issues tokens for it, the Graph-compatible API
accepts them), with a token for that same value. The signed-in principals here are service principals without
directory permissions, so Graph refuses them, as Entra does, and az says to pass `--assignee-object-id X
--assignee-principal-type T`, which needs no Graph.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from arm_support import COGNITIVE_SERVICES_USER, CONTRIBUTOR, OWNER

from support.server import CieloServer, start_server

pytestmark = pytest.mark.e2e

COGNITIVE = "https://cognitiveservices.azure.com"
ARM_RESOURCE = "https://management.core.windows.net/"
RBAC_API = "2022-04-01"
ROLE = "Cognitive Services User"
PROMPT = {"prompt": "Once upon a time", "max_tokens": 8}

# Variables of the calling environment that would steer az or azure-identity elsewhere.
_SCRUBBED_PREFIXES = ("AZURE_", "MSI_", "IDENTITY_")
_SCRUBBED = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")


# ----------------------------------------------------------------------------- installing azure-cli
def _cache_dir() -> Path:
    if os.environ.get("CIELO_TEST_CACHE_DIR"):
        return Path(os.environ["CIELO_TEST_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cielo-tests"


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES) and k not in _SCRUBBED}


def _az_version(az: Path, config_dir: Path) -> subprocess.CompletedProcess[str] | None:
    if not az.exists():
        return None
    try:
        return subprocess.run([str(az), "--version"], capture_output=True, text=True, timeout=120,
                              env={**_clean_env(), "AZURE_CONFIG_DIR": str(config_dir),
                                   "AZURE_CORE_COLLECT_TELEMETRY": "false"}, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _pip_error(done: subprocess.CompletedProcess[str]) -> str:
    """pip's error lines (its output also carries many harmless `Location ... is ignored` warnings)."""
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line or "error:" in line.lower()]
    return "\n".join((errors or lines)[-15:]) or f"exit {done.returncode}"


@pytest.fixture(scope="session")
def az_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real `az`, from a venv in the cache dir; installed there on first use (under a lock)."""
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    venv = cache / "az-venv"
    az = venv / "bin" / "az"
    probe_config = tmp_path_factory.mktemp("az-version")
    with open(cache / "az-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = _az_version(az, probe_config)
        if done is not None and done.returncode == 0:
            return az
        made = subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], capture_output=True, text=True,
                              timeout=300)
        if made.returncode != 0:
            pytest.skip(f"cannot create a venv for azure-cli at {venv}: {_pip_error(made)}")
        try:
            pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                                  "azure-cli"], capture_output=True, text=True, timeout=1200,
                                 env=_clean_env(), stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pytest.skip("pip install azure-cli took more than 20 minutes")
        if pip.returncode != 0:
            pytest.skip(f"pip install azure-cli failed:\n{_pip_error(pip)}")
        done = _az_version(az, probe_config)
        assert done is not None and done.returncode == 0, \
            f"az --version fails after pip install azure-cli:\n{done.stderr if done else 'no az'}"
        return az


# ----------------------------------------------------------------------------- running az
@dataclass
class AzResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    hidden: tuple[str, ...] = ()

    def json(self) -> Any:
        return json.loads(self.stdout) if self.stdout.strip() else None

    def __str__(self) -> str:
        text = (f"az {' '.join(self.args)} -> exit {self.returncode}\n"
                f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}")
        for secret in self.hidden:
            text = text.replace(secret, "***")
        return text


@dataclass
class Az:
    """One az "installation": its own AZURE_CONFIG_DIR (clouds, login, MSAL cache) and environment."""

    exe: Path
    env: dict[str, str]
    hidden: list[str] = field(default_factory=list)
    login_output: Any = None

    @property
    def config_dir(self) -> Path:
        return Path(self.env["AZURE_CONFIG_DIR"])

    def run(self, *args: str, timeout: float = 180) -> AzResult:
        done = subprocess.run([str(self.exe), *args], capture_output=True, text=True, env=self.env,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        return AzResult(args, done.returncode, done.stdout, done.stderr, tuple(self.hidden))

    def ok(self, *args: str) -> Any:
        """Run an az command that must succeed; its JSON output (None when empty)."""
        result = self.run(*args, "--output", "json")
        assert result.returncode == 0, str(result)
        try:
            return result.json()
        except json.JSONDecodeError as exc:
            raise AssertionError(f"az printed no JSON ({exc})\n{result}") from exc

    def login(self, server: CieloServer, app: dict[str, Any]) -> None:
        self.hidden.append(app["secret"])
        self.login_output = self.ok("login", "--service-principal", "-u", app["appId"], "-p", app["secret"],
                                    "--tenant", server.tenant_id)


def make_az(exe: Path, server: CieloServer, config_dir: Path) -> Az:
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY", ""), "127.0.0.1", "localhost"]))
    return Az(exe, {
        **_clean_env(),
        "AZURE_CONFIG_DIR": str(config_dir),
        "REQUESTS_CA_BUNDLE": server.bundle,
        "SSL_CERT_FILE": server.bundle,
        "AZURE_CORE_INSTANCE_DISCOVERY": "false",
        "AZURE_CORE_COLLECT_TELEMETRY": "false",
        "AZURE_CORE_NO_COLOR": "true",
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
    })


def register_discovered(az: Az, server: CieloServer, name: str = "CieloA") -> None:
    """`az cloud register` reading Cielo's `/metadata/endpoints` (az requests `{base}//metadata/endpoints`)."""
    az.ok("cloud", "register", "--name", name, "--endpoint-resource-manager", f"{server.base_url}/")
    az.ok("cloud", "set", "--name", name)


def register_explicit(az: Az, server: CieloServer, name: str = "CieloB") -> None:
    """`az cloud register --skip-endpoint-discovery` with every endpoint given, Microsoft Graph pointed at Cielo too."""
    base = server.base_url
    az.ok("cloud", "register", "--name", name, "--skip-endpoint-discovery",
          "--endpoint-active-directory", base,
          "--endpoint-resource-manager", f"{base}/",
          "--endpoint-active-directory-resource-id", ARM_RESOURCE,
          "--endpoint-active-directory-graph-resource-id", "https://graph.windows.net/",
          "--endpoint-microsoft-graph-resource-id", f"{base}/")
    az.ok("cloud", "set", "--name", name)


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


# ----------------------------------------------------------------------------- the private Cielo and principals
@dataclass
class Setup:
    server: CieloServer
    arm_token: str
    contributor: dict[str, Any]  # Contributor on the subscription
    owner: dict[str, Any]  # Owner on the subscription
    member: dict[str, Any]  # no role until the owner gives it "Cognitive Services User" on cielo-rg with az
    user_id: str  # a user (object id), also given the role by the owner
    user_upn: str

    @property
    def sub_id(self) -> str:
        return f"/subscriptions/{self.server.subscription_id}"

    @property
    def rg_id(self) -> str:
        return f"{self.sub_id}/resourceGroups/cielo-rg"

    @property
    def endpoint(self) -> str:
        return f"{self.server.base_url}/accounts/cielo-openai/"

    def client(self) -> httpx.Client:
        return httpx.Client(verify=ssl.create_default_context(cafile=self.server.bundle), timeout=120)

    def grant(self, role: str, principal_id: str, scope: str) -> None:
        """As the administrator (Owner), through ARM: PUT a role assignment."""
        with self.client() as client:
            response = client.put(
                f"{self.server.base_url}{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
                params={"api-version": RBAC_API}, headers={"Authorization": f"Bearer {self.arm_token}"},
                json={"properties": {"roleDefinitionId": f"{scope}/providers/Microsoft.Authorization/"
                                                         f"roleDefinitions/{role}",
                                     "principalId": principal_id, "principalType": "ServicePrincipal"}})
        assert response.status_code == 201, response.text

    def complete(self, token: str) -> httpx.Response:
        """The how-to's curl: POST {endpoint}/openai/deployments/smollm2/completions with a bearer token."""
        with self.client() as client:
            return client.post(f"{self.endpoint.rstrip('/')}/openai/deployments/smollm2/completions",
                               params={"api-version": "2023-05-15"}, json=PROMPT,
                               headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    server = start_server(tmp_path_factory.mktemp("az-cli") / "data")
    try:
        upn = f"az-user-{secrets.token_hex(4)}@cielo.local"
        user = server.graph("POST", "/users", {"userPrincipalName": upn, "displayName": "az user",
                                               "passwordProfile": {"password": "Az-Us3r-Passw0rd!"}})
        state = Setup(server, server.admin_token(ARM_RESOURCE), server.create_app("az-contributor"),
                      server.create_app("az-owner"), server.create_app("az-member"), user["id"], upn)
        state.grant(CONTRIBUTOR, state.contributor["spObjectId"], state.sub_id)
        state.grant(OWNER, state.owner["spObjectId"], state.sub_id)
        yield state
    finally:
        server.stop()


@pytest.fixture(scope="module")
def az_contributor(az_exe: Path, setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Az:
    """az with Cielo registered from its metadata (CieloA), signed in as the Contributor service principal."""
    az = make_az(az_exe, setup.server, tmp_path_factory.mktemp("az-contributor"))
    register_discovered(az, setup.server)
    az.login(setup.server, setup.contributor)
    return az


@pytest.fixture(scope="module")
def az_owner(az_exe: Path, setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Az:
    """az with Cielo registered with explicit endpoints (CieloB), signed in as the Owner service principal."""
    az = make_az(az_exe, setup.server, tmp_path_factory.mktemp("az-owner"))
    register_explicit(az, setup.server)
    az.login(setup.server, setup.owner)
    return az


@pytest.fixture(scope="module")
def member_assignment(az_owner: Az, setup: Setup) -> dict[str, Any]:
    """The how-to's `az role assignment create --role "Cognitive Services User"` for the member, by the owner."""
    created: dict[str, Any] = az_owner.ok(
        "role", "assignment", "create", "--role", ROLE, "--assignee-object-id", setup.member["spObjectId"],
        "--assignee-principal-type", "ServicePrincipal", "--scope", setup.rg_id)
    return created


@pytest.fixture(scope="module")
def az_member(az_exe: Path, setup: Setup, member_assignment: dict[str, Any],
              tmp_path_factory: pytest.TempPathFactory) -> Az:
    """az signed in as the member (it sees the subscription through its role on cielo-rg)."""
    az = make_az(az_exe, setup.server, tmp_path_factory.mktemp("az-member"))
    register_discovered(az, setup.server)
    az.login(setup.server, setup.member)
    return az


# ----------------------------------------------------------------------------- clouds and sign-in
def test_cloud_register_from_metadata_endpoints(az_contributor: Az, setup: Setup) -> None:
    base = setup.server.base_url
    cloud = az_contributor.ok("cloud", "show", "--name", "CieloA")
    assert cloud["isActive"] is True
    endpoints = cloud["endpoints"]
    assert endpoints["resourceManager"] == f"{base}/"
    assert endpoints["activeDirectory"] == base  # authentication.loginEndpoint
    assert endpoints["activeDirectoryResourceId"] == ARM_RESOURCE  # authentication.audiences[0]
    assert endpoints["microsoftGraphResourceId"] == f"{base}/"  # az calls Cielo's Graph API
    assert az_contributor.ok("cloud", "show", "--query", "name") == "CieloA"  # the active cloud


def test_cloud_register_skip_endpoint_discovery(az_owner: Az, setup: Setup) -> None:
    base = setup.server.base_url
    cloud = az_owner.ok("cloud", "show", "--name", "CieloB")
    assert cloud["isActive"] is True
    assert cloud["endpoints"]["resourceManager"] == f"{base}/"
    assert cloud["endpoints"]["activeDirectory"] == base
    assert cloud["endpoints"]["activeDirectoryResourceId"] == ARM_RESOURCE
    assert cloud["endpoints"]["microsoftGraphResourceId"] == f"{base}/"
    login = az_owner.login_output
    assert [s["id"] for s in login] == [setup.server.subscription_id], login
    assert login[0]["cloudName"] == "CieloB"


def test_login_and_account_show(az_contributor: Az, setup: Setup) -> None:
    server = setup.server
    login = az_contributor.login_output
    assert len(login) == 1, login
    assert login[0]["cloudName"] == "CieloA"
    assert login[0]["user"] == {"name": setup.contributor["appId"], "type": "servicePrincipal"}

    account = az_contributor.ok("account", "show")
    assert account["environmentName"] == "CieloA"
    assert account["id"] == server.subscription_id
    assert account["tenantId"] == account["homeTenantId"] == server.tenant_id
    assert account["isDefault"] is True
    assert account["state"] == "Enabled"
    assert account["name"]
    assert account["user"] == {"name": setup.contributor["appId"], "type": "servicePrincipal"}
    # The how-to's `export user=$(az account show | jq -r .user.name)`: a service principal's name is its appId.
    assert az_contributor.ok("account", "show", "--query", "user.name") == setup.contributor["appId"]


def test_get_access_token(az_contributor: Az, setup: Setup) -> None:
    server = setup.server
    token = az_contributor.ok("account", "get-access-token", "--resource", COGNITIVE)
    assert token["tokenType"] == "Bearer"
    assert token["subscription"] == server.subscription_id
    assert token["tenant"] == server.tenant_id
    assert isinstance(token["expires_on"], int) and token["expires_on"] > time.time() + 300, token
    time.strptime(token["expiresOn"], "%Y-%m-%d %H:%M:%S.%f")  # the form AzureCliCredential parses
    claims = jwt_claims(token["accessToken"])
    assert claims["aud"].rstrip("/") == COGNITIVE
    assert claims["tid"] == server.tenant_id
    assert claims["appid"] == setup.contributor["appId"]
    assert claims["oid"] == setup.contributor["spObjectId"]
    assert claims["iss"] == f"{server.base_url}/{server.tenant_id}/"

    arm = az_contributor.ok("account", "get-access-token")  # the resource manager's, as az itself uses
    assert jwt_claims(arm["accessToken"])["aud"] == ARM_RESOURCE


# ----------------------------------------------------------------------------- resource groups
def test_group_show_create_delete(az_contributor: Az, setup: Setup) -> None:
    group = az_contributor.ok("group", "show", "-g", "cielo-rg")
    assert group["id"] == setup.rg_id
    assert group["name"] == "cielo-rg"

    name = f"az-rg-{secrets.token_hex(3)}"
    created = az_contributor.ok("group", "create", "--name", name, "--location", group["location"],
                                "--tags", "made-by=az")
    assert created["id"] == f"{setup.sub_id}/resourceGroups/{name}"
    assert created["properties"]["provisioningState"] == "Succeeded"
    assert created["tags"] == {"made-by": "az"}
    assert az_contributor.ok("group", "exists", "--name", name) is True
    assert name in az_contributor.ok("group", "list", "--query", "[].name")

    az_contributor.ok("group", "delete", "--name", name, "--yes")
    assert az_contributor.ok("group", "exists", "--name", name) is False


# ----------------------------------------------------------------------------- role assignments
def test_contributor_cannot_assign_roles(az_contributor: Az, setup: Setup) -> None:
    result = az_contributor.run("role", "assignment", "create", "--role", ROLE,
                                "--assignee-object-id", setup.user_id, "--assignee-principal-type", "User",
                                "--scope", setup.rg_id)
    assert result.returncode != 0, str(result)
    assert "(AuthorizationFailed)" in result.stderr, str(result)
    assert f"The client '{setup.contributor['appId']}' with object id '{setup.contributor['spObjectId']}' " \
           f"does not have authorization to perform action 'Microsoft.Authorization/roleAssignments/write' " \
           f"over scope '{setup.rg_id}'" in result.stderr, str(result)


def test_owner_assigns_roles(az_owner: Az, setup: Setup, member_assignment: dict[str, Any]) -> None:
    role_id = f"{setup.sub_id}/providers/Microsoft.Authorization/roleDefinitions/{COGNITIVE_SERVICES_USER}"
    assert member_assignment["principalId"] == setup.member["spObjectId"]
    assert member_assignment["principalType"] == "ServicePrincipal"
    assert member_assignment["scope"] == setup.rg_id
    assert member_assignment["roleDefinitionId"] == role_id
    assert member_assignment["createdBy"] == setup.owner["spObjectId"]

    user = az_owner.ok("role", "assignment", "create", "--role", ROLE, "--assignee-object-id", setup.user_id,
                       "--assignee-principal-type", "User", "--scope", setup.rg_id)
    assert (user["principalId"], user["principalType"], user["scope"], user["roleDefinitionId"]) == \
        (setup.user_id, "User", setup.rg_id, role_id)

    # `--fill-principal-name false`: the names come from Microsoft Graph, which refuses this SP (see below).
    listed = az_owner.ok("role", "assignment", "list", "--scope", setup.rg_id, "--fill-principal-name", "false")
    by_id = {item["id"]: item for item in listed}
    for created in (member_assignment, user):
        assert created["id"] in by_id, listed
        assert by_id[created["id"]]["roleDefinitionName"] == ROLE
        assert by_id[created["id"]]["principalId"] == created["principalId"]
    # The refused attempt by the Contributor left nothing behind.
    assert [a["principalId"] for a in listed].count(setup.user_id) == 1, listed

    mine = az_owner.ok("role", "assignment", "list", "--assignee-object-id", setup.member["spObjectId"],
                       "--scope", setup.rg_id, "--fill-principal-name", "false")
    assert [a["id"] for a in mine] == [member_assignment["id"]]


def _graph_denied(result: AzResult) -> None:
    """az reached the Graph API (Cielo's, through the cloud's microsoftGraphResourceId), which refuses a service
    principal without directory permissions, as Entra does; az then suggests --assignee-object-id."""
    assert "Failed to query" in result.stderr and "--assignee-object-id" in result.stderr, str(result)


def test_role_assignment_create_assignee_upn_needs_graph(az_owner: Az, setup: Setup) -> None:
    """The how-to's `--assignee $user` by a service principal without Graph permissions: refused, nothing assigned."""
    result = az_owner.run("role", "assignment", "create", "--role", "Reader", "--assignee", setup.user_upn,
                          "--scope", setup.rg_id, "--output", "json")
    assert result.returncode != 0, str(result)
    _graph_denied(result)
    assert "Insufficient privileges to complete the operation" in result.stderr, str(result)


def test_role_assignment_create_assignee_guid_falls_back_to_object_id(az_owner: Az, setup: Setup) -> None:
    """With Graph refused, az takes a GUID for an object id (as against Azure): an object id works, the principal's
    type is found by the resource manager; an appId is no object id and is refused with PrincipalNotFound."""
    app = setup.server.create_app("az-assignee")
    by_object_id = az_owner.run("role", "assignment", "create", "--role", "Reader", "--assignee", app["spObjectId"],
                                "--scope", setup.rg_id, "--output", "json")
    _graph_denied(by_object_id)
    assert by_object_id.returncode == 0, str(by_object_id)
    created = by_object_id.json()
    assert (created["principalId"], created["principalType"]) == (app["spObjectId"], "ServicePrincipal")
    by_app_id = az_owner.run("role", "assignment", "create", "--role", "Reader", "--assignee", app["appId"],
                             "--scope", setup.rg_id, "--output", "json")
    assert by_app_id.returncode != 0 and "PrincipalNotFound" in by_app_id.stderr, str(by_app_id)


def test_role_assignment_list_needs_graph_for_principal_names(az_owner: Az, setup: Setup,
                                                             member_assignment: dict[str, Any]) -> None:
    result = az_owner.run("role", "assignment", "list", "--scope", setup.rg_id, "--output", "json")
    if result.returncode == 0:  # az may list without names when Graph refuses
        names = {a["principalId"]: a.get("principalName") for a in result.json()}
        assert names.get(setup.member["spObjectId"]) in (None, ""), names
    else:
        assert "Insufficient privileges" in result.stderr, str(result)


# ----------------------------------------------------------------------------- the how-to's data-plane call
def test_howto_token_and_curl(az_member: Az, setup: Setup) -> None:
    member = setup.member
    assert az_member.ok("account", "show", "--query", "user.name") == member["appId"]
    assert az_member.ok("group", "show", "-g", "cielo-rg", "--query", "id") == setup.rg_id
    endpoint = az_member.ok("cognitiveservices", "account", "show", "-n", "cielo-openai", "-g", "cielo-rg",
                            "--query", "properties.endpoint")
    assert endpoint == setup.endpoint

    token = az_member.ok("account", "get-access-token", "--resource", COGNITIVE)["accessToken"]
    claims = jwt_claims(token)
    assert (claims["appid"], claims["tid"]) == (member["appId"], setup.server.tenant_id)
    response = setup.complete(token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"].strip(), body
    assert 0 < body["usage"]["completion_tokens"] <= PROMPT["max_tokens"]


def test_contributor_token_refused_on_data_plane(az_contributor: Az, setup: Setup) -> None:
    """Contributor holds no data action: its az token is valid but refused on the data plane."""
    token = az_contributor.ok("account", "get-access-token", "--resource", COGNITIVE)["accessToken"]
    response = setup.complete(token)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "PermissionDenied"


def test_azure_cli_credential_uses_real_az(az_member: Az, setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.identity import AzureCliCredential

    for name in list(os.environ):
        if name.startswith(_SCRUBBED_PREFIXES):
            monkeypatch.delenv(name)
    for name, value in az_member.env.items():
        if name.startswith("AZURE_") or name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "NO_PROXY", "no_proxy"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("PATH", f"{az_member.exe.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    assert shutil.which("az") == str(az_member.exe)

    token = AzureCliCredential(process_timeout=60).get_token(f"{COGNITIVE}/.default")
    claims = jwt_claims(token.token)
    assert claims["appid"] == setup.member["appId"]
    assert claims["tid"] == setup.server.tenant_id
    assert claims["aud"].rstrip("/") == COGNITIVE
    assert token.expires_on > time.time() + 300
    response = setup.complete(token.token)
    assert response.status_code == 200, response.text
