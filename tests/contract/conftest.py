"""A private `cielo up` for the contract tests: the test-only `mock` model deployed on the `cielo-openai` account
(fast, deterministic answers), called over HTTPS with the account's key."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from support.server import CieloServer, start_server

ACCOUNT = "cielo-openai"
MOCK = {"format": "Cielo", "name": "mock", "version": "1"}
ARM_API = "2023-05-01"
# Room for every generated request within the quota windows (10 s and 60 s), max_tokens and n being bounded by
# the test: the contract is about bodies, not rate limits.
CAPACITY = 1000  # the largest the quota allows a deployment


@dataclass
class Contract:
    server: CieloServer
    base_url: str  # `{endpoint}openai`, the specs' server URL
    key: str


def _arm(client: httpx.Client, token: str, method: str, path: str, body: object = None) -> httpx.Response:
    return client.request(method, path, params={"api-version": ARM_API}, json=body,
                          headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="session")
def contract(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Contract]:
    work = tmp_path_factory.mktemp("contract")
    server = start_server(work / "data", env={"CIELO_ENABLE_MOCK_MODEL": "1"})
    try:
        token = server.admin_token("https://management.core.windows.net/")
        account = (f"/subscriptions/{server.subscription_id}/resourceGroups/cielo-rg/providers/"
                   f"Microsoft.CognitiveServices/accounts/{ACCOUNT}")
        with server.http() as client:
            deployed = _arm(client, token, "PUT", f"{account}/deployments/mock", {
                "sku": {"name": "Standard", "capacity": CAPACITY}, "properties": {"model": MOCK}})
            assert deployed.status_code in (200, 201), deployed.text
            keys = _arm(client, token, "POST", f"{account}/listKeys")
            assert keys.status_code == 200, keys.text
            endpoint = _arm(client, token, "GET", account).json()["properties"]["endpoint"]
        yield Contract(server, f"{endpoint}openai", keys.json()["key1"])
    finally:
        server.stop()
