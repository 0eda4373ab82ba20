"""The directory API (`/v1.0`), in-process: users, groups and members, applications (secrets, certificates, federated
credentials), service principals; who may read and write; Graph's error envelope."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from inproc import (
    ADMIN,
    ARM_RESOURCE,
    CLI_CLIENT_ID,
    COG_RESOURCE,
    GRAPH_RESOURCE,
    PASSWORD,
    World,
    arm_call,
    assign,
    bearer,
    error_of,
    new_principal,
    sp_token,
    unique,
)

MEMBER_PASSWORD = "Member-Passw0rd!x"


@pytest.fixture(scope="module")
def member(world: World) -> dict[str, str]:
    """An ordinary member of the tenant (argon2 twice: created once, signed in once, for the whole module)."""
    import asyncio

    async def make() -> dict[str, str]:
        async with world.client() as client:
            upn = f"{unique('member')}@cielo.local"
            created = await client.post("/v1.0/users", headers=world.graph, json={
                "userPrincipalName": upn, "displayName": "Member", "accountEnabled": True,
                "passwordProfile": {"password": MEMBER_PASSWORD}})
            assert created.status_code == 201, created.text
            token = await client.post(world.token_url(v1=True), data={
                "grant_type": "password", "client_id": CLI_CLIENT_ID, "username": upn, "password": MEMBER_PASSWORD,
                "resource": GRAPH_RESOURCE})
            assert token.status_code == 200, token.text
            return {"id": created.json()["id"], "upn": upn, "token": token.json()["access_token"]}

    return asyncio.run(make())


# ----------------------------------------------------------------------------- callers
async def test_me_and_reads_by_a_member(client: httpx.AsyncClient, world: World, member: dict[str, str]) -> None:
    me = await client.get("/v1.0/me", headers=bearer(member["token"]))
    assert me.status_code == 200 and me.json()["userPrincipalName"] == member["upn"]
    assert me.json()["id"] == member["id"] and me.json()["accountEnabled"] is True
    users = await client.get("/v1.0/users", headers=bearer(member["token"]))
    assert users.json()["@odata.context"] == "https://graph.microsoft.com/v1.0/$metadata#users"
    assert member["upn"] in [u["userPrincipalName"] for u in users.json()["value"]]


async def test_members_may_not_write(client: httpx.AsyncClient, world: World, member: dict[str, str]) -> None:
    for path, body in [("/v1.0/applications", {"displayName": "x"}), ("/v1.0/groups", {
            "displayName": "g", "mailNickname": "g"})]:
        answer = await client.post(path, json=body, headers=bearer(member["token"]))
        error = error_of(answer, 403, "Authorization_RequestDenied")
        assert error["message"] == "Insufficient privileges to complete the operation."


async def test_service_principals_get_no_directory_access(client: httpx.AsyncClient, world: World) -> None:
    app = await new_principal(client, world)
    token = await sp_token(client, world, app, GRAPH_RESOURCE)
    error_of(await client.get("/v1.0/users", headers=bearer(token)), 403, "Authorization_RequestDenied")


async def test_tokens_for_another_audience_or_none(client: httpx.AsyncClient, world: World) -> None:
    missing = await client.get("/v1.0/users")
    error_of(missing, 401, "AuthenticationFailed")
    assert missing.headers["www-authenticate"].startswith('Bearer authorization_uri="https://127.0.0.1:8443/')
    for headers, says in ((world.arm, "wrong audience"), (world.cog, "wrong audience"),
                          ({"Authorization": "Bearer not-a-jwt"}, "malformed")):
        error = error_of(await client.get("/v1.0/users", headers=headers), 401, "InvalidAuthenticationToken")
        assert says in error["message"]


# ----------------------------------------------------------------------------- users
async def test_user_create_read_filter_delete(client: httpx.AsyncClient, world: World) -> None:
    upn = f"{unique('u')}@cielo.local"
    created = await client.post("/v1.0/users", headers=world.graph, json={
        "userPrincipalName": upn, "displayName": "U One", "passwordProfile": {"password": "Us3r-Passw0rd!x"}})
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["userPrincipalName"] == upn and user["displayName"] == "U One" and "passwordProfile" not in user
    assert (await client.get(f"/v1.0/users/{user['id']}", headers=world.graph)).json() == user
    assert (await client.get(f"/v1.0/users/{upn}", headers=world.graph)).json()["id"] == user["id"]
    found = await client.get("/v1.0/users", params={"$filter": f"userPrincipalName eq '{upn.upper()}'"},
                             headers=world.graph)
    assert [u["id"] for u in found.json()["value"]] == [user["id"]]
    error_of(await client.get("/v1.0/users", params={"$filter": "city eq 'x'"}, headers=world.graph),
                400, "Request_UnsupportedQuery")
    # startswith on displayName (az's `--display-name`) is served, case-insensitive as Graph's; endswith is not.
    started = await client.get("/v1.0/users", params={"$filter": "startswith(displayName,'u o')"},
                               headers=world.graph)
    assert user["id"] in [u["id"] for u in started.json()["value"]]
    error_of(await client.get("/v1.0/users", params={"$filter": "endswith(displayName,'a')"},
                                 headers=world.graph), 400, "Request_UnsupportedQuery")
    # Deleting a user removes their role assignments too.
    await assign(client, world, "Reader", user["id"], world.sub_path, principal_type="User")
    assert (await client.delete(f"/v1.0/users/{user['id']}", headers=world.graph)).status_code == 204
    error_of(await client.get(f"/v1.0/users/{user['id']}", headers=world.graph), 404, "Request_ResourceNotFound")
    listed = await arm_call(client, world, "GET", f"{world.sub_path}/providers/Microsoft.Authorization/"
                            f"roleAssignments?$filter=principalId eq '{user['id']}'")
    assert listed.json()["value"] == []


@pytest.mark.parametrize(("body", "code"), [
    ({"userPrincipalName": "nopassword@cielo.local", "displayName": "x"}, "Request_BadRequest"),
    ({"displayName": "x", "passwordProfile": {"password": "Us3r-Passw0rd!x"}}, "Request_BadRequest"),
    ({"userPrincipalName": "weak@cielo.local", "displayName": "x", "passwordProfile": {"password": "short"}},
     None),
])
async def test_user_validation(client: httpx.AsyncClient, world: World, body: dict[str, Any],
                               code: str | None) -> None:
    answer = await client.post("/v1.0/users", headers=world.graph, json=body)
    assert answer.status_code == 400, answer.text
    if code:
        error_of(answer, 400, code)
    upn = body.get("userPrincipalName")
    if upn:
        error_of(await client.get(f"/v1.0/users/{upn}", headers=world.graph), 404, "Request_ResourceNotFound")


async def test_duplicate_user_and_self_delete(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post("/v1.0/users", headers=world.graph, json={
        "userPrincipalName": "admin@cielo.local", "displayName": "again",
        "passwordProfile": {"password": "Us3r-Passw0rd!x"}})
    assert answer.status_code == 400, answer.text
    error = error_of(await client.delete(f"/v1.0/users/{world.admin_id}", headers=world.graph),
                        400, "Request_BadRequest")
    assert error["message"] == "You cannot delete your own account."


@pytest.mark.parametrize(("raw", "status"), [(b"{", 400), (b"[]", 400), (b"[" * 100 + b"]" * 100, 400)])
async def test_bodies_that_are_not_an_object(client: httpx.AsyncClient, world: World, raw: bytes,
                                             status: int) -> None:
    answer = await client.post("/v1.0/groups", content=raw,
                               headers={**world.graph, "Content-Type": "application/json"})
    error_of(answer, status, "BadRequest")


async def test_body_over_the_limit(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post("/v1.0/groups", content=b'{"displayName": "' + b"x" * (1024 * 1024 + 1) + b'"}',
                               headers={**world.graph, "Content-Type": "application/json"})
    error_of(answer, 413, "Request_EntityTooLarge")


# ----------------------------------------------------------------------------- groups
async def test_groups_and_members(client: httpx.AsyncClient, world: World, member: dict[str, str]) -> None:
    nick = unique("grp")
    created = await client.post("/v1.0/groups", headers=world.graph, json={
        "displayName": "Team", "mailNickname": nick, "description": "d", "securityEnabled": True})
    assert created.status_code == 201, created.text
    group = created.json()
    assert group["mailNickname"] == nick and group["securityEnabled"] is True and group["description"] == "d"
    assert (await client.get(f"/v1.0/groups/{group['id']}", headers=world.graph)).json()["id"] == group["id"]
    listed = await client.get("/v1.0/groups", params={"$filter": f"mailNickname eq '{nick}'"}, headers=world.graph)
    assert [g["id"] for g in listed.json()["value"]] == [group["id"]]
    sp = await new_principal(client, world)
    for member_id in (member["id"], sp.sp_id):
        added = await client.post(f"/v1.0/groups/{group['id']}/members/$ref", headers=world.graph,
                                  json={"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{member_id}"})
        assert added.status_code == 204, added.text
    members = (await client.get(f"/v1.0/groups/{group['id']}/members", headers=world.graph)).json()["value"]
    assert {(m["id"], m["@odata.type"]) for m in members} == {
        (member["id"], "#microsoft.graph.user"), (sp.sp_id, "#microsoft.graph.servicePrincipal")}
    # A group's role assignment applies to its members.
    await assign(client, world, "Reader", group["id"], world.sub_path, principal_type="Group")
    sp_arm = bearer(await sp_token(client, world, sp, ARM_RESOURCE))
    assert (await arm_call(client, world, "GET", world.sub_path, headers=sp_arm)).status_code == 200
    removed = await client.delete(f"/v1.0/groups/{group['id']}/members/{sp.sp_id}/$ref", headers=world.graph)
    assert removed.status_code == 204
    assert (await arm_call(client, world, "GET", world.rg_path("cielo-rg"), headers=sp_arm)).status_code == 403
    error_of(await client.delete(f"/v1.0/groups/{group['id']}/members/{sp.sp_id}/$ref", headers=world.graph),
                404, "Request_ResourceNotFound")
    by_ids = await client.post("/v1.0/directoryObjects/getByIds", headers=world.graph,
                               json={"ids": [member["id"], group["id"], str(uuid.uuid4())], "types": ["user"]})
    assert [o["id"] for o in by_ids.json()["value"]] == [member["id"]]
    error_of(await client.post("/v1.0/directoryObjects/getByIds", headers=world.graph, json={"ids": "x"}),
                400, "Request_BadRequest")
    assert (await client.delete(f"/v1.0/groups/{group['id']}", headers=world.graph)).status_code == 204
    error_of(await client.get(f"/v1.0/groups/{group['id']}", headers=world.graph), 404, "Request_ResourceNotFound")


async def test_group_validation(client: httpx.AsyncClient, world: World) -> None:
    error_of(await client.post("/v1.0/groups", headers=world.graph, json={"displayName": "no nick"}),
                400, "Request_BadRequest")
    error_of(await client.post("/v1.0/groups", headers=world.graph, json={"displayName": 5, "mailNickname": "n"}),
                400, "Request_BadRequest")
    error_of(await client.post(f"/v1.0/groups/{uuid.uuid4()}/members/$ref", headers=world.graph,
                                  json={"@odata.id": f"directoryObjects/{world.admin_id}"}),
                404, "Request_ResourceNotFound")


# ----------------------------------------------------------------------------- applications and SPs
async def test_application_lifecycle(client: httpx.AsyncClient, world: World) -> None:
    created = await client.post("/v1.0/applications", headers=world.graph, json={
        "displayName": "App", "identifierUris": ["api://inproc-app"],
        "publicClient": {"redirectUris": ["http://localhost"]}, "web": {"redirectUris": ["https://app.example/cb"]},
        "api": {"requestedAccessTokenVersion": 2}})
    assert created.status_code == 201, created.text
    app = created.json()
    assert app["identifierUris"] == ["api://inproc-app"] and app["api"] == {"requestedAccessTokenVersion": 2}
    assert app["publicClient"]["redirectUris"] == ["http://localhost"]
    assert app["web"]["redirectUris"] == ["https://app.example/cb"] and app["passwordCredentials"] == []
    by_app_id = await client.get(f"/v1.0/applications(appId='{app['appId']}')", headers=world.graph)
    assert by_app_id.status_code == 200 and by_app_id.json()["id"] == app["id"]
    listed = await client.get("/v1.0/applications", params={"$filter": f"appId eq '{app['appId']}'"},
                              headers=world.graph)
    assert [a["id"] for a in listed.json()["value"]] == [app["id"]]
    secret = await client.post(f"/v1.0/applications/{app['id']}/addPassword", headers=world.graph,
                               json={"passwordCredential": {"displayName": "ci"}})
    assert secret.status_code == 200, secret.text
    cred = secret.json()
    assert cred["displayName"] == "ci" and cred["hint"] == cred["secretText"][:3] and len(cred["secretText"]) >= 34
    shown = (await client.get(f"/v1.0/applications/{app['id']}", headers=world.graph)).json()["passwordCredentials"]
    assert [(c["keyId"], c["secretText"]) for c in shown] == [(cred["keyId"], None)]  # never shown again
    patched = await client.patch(f"/v1.0/applications/{app['id']}", headers=world.graph,
                                 json={"displayName": "Renamed", "isFallbackPublicClient": True})
    assert patched.status_code == 204, patched.text
    assert (await client.get(f"/v1.0/applications/{app['id']}", headers=world.graph)).json()["displayName"] == "Renamed"
    error_of(await client.post(f"/v1.0/applications/{app['id']}/removePassword", headers=world.graph,
                                  json={"keyId": str(uuid.uuid4())}), 404, "Request_ResourceNotFound")
    removed = await client.post(f"/v1.0/applications/{app['id']}/removePassword", headers=world.graph,
                                json={"keyId": cred["keyId"]})
    assert removed.status_code == 204
    assert (await client.delete(f"/v1.0/applications/{app['id']}", headers=world.graph)).status_code == 204
    error_of(await client.get(f"/v1.0/applications/{app['id']}", headers=world.graph),
                404, "Request_ResourceNotFound")


@pytest.mark.parametrize(("body", "code"), [
    ({"passwordCredential": "x"}, "Request_BadRequest"),
    ({"passwordCredential": {"endDateTime": "tomorrow"}}, "Request_BadRequest"),
    ({"passwordCredential": {"endDateTime": 5}}, "Request_BadRequest"),
])
async def test_add_password_validation(client: httpx.AsyncClient, world: World, body: dict[str, Any],
                                       code: str) -> None:
    app = await new_principal(client, world)
    error_of(await client.post(f"/v1.0/applications/{app.app_object_id}/addPassword", headers=world.graph,
                                  json=body), 400, code)
    creds = (await client.get(f"/v1.0/applications/{app.app_object_id}", headers=world.graph)).json()
    assert len(creds["passwordCredentials"]) == 1  # only the one new_principal added


@pytest.mark.parametrize(("body", "code"), [
    ({"displayName": "x", "web": "nope"}, "Request_BadRequest"),
    ({"displayName": "x", "identifierUris": "api://one"}, "Request_BadRequest"),
    ({}, "Request_BadRequest"),
])
async def test_application_validation(client: httpx.AsyncClient, world: World, body: dict[str, Any],
                                      code: str) -> None:
    error_of(await client.post("/v1.0/applications", headers=world.graph, json=body), 400, code)


async def test_key_credentials_and_federated_credentials(client: httpx.AsyncClient, world: World) -> None:
    app = await new_principal(client, world)
    error_of(await client.patch(f"/v1.0/applications/{app.app_object_id}", headers=world.graph,
                                   json={"keyCredentials": "x"}), 400, "Request_BadRequest")
    error_of(await client.patch(f"/v1.0/applications/{app.app_object_id}", headers=world.graph,
                                   json={"keyCredentials": [{"key": "!!not base64!!", "type": "AsymmetricX509Cert",
                                                             "usage": "Verify"}]}), 400, "Request_BadRequest")
    fic = await client.post(f"/v1.0/applications/{app.app_object_id}/federatedIdentityCredentials",
                            headers=world.graph, json={"name": "gh", "issuer": "https://issuer.example",
                                                       "subject": "repo:x", "audiences": ["api://AzureADTokenExchange"]})
    assert fic.status_code == 201, fic.text
    assert fic.json()["issuer"] == "https://issuer.example" and fic.json()["subject"] == "repo:x"
    dup = await client.post(f"/v1.0/applications/{app.app_object_id}/federatedIdentityCredentials",
                            headers=world.graph, json={"name": "gh", "issuer": "https://i2.example", "subject": "s",
                                                       "audiences": ["api://AzureADTokenExchange"]})
    assert dup.status_code in (400, 409), dup.text
    gone = await client.delete(f"/v1.0/applications/{app.app_object_id}/federatedIdentityCredentials/"
                               f"{fic.json()['id']}", headers=world.graph)
    assert gone.status_code == 204
    error_of(await client.delete(f"/v1.0/applications/{app.app_object_id}/federatedIdentityCredentials/"
                                    f"{fic.json()['id']}", headers=world.graph), 404, "Request_ResourceNotFound")


async def test_service_principals(client: httpx.AsyncClient, world: World) -> None:
    app = await new_principal(client, world)
    sp = await client.get(f"/v1.0/servicePrincipals/{app.sp_id}", headers=world.graph)
    assert sp.status_code == 200
    assert sp.json() == {**sp.json(), "appId": app.app_id, "servicePrincipalNames": [app.app_id],
                         "servicePrincipalType": "Application", "appOwnerOrganizationId": world.tenant}
    by_app = await client.get(f"/v1.0/servicePrincipals(appId='{app.app_id}')", headers=world.graph)
    assert by_app.json()["id"] == app.sp_id
    az_style = await client.get("/v1.0/servicePrincipals", headers=world.graph,
                                params={"$filter": f"servicePrincipalNames/any(c:c eq '{app.app_id}')"})
    assert [s["id"] for s in az_style.json()["value"]] == [app.sp_id]
    # az's look-ups with a token for Cielo's own base URL (metadata's microsoftGraphResourceId): getByIds types
    # each object it finds and skips unknown ids.
    own = await client.post(world.token_url(), data={
        "grant_type": "password", "client_id": CLI_CLIENT_ID, "username": ADMIN, "password": PASSWORD,
        "scope": "https://127.0.0.1:8443/.default"})
    assert own.status_code == 200, own.text
    own_graph = bearer(own.json()["access_token"])
    found = await client.get("/v1.0/servicePrincipals", headers=own_graph,
                             params={"$filter": f"servicePrincipalNames/any(c:c eq '{app.app_id}')"})
    assert [s["id"] for s in found.json()["value"]] == [app.sp_id]
    by_ids = {"ids": [app.sp_id, world.admin_id, "00000000-0000-0000-0000-000000000001"],
              "types": ["user", "group", "servicePrincipal", "directoryObjectPartnerReference"]}
    objects = (await client.post("/v1.0/directoryObjects/getByIds", headers=own_graph, json=by_ids)).json()["value"]
    assert {o["id"]: o["@odata.type"] for o in objects} == {
        app.sp_id: "#microsoft.graph.servicePrincipal", world.admin_id: "#microsoft.graph.user"}
    again = await client.post("/v1.0/servicePrincipals", headers=world.graph, json={"appId": app.app_id})
    assert again.status_code in (400, 409), again.text
    error_of(await client.post("/v1.0/servicePrincipals", headers=world.graph, json={"appId": str(uuid.uuid4())}),
                404, "Request_ResourceNotFound")
    # Deleting the SP takes its tokens' power: client credentials then fail with AADSTS7000229.
    await assign(client, world, "Reader", app.sp_id, world.sub_path)
    assert (await client.delete(f"/v1.0/servicePrincipals/{app.sp_id}", headers=world.graph)).status_code == 204
    error_of(await client.get(f"/v1.0/servicePrincipals/{app.sp_id}", headers=world.graph),
                404, "Request_ResourceNotFound")
    answer = await client.post(world.token_url(), data={
        "grant_type": "client_credentials", "client_id": app.app_id, "client_secret": app.secret,
        "scope": f"{COG_RESOURCE}/.default"})
    assert answer.json()["error_codes"] == [7000229]
    listed = await arm_call(client, world, "GET", f"{world.sub_path}/providers/Microsoft.Authorization/"
                            f"roleAssignments?$filter=principalId eq '{app.sp_id}'")
    assert listed.json()["value"] == []
