"""Helpers for the managed-identity end-to-end tests (test_mi_*.py).

Each test module runs its own `cielo up` (`MiServer`, started by `start_mi_server` in a module-scoped
fixture): the tests create and delete VMs, identities and role assignments. Host agents are real
`cielo agent` subprocesses with their own CIELO_CONFIG_DIR (`Agent`); tests stop the ones they start,
and the module fixture's teardown (`MiServer.stop`) stops any left, then the server. Tokens are checked
against the server's published signing keys.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
import subprocess
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cli_helpers import Cli, make_cli

from support.server import ADMIN_PASSWORD, ADMIN_USER, CLI_CLIENT_ID, CieloServer, free_port, start_server

COGNITIVE = "https://cognitiveservices.azure.com"
COGNITIVE_SCOPE = f"{COGNITIVE}/.default"
ARM_AUDIENCE = "https://management.core.windows.net/"
RG = "cielo-rg"
ACCOUNT = "cielo-openai"
OPENAI_USER_ROLE = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"  # Cognitive Services OpenAI User
READER_ROLE = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
DAY = 86400

COMPUTE_API = "2023-09-01"
UAMI_API = "2023-01-31"
AUTH_API = "2022-04-01"

# What would steer azure-identity away from the managed identity the test means.
MI_VARIABLES = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET",
                "AZURE_POD_IDENTITY_AUTHORITY_HOST", "MSAL_MANAGED_IDENTITY_ENDPOINT", "IMDS_ENDPOINT",
                "IDENTITY_SERVER_THUMBPRINT", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID",
                "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE",
                "AZURE_TOKEN_CREDENTIALS")


@dataclass(frozen=True)
class Identity:
    """One managed identity as a token must name it."""

    client_id: str
    principal_id: str
    mirid: str  # xms_mirid: the resource id with `resourcegroups` in lower case
    resource_id: str  # as ARM spells the resource


def mirid(resource_id: str) -> str:
    parts = resource_id.split("/")
    return "/".join("resourcegroups" if p.lower() == "resourcegroups" else p for p in parts)


@dataclass
class MiServer:
    """A private `cielo up` with the administrator's ARM and Graph tokens and a signed-in CLI."""

    server: CieloServer
    work: Path
    _cli: Cli | None = None
    agents: list[Agent] = field(default_factory=list)  # every agent started: stopped by stop()
    _arm_token: str = ""
    _graph_token: str = ""
    _keys: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        """Stop every agent started against this server (whatever a test left running), then the server."""
        for agent in self.agents:
            agent.stop()
        self.server.stop()

    @property
    def cli(self) -> Cli:
        """The `cielo` CLI signed in as the administrator (signed in on first use)."""
        if self._cli is None:
            client_env = {**self.server.client_env(), "CIELO_CONFIG_DIR": str(self.work / "admin-config")}
            self._cli = make_cli(self.server, client_env, self.work)
            self._cli.login_admin()
        return self._cli

    @property
    def sub(self) -> str:
        return self.server.subscription_id

    @property
    def tenant(self) -> str:
        return self.server.tenant_id

    def rg_id(self, rg: str = RG) -> str:
        return f"/subscriptions/{self.sub}/resourceGroups/{rg}"

    def path(self, provider_type: str, name: str, rg: str = RG) -> str:
        return f"{self.rg_id(rg)}/providers/{provider_type}/{name}"

    def tls(self) -> ssl.SSLContext:
        """Trust for Cielo's certificate (httpx deprecates `verify=<path>`)."""
        return ssl.create_default_context(cafile=self.server.bundle)

    @property
    def account_id(self) -> str:
        return self.path("Microsoft.CognitiveServices/accounts", ACCOUNT)

    @property
    def endpoint(self) -> str:
        return f"{self.server.base_url}/accounts/{ACCOUNT}/"

    # ------------------------------------------------------------------ HTTP as the administrator
    def _admin_token(self, resource: str) -> str:
        return str(self.server.token({"client_id": CLI_CLIENT_ID, "grant_type": "password", "username": ADMIN_USER,
                                      "password": ADMIN_PASSWORD, "scope": f"{resource}/.default"})["access_token"])

    def arm(self, method: str, path: str, body: Any = None, *, api: str = COMPUTE_API,
            params: dict[str, str] | None = None) -> httpx.Response:
        if not self._arm_token:
            self._arm_token = self._admin_token(ARM_AUDIENCE)
        with self.server.http() as client:
            return client.request(method, path, params={"api-version": api, **(params or {})}, json=body,
                                  headers={"Authorization": f"Bearer {self._arm_token}"})

    def arm_ok(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        response = self.arm(method, path, body, **kwargs)
        assert response.status_code in (200, 201), response.text
        return response.json() if response.content else None

    def graph(self, path: str) -> httpx.Response:
        if not self._graph_token:
            self._graph_token = self._admin_token("https://graph.microsoft.com")
        with self.server.http() as client:
            return client.get(f"/v1.0{path}", headers={"Authorization": f"Bearer {self._graph_token}"})

    def graph_status(self, path: str) -> int:
        return self.graph(path).status_code

    # ------------------------------------------------------------------ resources
    def create_uami(self, name: str) -> Identity:
        body = self.arm_ok("PUT", self.path("Microsoft.ManagedIdentity/userAssignedIdentities", name), {},
                           api=UAMI_API)
        props = body["properties"]
        return Identity(props["clientId"], props["principalId"], mirid(body["id"]), body["id"])

    def put_vm(self, name: str, *, system: bool = True, uamis: tuple[Identity, ...] = (),
               type_: str = "Microsoft.Compute/virtualMachines") -> dict[str, Any]:
        kinds = [k for k, on in (("SystemAssigned", system), ("UserAssigned", bool(uamis))) if on]
        identity: dict[str, Any] = {"type": ", ".join(kinds) or "None"}
        if uamis:
            identity["userAssignedIdentities"] = {u.resource_id: {} for u in uamis}
        body: dict[str, Any] = self.arm_ok("PUT", self.path(type_, name), {"identity": identity})
        return body

    def system_identity(self, vm: dict[str, Any]) -> Identity:
        """The system-assigned identity of a VM (its client id from Graph's service principal)."""
        principal_id = vm["identity"]["principalId"]
        sp = self.graph(f"/servicePrincipals/{principal_id}").json()
        assert sp["servicePrincipalType"] == "ManagedIdentity", sp
        return Identity(sp["appId"], principal_id, mirid(vm["id"]), vm["id"])

    def assign_role(self, principal_id: str, scope: str, role: str = OPENAI_USER_ROLE) -> str:
        """A role assignment through the ARM API (the tests that are about the CLI use the CLI)."""
        rid = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
        self.arm_ok("PUT", rid, {"properties": {
            "roleDefinitionId": f"/subscriptions/{self.sub}/providers/Microsoft.Authorization/roleDefinitions/{role}",
            "principalId": principal_id, "principalType": "ServicePrincipal"}}, api=AUTH_API)
        return rid

    def assignments_of(self, principal_id: str) -> list[dict[str, Any]]:
        body = self.arm_ok("GET", f"/subscriptions/{self.sub}/providers/Microsoft.Authorization/roleAssignments",
                           api=AUTH_API, params={"$filter": f"principalId eq '{principal_id}'"})
        return list(body["value"])

    def host_credential(self, vm_name: str, kind: str = "vm") -> Path:
        """`cielo <kind> agent-credential --file` (mode 0600), as an operator enrolls a host."""
        path = self.work / f"cred-{vm_name}-{secrets.token_hex(3)}.json"
        out = self.cli.json(kind, "agent-credential", "-g", RG, "-n", vm_name, "--file", str(path))
        assert Path(out["file"]) == path.resolve()
        return path

    def host_credential_api(self, vm_name: str, type_: str = "Microsoft.Compute/virtualMachines") -> Path:
        """A host credential file written from ARM's issueHostCredential (what the CLI does, without the CLI)."""
        from cielo.agent.credential import HostCredentialFile

        issued = self.arm_ok("POST", f"{self.path(type_, vm_name)}/issueHostCredential")
        path = self.work / f"cred-{vm_name}-{secrets.token_hex(3)}.json"
        HostCredentialFile(issued["endpoint"], issued["tenantId"], issued["resourceId"], issued["credential"],
                           self.server.bundle).save(path)
        return path

    # ------------------------------------------------------------------ tokens
    def verify(self, token: str, audience: str) -> dict[str, Any]:
        """The claims of a token signed by this Cielo for `audience` (signature, aud, iss, exp checked)."""
        if not self._keys:
            with self.server.http() as client:
                meta = client.get(f"/{self.tenant}/.well-known/openid-configuration").json()
                self._keys = {"issuer": meta["issuer"].replace("{tenantid}", self.tenant),
                              "jwks": client.get(meta["jwks_uri"]).json()}
        kid = jwt.get_unverified_header(token)["kid"]
        keys = jwt.PyJWKSet.from_dict(self._keys["jwks"])
        key = next(k for k in keys.keys if k.key_id == kid)
        claims: dict[str, Any] = jwt.decode(token, key.key, algorithms=["RS256"], audience=audience,
                                            issuer=self._keys["issuer"])
        return claims

    def check_token(self, token: str, identity: Identity, audience: str = COGNITIVE) -> dict[str, Any]:
        """A managed-identity token as Azure's look (Entra's access-token claims reference)."""
        claims = self.verify(token, audience)
        assert claims["aud"] == audience
        assert claims["idtyp"] == "app"
        assert claims["appid"] == identity.client_id
        assert claims["oid"] == claims["sub"] == identity.principal_id
        assert claims["xms_mirid"] == identity.mirid
        assert "/resourcegroups/" in claims["xms_mirid"]
        assert claims["tid"] == self.tenant
        assert claims["appidacr"] == "2"
        assert claims["ver"] == "1.0"
        assert DAY - 3600 <= claims["exp"] - claims["iat"] <= DAY + 3600  # ~24 h, as real MI tokens
        return claims


def start_mi_server(factory: pytest.TempPathFactory, name: str) -> MiServer:
    """A private server with the mock model on (the caller stops it)."""
    work = factory.mktemp(name)
    return MiServer(start_server(work / "data", env={"CIELO_ENABLE_MOCK_MODEL": "1"}), work)


# ----------------------------------------------------------------------------- host agents
@dataclass
class Agent:
    """A running `cielo agent --credential F --port P` with its own CIELO_CONFIG_DIR."""

    mi: MiServer
    port: int
    config_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def identity_header(self) -> str:
        state = json.loads((self.config_dir / "agent" / f"agent-{self.port}.json").read_text())
        return str(state["identityHeader"])

    def env(self, protocol: str) -> dict[str, str]:
        """What `cielo agent env --port P --protocol X` prints for a workload (test_mi_tokens.py checks that it
        does; built here from the agent's state file, without a CLI process each time)."""
        if protocol == "imds":
            return {"AZURE_POD_IDENTITY_AUTHORITY_HOST": self.base}
        if protocol == "legacy":
            return {"MSI_ENDPOINT": f"{self.base}/msi/legacy", "MSI_SECRET": self.identity_header}
        return {"IDENTITY_ENDPOINT": f"{self.base}/msi/token", "IDENTITY_HEADER": self.identity_header}

    def env_from_cli(self, protocol: str) -> dict[str, str]:
        """`cielo agent env --port P --protocol X`, run with the agent's CIELO_CONFIG_DIR, parsed."""
        env = {k: v for k, v in os.environ.items() if k not in MI_VARIABLES}
        env.update({"CIELO_CONFIG_DIR": str(self.config_dir), "HOME": str(self.mi.work)})
        done = subprocess.run([sys.executable, "-m", "cielo.cli.main", "agent", "env", "--port", str(self.port),
                               "--protocol", protocol], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        assert all(line.startswith("export ") for line in lines), done.stdout
        return dict(line.removeprefix("export ").split("=", 1) for line in lines)  # type: ignore[misc]

    def imds(self, params: dict[str, str] | str, headers: dict[str, str] | None = None) -> httpx.Response:
        """A raw IMDS request (`params` a dict, or a literal query string)."""
        query = params if isinstance(params, str) else httpx.QueryParams(params)
        return _get(f"{self.base}/metadata/identity/oauth2/token?{query}",
                    {"Metadata": "true"} if headers is None else headers)

    def app_service(self, params: dict[str, str] | str, header: str | None = "") -> httpx.Response:
        """A raw App Service request; `header` None sends no X-IDENTITY-HEADER, "" the agent's own."""
        query = params if isinstance(params, str) else httpx.QueryParams(params)
        headers = {"X-IDENTITY-HEADER": self.identity_header if header == "" else header} if header is not None \
            else {}
        return _get(f"{self.base}/msi/token?{query}", headers)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _get(url: str, headers: dict[str, str]) -> httpx.Response:
    """One GET; on a 429 (the agent's own 20-a-second limit, which a fast test module can reach) one more,
    a second later. The rate-limit test itself does not come through here."""
    answer = httpx.get(url, headers=headers, timeout=30)
    if answer.status_code == 429:
        time.sleep(1.05)
        answer = httpx.get(url, headers=headers, timeout=30)
    return answer


def launch_agent(mi: MiServer, credential: Path, name: str, extra_env: dict[str, str] | None = None,
                 port: int | None = None) -> tuple[subprocess.Popen[bytes], Path, Path, int]:
    """Start `cielo agent` (the caller waits for it, or for its exit); `mi.stop()` stops it if it still runs."""
    config_dir = mi.work / f"agent-{name}-config"
    log = mi.work / f"agent-{name}.log"
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if k not in MI_VARIABLES and k != "CIELO_AGENT_IDENTITY_HEADER"}
    env.update({"CIELO_CONFIG_DIR": str(config_dir), "HOME": str(mi.work), "PYTHONDONTWRITEBYTECODE": "1",
                **(extra_env or {})})
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "cielo.cli.main", "agent", "--credential", str(credential),
                                    "--port", str(port), "--no-imds-address"], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env)
    mi.agents.append(Agent(mi, port, config_dir, process, log))
    return process, config_dir, log, port


def start_agent(mi: MiServer, credential: Path, name: str, extra_env: dict[str, str] | None = None,
                port: int | None = None) -> Agent:
    """Start an agent (on `port`, else a free one) and wait until it answers (the caller stops it)."""
    return start_agents(mi, [(credential, name)], extra_env, port)[0]


def start_agents(mi: MiServer, wanted: list[tuple[Path, str]], extra_env: dict[str, str] | None = None,
                 port: int | None = None) -> list[Agent]:
    """Start several agents at once and wait until all answer (the caller stops them)."""
    agents: list[Agent] = []
    for credential, name in wanted:
        # `port` is for a single agent; several each get their own free port, never one already handed out.
        chosen = port if len(wanted) == 1 else None
        while chosen is None or any(a.port == chosen for a in agents):
            chosen = free_port()
        process, config_dir, log, chosen = launch_agent(mi, credential, name, extra_env, chosen)
        agents.append(Agent(mi, chosen, config_dir, process, log))
    waiting = list(agents)
    relaunched = 0
    deadline = time.time() + 30
    try:
        while waiting and time.time() < deadline:
            for agent in list(waiting):
                if agent.process.poll() is not None:
                    # Another process took the free port (Cielo's own check, or uvicorn's bind failing).
                    taken = "is in use" in agent.output() or "address already in use" in agent.output()
                    if taken and relaunched < 3:
                        relaunched += 1
                        credential, name = wanted[agents.index(agent)]
                        process, config_dir, log, port = launch_agent(mi, credential, f"{name}-{relaunched}",
                                                                      extra_env)
                        agent.process, agent.config_dir, agent.log, agent.port = process, config_dir, log, port
                        continue
                    raise RuntimeError(f"cielo agent exited ({agent.process.returncode}):\n{agent.output()}")
                try:
                    ready = httpx.get(f"{agent.base}/metadata/identity/info?api-version=2018-02-01",
                                      headers={"Metadata": "true"}, timeout=2)
                except httpx.HTTPError:
                    continue
                if ready.status_code == 200 and _state_pid(agent) == agent.process.pid:
                    waiting.remove(agent)  # this agent's own process answers, not another one on the same port
            time.sleep(0.05)
        if waiting:
            raise RuntimeError(f"cielo agent did not start:\n{waiting[0].output()}")
    except BaseException:
        for agent in agents:
            agent.stop()
        raise
    return agents


def _state_pid(agent: Agent) -> int | None:
    """The pid in the agent's state file (written once it serves), or None before that."""
    try:
        return int(json.loads((agent.config_dir / "agent" / f"agent-{agent.port}.json").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def use_env(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    """This process's environment as a workload's: only the managed-identity variables given."""
    for name in MI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


class Pacer:
    """Keeps a module's tests under the agent's own limit (20 token requests a second per host): at most
    `per_second` tests start in any second (each test makes at most two requests)."""

    def __init__(self, per_second: int = 9) -> None:
        self.per_second = per_second
        self.starts: deque[float] = deque()

    def wait(self) -> None:
        now = time.monotonic()
        while self.starts and now - self.starts[0] > 1.0:
            self.starts.popleft()
        if len(self.starts) >= self.per_second:
            time.sleep(self.starts[0] + 1.05 - now)
            self.starts.popleft()
        self.starts.append(time.monotonic())
