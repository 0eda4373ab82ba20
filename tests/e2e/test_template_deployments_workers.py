"""Template deployment records are shared by the workers of one server and outlive a restart (docs/templates.md,
Records): on a `--workers 2` server, a deployment made through the REST API is polled through its
`Azure-AsyncOperation` URL over fresh connections (which SO_REUSEPORT spreads over both workers) until it
succeeds, then read (GET, list, operations) the same way; after `cielo up` restarts on the same data directory,
it reads the same."""

from __future__ import annotations

import json
import secrets
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest_dataplane import ARM_RESOURCE

from support.server import CieloServer, start_server

pytestmark = pytest.mark.e2e

DEPLOY_API = "2024-03-01"
TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "rbac-managedidentity.json"
ROUNDS = 8


def _fresh(server: CieloServer, token: str, method: str, url: str, body: Any = None) -> httpx.Response:
    """One request on a connection of its own."""
    full = url if url.startswith("https://") else f"{server.base_url}{url}"
    params = None if "api-version=" in full else {"api-version": DEPLOY_API}
    with httpx.Client(verify=ssl.create_default_context(cafile=server.bundle), timeout=60) as client:
        return client.request(method, full, params=params, json=body, headers={"Authorization": f"Bearer {token}"})


def _reads(server: CieloServer, token: str, rg_path: str, name: str) -> dict[str, Any]:
    deployments = f"{rg_path}/providers/Microsoft.Resources/deployments"
    got = _fresh(server, token, "GET", f"{deployments}/{name}")
    listed = _fresh(server, token, "GET", deployments)
    ops = _fresh(server, token, "GET", f"{rg_path}/deployments/{name}/operations")
    for answer in (got, listed, ops):
        assert answer.status_code == 200, answer.text
    return {"get": got.json(), "list": listed.json()["value"], "operations": ops.json()["value"]}


def test_two_workers_share_a_deployment_and_a_restart_keeps_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data, extra_args=("--workers", "2"))
    try:
        token = server.admin_token(ARM_RESOURCE)
        rg_path = f"/subscriptions/{server.subscription_id}/resourceGroups/rg-{secrets.token_hex(3)}"
        made = _fresh(server, token, "PUT", f"{rg_path}?api-version=2021-04-01", {"location": "local"})
        assert made.status_code == 201, made.text
        name = f"dep-{secrets.token_hex(3)}"
        body = {"properties": {"mode": "Incremental", "template": json.loads(TEMPLATE.read_text()),
                               "parameters": {"managedIdentityName": {"value": f"mi-{secrets.token_hex(3)}"},
                                              "location": {"value": "local"}}}}
        started = _fresh(server, token, "PUT", f"{rg_path}/providers/Microsoft.Resources/deployments/{name}", body)
        assert started.status_code == 201, started.text
        status_url = started.headers["Azure-AsyncOperation"]
        seen: list[str] = []
        for _ in range(600):
            status = _fresh(server, token, "GET", status_url)
            assert status.status_code == 200, status.text  # never a 404 from the worker that does not run it
            seen.append(status.json()["status"])
            if seen[-1] != "Running":
                break
            time.sleep(0.05)
        assert seen[-1] == "Succeeded", status.text
        first = _reads(server, token, rg_path, name)
        assert first["get"]["properties"]["provisioningState"] == "Succeeded"
        assert first["list"] == [first["get"]]
        assert [op["properties"]["provisioningState"] for op in first["operations"]] == ["Succeeded"] * 2
        for _ in range(ROUNDS):
            assert _reads(server, token, rg_path, name) == first
    finally:
        server.stop()
    again = start_server(data, extra_args=("--workers", "2"))
    try:
        assert _reads(again, again.admin_token(ARM_RESOURCE), rg_path, name) == first
    finally:
        again.stop()
