"""Three replicas sharing PostgreSQL and Redis behave as one Cielo: a write through one is read through the others,
a token from one is valid on all, a role revoked through one is denied by the others at the next request, a quota
is exact across them, a refresh token is redeemed once whichever replicas race for it, and killing one leaves the
others serving with nothing lost."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import httpx
from replicas import Cluster, kill

from support.server import ADMIN_PASSWORD, ADMIN_USER, CLI_CLIENT_ID, CieloServer

ARM = "https://management.core.windows.net/"
ARM_API = "2023-05-01"  # Microsoft.CognitiveServices
RG_API = "2024-11-01"  # Microsoft.Resources
RBAC_API = "2022-04-01"
DATA_API = "2024-10-21"
OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"
ACCOUNT = "cielo-openai"
RG = "cielo-rg"
MOCK = {"format": "Cielo", "name": "mock", "version": "1"}
CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def arm(server: CieloServer, token: str, method: str, path: str, body: Any = None,
        api_version: str = ARM_API) -> httpx.Response:
    with server.http() as client:
        return client.request(method, path, params={"api-version": api_version}, json=body,
                              headers={"Authorization": f"Bearer {token}"})


def account_path(c: Cluster) -> str:
    return f"/subscriptions/{c.subscription_id}/resourceGroups/{RG}/providers/Microsoft.CognitiveServices/accounts/" \
        f"{ACCOUNT}"


def chat(server: CieloServer, token: str, deployment: str) -> httpx.Response:
    with server.http() as client:
        return client.post(f"/accounts/{ACCOUNT}/openai/deployments/{deployment}/chat/completions",
                           params={"api-version": DATA_API}, json=CHAT, headers={"Authorization": f"Bearer {token}"})


def deploy(c: Cluster, admin: str, name: str, capacity: int) -> list[dict[str, Any]]:
    put = arm(c.replicas[0], admin, "PUT", f"{account_path(c)}/deployments/{name}",
              {"sku": {"name": "Standard", "capacity": capacity}, "properties": {"model": MOCK}})
    assert put.status_code in (200, 201), put.text
    return list(put.json()["properties"]["rateLimits"])


def openai_user(c: Cluster, admin: str, name: str) -> tuple[str, str]:
    """A service principal holding Cognitive Services OpenAI User on the account: (its token, the assignment)."""
    app = c.replicas[0].create_app(f"{name}-{uuid.uuid4().hex[:6]}")
    assignment = str(uuid.uuid4())
    put = arm(c.replicas[0], admin, "PUT", f"{account_path(c)}/providers/Microsoft.Authorization/roleAssignments/"
              f"{assignment}", {"properties": {
                  "roleDefinitionId": f"/subscriptions/{c.subscription_id}/providers/Microsoft.Authorization/"
                                      f"roleDefinitions/{OPENAI_USER}",
                  "principalId": app["spObjectId"], "principalType": "ServicePrincipal"}}, RBAC_API)
    assert put.status_code == 201, put.text
    token = c.replicas[1].token({"client_id": app["appId"], "client_secret": app["secret"],
                                 "grant_type": "client_credentials",
                                 "scope": "https://cognitiveservices.azure.com/.default"})["access_token"]
    return str(token), f"{account_path(c)}/providers/Microsoft.Authorization/roleAssignments/{assignment}"


def test_a_write_on_one_is_read_on_the_others_and_tokens_are_valid_everywhere(replicas: Cluster) -> None:
    one, two, three = replicas.replicas
    admin = one.admin_token(ARM)
    group = f"/subscriptions/{replicas.subscription_id}/resourceGroups/rg-{uuid.uuid4().hex[:8]}"
    assert arm(two, admin, "PUT", group, {"location": "local"}, RG_API).status_code == 201  # one's token, on another
    for server in (one, three):
        got = arm(server, admin, "GET", group, api_version=RG_API)
        assert got.status_code == 200 and got.json()["id"] == group, got.text
    other = three.admin_token(ARM)  # signed by the third with the shared key, valid on the first
    assert arm(one, other, "DELETE", group, api_version=RG_API).status_code in (200, 202)
    assert arm(two, admin, "GET", group, api_version=RG_API).status_code == 404


def test_a_role_revoked_through_one_is_denied_by_the_others_at_the_next_request(replicas: Cluster) -> None:
    one, two, three = replicas.replicas
    admin = one.admin_token(ARM)
    deploy(replicas, admin, "mock", 500)
    token, assignment = openai_user(replicas, admin, "revoked")
    for server in (two, three):  # allowed, and remembered by each replica's grant cache
        for _ in range(2):
            assert chat(server, token, "mock").status_code == 200
    assert arm(one, admin, "DELETE", assignment, api_version=RBAC_API).status_code == 200
    for server in (two, three):  # the very next request, no waiting
        denied = chat(server, token, "mock")
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "PermissionDenied", denied.text


def test_quota_is_exact_across_replicas(replicas: Cluster) -> None:
    admin = replicas.replicas[0].admin_token(ARM)
    limits = deploy(replicas, admin, "tight", 20)
    allowed = next(int(rule["count"]) for rule in limits if rule["key"] == "request")
    period = next(int(rule["renewalPeriod"]) for rule in limits if rule["key"] == "request")
    token, _ = openai_user(replicas, admin, "quota")
    while time.time() % period > 1.0:  # a burst well inside one request window
        time.sleep(0.05)

    async def burst() -> list[int]:
        clients = [httpx.AsyncClient(base_url=s.base_url, verify=s.bundle, timeout=30) for s in replicas.replicas]
        try:
            calls = [clients[i % len(clients)].post(
                f"/accounts/{ACCOUNT}/openai/deployments/tight/chat/completions", params={"api-version": DATA_API},
                json=CHAT, headers={"Authorization": f"Bearer {token}"}) for i in range(3 * allowed)]
            return [r.status_code for r in await asyncio.gather(*calls)]
        finally:
            for client in clients:
                await client.aclose()

    started = time.time()
    statuses = asyncio.run(burst())
    assert time.time() - started < period - 1.5, "the burst outlasted its window: the count would not be exact"
    assert statuses.count(200) == allowed and statuses.count(429) == 2 * allowed, statuses


def test_a_refresh_token_is_redeemed_once_whichever_replicas_race(replicas: Cluster) -> None:
    """Single use is the database's conditional UPDATE (store/grants.py): exact on a shared PostgreSQL."""
    one = replicas.replicas[0]
    first = one.token({"client_id": CLI_CLIENT_ID, "grant_type": "password", "username": ADMIN_USER,
                       "password": ADMIN_PASSWORD, "scope": f"{ARM}.default offline_access"})
    refresh = first["refresh_token"]

    async def race() -> list[httpx.Response]:
        clients = [httpx.AsyncClient(base_url=s.base_url, verify=s.bundle, timeout=30) for s in replicas.replicas]
        try:
            form = {"client_id": CLI_CLIENT_ID, "grant_type": "refresh_token", "refresh_token": refresh,
                    "scope": f"{ARM}.default offline_access"}
            return list(await asyncio.gather(*[
                clients[i % 3].post(f"/{replicas.tenant_id}/oauth2/v2.0/token", data=form) for i in range(6)]))
        finally:
            for client in clients:
                await client.aclose()

    answers = asyncio.run(race())
    assert [r.status_code for r in answers].count(200) == 1, [r.text for r in answers]
    winner = next(r for r in answers if r.status_code == 200).json()
    assert all(r.json()["error"] == "invalid_grant" for r in answers if r.status_code != 200)
    # The replay revoked the family: the winner's new refresh token is refused on every replica too.
    with replicas.replicas[2].http() as client:
        again = client.post(f"/{replicas.tenant_id}/oauth2/v2.0/token", data={
            "client_id": CLI_CLIENT_ID, "grant_type": "refresh_token", "refresh_token": winner["refresh_token"],
            "scope": f"{ARM}.default offline_access"})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant", again.text


def test_killing_one_replica_mid_load_loses_nothing(replicas: Cluster) -> None:
    """Writes go round-robin to all three; the third is killed (-9) halfway. Every write any replica acknowledged
    is read back from the survivors, and the survivors never failed a request."""
    admin = replicas.replicas[0].admin_token(ARM)
    acknowledged: list[str] = []
    failures: list[str] = []
    victim_errors = 0
    stop = threading.Event()

    def load() -> None:
        nonlocal victim_errors
        clients = [s.http() for s in replicas.replicas]
        index = 0
        while not stop.is_set():
            server = index % 3
            index += 1
            group = f"/subscriptions/{replicas.subscription_id}/resourceGroups/kill-{uuid.uuid4().hex[:8]}"
            try:
                answer = clients[server].put(group, params={"api-version": RG_API}, json={"location": "local"},
                                             headers={"Authorization": f"Bearer {admin}"})
            except httpx.HTTPError as exc:
                if server == 2:
                    victim_errors += 1
                else:
                    failures.append(f"replica {server}: {exc!r}")
                continue
            if answer.status_code == 201:
                acknowledged.append(group)
            elif server != 2:
                failures.append(f"replica {server}: {answer.status_code} {answer.text[:200]}")
        for client in clients:
            client.close()

    worker = threading.Thread(target=load)
    worker.start()
    time.sleep(3)
    kill(replicas.replicas[2])
    time.sleep(3)
    stop.set()
    worker.join(30)
    assert not failures, failures[:5]
    assert victim_errors > 0 and len(acknowledged) > 10  # the kill landed mid-load
    survivors = replicas.replicas[:2]
    with survivors[0].http() as a, survivors[1].http() as b:
        for group in acknowledged:
            for client in (a, b):
                got = client.get(group, params={"api-version": RG_API}, headers={"Authorization": f"Bearer {admin}"})
                assert got.status_code == 200, (group, got.status_code)
