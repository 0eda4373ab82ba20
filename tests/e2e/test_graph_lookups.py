"""The Graph look-ups az makes to resolve `--assignee` (servicePrincipalNames filter, directoryObjects/getByIds),
with a token for Cielo's own base URL (the `microsoftGraphResourceId` that /metadata/endpoints advertises)."""

from __future__ import annotations

from typing import Any

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


def test_service_principal_names_filter_and_get_by_ids(cielo_server: CieloServer) -> None:
    app = cielo_server.create_app("graph-lookup")
    token = _token(cielo_server, cielo_server.base_url + "/")
    found = _get(cielo_server, token, "/servicePrincipals",
                 **{"$filter": f"servicePrincipalNames/any(c:c eq '{app['appId']}')"})
    assert found.status_code == 200, found.text
    assert [sp["id"] for sp in found.json()["value"]] == [app["spObjectId"]]
    me = _get(cielo_server, token, "/me").json()
    body: dict[str, Any] = {"ids": [app["spObjectId"], me["id"], "00000000-0000-0000-0000-000000000001"],
                            "types": ["user", "group", "servicePrincipal", "directoryObjectPartnerReference"]}
    with cielo_server.http() as client:
        objects = client.post("/v1.0/directoryObjects/getByIds", json=body,
                              headers={"Authorization": f"Bearer {token}"}).json()["value"]
    types = {o["id"]: o["@odata.type"] for o in objects}
    assert types == {app["spObjectId"]: "#microsoft.graph.servicePrincipal", me["id"]: "#microsoft.graph.user"}
    with cielo_server.http() as client:
        only_users = client.post("/v1.0/directoryObjects/getByIds", json={**body, "types": ["user"]},
                                 headers={"Authorization": f"Bearer {token}"}).json()["value"]
        bad = client.post("/v1.0/directoryObjects/getByIds", json={"ids": "x"},
                          headers={"Authorization": f"Bearer {token}"})
    assert [o["id"] for o in only_users] == [me["id"]]
    assert bad.status_code == 400
