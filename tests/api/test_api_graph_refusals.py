"""What the directory API refuses, in-process, in Graph's error shape (`Request_BadRequest` 400,
`Request_ResourceNotFound` 404): groups and applications without their required properties, a token version
that does not exist, a secret that ends in the past, a certificate that is not one, federated credentials without
their fields or with a plain-http issuer or a taken name, and deleting a managed identity's service principal
(it goes with its resource)."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from inproc import RG, World, arm_call, error_of, unique


async def _app(client: httpx.AsyncClient, world: World) -> dict[str, Any]:
    answer = await client.post("/v1.0/applications", json={"displayName": unique("refusals")}, headers=world.graph)
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


@pytest.mark.parametrize(("path", "body", "says"), [
    ("/v1.0/groups", {"displayName": "g"}, "Invalid value specified for property 'mailNickname': it is required."),
    ("/v1.0/groups", {"mailNickname": "g", "displayName": " "},
     "Invalid value specified for property 'displayName': it must not be blank."),
    ("/v1.0/applications", {"displayName": ""},
     "Invalid value specified for property 'displayName': it must not be blank."),
    ("/v1.0/applications", {"displayName": "a", "api": {"requestedAccessTokenVersion": 3}},
     "requestedAccessTokenVersion must be 1 or 2."),
])
async def test_required_properties(client: httpx.AsyncClient, world: World, path: str, body: dict[str, Any],
                                   says: str) -> None:
    answer = await client.post(path, json=body, headers=world.graph)
    assert error_of(answer, 400, "Request_BadRequest")["message"] == says


async def test_credentials_that_cannot_be(client: httpx.AsyncClient, world: World) -> None:
    app = await _app(client, world)
    past = await client.post(f"/v1.0/applications/{app['id']}/addPassword", headers=world.graph, json={
        "passwordCredential": {"displayName": "old", "endDateTime": "2001-01-01T00:00:00Z"}})
    assert error_of(past, 400, "Request_BadRequest")["message"] == "endDateTime must be in the future."
    not_a_cert = await client.patch(f"/v1.0/applications/{app['id']}", headers=world.graph, json={
        "keyCredentials": [{"type": "AsymmetricX509Cert", "usage": "Verify",
                            "key": base64.b64encode(b"not a certificate").decode()}]})
    error_of(not_a_cert, 400, "Request_BadRequest")
    fic = f"/v1.0/applications/{app['id']}/federatedIdentityCredentials"
    missing = await client.post(fic, headers=world.graph, json={"name": "ci", "issuer": "https://i.example"})
    assert error_of(missing, 400, "Request_BadRequest")["message"] == (
        "Invalid value specified for property 'subject': it is required.")
    plain = await client.post(fic, headers=world.graph, json={"name": "ci", "issuer": "http://i.example",
                                                                "subject": "s", "audiences": ["api://x"]})
    assert error_of(plain, 400, "Request_BadRequest")["message"] == "The issuer must be an https URL."
    good = {"name": "ci", "issuer": "https://i.example", "subject": "s", "audiences": ["api://AzureADTokenExchange"]}
    assert (await client.post(fic, headers=world.graph, json=good)).status_code == 201
    taken = await client.post(fic, headers=world.graph, json={**good, "subject": "other"})
    assert error_of(taken, 409, "Request_BadRequest")["message"] == (
        "A federated identity credential named 'ci' exists already.")
    listed = await client.get(fic, headers=world.graph)
    assert [f["name"] for f in listed.json()["value"]] == ["ci"]  # the refused one was not stored


async def test_a_managed_identitys_principal_goes_only_with_its_resource(client: httpx.AsyncClient,
                                                                         world: World) -> None:
    path = f"{world.rg_path(RG)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{unique('graph-mi')}"
    created = await arm_call(client, world, "PUT", path, {})
    assert created.status_code == 201, created.text
    principal = created.json()["properties"]["principalId"]
    refused = await client.delete(f"/v1.0/servicePrincipals/{principal}", headers=world.graph)
    assert error_of(refused, 400, "Request_BadRequest")["message"] == (
        "A managed identity's service principal is deleted with its resource.")
    assert (await client.get(f"/v1.0/servicePrincipals/{principal}", headers=world.graph)).status_code == 200
    await arm_call(client, world, "DELETE", path)
    gone = await client.get(f"/v1.0/servicePrincipals/{principal}", headers=world.graph)
    error_of(gone, 404, "Request_ResourceNotFound")


async def test_an_unknown_group(client: httpx.AsyncClient, world: World) -> None:
    for method in ("GET", "DELETE"):
        answer = await client.request(method, "/v1.0/groups/00000000-0000-0000-0000-0000000000ee",
                                      headers=world.graph)
        error_of(answer, 404, "Request_ResourceNotFound")
