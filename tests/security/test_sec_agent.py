"""Attacks on managed identities: what a host agent and Cielo's managed-identity endpoint refuse, each with Azure's
answer (learn.microsoft.com/azure/virtual-machines/instance-metadata-service,
learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token). A request that may come
from off the host (no `Metadata: true`, an `X-Forwarded-For`), a workload without the App Service identity header or
the legacy MSI secret, an identity not attached to this host (by client id, object id or resource id, on every
protocol), another host's or a revoked host credential, a credential file others may read, and a flood of requests
(429).

VM A has a system-assigned identity and user-assigned `uami-a`; VM B only a system-assigned one; VM C
two user-assigned identities and no system one; `uami-x` is attached to nothing. Each VM has its own
agent (subprocess), all against one private Cielo. (The agent's Host header check is test_sec_host.py's.)
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential
from mi_support import (
    COGNITIVE,
    COGNITIVE_SCOPE,
    MI_VARIABLES,
    RG,
    Agent,
    Identity,
    MiServer,
    Pacer,
    launch_agent,
    start_agent,
    start_agents,
    start_mi_server,
    use_env,
)

pytestmark = pytest.mark.e2e

IMDS_VERSION = {"api-version": "2018-02-01", "resource": COGNITIVE}
APP_VERSION = {"api-version": "2019-08-01", "resource": COGNITIVE}
NOT_FOUND = {"error": "invalid_request", "error_description": "Identity not found"}
NO_METADATA = {"error": "bad_request_102", "error_description": "Required metadata header not specified"}
NO_API_VERSION = {"error": "Bad request. api-version was not specified in the request. For more information refer "
                           "to aka.ms/azureimds", "newest-versions": ["2020-10-01", "2020-09-01", "2020-07-15"]}


@dataclass
class World:
    mi: MiServer
    a: Agent
    b: Agent
    c: Agent
    a_system: Identity
    b_system: Identity
    uami_a: Identity
    uami_c1: Identity
    uami_c2: Identity
    uami_x: Identity
    cred_a: Path
    cred_b: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    mi = start_mi_server(tmp_path_factory, "mi-attacks")
    try:
        uami_a, uami_c1, uami_c2, uami_x = (mi.create_uami(n) for n in ("uami-a", "uami-c1", "uami-c2", "uami-x"))
        a_system = mi.system_identity(mi.put_vm("vm-a", uamis=(uami_a,)))
        b_system = mi.system_identity(mi.put_vm("vm-b"))
        mi.put_vm("vm-c", system=False, uamis=(uami_c1, uami_c2))
        cred_a, cred_b, cred_c = (mi.host_credential_api(n) for n in ("vm-a", "vm-b", "vm-c"))
        agents = start_agents(mi, [(cred_a, "a"), (cred_b, "b"), (cred_c, "c")])
        yield World(mi, *agents, a_system, b_system, uami_a, uami_c1, uami_c2, uami_x, cred_a, cred_b)
    finally:
        mi.stop()  # every agent started in this module, then the server


_PACER = Pacer()


@pytest.fixture(autouse=True)
def _paced() -> None:
    _PACER.wait()


# ----------------------------------------------------------------------------- IMDS request rules
def test_imds_requires_the_metadata_header(world: World) -> None:
    for headers in ({}, {"Metadata": "True"}, {"Metadata": "false"}):
        answer = world.a.imds(IMDS_VERSION, headers=headers)
        assert answer.status_code == 400, headers
        assert answer.json() == NO_METADATA


def test_imds_refuses_x_forwarded_for(world: World) -> None:
    answer = world.a.imds(IMDS_VERSION, headers={"Metadata": "true", "X-Forwarded-For": "203.0.113.7"})
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert "access_token" not in answer.text


def test_duplicated_query_parameters_are_refused(world: World) -> None:
    dup_resource = f"api-version=2018-02-01&resource={COGNITIVE}&resource=https://management.azure.com/"
    dup_selector = (f"api-version=2018-02-01&resource={COGNITIVE}&client_id={world.uami_a.client_id}"
                    f"&client_id={world.uami_x.client_id}")
    for query in (dup_resource, dup_selector, f"api-version=2018-02-01&api-version=2018-02-01&resource={COGNITIVE}"):
        answer = world.a.imds(query)
        assert answer.status_code == 400, query
        assert answer.json()["error"] == "invalid_request"
    answer = world.a.app_service(f"api-version=2019-08-01&resource={COGNITIVE}&resource={COGNITIVE}")
    assert answer.status_code == 400
    assert answer.json()["statusCode"] == 400


def test_missing_api_version_gets_imds_exact_error(world: World) -> None:
    answer = world.a.imds({"resource": COGNITIVE})
    assert answer.status_code == 400
    assert answer.json() == NO_API_VERSION


def test_several_selectors_at_once_are_refused(world: World) -> None:
    answer = world.a.imds({**IMDS_VERSION, "client_id": world.uami_a.client_id,
                           "object_id": world.uami_a.principal_id})
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"


# ----------------------------------------------------------------------------- App Service and legacy secrets
def test_wrong_identity_header_is_refused(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    for header in ("wrong", None, world.a.identity_header + "x", world.b.identity_header):
        answer = world.a.app_service(APP_VERSION, header=header)
        assert answer.status_code == 401, header
        assert answer.json()["statusCode"] == 401
        assert "access_token" not in answer.text
    for headers in ({"secret": "wrong"}, {}, {"secret": world.b.identity_header},
                    {"X-IDENTITY-HEADER": world.a.identity_header}):
        legacy = httpx.get(f"{world.a.base}/msi/legacy", params={"api-version": "2017-09-01", "resource": COGNITIVE},
                           headers=headers)
        assert legacy.status_code == 401, headers
        assert "access_token" not in legacy.text
    use_env(monkeypatch, {**world.a.env("appservice"), "IDENTITY_HEADER": "not-the-agents-secret"})
    with pytest.raises(ClientAuthenticationError):
        ManagedIdentityCredential().get_token(COGNITIVE_SCOPE)


# ----------------------------------------------------------------------------- identity selection
def test_user_assigned_identity_not_attached_is_not_found(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    x = world.uami_x
    for selector in ({"client_id": x.client_id}, {"object_id": x.principal_id}, {"msi_res_id": x.resource_id}):
        answer = world.a.imds({**IMDS_VERSION, **selector})
        assert answer.status_code == 400, selector
        assert answer.json() == NOT_FOUND
    for selector in ({"client_id": x.client_id}, {"principal_id": x.principal_id}, {"object_id": x.principal_id},
                     {"mi_res_id": x.resource_id}):
        answer = world.a.app_service({**APP_VERSION, **selector})
        assert answer.status_code == 400, selector
        assert answer.json() == {"statusCode": 400, "message": "Identity not found"}
    use_env(monkeypatch, world.a.env("imds"))
    with pytest.raises(ClientAuthenticationError, match=r"not found|not been assigned|Identity"):
        ManagedIdentityCredential(client_id=x.client_id).get_token(COGNITIVE_SCOPE)


def test_several_user_assigned_identities_and_no_selector(world: World) -> None:
    answer = world.c.imds(IMDS_VERSION)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert "Multiple user assigned identities" in answer.json()["error_description"]
    chosen = world.c.imds({**IMDS_VERSION, "client_id": world.uami_c1.client_id})
    assert chosen.status_code == 200, chosen.text
    world.mi.check_token(chosen.json()["access_token"], world.uami_c1)


def test_detached_identity_is_refused_at_once(world: World) -> None:
    """A cached token is not served once its identity is detached from the VM."""
    c2 = world.uami_c2
    assert world.c.imds({**IMDS_VERSION, "client_id": c2.client_id}).status_code == 200
    world.mi.arm_ok("PATCH", world.mi.path("Microsoft.Compute/virtualMachines", "vm-c"),
                    {"identity": {"type": "UserAssigned", "userAssignedIdentities": {c2.resource_id: None}}})
    answer = world.c.imds({**IMDS_VERSION, "client_id": c2.client_id})
    assert answer.status_code == 400
    assert answer.json() == NOT_FOUND
    # The other one is still there, and now the only one: no selector needed.
    world.mi.check_token(world.c.imds(IMDS_VERSION).json()["access_token"], world.uami_c1)


# ----------------------------------------------------------------------------- host credentials
def test_another_hosts_credential_cannot_reach_this_vms_identities(world: World) -> None:
    """B's agent (B's credential) asks for A's identities: not found. Its own identity is B's."""
    for selector in ({"client_id": world.uami_a.client_id}, {"object_id": world.uami_a.principal_id},
                     {"object_id": world.a_system.principal_id}, {"client_id": world.a_system.client_id},
                     {"msi_res_id": world.uami_a.resource_id}):
        answer = world.b.imds({**IMDS_VERSION, **selector})
        assert answer.status_code == 400, selector
        assert answer.json() == NOT_FOUND
    own = world.b.imds(IMDS_VERSION)
    assert own.status_code == 200
    world.mi.check_token(own.json()["access_token"], world.b_system)

    # Straight to Cielo with B's credential: the same. A forged or missing credential: 401.
    cred_a = json.loads(world.cred_a.read_text())["credential"]
    cred_b = json.loads(world.cred_b.read_text())["credential"]
    with world.mi.server.http() as client:
        def ask(authorization: str | None, form: dict[str, str]) -> httpx.Response:
            headers = {"Authorization": authorization} if authorization is not None else {}
            return client.post("/cielo/managed-identity/token", data=form, headers=headers)

        answer = ask(f"HostCredential {cred_b}", {"resource": COGNITIVE, "client_id": world.uami_a.client_id})
        assert answer.status_code == 400 and answer.json() == NOT_FOUND
        forged = cred_a.split(".")[0] + "." + cred_b.split(".", 1)[1]
        for authorization in (f"HostCredential {forged}", None, f"Bearer {cred_a}", "HostCredential x.y"):
            answer = ask(authorization, {"resource": COGNITIVE})
            assert answer.status_code == 401, authorization
            assert answer.json()["error"] == "unauthorized_client"


def test_revoked_host_credential(world: World) -> None:
    mi = world.mi
    mi.put_vm("vm-revoked")
    agent = start_agent(mi, mi.host_credential("vm-revoked"), "revoked")  # `vm agent-credential --file`
    try:
        assert agent.imds(IMDS_VERSION).status_code == 200
        assert mi.cli.json("vm", "agent-credential", "-g", RG, "-n", "vm-revoked", "--revoke") == {"revoked": 1}
        # The agent holds a cached token, but serves it only while Cielo accepts the credential.
        answer = agent.imds(IMDS_VERSION)
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"] == "unauthorized_client"
        assert agent.app_service(APP_VERSION).status_code == 401
    finally:
        agent.stop()
    # A new credential enrolls a new agent; the revoked one stays revoked.
    fresh = start_agent(mi, mi.host_credential_api("vm-revoked"), "re-enrolled")
    try:
        assert fresh.imds(IMDS_VERSION).status_code == 200
    finally:
        fresh.stop()


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_credential_file_readable_by_others_is_refused_at_start(world: World, mode: int) -> None:
    loose = world.mi.work / f"loose-{mode:o}.json"
    shutil.copyfile(world.cred_b, loose)
    os.chmod(loose, mode)
    process, config_dir, log, port = launch_agent(world.mi, loose, f"loose-{mode:o}")
    try:
        assert process.wait(30) == 1
    finally:
        if process.poll() is None:
            process.kill()
    output = log.read_text()
    assert "readable by others" in output and "chmod 600" in output, output
    assert not (config_dir / "agent" / f"agent-{port}.json").exists()  # it never served


def test_credential_naming_a_missing_ca_bundle_is_refused_at_start(world: World) -> None:
    moved = world.mi.work / "moved-host.json"
    data = json.loads(world.cred_b.read_text())
    moved.write_text(json.dumps({**data, "caBundle": str(world.mi.work / "not-copied" / "bundle.pem")}))
    os.chmod(moved, 0o600)
    process, _config_dir, log, _port = launch_agent(world.mi, moved, "moved")
    try:
        assert process.wait(30) == 1
    finally:
        if process.poll() is None:
            process.kill()
    output = log.read_text()
    assert "ERROR: cannot use" in output and "caBundle" in output and "Traceback" not in output, output


def test_identity_header_from_the_environment(world: World) -> None:
    """A sidecar: the agent and its workload get the same header from one secret (agent-deployment.md)."""
    header = "s3cret-shared-by-agent-and-workload-0123456789"
    agent = start_agent(world.mi, world.cred_b, "fixed-header", {"CIELO_AGENT_IDENTITY_HEADER": header})
    try:
        assert agent.identity_header == header
        assert agent.env_from_cli("appservice")["IDENTITY_HEADER"] == header
        answer = agent.app_service(APP_VERSION, header=header)
        assert answer.status_code == 200, answer.text
        world.mi.check_token(answer.json()["access_token"], world.b_system)
    finally:
        agent.stop()
    process, _config_dir, log, _port = launch_agent(world.mi, world.cred_b, "short-header",
                                                    {"CIELO_AGENT_IDENTITY_HEADER": "too-short"})
    assert process.wait(30) == 1
    assert "at least 32 characters" in log.read_text()


def test_agent_without_a_running_agent_env_fails(world: World) -> None:
    env = {k: v for k, v in os.environ.items() if k not in MI_VARIABLES}
    env["CIELO_CONFIG_DIR"] = str(world.mi.work / "nobody-config")
    done = subprocess.run([sys.executable, "-m", "cielo.cli.main", "agent", "env", "--port", "1"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "no agent is running" in done.stderr


# ----------------------------------------------------------------------------- rate limit (last: it uses B up)
async def _burst(url: str, headers: dict[str, str], count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=count)) as client:
        return list(await asyncio.gather(*(client.get(url, headers=headers) for _ in range(count))))


def test_rate_limit_answers_429(world: World) -> None:
    """IMDS's managed-identity limits, per host: 20 requests a second and 5 at a time; beyond, 429. The limit is
    the host's, so the App Service endpoint has it too. (Last in this module: A and B have been idle a while.)"""
    imds_url = f"{world.b.base}/metadata/identity/oauth2/token?{httpx.QueryParams(IMDS_VERSION)}"
    answers = asyncio.run(_burst(imds_url, {"Metadata": "true"}, 30))
    counts = Counter(a.status_code for a in answers)
    assert set(counts) == {200, 429}, counts
    assert counts[200] <= 20
    limited = next(a for a in answers if a.status_code == 429)
    assert set(limited.json()) == {"error", "error_description"}
    assert limited.json()["error"] == "too_many_requests"

    app_url = f"{world.a.base}/msi/token?{httpx.QueryParams(APP_VERSION)}"
    answers = asyncio.run(_burst(app_url, {"X-IDENTITY-HEADER": world.a.identity_header}, 30))
    counts = Counter(a.status_code for a in answers)
    assert set(counts) == {200, 429}, counts
    assert counts[200] <= 20
    assert next(a for a in answers if a.status_code == 429).json()["statusCode"] == 429

    time.sleep(1.05)  # a second later the host is served again
    assert world.b.imds(IMDS_VERSION).status_code == 200
