"""Stored responses are shared by the workers of one server (docs/responses.md, Storage): on a `--workers 2`
server, a response created through one connection is retrieved, chained and deleted through fresh connections,
which SO_REUSEPORT spreads over both workers. The deployment serves the test-only `mock` model."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from conftest_dataplane import ARM_RESOURCE, MOCK, DataPlane

from support.server import start_server

pytestmark = pytest.mark.e2e

ROUNDS = 12


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataPlane]:
    work = tmp_path_factory.mktemp("responses-workers")
    server = start_server(work / "data", extra_args=("--workers", "2"), env={"CIELO_ENABLE_MOCK_MODEL": "1"})
    plane = DataPlane(server, work)
    try:
        plane.arm_token = server.admin_token(ARM_RESOURCE)
        plane.account_id = plane.account_path("cielo-openai")
        account = plane.arm("GET", plane.account_id)
        assert account.status_code == 200, account.text
        plane.endpoint = str(account.json()["properties"]["endpoint"])
        plane.deploy("mock", MOCK, 100)
        plane.app = plane.new_app("responses-workers")  # Cognitive Services OpenAI User
        yield plane
    finally:
        plane.close()


def _fresh(plane: DataPlane, method: str, path: str, token: str, body: object = None) -> httpx.Response:
    """One request on a connection of its own."""
    with httpx.Client(verify=plane.tls(), timeout=60) as client:
        return client.request(method, f"{plane.endpoint}openai/v1/responses{path}", json=body,
                              headers={"Authorization": f"Bearer {token}"})


def test_every_worker_finds_the_stored_responses(two_workers: DataPlane) -> None:
    token = two_workers.sp_token()
    made = _fresh(two_workers, "POST", "", token, {"model": "mock", "input": "first"})
    assert made.status_code == 200, made.text
    previous = made.json()["id"]
    for turn in range(ROUNDS):
        seen = _fresh(two_workers, "GET", f"/{previous}", token)
        assert seen.status_code == 200, seen.text
        chained = _fresh(two_workers, "POST", "", token, {"model": "mock", "input": f"turn {turn}",
                                                           "previous_response_id": previous})
        assert chained.status_code == 200, chained.text
        assert chained.json()["previous_response_id"] == previous
        previous = chained.json()["id"]
    items = _fresh(two_workers, "GET", f"/{previous}/input_items", token)
    assert [i["content"][0]["text"] for i in items.json()["data"]] == [f"turn {ROUNDS - 1}"]
    assert _fresh(two_workers, "DELETE", f"/{previous}", token).json()["deleted"] is True
    for _ in range(4):
        assert _fresh(two_workers, "GET", f"/{previous}", token).status_code == 404
