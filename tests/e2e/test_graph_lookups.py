"""The Graph look-ups az makes to resolve `--assignee` (servicePrincipalNames filter, directoryObjects/getByIds),
with a token for Cielo's own base URL (the `microsoftGraphResourceId` that /metadata/endpoints advertises)."""

from __future__ import annotations

import httpx
import pytest

from support.server import ADMIN_PASSWORD, ADMIN_USER, CLI_CLIENT_ID, CieloServer

pytestmark = pytest.mark.e2e


def _token(server: CieloServer, resource: str) -> str:
    return str(server.token({"client_id": CLI_CLIENT_ID, "grant_type": "password", "username": ADMIN_USER,
                             "password": ADMIN_PASSWORD, "scope": f"{resource}/.default"})["access_token"])


def _get(server: CieloServer, token: str, path: str, **params: str) -> httpx.Response:
    with server.http() as client:
        return client.get("/v1.0" + path, params=params, headers={"Authorization": f"Bearer {token}"})


def test_metadata_points_graph_at_cielo_and_its_token_is_accepted(cielo_server: CieloServer) -> None:
    with cielo_server.http() as client:
        meta = client.get("/metadata/endpoints", params={"api-version": "2022-09-01"}).json()
    resource = meta["microsoftGraphResourceId"]
    assert resource == cielo_server.base_url + "/"
    token = _token(cielo_server, resource)
    me = _get(cielo_server, token, "/me")
    assert me.status_code == 200 and me.json()["userPrincipalName"] == ADMIN_USER
    # A token for another resource is still refused by the Graph API.
    arm = _token(cielo_server, "https://management.core.windows.net/")
    assert _get(cielo_server, arm, "/me").status_code == 401


