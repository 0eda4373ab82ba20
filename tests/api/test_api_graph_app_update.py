"""`PATCH /applications/{id}` with `web.redirectUris` and `publicClient.redirectUris` (az's `ad app update
--web-redirect-uris` / `--public-client-redirect-uris`), in-process: each replaces its own list and leaves the
other's, the sign-in page then takes the new URIs and refuses the dropped ones (AADSTS50011), and the lists are
checked as on create; the rest of `web` / `publicClient` (homePageUrl, implicitGrantSettings) is still refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from inproc import World, error_of, unique


async def _app(client: httpx.AsyncClient, world: World, **body: Any) -> dict[str, Any]:
    answer = await client.post("/v1.0/applications", headers=world.graph,
                               json={"displayName": unique("app-update"), **body})
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def _patch(client: httpx.AsyncClient, world: World, app: dict[str, Any], body: Any) -> httpx.Response:
    return await client.patch(f"/v1.0/applications/{app['id']}", headers=world.graph, json=body)


async def _uris(client: httpx.AsyncClient, world: World, app: dict[str, Any]) -> tuple[list[str], list[str]]:
    shown = (await client.get(f"/v1.0/applications/{app['id']}", headers=world.graph)).json()
    return shown["web"]["redirectUris"], shown["publicClient"]["redirectUris"]


async def _sign_in_page(client: httpx.AsyncClient, world: World, app: dict[str, Any], redirect: str) -> int:
    page = await client.get(f"/{world.tenant}/oauth2/v2.0/authorize", params={
        "client_id": app["appId"], "redirect_uri": redirect, "response_type": "code", "scope": "openid"})
    assert page.status_code == 200 or "AADSTS50011" in page.text, page.text
    return page.status_code


async def test_web_redirect_uris_replace_the_web_list_only(client: httpx.AsyncClient, world: World) -> None:
    app = await _app(client, world, web={"redirectUris": ["https://old.example/cb"]},
                     publicClient={"redirectUris": ["http://localhost:7000/cb"]})
    patched = await _patch(client, world, app, {"web": {"redirectUris": ["https://new.example/cb",
                                                                         "https://new.example/cb2"]}})
    assert patched.status_code == 204, patched.text
    assert await _uris(client, world, app) == (["https://new.example/cb", "https://new.example/cb2"],
                                               ["http://localhost:7000/cb"])
    assert await _sign_in_page(client, world, app, "https://new.example/cb2") == 200
    assert await _sign_in_page(client, world, app, "https://old.example/cb") == 400
    assert await _sign_in_page(client, world, app, "http://localhost:7000/cb") == 200


async def test_public_client_redirect_uris_replace_the_public_list_only(client: httpx.AsyncClient,
                                                                        world: World) -> None:
    app = await _app(client, world, web={"redirectUris": ["https://keep.example/cb"]},
                     publicClient={"redirectUris": ["http://localhost:7000/cb"]})
    patched = await _patch(client, world, app, {"publicClient": {"redirectUris": ["http://localhost:7100/x"]}})
    assert patched.status_code == 204, patched.text
    assert await _uris(client, world, app) == (["https://keep.example/cb"], ["http://localhost:7100/x"])
    assert await _sign_in_page(client, world, app, "http://localhost:7100/x") == 200
    assert await _sign_in_page(client, world, app, "http://localhost/other") == 400


async def test_both_lists_and_other_properties_in_one_update(client: httpx.AsyncClient, world: World) -> None:
    app = await _app(client, world, web={"redirectUris": ["https://a.example/cb"]})
    patched = await _patch(client, world, app, {
        "displayName": "Both", "web": {"@odata.type": "#microsoft.graph.webApplication", "redirectUris": []},
        "publicClient": {"redirectUris": ["http://localhost:9000/cb"]}})
    assert patched.status_code == 204, patched.text
    shown = (await client.get(f"/v1.0/applications/{app['id']}", headers=world.graph)).json()
    assert shown["displayName"] == "Both"
    assert (shown["web"]["redirectUris"], shown["publicClient"]["redirectUris"]) == ([], ["http://localhost:9000/cb"])
    # `web` without redirectUris changes nothing.
    assert (await _patch(client, world, app, {"web": {}})).status_code == 204
    assert await _uris(client, world, app) == ([], ["http://localhost:9000/cb"])


def _invalid(prop: str, reason: str) -> str:
    return f"Invalid value specified for property '{prop}' of resource 'Application': {reason}."


@pytest.mark.parametrize(("body", "says"), [
    ({"web": {"redirectUris": ["https://a.example/cb"], "homePageUrl": "https://a.example"}},
     "Updating property 'web.homePageUrl' of resource 'Application' is not supported by Cielo."),
    ({"web": {"implicitGrantSettings": {"enableIdTokenIssuance": True}}},
     "Updating property 'web.implicitGrantSettings' of resource 'Application' is not supported by Cielo."),
    ({"appRoles": []}, "Updating property 'appRoles' of resource 'Application' is not supported by Cielo."),
    ({"web": None}, _invalid("web", "null is not allowed")),
    ({"publicClient": {"redirectUris": None}}, _invalid("publicClient.redirectUris", "null is not allowed")),
    ({"web": "nope"}, _invalid("web", "an object is expected")),
    ({"web": {"redirectUris": "https://a.example/cb"}}, _invalid("web.redirectUris", "a list is expected")),
    ({"publicClient": {"redirectUris": [5]}}, _invalid("publicClient.redirectUris[0]", "a string is expected")),
    ({"web": {"redirectUris": [f"https://a.example/{i}" for i in range(257)]}},
     _invalid("web.redirectUris", "at most 256 items are allowed")),
])
async def test_what_the_update_still_refuses(client: httpx.AsyncClient, world: World, body: dict[str, Any],
                                             says: str) -> None:
    app = await _app(client, world, web={"redirectUris": ["https://kept.example/cb"]})
    answer = await _patch(client, world, app, body)
    assert error_of(answer, 400, "Request_BadRequest")["message"] == says
    assert await _uris(client, world, app) == (["https://kept.example/cb"], [])  # nothing half-applied
