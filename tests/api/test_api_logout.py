"""The end_session_endpoint the discovery documents name (`/{tenant}/oauth2/v2.0/logout` and the v1 one): a
signed-out page, or the browser sent to a post_logout_redirect_uri the application registered (with its state), and
a URI it did not register never followed."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from inproc import World, unique


@pytest.mark.parametrize("version", ["v2.0/", ""])
async def test_the_advertised_endpoint_answers(client: httpx.AsyncClient, world: World, version: str) -> None:
    discovery = (await client.get(f"/{world.tenant}/{'v2.0/' if version else ''}.well-known/openid-configuration"))
    endpoint = discovery.json()["end_session_endpoint"]
    page = await client.get(urlparse(endpoint).path)
    assert page.status_code == 200 and "signed out" in page.text
    assert page.headers["cache-control"] == "no-store"


async def test_a_registered_uri_is_followed_with_its_state(client: httpx.AsyncClient, world: World) -> None:
    made = await client.post("/v1.0/applications", headers=world.graph, json={
        "displayName": unique("logout-app"), "web": {"redirectUris": ["https://app.example/signed-out"]}})
    app_id = made.json()["appId"]
    followed = await client.get(f"/{world.tenant}/oauth2/v2.0/logout", params={
        "client_id": app_id, "post_logout_redirect_uri": "https://app.example/signed-out", "state": "s1"})
    assert followed.status_code == 302
    location = urlparse(followed.headers["location"])
    assert (location.netloc, location.path, parse_qs(location.query)) == ("app.example", "/signed-out",
                                                                         {"state": ["s1"]})
    for params in ({"client_id": app_id, "post_logout_redirect_uri": "https://evil.example/x"},
                   {"post_logout_redirect_uri": "https://app.example/signed-out"}):
        refused = await client.get(f"/{world.tenant}/oauth2/v2.0/logout", params=params)
        assert refused.status_code == 400 and "not followed" in refused.text and "AADSTS50011" in refused.text
        assert "location" not in refused.headers


async def test_an_unknown_tenant(client: httpx.AsyncClient) -> None:
    answer = await client.get("/nowhere.example/oauth2/v2.0/logout")
    assert answer.status_code == 400 and "AADSTS90002" in answer.text
