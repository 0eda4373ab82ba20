"""Uniqueness across worker processes: concurrent writes through a `cielo up --workers 2` decided by the database.

Each race sends its requests at once, one connection each (the kernel spreads connections over both workers),
and checks Azure's answers: exactly one 201, the others the conflict Azure gives (never a 500), and the resource
manager answering afterwards. Before uniqueness moved into the database, two workers could both store the same
principal, role and scope, and every later index reload failed on the duplicate: from then on every ARM call
answered 409 RoleAssignmentExists, across restarts.
"""

from __future__ import annotations

import collections
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from arm_support import API_VERSION, COGNITIVE_API_VERSION, READER, Arm, new_name

from fixtures.make_release_datadir import FIXTURE
from support.server import CieloServer, start_server

pytestmark = pytest.mark.e2e

RACERS = 24
RD_WRITE_BODY = {"permissions": [{"actions": ["Microsoft.Resources/subscriptions/resourceGroups/read"]}]}


@pytest.fixture(scope="module")
def arm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arm]:
    server = start_server(tmp_path_factory.mktemp("integrity") / "data", extra_args=("--workers", "2"))
    try:
        client = Arm(server)
        yield client
        client.close()
    finally:
        server.stop()


Request = tuple[str, str, Any]  # method, path (with query), JSON body


def race(server: CieloServer, token: str, requests: list[Request]) -> list[httpx.Response]:
    """Send the requests at the same moment, each on its own (already connected) connection."""
    clients = [server.http() for _ in requests]
    for client in clients:
        assert client.get("/healthz").status_code == 200  # connect (TLS) before the start line
    start = threading.Barrier(len(requests))

    def send(i: int) -> httpx.Response:
        method, path, body = requests[i]
        start.wait()
        return clients[i].request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})

    try:
        with ThreadPoolExecutor(len(requests)) as pool:
            return list(pool.map(send, range(len(requests))))
    finally:
        for client in clients:
            client.close()


def outcome(responses: list[httpx.Response]) -> collections.Counter[tuple[int, str]]:
    def code(response: httpx.Response) -> str:
        if response.status_code < 400:
            return ""
        try:
            return str(response.json()["error"]["code"])
        except (ValueError, KeyError, TypeError):
            return response.text[:60]
    return collections.Counter((r.status_code, code(r)) for r in responses)


def assignment_body(principal: str, role: str = READER) -> dict[str, Any]:
    return {"properties": {"roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{role}",
                           "principalId": principal}}


def stored_assignments(server: CieloServer, principal: str) -> list[str]:
    connection = sqlite3.connect(f"file:{server.data_dir / 'cielo.db'}?mode=ro", uri=True, timeout=30)
    try:
        return [row[0] for row in connection.execute(
            "SELECT name FROM role_assignments WHERE principal_id = ?", (principal,))]
    finally:
        connection.close()


def assert_arm_answers(arm: Arm) -> None:
    """What a wedged index broke: a list, a read, a write and a delete by the administrator."""
    listed = arm.call("GET", arm.ra_path(arm.sub_path), arm.admin)
    assert listed.status_code == 200, listed.text
    assert arm.call("GET", arm.rg_path("cielo-rg"), arm.admin).status_code == 200
    sp = arm.new_sp("after-race")
    name = arm.assign(READER, sp, arm.sub_path)
    arm.unassign(arm.sub_path, name)


def test_one_principal_role_and_scope_under_many_names_stores_one(arm: Arm) -> None:
    rounds = []
    for _ in range(4):  # the old in-memory check let a duplicate through in about one round of six
        principal = arm.new_sp("race").object_id
        names = [str(uuid.uuid4()) for _ in range(RACERS)]
        responses = race(arm.server, arm.admin.token, [
            ("PUT", f"{arm.ra_path(arm.sub_path, name)}?api-version={API_VERSION}", assignment_body(principal))
            for name in names])
        rounds.append(outcome(responses))
        assert rounds[-1] == {(201, ""): 1, (409, "RoleAssignmentExists"): RACERS - 1}, rounds
        winner = next(name for name, r in zip(names, responses, strict=True) if r.status_code == 201)
        for response in responses:
            if response.status_code == 409:  # names the one that exists, as Azure does
                assert response.json()["error"]["message"].endswith(
                    f"The ID of the existing role assignment is {winner.replace('-', '')}."), response.text
        assert stored_assignments(arm.server, principal) == [winner]
    assert_arm_answers(arm)


def test_one_name_put_at_once_is_created_once(arm: Arm) -> None:
    principal = arm.new_sp("same-name").object_id
    name = str(uuid.uuid4())
    path = f"{arm.ra_path(arm.sub_path, name)}?api-version={API_VERSION}"
    responses = race(arm.server, arm.admin.token, [("PUT", path, assignment_body(principal))] * RACERS)
    # The same PUT again is idempotent in Azure (200 with the assignment), whichever worker answers it.
    assert outcome(responses) == {(201, ""): 1, (200, ""): RACERS - 1}, outcome(responses)
    assert {r.json()["name"] for r in responses} == {name}
    assert stored_assignments(arm.server, principal) == [name]
    assert_arm_answers(arm)


def test_one_name_for_different_principals_at_once_is_created_once(arm: Arm) -> None:
    principals = [arm.new_sp("name-clash").object_id for _ in range(8)]
    name = str(uuid.uuid4())
    path = f"{arm.ra_path(arm.sub_path, name)}?api-version={API_VERSION}"
    responses = race(arm.server, arm.admin.token, [("PUT", path, assignment_body(p)) for p in principals])
    assert outcome(responses) == {(201, ""): 1, (409, "RoleAssignmentUpdateNotPermitted"): 7}, outcome(responses)
    assert_arm_answers(arm)


def test_one_user_principal_name_created_at_once_makes_one_user(arm: Arm) -> None:
    upn = f"{new_name('twin')}@cielo.local"
    body = {"userPrincipalName": upn, "displayName": "Twin", "passwordProfile": {"password": "Twin-Passw0rd!x"}}
    responses = race(arm.server, arm.server.admin_token(), [("POST", "/v1.0/users", body)] * 12)
    assert outcome(responses) == {(201, ""): 1, (400, "Request_BadRequest"): 11}, outcome(responses)
    for response in responses:
        if response.status_code == 400:  # Graph's answer for a taken userPrincipalName
            assert response.json()["error"]["message"] == (
                "Another object with the same value for property userPrincipalName already exists.")
    users = arm.graph("GET", "/users")["value"]
    assert [u["userPrincipalName"] for u in users].count(upn) == 1


def test_one_subdomain_for_accounts_created_at_once_goes_to_one(arm: Arm) -> None:
    rg = arm.new_rg("subdomain-race")
    subdomain = new_name("shared")
    requests: list[Request] = [
        ("PUT", f"{arm.account_path(rg, new_name('acct'))}?api-version={COGNITIVE_API_VERSION}",
         {"location": "local", "kind": "OpenAI", "sku": {"name": "S0"},
          "properties": {"customSubDomainName": subdomain}}) for _ in range(8)]
    assert outcome(race(arm.server, arm.admin.token, requests)) == {(201, ""): 1, (409, "CustomDomainInUse"): 7}
    accounts = arm.call("GET", f"{arm.rg_path(rg)}/providers/Microsoft.CognitiveServices/accounts", arm.admin)
    assert len(accounts.json()["value"]) == 1


def test_one_custom_role_name_created_at_once_makes_one_role(arm: Arm) -> None:
    role_name = new_name("Race Reader")
    body = {"properties": {"roleName": role_name, **RD_WRITE_BODY, "assignableScopes": [arm.sub_path]}}
    requests: list[Request] = [
        ("PUT", f"{arm.rd_path(arm.sub_path, str(uuid.uuid4()))}?api-version={API_VERSION}", body)
        for _ in range(8)]
    assert outcome(race(arm.server, arm.admin.token, requests)) == {
        (201, ""): 1, (409, "RoleDefinitionWithSameNameExists"): 7}
    listed = arm.call("GET", arm.rd_path(arm.sub_path), arm.admin,
                      params={"$filter": f"roleName eq '{role_name}'"})
    assert len(listed.json()["value"]) == 1


# ----------------------------------------------------------------------------- a duplicate already stored
def test_a_duplicate_an_old_release_stored_does_not_wedge_the_resource_manager(tmp_path: Path) -> None:
    """Into a data directory of the previous release, the duplicate its workers could store: the same principal,
    role and scope under a second name. Today's Cielo starts, keeps the oldest, says which one it removed, and
    the resource manager answers."""
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    (data / "manifest.json").unlink()
    duplicate = str(uuid.uuid4())
    connection = sqlite3.connect(data / "cielo.db")
    original = connection.execute("SELECT name, principal_id FROM role_assignments WHERE role_definition_name = ?",
                                  (READER,)).fetchone()
    connection.execute(
        "INSERT INTO role_assignments SELECT ?, scope, scope_key, tenant_id, role_definition_name, principal_id, "
        "principal_type, description, condition, condition_version, created_on + 60, updated_on + 60, created_by, "
        "updated_by FROM role_assignments WHERE name = ?", (duplicate, original[0]))
    connection.commit()
    connection.close()
    server = start_server(data, extra_args=("--workers", "2"))
    try:
        assert f"removed role assignment {duplicate}" in server.log_text()
        arm = Arm(server)
        listed = arm.assignments(arm.sub_path, f"principalId eq '{original[1]}'")
        assert [a["name"] for a in listed] == [original[0]]
        assert_arm_answers(arm)
        # The same principal, role and scope again: refused, naming the one that stayed.
        again = arm.call("PUT", arm.ra_path(arm.sub_path, str(uuid.uuid4())), arm.admin, assignment_body(original[1]))
        assert again.status_code == 409 and again.json()["error"]["code"] == "RoleAssignmentExists"
        arm.unassign(arm.sub_path, original[0])
        arm.close()
    finally:
        server.stop()


