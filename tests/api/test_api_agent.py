"""The managed-identity host agent in-process: its ASGI app (agent/server.py) with its real TokenSource, whose
HTTP client reaches the in-process Cielo app (`/cielo/managed-identity/token|check`), and a workload calling the
agent through httpx.ASGITransport. IMDS, App Service 2019-08-01 and the legacy MSI protocol: selectors, each
protocol's refusals and error shapes, the token cache and revocation, the rate limits, and a 500 in the
protocol's shape. (tests/e2e/test_mi_*.py and tests/security/test_sec_agent.py run the real `cielo agent`.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import httpx
import jwt
import pytest
from inproc import BASE_URL, COG_RESOURCE, RG, World, arm_call, assign, unique

from cielo.agent import server as agent_server
from cielo.agent import upstream
from cielo.agent.credential import HostCredentialFile
from cielo.agent.hosts import HostAllowList
from cielo.agent.server import build_app
from cielo.agent.upstream import Failure, TokenSource

AGENT = "http://127.0.0.1:8100"
HEADER = "h" * 40
IMDS = "/metadata/identity/oauth2/token"
IMDS_Q = {"api-version": "2018-02-01", "resource": COG_RESOURCE}
APP_Q = {"api-version": "2019-08-01", "resource": COG_RESOURCE}
META = {"Metadata": "true"}
NOT_FOUND = {"error": "invalid_request", "error_description": "Identity not found"}


@dataclass
class Host:
    vm_id: str
    mirid: str
    system: str  # the system-assigned identity's object id
    uami: dict[str, Any]  # properties of the attached user-assigned identity: clientId, principalId
    uami_id: str
    other: dict[str, Any]  # a user-assigned identity attached to nothing
    credential: str
    other_id: str = ""


@dataclass
class Agent:
    host: Host
    source: TokenSource
    client: httpx.AsyncClient

    def __getattr__(self, name: str) -> Any:
        return getattr(self.host, name)

    @property
    def agent(self) -> httpx.AsyncClient:
        return self.client


def _cielo_client(world: World) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=world.app), base_url=BASE_URL)


async def _uami(client: httpx.AsyncClient, world: World, name: str) -> tuple[str, dict[str, Any]]:
    answer = await arm_call(client, world, "PUT", f"{world.rg_path(RG)}/providers/Microsoft.ManagedIdentity/"
                            f"userAssignedIdentities/{name}", {})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"], answer.json()["properties"]


async def _new_host(world: World) -> Host:
    """A VM with a system-assigned identity and one user-assigned identity, and its host credential."""
    async with _cielo_client(world) as client:
        uami_id, uami = await _uami(client, world, unique("agent-uami"))
        other_id, other = await _uami(client, world, unique("agent-other"))
        vm_path = f"{world.rg_path(RG)}/providers/Microsoft.Compute/virtualMachines/{unique('agent-vm')}"
        created = await arm_call(client, world, "PUT", vm_path, {"identity": {
            "type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {uami_id: {}}}})
        assert created.status_code == 201, created.text
        issued = await arm_call(client, world, "POST", f"{vm_path}/issueHostCredential")
    assert issued.status_code == 200, issued.text
    assert issued.json()["resourceId"] == vm_path and issued.json()["tenantId"] == world.tenant
    mirid = vm_path.replace("/resourceGroups/", "/resourcegroups/")
    return Host(vm_path, mirid, created.json()["identity"]["principalId"], uami, uami_id, other,
                issued.json()["credential"], other_id)


async def _delete_host(world: World, host: Host) -> None:
    """The VM (its system identity, role assignments and host credentials go with it) and both identities."""
    async with _cielo_client(world) as client:
        for path in (host.vm_id, host.uami_id, host.other_id):
            answer = await arm_call(client, world, "DELETE", path.replace("/resourcegroups/", "/resourceGroups/"))
            assert answer.status_code in (200, 204), answer.text


def _through(transport: httpx.AsyncBaseTransport) -> SimpleNamespace:
    """agent/upstream.py's `httpx`, whose AsyncClient goes through `transport` (the same requests, no socket)."""
    def client(*, base_url: str, verify: Any, timeout: float) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=transport, base_url=base_url, timeout=timeout)

    return SimpleNamespace(AsyncClient=client, HTTPError=httpx.HTTPError)


def agent_for(world: World, credential: str, source: Any = None,
              hosts: HostAllowList | None = None) -> tuple[TokenSource, httpx.AsyncClient]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(upstream, "httpx", _through(httpx.ASGITransport(app=world.app)))
        token_source = TokenSource(HostCredentialFile(BASE_URL, world.tenant, "unused", credential, None))
    app = build_app(source or token_source, HEADER, world.tenant, hosts)
    return token_source, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=AGENT)


@pytest.fixture(scope="module")
def shared_host(world: World) -> Iterator[Host]:
    """One host for the tests that change nothing on it (each still gets its own agent, so its own cache)."""
    host = asyncio.run(_new_host(world))
    yield host
    asyncio.run(_delete_host(world, host))


async def _agent(world: World, host: Host) -> AsyncIterator[Agent]:
    source, agent = agent_for(world, host.credential)
    yield Agent(host, source, agent)
    await agent.aclose()
    await source.close()


@pytest.fixture()
async def host(world: World, shared_host: Host) -> AsyncIterator[Agent]:
    async for agent in _agent(world, shared_host):
        yield agent


@pytest.fixture()
async def own_host(world: World) -> AsyncIterator[Agent]:
    """A host of the test's own, which it may change."""
    host = await _new_host(world)
    async for agent in _agent(world, host):
        yield agent
    await _delete_host(world, host)


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def test_imds_default_is_the_system_identity_and_its_token_works(world: World, own_host: Agent,
                                                                     client: httpx.AsyncClient) -> None:
    host = own_host
    answer = await host.agent.get(IMDS, params=IMDS_Q, headers=META)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"access_token", "refresh_token", "expires_in", "expires_on", "ext_expires_in", "not_before",
                         "resource", "token_type", "client_id", "object_id"}
    assert all(isinstance(v, str) for v in body.values())  # IMDS's numbers are strings
    assert (body["resource"], body["token_type"], body["object_id"]) == (COG_RESOURCE, "Bearer", host.system)
    claims = _claims(body["access_token"])
    assert (claims["aud"], claims["oid"], claims["tid"], claims["xms_mirid"]) == (
        COG_RESOURCE, host.system, world.tenant, host.mirid)
    assert str(claims["exp"]) == body["expires_on"] and str(claims["nbf"]) == body["not_before"]
    assert "xms_az_rid" not in claims
    # The token is Azure OpenAI's, once the identity holds a data role.
    url = world.openai_url("chat/completions")
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await client.post(url, json=chat, headers=bearer)).status_code == 401
    await assign(client, world, "Cognitive Services User", host.system, world.account_path())
    assert (await client.post(url, json=chat, headers=bearer)).status_code == 200


@pytest.mark.parametrize(("path", "selector", "headers"), [
    (IMDS, "client_id", META), (IMDS, "object_id", META), (IMDS, "msi_res_id", META), (IMDS, "mi_res_id", META),
    ("/msi/token", "client_id", {"X-IDENTITY-HEADER": HEADER}),
    ("/msi/token/", "principal_id", {"X-IDENTITY-HEADER": HEADER}),
    ("/msi/token", "mi_res_id", {"X-IDENTITY-HEADER": HEADER}),
    ("/msi/legacy", "clientid", {"secret": HEADER}), ("/msi/legacy", "resource_id", {"secret": HEADER}),
])
async def test_each_protocol_selects_the_user_assigned_identity(host: Agent, path: str, selector: str,
                                                                headers: dict[str, str]) -> None:
    ids = {"client_id": host.uami["clientId"], "clientid": host.uami["clientId"],
           "object_id": host.uami["principalId"], "principal_id": host.uami["principalId"]}
    value = ids.get(selector, host.uami_id)
    params = {**(IMDS_Q if path == IMDS else APP_Q), selector: value}
    answer = await host.agent.get(path, params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["client_id"] == host.uami["clientId"]
    claims = _claims(body["access_token"])
    assert claims["oid"] == host.uami["principalId"]
    assert claims["xms_mirid"].lower() == host.uami_id.lower() and claims["xms_az_rid"] == host.vm_id
    if path == IMDS:
        assert body["msi_res_id"] == claims["xms_mirid"]
    else:  # App Service and the legacy protocol: fewer fields, an integer epoch as a string
        assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
        assert body["expires_on"] == str(claims["exp"])


@pytest.mark.parametrize(("path", "headers", "expected"), [
    (IMDS, META, (400, NOT_FOUND)),
    ("/msi/token", {"X-IDENTITY-HEADER": HEADER}, (400, {"statusCode": 400, "message": "Identity not found"})),
    ("/msi/legacy", {"secret": HEADER}, (400, {"statusCode": 400, "message": "Identity not found"})),
])
async def test_an_identity_not_attached_to_this_host_is_not_found(host: Agent, path: str, headers: dict[str, str],
                                                                  expected: tuple[int, dict[str, Any]]) -> None:
    params = {**(IMDS_Q if path == IMDS else APP_Q), "client_id": host.other["clientId"]}
    answer = await host.agent.get(path, params=params, headers=headers)
    assert (answer.status_code, answer.json()) == expected


def _imds(status: int, error: str, description: str) -> tuple[int, dict[str, str]]:
    return status, {"error": error, "error_description": description}


NEWEST = ["2020-10-01", "2020-09-01", "2020-07-15"]


@pytest.mark.parametrize(("query", "headers", "expected"), [
    ("api-version=2018-02-01&resource=x", {}, _imds(400, "bad_request_102", "Required metadata header not specified")),
    ("api-version=2018-02-01&resource=x", {**META, "X-Forwarded-For": "10.0.0.1"},
     _imds(400, "invalid_request", "Request rejected: the X-Forwarded-For header is not allowed.")),
    ("resource=x", META, (400, {"error": "Bad request. api-version was not specified in the request. For more "
                                "information refer to aka.ms/azureimds", "newest-versions": NEWEST})),
    ("api-version=2017-01-01&resource=x", META, (400, {
        "error": "Bad request. api-version is invalid or was not specified in the request. For more information "
                 "refer to aka.ms/azureimds", "newest-versions": NEWEST})),
    ("api-version=2018-02-01", META, _imds(400, "invalid_request", "Required query variable 'resource' is missing")),
    ("api-version=2018-02-01&resource=x&resource=y", META,
     _imds(400, "invalid_request", "A query parameter is duplicated.")),
    ("api-version=2018-02-01&resource=x&client_id=a&object_id=b", META,
     _imds(400, "invalid_request", "Only one of client_id, object_id and msi_res_id may be given.")),
    ("api-version=2018-02-01&resource=x", {**META, "Content-Length": "5000"},
     _imds(413, "invalid_request", agent_server.BODY_TOO_LARGE)),
    ("api-version=2018-02-01&resource=x", {**META, "Content-Length": "12a"},
     _imds(413, "invalid_request", agent_server.BODY_TOO_LARGE)),
    ("api-version=2018-02-01&resource=https://unknown.example", META, _imds(
        400, "invalid_resource", "AADSTS500011: The resource principal named https://unknown.example was not found in "
        "the tenant named {tenant}.")),
])
async def test_imds_refusals(world: World, host: Agent, query: str, headers: dict[str, str],
                             expected: tuple[int, dict[str, Any]]) -> None:
    answer = await host.agent.get(f"{IMDS}?{query}", headers=headers)
    status, body = expected
    if "error_description" in body:
        body = {**body, "error_description": body["error_description"].format(tenant=world.tenant)}
    assert (answer.status_code, answer.json()) == (status, body)


ONCE = "The resource parameter is required, once."


def _app(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"statusCode": status, "message": message}


@pytest.mark.parametrize(("path", "query", "headers", "expected"), [
    ("/msi/token", "api-version=2019-08-01&resource=x", {}, _app(401, "The X-IDENTITY-HEADER is missing or wrong.")),
    ("/msi/token", "api-version=2019-08-01&resource=x", {"X-IDENTITY-HEADER": HEADER[:-1]},
     _app(401, "The X-IDENTITY-HEADER is missing or wrong.")),
    ("/msi/token", "api-version=2017-09-01&resource=x", {"X-IDENTITY-HEADER": HEADER},
     _app(400, "api-version 2019-08-01 is required, once.")),
    ("/msi/token", "api-version=2019-08-01", {"X-IDENTITY-HEADER": HEADER},
     _app(400, "The resource parameter is required.")),
    ("/msi/token", "api-version=2019-08-01&resource=x&client_id=a&principal_id=b", {"X-IDENTITY-HEADER": HEADER},
     _app(400, "Only one of client_id, principal_id and mi_res_id may be given.")),
    ("/msi/token", "api-version=2019-08-01&resource=x", {"X-IDENTITY-HEADER": HEADER, "Content-Length": "4097"},
     _app(413, agent_server.BODY_TOO_LARGE)),
    ("/msi/legacy", "api-version=2017-09-01&resource=x", {"secret": "nope"},
     _app(401, "The secret header is missing or wrong.")),
    ("/msi/legacy", "api-version=2017-09-01", {"secret": HEADER}, _app(400, ONCE)),
    ("/msi/legacy", "resource=x&resource=x", {"secret": HEADER}, _app(400, ONCE)),
    ("/msi/legacy", "resource=x&clientid=a&msi_res_id=b", {"secret": HEADER},
     _app(400, "Only one of clientid, object_id and msi_res_id may be given.")),
    ("/msi/legacy", "resource=x", {"secret": HEADER, "Content-Length": "99999"},
     _app(413, agent_server.BODY_TOO_LARGE)),
])
async def test_app_service_and_legacy_refusals(host: Agent, path: str, query: str, headers: dict[str, str],
                                               expected: tuple[int, dict[str, Any]]) -> None:
    answer = await host.agent.get(f"{path}?{query}", headers=headers)
    assert (answer.status_code, answer.json()) == expected


async def test_a_chunked_body_past_the_limit_is_refused(host: Agent) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * 1024

    small = await host.agent.request("GET", IMDS, params=IMDS_Q, headers=META, content=b"")
    assert small.status_code == 200, small.text
    big = await host.agent.request("GET", IMDS, params=IMDS_Q, headers=META, content=chunks())
    assert big.status_code == 413 and big.json()["error_description"] == agent_server.BODY_TOO_LARGE


@pytest.mark.parametrize(("host_header", "path", "allowed"), [
    ("127.0.0.1:8100", IMDS, True), ("localhost", IMDS, True), ("[::1]:8100", IMDS, True),
    ("169.254.169.254", IMDS, True), ("LOCALHOST.", IMDS, True), ("sidecar", IMDS, True),
    ("evil.example", IMDS, False), ("evil.example:8100", "/msi/token", False), ("127.0.0.1:99999", IMDS, False),
    ("::1", IMDS, False), ("[::1", IMDS, False), ("[::1]x", IMDS, False), ("bad_host!", IMDS, False),
])
async def test_only_requests_naming_the_agent_are_answered(world: World, host: Agent, host_header: str, path: str,
                                                           allowed: bool) -> None:
    _, agent = agent_for(world, host.credential, host.source, HostAllowList(["sidecar"]))
    async with agent:
        headers = {**META, "X-IDENTITY-HEADER": HEADER, "Host": host_header}
        answer = await agent.get(path, params=IMDS_Q if path == IMDS else APP_Q, headers=headers)
    if allowed:
        assert answer.status_code == 200, answer.text
    elif path.startswith("/msi/"):
        assert (answer.status_code, answer.json()["statusCode"]) == (400, 400)
        assert "Host header" in answer.json()["message"]
    else:
        assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")
        assert "Host header" in answer.json()["error_description"]


async def test_info_names_the_tenant(world: World, host: Agent) -> None:
    assert (await host.agent.get("/metadata/identity/info", headers=META)).json() == {"tenantId": world.tenant}
    assert (await host.agent.get("/metadata/identity/info")).status_code == 400
    too_big = await host.agent.get("/metadata/identity/info", headers={**META, "Content-Length": "5000"})
    assert too_big.status_code == 413


async def test_a_cached_token_is_served_only_while_its_host_and_identity_hold(world: World, own_host: Agent,
                                                                             client: httpx.AsyncClient) -> None:
    host = own_host
    first = (await host.agent.get(IMDS, params=IMDS_Q, headers=META)).json()
    again = (await host.agent.get(IMDS, params=IMDS_Q, headers=META)).json()
    assert again["access_token"] == first["access_token"]  # from the cache, after Cielo's check
    # A trailing slash is another resource, so another token.
    other = (await host.agent.get(IMDS, params={**IMDS_Q, "resource": COG_RESOURCE + "/"}, headers=META)).json()
    assert other["access_token"] != first["access_token"] and other["resource"] == COG_RESOURCE + "/"
    # The system identity is removed: the cached token is not served any more.
    removed = await arm_call(client, world, "PATCH", host.vm_id, {"identity": {
        "type": "UserAssigned", "userAssignedIdentities": {host.uami_id: {}}}})
    assert removed.status_code == 200, removed.text
    after = await host.agent.get(IMDS, params={**IMDS_Q, "object_id": host.system}, headers=META)
    assert (after.status_code, after.json()) == (400, NOT_FOUND)
    # With one user-assigned identity left, it is the default (asked for another resource: nothing cached).
    default = await host.agent.get(IMDS, params={**IMDS_Q, "resource": "https://graph.microsoft.com"}, headers=META)
    assert default.status_code == 200 and default.json()["client_id"] == host.uami["clientId"]
    # The host credential is revoked: nothing more, cached or not.
    revoked = await arm_call(client, world, "POST", f"{host.vm_id}/revokeHostCredentials")
    assert revoked.json() == {"revoked": 1}
    again = await arm_call(client, world, "POST", f"{host.vm_id}/revokeHostCredentials")
    assert again.json() == {"revoked": 0}  # how many this call revoked: none were left
    for params in (IMDS_Q, {**IMDS_Q, "resource": "https://management.azure.com/"}):
        refused = await host.agent.get(IMDS, params=params, headers=META)
        assert (refused.status_code, refused.json()) == _imds(
            401, "unauthorized_client", "The host credential is not valid or was revoked.")


async def test_a_cached_token_is_not_served_for_an_identity_the_default_no_longer_is(
        world: World, own_host: Agent, client: httpx.AsyncClient) -> None:
    host = own_host
    first = (await host.agent.get(IMDS, params=IMDS_Q, headers=META)).json()
    assert first["object_id"] == host.system
    removed = await arm_call(client, world, "PATCH", host.vm_id, {"identity": {
        "type": "UserAssigned", "userAssignedIdentities": {host.uami_id: {}}}})
    assert removed.status_code == 200, removed.text
    default = await host.agent.get(IMDS, params=IMDS_Q, headers=META)
    assert default.status_code == 200
    assert (default.json()["object_id"], default.json()["client_id"]) == (host.uami["principalId"],
                                                                          host.uami["clientId"])


async def test_two_user_assigned_identities_and_no_system_one_need_a_selector(world: World,
                                                                             client: httpx.AsyncClient) -> None:
    one, _ = await _uami(client, world, unique("agent-u1"))
    two, _ = await _uami(client, world, unique("agent-u2"))
    vm_path = f"{world.rg_path(RG)}/providers/Microsoft.Compute/virtualMachines/{unique('agent-vm2')}"
    created = await arm_call(client, world, "PUT", vm_path, {"identity": {
        "type": "UserAssigned", "userAssignedIdentities": {one: {}, two: {}}}})
    assert created.status_code == 201, created.text
    credential = (await arm_call(client, world, "POST", f"{vm_path}/issueHostCredential")).json()["credential"]
    source, agent = agent_for(world, credential)
    async with agent:
        answer = await agent.get(IMDS, params=IMDS_Q, headers=META)
        assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")
        assert answer.json()["error_description"].startswith("Multiple user assigned identities exist")
        # A user-assigned identity deleted after it was attached is gone from the host too.
        assert (await arm_call(client, world, "DELETE", one.replace("/resourcegroups/", "/resourceGroups/"))
                ).status_code == 200
        gone = await agent.get(IMDS, params={**IMDS_Q, "msi_res_id": one}, headers=META)
        assert (gone.status_code, gone.json()) == (400, NOT_FOUND)
    await source.close()
    # The VM is deleted: its host credential goes with it.
    await arm_call(client, world, "DELETE", vm_path)
    await arm_call(client, world, "DELETE", two.replace("/resourcegroups/", "/resourceGroups/"))
    source, agent = agent_for(world, credential)
    async with agent:
        refused = await agent.get(IMDS, params=IMDS_Q, headers=META)
    await source.close()
    assert (refused.status_code, refused.json()["error"]) == (401, "unauthorized_client")


@pytest.mark.parametrize(("authorization", "form", "expected"), [
    (None, {"resource": COG_RESOURCE}, _imds(401, "unauthorized_client", "A host credential is required.")),
    ("Bearer {credential}", {"resource": COG_RESOURCE}, _imds(401, "unauthorized_client",
                                                               "A host credential is required.")),
    ("HostCredential nothing.here", {"resource": COG_RESOURCE},
     _imds(401, "unauthorized_client", "The host credential is not valid or was revoked.")),
    ("HostCredential {credential}", {"resource": " "},
     _imds(400, "invalid_request", "Required query variable 'resource' is missing")),
    ("HostCredential {credential}", {"resource": COG_RESOURCE, "client_id": "a", "object_id": "b"},
     _imds(400, "invalid_request", "Only one of client_id, object_id and msi_res_id/mi_res_id may be given.")),
])
async def test_cielo_managed_identity_endpoint_refusals(host: Agent, client: httpx.AsyncClient,
                                                        authorization: str | None, form: dict[str, str],
                                                        expected: tuple[int, dict[str, Any]]) -> None:
    headers = {"Authorization": authorization.format(credential=host.credential)} if authorization else {}
    for path in ("/cielo/managed-identity/token", "/cielo/managed-identity/check"):
        answer = await client.post(path, data=form, headers=headers)
        assert (answer.status_code, answer.json()) == expected


async def test_cielo_managed_identity_endpoint_form_limit_and_check(host: Agent, client: httpx.AsyncClient) -> None:
    headers = {"Authorization": f"HostCredential {host.credential}"}
    big = await client.post("/cielo/managed-identity/token", data={"resource": "x" * 20_000}, headers=headers)
    assert big.status_code == 413 and big.json()["error"] == "invalid_request"
    check = await client.post("/cielo/managed-identity/check", data={"resource": COG_RESOURCE}, headers=headers)
    assert check.json() == {"valid": True, "client_id": check.json()["client_id"], "object_id": host.system}
    assert "access_token" not in check.json()


class FakeSource:
    """A token source the test controls: answers, fails or blocks."""

    def __init__(self, result: Any = None, gate: asyncio.Event | None = None) -> None:
        self.result = result
        self.gate = gate
        self.entered = 0

    async def token(self, resource: str, selector: tuple[str, str] | None) -> dict[str, Any]:
        self.entered += 1
        if self.gate is not None:
            await self.gate.wait()
        if isinstance(self.result, BaseException):
            raise self.result
        return {"access_token": "t", "expires_on": 2_000_000_000, "not_before": 1, "resource": resource,
                "client_id": "c", "object_id": "o"}

    async def close(self) -> None:
        pass


def _fake_agent(source: FakeSource) -> httpx.AsyncClient:
    app = build_app(source, HEADER, "tenant")  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url=AGENT)


async def test_twenty_requests_a_second_then_429(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("cielo.agent.server.time.monotonic", lambda: now[0])
    async with _fake_agent(FakeSource()) as agent:
        statuses = [(await agent.get(IMDS, params=IMDS_Q, headers=META)).status_code for _ in range(20)]
        assert statuses == [200] * 20
        over = await agent.get("/msi/token", params=APP_Q, headers={"X-IDENTITY-HEADER": HEADER})
        assert (over.status_code, over.json()) == _app(429, agent_server.TOO_MANY)
        over = await agent.get("/msi/legacy", params=APP_Q, headers={"secret": HEADER})
        assert over.status_code == 429
        now[0] += 1.01  # a second later the window has room again
        assert (await agent.get(IMDS, params=IMDS_Q, headers=META)).status_code == 200


async def test_five_at_a_time_then_429() -> None:
    gate = asyncio.Event()
    source = FakeSource(gate=gate)
    async with _fake_agent(source) as agent:
        waiting = [asyncio.create_task(agent.get(IMDS, params=IMDS_Q, headers=META)) for _ in range(5)]
        while source.entered < 5:
            await asyncio.sleep(0)
        sixth = await agent.get(IMDS, params=IMDS_Q, headers=META)
        assert (sixth.status_code, sixth.json()) == _imds(429, "too_many_requests", agent_server.TOO_MANY)
        gate.set()
        assert [(await task).status_code for task in waiting] == [200] * 5
        assert (await agent.get(IMDS, params=IMDS_Q, headers=META)).status_code == 200


@pytest.mark.parametrize(("path", "headers"), [
    (IMDS, META), ("/msi/token", {"X-IDENTITY-HEADER": HEADER}), ("/msi/legacy", {"secret": HEADER})])
async def test_an_upstream_failure_keeps_its_status_in_the_protocol_shape(path: str, headers: dict[str, str]) -> None:
    async with _fake_agent(FakeSource(Failure(403, "forbidden", "no"))) as agent:
        answer = await agent.get(path, params=IMDS_Q if path == IMDS else APP_Q, headers=headers)
    expected = _imds(403, "forbidden", "no") if path == IMDS else _app(403, "no")
    assert (answer.status_code, answer.json()) == expected


@pytest.mark.parametrize(("path", "headers"), [(IMDS, META), ("/msi/token", {"X-IDENTITY-HEADER": HEADER})])
async def test_an_unexpected_failure_is_a_500_in_the_protocol_shape(path: str, headers: dict[str, str]) -> None:
    async with _fake_agent(FakeSource(RuntimeError("boom: secret-value"))) as agent:
        answer = await agent.get(path, params=IMDS_Q if path == IMDS else APP_Q, headers=headers)
    assert answer.status_code == 500
    body = answer.json()
    if path == IMDS:
        assert body["error"] == "server_error" and "request id" in body["error_description"]
    else:
        assert body["statusCode"] == 500 and "request id" in body["message"]
    assert "boom" not in answer.text


async def test_cielo_out_of_reach_is_a_500_naming_it(world: World, host: Agent) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(upstream, "httpx", _through(httpx.MockTransport(refuse)))
        source = TokenSource(HostCredentialFile("https://127.0.0.1:1", world.tenant, "r", host.credential, None))
    with pytest.raises(Failure) as caught:
        await source.token(COG_RESOURCE, None)
    assert (caught.value.status, caught.value.error) == (500, "unknown")
    assert caught.value.description == "Failed to reach Cielo at https://127.0.0.1:1: ConnectError"
    await source.close()
