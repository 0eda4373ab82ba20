"""The portal's Microsoft Entra ID blade writes in-process, through Graph as the signed-in user: users created with
an initial password (who then sign in with it) and deleted; groups created, members added and removed, deleted; app
registrations with a client secret shown once (and working), certificates uploaded (PEM and DER), federated
credentials added and removed, service principals created and deleted; refusals shown with Graph's error."""

from __future__ import annotations

import base64
import datetime as dt
import re

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from inproc import World, unique
from test_api_portal import csrf_of, portal_client, sign_in
from test_api_portal_iam import USER_PASSWORD, new_user


def certificate(name: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))


async def graph_get(world: World, path: str) -> httpx.Response:
    async with world.client() as client:
        return await client.get(f"/v1.0{path}", headers=world.graph)


async def test_a_user_created_with_a_password_signs_in_with_it_then_is_deleted(world: World) -> None:
    name = unique("entra-user")
    upn = f"{name}@cielo.local"
    async with portal_client(world) as browser:
        users = await sign_in(browser, start="/portal/entra?tab=users")
        made = await browser.post("/portal/entra?tab=users", data={
            "action": "create", "userPrincipalName": upn, "displayName": name, "password": USER_PASSWORD,
            "csrf_token": csrf_of(users)})
        assert made.status_code == 303, made.text
        listed = await browser.get(made.headers["location"])
        assert f"User {upn} created." in listed.text and f"<td>{upn}</td>" in listed.text
        assert USER_PASSWORD not in listed.text
        again = await browser.post("/portal/entra?tab=users", data={
            "action": "create", "userPrincipalName": upn, "displayName": name, "password": USER_PASSWORD,
            "csrf_token": csrf_of(listed)})
        assert again.status_code == 400 and "Request_BadRequest" in again.text, again.text  # Graph's refusal
        assert USER_PASSWORD not in again.text  # the password is not echoed back into the form
    async with portal_client(world) as other:
        home = await sign_in(other, upn, USER_PASSWORD)
        assert home.status_code == 200 and upn in home.text
    user_id = (await graph_get(world, f"/users/{upn}")).json()["id"]
    async with portal_client(world) as browser:
        users = await sign_in(browser, start="/portal/entra?tab=users")
        gone = await browser.post("/portal/entra?tab=users", data={
            "action": "delete", "id": user_id, "name": upn, "csrf_token": csrf_of(users)})
        assert gone.status_code == 303, gone.text
        after = await browser.get("/portal/entra?tab=users")
        assert f"User {upn} deleted." in after.text and f"<td>{upn}</td>" not in after.text
        not_an_id = await browser.post("/portal/entra?tab=users", data={
            "action": "delete", "id": "../groups", "csrf_token": csrf_of(users)})
        assert not_an_id.status_code == 400 and "Invalid object identifier" in not_an_id.text
    assert (await graph_get(world, f"/users/{user_id}")).status_code == 404


async def test_a_group_is_created_gets_and_loses_a_member_and_is_deleted(world: World) -> None:
    upn, user_id = await new_user(world)
    name = unique("entra-group")
    async with portal_client(world) as browser:
        groups = await sign_in(browser, start="/portal/entra?tab=groups")
        made = await browser.post("/portal/entra?tab=groups", data={
            "action": "create", "displayName": name, "description": "portal test", "csrf_token": csrf_of(groups)})
        assert made.status_code == 303, made.text
        listed = await browser.get(made.headers["location"])
        link = re.search(r'href="(/portal/entra/groups/[0-9a-f-]{36})">' + name, listed.text)
        assert link, listed.text
        page = await browser.get(link.group(1))
        assert page.status_code == 200 and "No members." in page.text and f'value="{user_id}|User"' in page.text
        added = await browser.post(link.group(1), data={"action": "add", "principal": f"{user_id}|User",
                                                        "csrf_token": csrf_of(page)})
        assert added.status_code == 303, added.text
        page = await browser.get(link.group(1))
        assert "Member added." in page.text and upn in page.text
        group_id = link.group(1).rsplit("/", 1)[-1]
        members = (await graph_get(world, f"/groups/{group_id}/members")).json()["value"]
        assert [m["id"] for m in members] == [user_id]
        twice = await browser.post(link.group(1), data={"action": "add", "principal": f"{user_id}|User",
                                                        "csrf_token": csrf_of(page)})
        assert twice.status_code == 400 and "already exist" in twice.text  # Graph's own message
        removed = await browser.post(link.group(1), data={"action": "remove", "id": user_id,
                                                          "csrf_token": csrf_of(page)})
        assert removed.status_code == 303
        assert (await graph_get(world, f"/groups/{group_id}/members")).json()["value"] == []
        deleted = await browser.post("/portal/entra?tab=groups", data={
            "action": "delete", "id": group_id, "name": name, "csrf_token": csrf_of(page)})
        assert deleted.status_code == 303
    assert (await graph_get(world, f"/groups/{group_id}")).status_code == 404


async def test_an_app_secret_is_shown_once_and_works(world: World) -> None:
    name = unique("entra-app")
    async with portal_client(world) as browser:
        apps = await sign_in(browser, start="/portal/entra?tab=apps")
        made = await browser.post("/portal/entra?tab=apps", data={"action": "create", "displayName": name,
                                                                  "csrf_token": csrf_of(apps)})
        assert made.status_code == 303, made.text
        here = made.headers["location"]
        page = await browser.get(here)
        assert f"App registration {name} created." in page.text and "Create service principal" in page.text
        app_id = re.search(r"Application \(client\) ID</dt><dd><code>([0-9a-f-]{36})", page.text).group(1)  # type: ignore[union-attr]
        with_sp = await browser.post(here, data={"action": "create_sp", "csrf_token": csrf_of(page)})
        assert with_sp.status_code == 303, with_sp.text
        page = await browser.get(here)
        assert "Create service principal" not in page.text
        shown = await browser.post(here, data={"action": "add_secret", "description": "ci", "months": "3",
                                               "csrf_token": csrf_of(page)})
        assert shown.status_code == 200, shown.text
        assert "shown this once" in shown.text and shown.headers["cache-control"] == "no-store"
        secret = re.search(r'id="secret-value" readonly value="([^"]+)"', shown.text).group(1)  # type: ignore[union-attr]
        assert secret not in str(shown.headers)  # not in a cookie or a redirect
        later = await browser.get(here)
        assert secret not in later.text and secret[:3] + "…" in later.text  # only its hint, from now on
        async with world.client() as client:
            token = await client.post(world.token_url(), data={
                "grant_type": "client_credentials", "client_id": app_id, "client_secret": secret,
                "scope": "https://management.azure.com/.default"})
            assert token.status_code == 200, token.text
        key_id = re.search(r'name="keyId" value="([0-9a-f-]{36})"', later.text).group(1)  # type: ignore[union-attr]
        removed = await browser.post(here, data={"action": "remove_secret", "keyId": key_id,
                                                 "csrf_token": csrf_of(later)})
        assert removed.status_code == 303
        async with world.client() as client:
            token = await client.post(world.token_url(), data={
                "grant_type": "client_credentials", "client_id": app_id, "client_secret": secret,
                "scope": "https://management.azure.com/.default"})
            assert token.status_code == 401, token.text


async def test_certificates_and_federated_credentials(world: World) -> None:
    async with world.client() as client:
        made = await client.post("/v1.0/applications", json={"displayName": unique("entra-cert")},
                                 headers=world.graph)
        object_id = made.json()["id"]
    here = f"/portal/entra/apps/{object_id}"
    first, second = certificate("portal-pem"), certificate("portal-der")
    async with portal_client(world) as browser:
        page = await sign_in(browser, start=here)
        assert "No certificates." in page.text
        pem = first.public_bytes(serialization.Encoding.PEM).decode()
        up = await browser.post(here, data={"action": "upload_cert", "certificate": pem, "description": "pem one",
                                            "csrf_token": csrf_of(page)})
        assert up.status_code == 303, up.text
        keys = (await graph_get(world, f"/applications/{object_id}")).json()["keyCredentials"]
        assert [k["displayName"] for k in keys] == ["pem one"]
        der = base64.b64encode(second.public_bytes(serialization.Encoding.DER)).decode()
        page = await browser.get(here)
        up = await browser.post(here, data={"action": "upload_cert", "certificate": der, "description": "der one",
                                            "csrf_token": csrf_of(page)})
        assert up.status_code == 303, up.text
        keys = (await graph_get(world, f"/applications/{object_id}")).json()["keyCredentials"]
        assert [k["displayName"] for k in keys] == ["der one"]  # Cielo's PATCH replaces them (see docs/portal.md)
        bad = await browser.post(here, data={"action": "upload_cert", "certificate": "bm90IGEgY2VydA==",
                                             "csrf_token": csrf_of(page)})
        assert bad.status_code == 400 and "not a valid X.509 certificate" in bad.text
        # Federated credentials: added, refused as Graph refuses, removed.
        added = await browser.post(here, data={
            "action": "add_fic", "name": "gh-main", "issuer": "https://token.actions.githubusercontent.com",
            "subject": "repo:org/repo:ref:refs/heads/main", "audiences": "api://AzureADTokenExchange",
            "csrf_token": csrf_of(page)})
        assert added.status_code == 303, added.text
        page = await browser.get(here)
        assert "gh-main" in page.text and "repo:org/repo:ref:refs/heads/main" in page.text
        refused = await browser.post(here, data={"action": "add_fic", "name": "plain", "issuer": "http://x.example",
                                                 "subject": "s", "csrf_token": csrf_of(page)})
        assert refused.status_code == 400 and "https URL" in refused.text
        fics = (await graph_get(world, f"/applications/{object_id}/federatedIdentityCredentials")).json()["value"]
        assert [f["name"] for f in fics] == ["gh-main"] and fics[0]["audiences"] == ["api://AzureADTokenExchange"]
        removed = await browser.post(here, data={"action": "remove_fic", "id": fics[0]["id"],
                                                 "csrf_token": csrf_of(page)})
        assert removed.status_code == 303
        assert (await graph_get(world, f"/applications/{object_id}/federatedIdentityCredentials")).json()[
            "value"] == []


async def test_service_principals_are_created_for_an_app_and_deleted(world: World) -> None:
    async with world.client() as client:
        made = await client.post("/v1.0/applications", json={"displayName": unique("entra-sp")},
                                 headers=world.graph)
        app_id = made.json()["appId"]
    async with portal_client(world) as browser:
        sps = await sign_in(browser, start="/portal/entra?tab=sps")
        created = await browser.post("/portal/entra?tab=sps", data={"action": "create", "appId": app_id,
                                                                    "csrf_token": csrf_of(sps)})
        assert created.status_code == 303, created.text
        found = (await graph_get(world, f"/servicePrincipals(appId='{app_id}')")).json()
        listed = await browser.get("/portal/entra?tab=sps")
        assert found["id"] in listed.text
        unknown = await browser.post("/portal/entra?tab=sps", data={
            "action": "create", "appId": "00000000-0000-0000-0000-00000000abcd", "csrf_token": csrf_of(listed)})
        assert unknown.status_code == 404 and "Request_ResourceNotFound" in unknown.text, unknown.text
        deleted = await browser.post("/portal/entra?tab=sps", data={"action": "delete", "id": found["id"],
                                                                    "csrf_token": csrf_of(listed)})
        assert deleted.status_code == 303
    assert (await graph_get(world, f"/servicePrincipals/{found['id']}")).status_code == 404


async def test_a_member_without_a_directory_role_is_refused_by_graph(world: World) -> None:
    upn, _ = await new_user(world)
    async with portal_client(world) as browser:
        groups = await sign_in(browser, upn, USER_PASSWORD, start="/portal/entra?tab=groups")
        assert groups.status_code == 200, groups.text
        refused = await browser.post("/portal/entra?tab=groups", data={
            "action": "create", "displayName": unique("not-mine"), "csrf_token": csrf_of(groups)})
        assert refused.status_code == 403, refused.text
        assert "Authorization_RequestDenied" in refused.text
