"""The directory API's request bodies (api/graph_protocol.py), in-process: for each body, wrong types, missing
required properties, properties it does not take, and lists over their bound are refused with 400
`Request_BadRequest` naming the property (with its path) and what was wrong; bodies that create objects take the
further Graph properties clients send; a caller who may not write is refused before its body is read; and no JSON
body, however odd, makes a write route answer 5xx (hypothesis)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inproc import GRAPH_RESOURCE, World, bearer, error_of, new_principal, sp_token, unique

USER_PASSWORD = "Bodies-Passw0rd!x"
CERT_FREE = "Y2VydA=="  # base64 of b"cert": decodes, but is no certificate


@dataclass(frozen=True)
class Objects:
    """What the routes with an id in their path act on: a user, a group, an application."""

    user: str
    group: str
    app: str


@pytest.fixture(scope="module")
def objects(world: World) -> Objects:
    async def make() -> Objects:
        async with world.client() as client:
            user = await client.post("/v1.0/users", headers=world.graph, json={
                "userPrincipalName": f"{unique('bodies')}@cielo.local", "displayName": "Bodies",
                "passwordProfile": {"password": USER_PASSWORD}})
            group = await client.post("/v1.0/groups", headers=world.graph,
                                      json={"displayName": "Bodies", "mailNickname": unique("bodies")})
            app = await client.post("/v1.0/applications", headers=world.graph, json={"displayName": unique("bodies")})
            for answer in (user, group, app):
                assert answer.status_code == 201, answer.text
            return Objects(user.json()["id"], group.json()["id"], app.json()["id"])

    return asyncio.run(make())


def _path(template: str, objects: Objects) -> str:
    return template.format(user=objects.user, group=objects.group, app=objects.app)


def _invalid(name: str, reason: str, resource: str | None = None) -> str:
    of = f" of resource '{resource}'" if resource else ""
    return f"Invalid value specified for property '{name}'{of}: {reason}."


PASSWORD_PROFILE = {"password": USER_PASSWORD}
NEW_USER = {"userPrincipalName": "nobody@cielo.local", "displayName": "N", "passwordProfile": PASSWORD_PROFILE}
FIC = {"name": "fic", "issuer": "https://issuer.example", "subject": "s"}
MANY = [f"api://u{i}" for i in range(257)]

REFUSALS: list[tuple[str, str, dict[str, Any], str]] = [
    # POST /users
    ("POST", "/v1.0/users", {**NEW_USER, "userPrincipalName": 5},
     _invalid("userPrincipalName", "a string is expected")),
    ("POST", "/v1.0/users", {"userPrincipalName": "nobody@cielo.local", "displayName": "N"},
     _invalid("passwordProfile", "it is required")),
    ("POST", "/v1.0/users", {**NEW_USER, "passwordProfile": "secret"},
     _invalid("passwordProfile", "an object is expected")),
    ("POST", "/v1.0/users", {**NEW_USER, "passwordProfile": {"password": 5}},
     _invalid("passwordProfile.password", "a string is expected")),
    ("POST", "/v1.0/users", {**NEW_USER, "displayName": "  "}, _invalid("displayName", "it must not be blank")),
    ("POST", "/v1.0/users", {**NEW_USER, "accountEnabled": "true"},
     _invalid("accountEnabled", "true or false is expected")),
    ("POST", "/v1.0/users", {**NEW_USER, "accountEnabled": False},
     "Cielo creates users enabled: 'accountEnabled' must be true (disable the user with an update afterwards)."),
    ("POST", "/v1.0/users",
     {**NEW_USER, "passwordProfile": {**PASSWORD_PROFILE, "forceChangePasswordNextSignIn": True}},
     "Cielo does not make users change their password at sign-in: 'forceChangePasswordNextSignIn' must be false."),
    # PATCH /users/{id}
    ("PATCH", "/v1.0/users/{user}", {"jobTitle": "x", "city": "y"},
     "Updating property 'city' of resource 'User' is not supported by Cielo."),
    ("PATCH", "/v1.0/users/{user}", {"displayName": None}, _invalid("displayName", "null is not allowed", "User")),
    ("PATCH", "/v1.0/users/{user}", {"accountEnabled": 0},
     _invalid("accountEnabled", "true or false is expected", "User")),
    ("PATCH", "/v1.0/users/{user}", {"passwordProfile": {"password": USER_PASSWORD, "mustChange": True}},
     "Updating property 'passwordProfile.mustChange' of resource 'User' is not supported by Cielo."),
    ("PATCH", "/v1.0/users/{user}", {"passwordProfile": {"password": 7}},
     _invalid("passwordProfile.password", "a string is expected", "User")),
    # POST /groups
    ("POST", "/v1.0/groups", {"displayName": "g", "mailNickname": "n", "description": 5},
     _invalid("description", "a string is expected")),
    ("POST", "/v1.0/groups", {"displayName": ["g"], "mailNickname": "n"},
     _invalid("displayName", "a string is expected")),
    ("POST", "/v1.0/groups", {"displayName": "g"}, _invalid("mailNickname", "it is required")),
    # POST /groups/{id}/members/$ref
    ("POST", "/v1.0/groups/{group}/members/$ref", {}, _invalid("@odata.id", "it is required")),
    ("POST", "/v1.0/groups/{group}/members/$ref", {"@odata.id": 5}, _invalid("@odata.id", "a string is expected")),
    ("POST", "/v1.0/groups/{group}/members/$ref", {"@odata.id": "directoryObjects/x", "roles": []},
     "Property 'roles' is not a parameter of 'members/$ref'; Cielo does not support it."),
    # POST /directoryObjects/getByIds
    ("POST", "/v1.0/directoryObjects/getByIds", {}, _invalid("ids", "it is required")),
    ("POST", "/v1.0/directoryObjects/getByIds", {"ids": "x"}, _invalid("ids", "a list is expected")),
    ("POST", "/v1.0/directoryObjects/getByIds", {"ids": ["a", 3]}, _invalid("ids[1]", "a string is expected")),
    ("POST", "/v1.0/directoryObjects/getByIds", {"ids": ["a"] * 1001},
     _invalid("ids", "at most 1000 items are allowed")),
    ("POST", "/v1.0/directoryObjects/getByIds", {"ids": [], "types": "user"}, _invalid("types", "a list is expected")),
    ("POST", "/v1.0/directoryObjects/getByIds", {"ids": [], "types": ["user"] * 257},
     _invalid("types", "at most 256 items are allowed")),
    ("POST", "/v1.0/directoryObjects/getByIds", {"ids": [], "top": 5},
     "Property 'top' is not a parameter of 'getByIds'; Cielo does not support it."),
    # POST /applications
    ("POST", "/v1.0/applications", {}, _invalid("displayName", "it is required")),
    ("POST", "/v1.0/applications", {"displayName": "a", "web": "nope"}, _invalid("web", "an object is expected")),
    ("POST", "/v1.0/applications", {"displayName": "a", "identifierUris": MANY},
     _invalid("identifierUris", "at most 256 items are allowed")),
    ("POST", "/v1.0/applications", {"displayName": "a", "web": {"redirectUris": [f"https://a.example/{i}" for i in
                                                                                 range(257)]}},
     _invalid("web.redirectUris", "at most 256 items are allowed")),
    ("POST", "/v1.0/applications", {"displayName": "a", "publicClient": {"redirectUris": [None]}},
     _invalid("publicClient.redirectUris[0]", "a string is expected")),
    ("POST", "/v1.0/applications", {"displayName": "a", "api": {"requestedAccessTokenVersion": "2"}},
     _invalid("api.requestedAccessTokenVersion", "an integer is expected")),
    ("POST", "/v1.0/applications", {"displayName": "a", "isFallbackPublicClient": "yes"},
     _invalid("isFallbackPublicClient", "true or false is expected")),
    # PATCH /applications/{id}
    ("PATCH", "/v1.0/applications/{app}", {"web": {"homePageUrl": "https://a.example"}},
     "Updating property 'web.homePageUrl' of resource 'Application' is not supported by Cielo."),
    ("PATCH", "/v1.0/applications/{app}", {"displayName": None},
     _invalid("displayName", "null is not allowed", "Application")),
    ("PATCH", "/v1.0/applications/{app}", {"keyCredentials": None},
     _invalid("keyCredentials", "null is not allowed", "Application")),
    ("PATCH", "/v1.0/applications/{app}", {"keyCredentials": [5]},
     _invalid("keyCredentials[0]", "an object is expected", "Application")),
    ("PATCH", "/v1.0/applications/{app}", {"keyCredentials": [{"key": 5}]},
     _invalid("keyCredentials[0].key", "a base64 string is expected", "Application")),
    ("PATCH", "/v1.0/applications/{app}", {"keyCredentials": [{"key": CERT_FREE}] * 51},
     _invalid("keyCredentials", "at most 50 items are allowed", "Application")),
    ("PATCH", "/v1.0/applications/{app}", {"isFallbackPublicClient": "false"},
     _invalid("isFallbackPublicClient", "true or false is expected", "Application")),
    # POST /applications/{id}/addPassword, removePassword
    ("POST", "/v1.0/applications/{app}/addPassword", {"passwordCredential": {"displayName": 5}},
     _invalid("passwordCredential.displayName", "a string is expected")),
    ("POST", "/v1.0/applications/{app}/addPassword", {"passwordCredential": {"endDateTime": "soon"}},
     _invalid("passwordCredential.endDateTime", "an ISO 8601 date and time is expected")),
    ("POST", "/v1.0/applications/{app}/addPassword", {"replace": "yes"},
     _invalid("replace", "true or false is expected")),
    ("POST", "/v1.0/applications/{app}/addPassword", {"displayName": "top-level"},
     "Property 'displayName' is not a parameter of 'addPassword'; Cielo does not support it."),
    ("POST", "/v1.0/applications/{app}/removePassword", {}, _invalid("keyId", "it is required")),
    ("POST", "/v1.0/applications/{app}/removePassword", {"keyId": 5}, _invalid("keyId", "a string is expected")),
    # POST /applications/{id}/federatedIdentityCredentials
    ("POST", "/v1.0/applications/{app}/federatedIdentityCredentials", {**FIC, "name": None},
     _invalid("name", "a string is expected")),
    ("POST", "/v1.0/applications/{app}/federatedIdentityCredentials", {**FIC, "audiences": "api://x"},
     _invalid("audiences", "a list is expected")),
    ("POST", "/v1.0/applications/{app}/federatedIdentityCredentials", {**FIC, "audiences": MANY},
     _invalid("audiences", "at most 256 items are allowed")),
    ("POST", "/v1.0/applications/{app}/federatedIdentityCredentials", {**FIC, "description": {}},
     _invalid("description", "a string is expected")),
    # POST /servicePrincipals
    ("POST", "/v1.0/servicePrincipals", {}, _invalid("appId", "it is required")),
    ("POST", "/v1.0/servicePrincipals", {"appId": 5}, _invalid("appId", "a string is expected")),
]


@pytest.mark.parametrize(("method", "template", "body", "says"), REFUSALS,
                         ids=[f"{m} {t} {i}" for i, (m, t, _, _) in enumerate(REFUSALS)])
async def test_refusals(client: httpx.AsyncClient, world: World, objects: Objects, method: str, template: str,
                        body: dict[str, Any], says: str) -> None:
    answer = await client.request(method, _path(template, objects), json=body, headers=world.graph)
    assert error_of(answer, 400, "Request_BadRequest")["message"] == says
    assert set(answer.json()) == {"error"} and set(answer.json()["error"]) == {"code", "message"}


# The routes that read a body (all writes, and getByIds).
ROUTES = [("POST", "/v1.0/users"), ("PATCH", "/v1.0/users/{user}"), ("POST", "/v1.0/groups"),
          ("POST", "/v1.0/groups/{group}/members/$ref"), ("POST", "/v1.0/directoryObjects/getByIds"),
          ("POST", "/v1.0/applications"), ("PATCH", "/v1.0/applications/{app}"),
          ("POST", "/v1.0/applications/{app}/addPassword"), ("POST", "/v1.0/applications/{app}/removePassword"),
          ("POST", "/v1.0/applications/{app}/federatedIdentityCredentials"), ("POST", "/v1.0/servicePrincipals")]


@pytest.mark.parametrize(("method", "template"), ROUTES)
async def test_bodies_that_are_not_objects(client: httpx.AsyncClient, world: World, objects: Objects, method: str,
                                           template: str) -> None:
    headers = {**world.graph, "Content-Type": "application/json"}
    for raw, says in ((b"[1]", "The request body must be a JSON object."), (b'"x"', "The request body must be a JSON "
                      "object."), (b"{", "Unable to read JSON request payload.")):
        answer = await client.request(method, _path(template, objects), content=raw, headers=headers)
        assert error_of(answer, 400, "BadRequest")["message"] == says


async def test_creates_take_further_graph_properties(client: httpx.AsyncClient, world: World) -> None:
    """What az and the msgraph SDKs send beside the properties Cielo models is accepted (and ignored)."""
    group = await client.post("/v1.0/groups", headers=world.graph, json={
        "@odata.type": "#microsoft.graph.group", "displayName": "Extra", "mailNickname": unique("extra"),
        "description": None, "mailEnabled": False, "securityEnabled": True, "groupTypes": []})
    assert group.status_code == 201, group.text
    app = await client.post("/v1.0/applications", headers=world.graph, json={
        "displayName": unique("extra"), "signInAudience": "AzureADMyOrg", "requiredResourceAccess": [],
        "web": {"redirectUris": ["https://extra.example/cb"],
                "implicitGrantSettings": {"enableIdTokenIssuance": False}},
        "api": {"requestedAccessTokenVersion": None}})
    assert app.status_code == 201, app.text
    assert app.json()["api"] == {"requestedAccessTokenVersion": 1}
    assert app.json()["web"]["redirectUris"] == ["https://extra.example/cb"]
    secret = await client.post(f"/v1.0/applications/{app.json()['id']}/addPassword", headers=world.graph, json={
        "passwordCredential": {"@odata.type": "#microsoft.graph.passwordCredential", "displayName": "az",
                               "startDateTime": "2020-01-01T00:00:00Z", "endDateTime": "2099-01-01T00:00:00Z"}})
    assert secret.status_code == 200, secret.text
    assert secret.json()["endDateTime"] == "2099-01-01T00:00:00Z"
    sp = await client.post("/v1.0/servicePrincipals", headers=world.graph,
                           json={"appId": app.json()["appId"], "accountEnabled": True, "tags": []})
    assert sp.status_code == 201, sp.text


async def test_updates_take_the_odata_type_and_null_where_graph_does(client: httpx.AsyncClient, world: World,
                                                                      objects: Objects) -> None:
    patched = await client.patch(f"/v1.0/users/{objects.user}", headers=world.graph,
                                 json={"@odata.type": "#microsoft.graph.user", "displayName": "Renamed",
                                       "passwordProfile": None, "accountEnabled": None})
    assert patched.status_code == 204, patched.text
    user = (await client.get(f"/v1.0/users/{objects.user}", headers=world.graph)).json()
    assert (user["displayName"], user["accountEnabled"]) == ("Renamed", True)
    path = f"/v1.0/applications/{objects.app}"
    set_uris = await client.patch(path, headers=world.graph,
                                  json={"identifierUris": ["api://bodies-x"], "isFallbackPublicClient": True})
    assert set_uris.status_code == 204, set_uris.text
    app = (await client.get(path, headers=world.graph)).json()
    assert (app["identifierUris"], app["isFallbackPublicClient"]) == (["api://bodies-x"], True)
    # As before the typed boundary: null identifierUris clears them, null isFallbackPublicClient is false.
    cleared = await client.patch(path, headers=world.graph, json={"identifierUris": None,
                                                                  "isFallbackPublicClient": None})
    assert cleared.status_code == 204, cleared.text
    app = (await client.get(path, headers=world.graph)).json()
    assert (app["identifierUris"], app["isFallbackPublicClient"]) == ([], False)


async def test_a_caller_who_may_not_write_is_refused_before_the_body_is_read(client: httpx.AsyncClient,
                                                                            world: World) -> None:
    principal = await new_principal(client, world)
    headers = {**bearer(await sp_token(client, world, principal, GRAPH_RESOURCE)), "Content-Type": "application/json"}
    for raw in (b"{", b'{"displayName": 5}', b'{"x": "' + b"x" * (2 * 1024 * 1024) + b'"}'):
        answer = await client.post("/v1.0/groups", content=raw, headers=headers)
        error_of(answer, 403, "Authorization_RequestDenied")


# ----------------------------------------------------------------------------- no body makes a 5xx
# Keys: the properties the routes know (so that values reach the models' checks), and any other text.
KNOWN = ["userPrincipalName", "displayName", "passwordProfile", "password", "forceChangePasswordNextSignIn",
         "accountEnabled", "mailNickname", "description", "@odata.id", "@odata.type", "ids", "types", "publicClient",
         "web", "api", "redirectUris", "requestedAccessTokenVersion", "identifierUris", "isFallbackPublicClient",
         "keyCredentials", "key", "passwordCredential", "endDateTime", "replace", "keyId", "name", "issuer",
         "subject", "audiences", "appId"]
TEXT = st.text(alphabet=st.characters(codec=None), max_size=12)  # lone surrogates included
KEYS = st.one_of(st.sampled_from(KNOWN), TEXT)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT,
                    st.sampled_from(["", " ", "2099-01-01T00:00:00Z", "https://i.example", CERT_FREE]))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(KEYS, inner, max_size=5)), max_leaves=20)
BODIES = st.one_of(st.dictionaries(KEYS, JSON, max_size=6), JSON)


@settings(max_examples=200, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(route=st.sampled_from(ROUTES), body=BODIES)
def test_no_json_body_makes_a_5xx(world: World, objects: Objects, route: tuple[str, str], body: Any) -> None:
    method, template = route

    async def send() -> httpx.Response:
        async with world.client() as client:
            return await client.request(method, _path(template, objects), content=json.dumps(body).encode(),
                                        headers={**world.graph, "Content-Type": "application/json"})

    answer = asyncio.run(send())
    assert answer.status_code < 500, (method, template, body, answer.text)
    if answer.status_code >= 400:
        assert isinstance(answer.json()["error"]["code"], str), answer.text
