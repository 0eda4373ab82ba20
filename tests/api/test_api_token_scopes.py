"""Which resource a token request names, in-process (identity/issuance.py through the token endpoint): v2 `scope`
and v1 `resource`, a first-party API, Cielo's own base URL (its Graph-compatible API, for az's registered cloud),
an application registered with an identifier URI or named by its app id (its token version decides `aud`), and
the refusals (no scope, no resource, two resources, an unknown resource). Callers are applications with client
credentials."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pytest
from inproc import BASE_URL, COG_RESOURCE, Principal, World, new_principal, oauth_error, unique


@pytest.fixture()
async def caller(client: httpx.AsyncClient, world: World) -> Principal:
    return await new_principal(client, world)


def _claims(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    claims: dict[str, Any] = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    return claims


def _form(caller: Principal, **fields: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": caller.app_id, "client_secret": caller.secret, **fields}


async def test_first_party_and_cielos_own_api(client: httpx.AsyncClient, world: World, caller: Principal) -> None:
    v2 = _claims(await client.post(world.token_url(), data=_form(caller, scope=f"{COG_RESOURCE}/.default")))
    assert v2["aud"] == COG_RESOURCE
    v1 = _claims(await client.post(world.token_url(v1=True), data=_form(caller, resource=COG_RESOURCE)))
    assert v1["aud"] == COG_RESOURCE
    own = _claims(await client.post(world.token_url(), data=_form(caller, scope=f"{BASE_URL}/.default")))
    assert own["aud"] == BASE_URL


@pytest.mark.parametrize("token_version", [1, 2])
async def test_a_registered_api(client: httpx.AsyncClient, world: World, caller: Principal,
                                token_version: int) -> None:
    uri = f"api://{unique('my-api')}"
    app = await client.post("/v1.0/applications", headers=world.graph, json={
        "displayName": uri, "identifierUris": [uri], "api": {"requestedAccessTokenVersion": token_version}})
    assert app.status_code == 201, app.text
    app_id = app.json()["appId"]
    by_uri = _claims(await client.post(world.token_url(), data=_form(caller, scope=f"{uri}/.default")))
    by_id = _claims(await client.post(world.token_url(), data=_form(caller, scope=f"api://{app_id}/.default")))
    expected = app_id if token_version == 2 else uri
    assert by_uri["aud"] == expected
    assert by_id["aud"] == (app_id if token_version == 2 else f"api://{app_id}")
    assert by_uri["ver"] == ("2.0" if token_version == 2 else "1.0")


@pytest.mark.parametrize(("v1", "fields", "error", "aadsts"), [
    (False, {}, "invalid_request", 900144),
    (True, {}, "invalid_request", 900144),
    (False, {"scope": f"{COG_RESOURCE}/.default https://management.azure.com/.default"}, "invalid_scope", 70011),
    (False, {"scope": "api://nothing-registered-here/.default"}, "invalid_resource", 500011),
    (True, {"resource": "https://unknown.example"}, "invalid_resource", 500011),
])
async def test_refusals(client: httpx.AsyncClient, world: World, caller: Principal, v1: bool,
                        fields: dict[str, str], error: str, aadsts: int) -> None:
    answer = await client.post(world.token_url(v1=v1), data=_form(caller, **fields))
    body = oauth_error(answer, 400, error, aadsts)
    if aadsts == 900144:
        assert ("'resource'" if v1 else "'scope'") in body["error_description"]
