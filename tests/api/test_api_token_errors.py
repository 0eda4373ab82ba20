"""The token endpoint, in-process: every row of docs/token-service.md's error table, in Entra's envelope, plus the
successful grants' shapes (v1 and v2) that the failures are told apart from."""

from __future__ import annotations

import base64
import hashlib
import re
import time
import uuid
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from inproc import (
    ADMIN,
    CLI_CLIENT_ID,
    COG_RESOURCE,
    PASSWORD,
    Principal,
    World,
    new_principal,
    oauth_error,
)

from cielo.core.clock import FrozenClock

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
LOOPBACK = "http://localhost:8400/callback"


@pytest.fixture(scope="module")
def shared() -> dict[str, object]:
    return {}


async def _principal(client: httpx.AsyncClient, world: World, shared: dict[str, object]) -> Principal:
    if "principal" not in shared:
        shared["principal"] = await new_principal(client, world)
    principal = shared["principal"]
    assert isinstance(principal, Principal)
    return principal


async def _assert_intact(client: httpx.AsyncClient, world: World, principal: Principal) -> None:
    """After a refused request the good secret still works and the app still has exactly its one password."""
    ok = await client.post(world.token_url(), data=_cc(principal))
    assert ok.status_code == 200, ok.text
    registered = (await client.get(f"/v1.0/applications/{principal.app_object_id}", headers=world.graph)).json()
    assert len(registered["passwordCredentials"]) == 1
    assert registered["passwordCredentials"][0]["secretText"] is None
    assert registered["keyCredentials"] == []


def _cc(principal: Principal, **extra: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": principal.app_id, "client_secret": principal.secret,
            "scope": f"{COG_RESOURCE}/.default", **extra}


# ----------------------------------------------------------------------------- successes
async def test_client_credentials_v2_shape(client: httpx.AsyncClient, world: World,
                                           shared: dict[str, object]) -> None:
    principal = await _principal(client, world, shared)
    answer = await client.post(world.token_url(), data=_cc(principal))
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"].startswith("no-store")
    body = answer.json()
    assert body["token_type"] == "Bearer" and isinstance(body["expires_in"], int)
    assert 3600 <= body["expires_in"] <= 5400
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["aud"] == COG_RESOURCE and claims["appid"] == principal.app_id
    assert claims["oid"] == principal.sp_id and claims["tid"] == world.tenant
    assert claims["appidacr"] == "1" and claims["iat"] == int(world.clock.now())


async def test_client_credentials_with_http_basic_and_v1_shape(client: httpx.AsyncClient, world: World,
                                                                shared: dict[str, object]) -> None:
    principal = await _principal(client, world, shared)
    answer = await client.post(world.token_url(v1=True), auth=(principal.app_id, principal.secret),
                               data={"grant_type": "client_credentials", "resource": COG_RESOURCE})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # v1: every number a string, with expires_on / not_before / resource.
    assert isinstance(body["expires_in"], str) and body["resource"] == COG_RESOURCE
    assert int(body["expires_on"]) == int(world.clock.now()) + int(body["expires_in"])
    # client_secret_basic on v2 too, and a wrong one fails as a wrong secret does.
    form = {"grant_type": "client_credentials", "scope": f"{COG_RESOURCE}/.default"}
    good = await client.post(world.token_url(), auth=(principal.app_id, principal.secret), data=form)
    assert good.status_code == 200, good.text
    wrong = await client.post(world.token_url(), auth=(principal.app_id, "nope"), data=form)
    oauth_error(wrong, 401, "invalid_client", 7000215)


async def test_client_request_id_is_echoed_as_correlation_id(client: httpx.AsyncClient, world: World) -> None:
    correlation = str(uuid.uuid4())
    answer = await client.post(world.token_url(), data={"grant_type": "client_credentials"},
                               headers={"client-request-id": correlation})
    body = oauth_error(answer, 400, "invalid_request", 900144)
    assert body["correlation_id"] == correlation
    assert f"Correlation ID: {correlation}" in body["error_description"]
    # The envelope's form: JSON, an ISO timestamp, GUID trace and correlation ids.
    assert answer.headers["content-type"].startswith("application/json")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", body["timestamp"]), body
    guid = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    assert re.fullmatch(guid, body["trace_id"]) and re.fullmatch(guid, body["correlation_id"]), body
    # The same echo on a refused client secret.
    principal = await new_principal(client, world)
    answer = await client.post(world.token_url(), data=_cc(principal, client_secret="nope"),
                               headers={"client-request-id": correlation})
    assert oauth_error(answer, 401, "invalid_client", 7000215)["correlation_id"] == correlation


# ----------------------------------------------------------------------------- client authentication
async def test_wrong_client_secret(client: httpx.AsyncClient, world: World, shared: dict[str, object]) -> None:
    principal = await _principal(client, world, shared)
    answer = await client.post(world.token_url(), data=_cc(principal, client_secret=principal.secret + "x"))
    body = oauth_error(answer, 401, "invalid_client", 7000215)
    assert principal.app_id in body["error_description"]
    assert principal.secret not in answer.text
    await _assert_intact(client, world, principal)


async def test_expired_client_secret(client: httpx.AsyncClient, world: World, moved_clock: FrozenClock) -> None:
    principal = await new_principal(client, world)
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(world.clock.now() + 86400))
    added = await client.post(f"/v1.0/applications/{principal.app_object_id}/addPassword",
                              json={"passwordCredential": {"displayName": "short", "endDateTime": end}},
                              headers=world.graph)
    assert added.status_code == 200, added.text
    short = added.json()["secretText"]
    ok = await client.post(world.token_url(), data=_cc(principal, client_secret=short))
    assert ok.status_code == 200, ok.text
    moved_clock.advance(2 * 86400)
    answer = await client.post(world.token_url(), data=_cc(principal, client_secret=short))
    oauth_error(answer, 401, "invalid_client", 7000222)


async def test_forged_client_assertion(client: httpx.AsyncClient, world: World, shared: dict[str, object]) -> None:
    principal = await _principal(client, world, shared)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    thumb = base64.urlsafe_b64encode(hashlib.sha1(b"not-registered").digest()).rstrip(b"=").decode()
    now = int(world.clock.now())
    assertion = jwt.encode({"iss": principal.app_id, "sub": principal.app_id, "jti": str(uuid.uuid4()),
                            "aud": f"https://127.0.0.1:8443/{world.tenant}/oauth2/v2.0/token",
                            "iat": now, "nbf": now, "exp": now + 600},
                           key, algorithm="RS256", headers={"x5t": thumb})
    assert hashes.SHA256  # the key is a real RSA key: only its certificate is unknown to the app
    answer = await client.post(world.token_url(), data={
        "grant_type": "client_credentials", "client_id": principal.app_id, "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion, "scope": f"{COG_RESOURCE}/.default"})
    oauth_error(answer, 401, "invalid_client", 700027)


async def test_malformed_client_assertion(client: httpx.AsyncClient, world: World,
                                          shared: dict[str, object]) -> None:
    principal = await _principal(client, world, shared)
    answer = await client.post(world.token_url(), data={
        "grant_type": "client_credentials", "client_id": principal.app_id, "client_assertion_type": JWT_BEARER,
        "client_assertion": "not.a.jwt", "scope": f"{COG_RESOURCE}/.default"})
    assert answer.status_code in (400, 401), answer.text
    assert answer.json()["error_codes"] == [50027]
    oauth_error(answer, 401, "invalid_client", 50027)


async def test_public_client_sending_a_secret(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(world.token_url(), data={
        "grant_type": "password", "client_id": CLI_CLIENT_ID, "client_secret": "x", "username": ADMIN,
        "password": PASSWORD, "scope": f"{COG_RESOURCE}/.default"})
    oauth_error(answer, 401, "invalid_client", 700025)


async def test_no_credential_for_a_confidential_flow(client: httpx.AsyncClient, world: World,
                                                     shared: dict[str, object]) -> None:
    principal = await _principal(client, world, shared)
    answer = await client.post(world.token_url(), data={
        "grant_type": "client_credentials", "client_id": principal.app_id, "scope": f"{COG_RESOURCE}/.default"})
    oauth_error(answer, 401, "invalid_client", 7000218)


async def test_unknown_application(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(world.token_url(), data={
        "grant_type": "client_credentials", "client_id": str(uuid.uuid4()), "client_secret": "x",
        "scope": f"{COG_RESOURCE}/.default"})
    body = oauth_error(answer, 400, "unauthorized_client", 700016)
    assert "was not found in the directory" in body["error_description"]


async def test_application_without_service_principal(client: httpx.AsyncClient, world: World) -> None:
    app = (await client.post("/v1.0/applications", json={"displayName": "no-sp"}, headers=world.graph)).json()
    secret = (await client.post(f"/v1.0/applications/{app['id']}/addPassword", json={},
                                headers=world.graph)).json()["secretText"]
    answer = await client.post(world.token_url(), data={
        "grant_type": "client_credentials", "client_id": app["appId"], "client_secret": secret,
        "scope": f"{COG_RESOURCE}/.default"})
    oauth_error(answer, 400, "unauthorized_client", 7000229)


# ----------------------------------------------------------------------------- tenants, scopes, resources
async def test_unknown_tenant(client: httpx.AsyncClient, world: World, shared: dict[str, object]) -> None:
    principal = await _principal(client, world, shared)
    answer = await client.post(world.token_url(tenant=str(uuid.uuid4())), data=_cc(principal))
    oauth_error(answer, 400, "invalid_request", 90002)


async def test_client_credentials_on_common(client: httpx.AsyncClient, world: World,
                                            shared: dict[str, object]) -> None:
    principal = await _principal(client, world, shared)
    answer = await client.post(world.token_url(tenant="common"), data=_cc(principal))
    oauth_error(answer, 400, "invalid_request", 50059)


async def test_tenant_by_domain_name(client: httpx.AsyncClient, world: World, shared: dict[str, object]) -> None:
    principal = await _principal(client, world, shared)
    answer = await client.post(world.token_url(tenant="cielo.local"), data=_cc(principal))
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("scope", ["https://cognitiveservices.azure.com/user_impersonation"])
async def test_scope_not_default_for_client_credentials(client: httpx.AsyncClient, world: World,
                                                       shared: dict[str, object], scope: str) -> None:
    principal = await _principal(client, world, shared)
    answer = await client.post(world.token_url(), data=_cc(principal, scope=scope))
    oauth_error(answer, 400, "invalid_scope", 1002012)


async def test_unknown_resource(client: httpx.AsyncClient, world: World, shared: dict[str, object]) -> None:
    principal = await _principal(client, world, shared)
    answer = await client.post(world.token_url(), data=_cc(principal, scope="https://nowhere.example/.default"))
    oauth_error(answer, 400, "invalid_resource", 500011)


# ----------------------------------------------------------------------------- the request itself
@pytest.mark.parametrize("missing", ["grant_type", "client_id"])
async def test_missing_parameter(client: httpx.AsyncClient, world: World, shared: dict[str, object],
                                 missing: str) -> None:
    principal = await _principal(client, world, shared)
    form = _cc(principal)
    del form[missing]
    if missing == "client_id":
        del form["client_secret"]
    answer = await client.post(world.token_url(), data=form)
    oauth_error(answer, 400, "invalid_request", 900144)


async def test_wrong_content_type(client: httpx.AsyncClient, world: World, shared: dict[str, object]) -> None:
    answer = await client.post(world.token_url(), json={"grant_type": "client_credentials"})
    oauth_error(answer, 400, "invalid_request", 9002313)
    # A complete, correct form sent as JSON is refused just the same, and changes nothing.
    principal = await _principal(client, world, shared)
    answer = await client.post(world.token_url(), json=_cc(principal))
    oauth_error(answer, 400, "invalid_request", 9002313)
    await _assert_intact(client, world, principal)


async def test_duplicated_parameter(client: httpx.AsyncClient, world: World, shared: dict[str, object]) -> None:
    answer = await client.post(world.token_url(), content=b"grant_type=client_credentials&grant_type=password",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    oauth_error(answer, 400, "invalid_request", 9002313)
    # A second client_secret after the right one is refused, not tried.
    principal = await _principal(client, world, shared)
    pairs = [*_cc(principal).items(), ("client_secret", "wrong")]
    answer = await client.post(world.token_url(), content=urlencode(pairs).encode(),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    oauth_error(answer, 400, "invalid_request", 9002313)
    await _assert_intact(client, world, principal)


async def test_body_over_64_kib(client: httpx.AsyncClient, world: World, shared: dict[str, object]) -> None:
    answer = await client.post(world.token_url(), content=b"grant_type=" + b"x" * (65 * 1024),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    oauth_error(answer, 413, "invalid_request", 9002313)
    # A valid form padded just past the limit.
    principal = await _principal(client, world, shared)
    answer = await client.post(world.token_url(), data=_cc(principal, padding="a" * (64 * 1024 + 1)))
    oauth_error(answer, 413, "invalid_request", 9002313)
    await _assert_intact(client, world, principal)


async def test_unsupported_grant_type(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(world.token_url(), data={"grant_type": "implicit", "client_id": CLI_CLIENT_ID})
    oauth_error(answer, 400, "unsupported_grant_type", 70003)


# ----------------------------------------------------------------------------- passwords
async def test_wrong_password(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(world.token_url(), data={
        "grant_type": "password", "client_id": CLI_CLIENT_ID, "username": ADMIN, "password": "wrong-Passw0rd!",
        "scope": f"{COG_RESOURCE}/.default"})
    body = oauth_error(answer, 400, "invalid_grant", 50126)
    assert PASSWORD not in answer.text and "wrong-Passw0rd!" not in body["error_description"]
    # An unknown user gets the same answer; the right password still works afterwards.
    answer = await client.post(world.token_url(), data={
        "grant_type": "password", "client_id": CLI_CLIENT_ID, "username": "nobody@cielo.local",
        "password": "wrong-Passw0rd!", "scope": f"{COG_RESOURCE}/.default"})
    oauth_error(answer, 400, "invalid_grant", 50126)
    answer = await client.post(world.token_url(), data={
        "grant_type": "password", "client_id": CLI_CLIENT_ID, "username": ADMIN, "password": PASSWORD,
        "scope": f"{COG_RESOURCE}/.default"})
    assert answer.status_code == 200, answer.text


# ----------------------------------------------------------------------------- authorization code + PKCE
async def _code(client: httpx.AsyncClient, world: World, challenge: str) -> str:
    """A code from the sign-in form (the double-submit CSRF pair is any well-formed value in cookie and field)."""
    csrf = "c" * 43
    client.cookies.set("cielo_csrf", csrf)
    answer = await client.post(f"/{world.tenant}/oauth2/v2.0/authorize", data={
        "client_id": CLI_CLIENT_ID, "redirect_uri": LOOPBACK, "response_type": "code",
        "scope": f"{COG_RESOURCE}/.default openid offline_access", "code_challenge": challenge,
        "code_challenge_method": "S256", "state": "s1", "csrf_token": csrf, "username": ADMIN,
        "password": PASSWORD})
    assert answer.status_code == 302, answer.text
    query = parse_qs(urlparse(answer.headers["location"]).query)
    assert query["state"] == ["s1"]
    return query["code"][0]


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _redeem(world: World, code: str, verifier: str, redirect: str = LOOPBACK) -> dict[str, str]:
    return {"grant_type": "authorization_code", "client_id": CLI_CLIENT_ID, "code": code,
            "redirect_uri": redirect, "code_verifier": verifier}


async def test_authorization_code_redirect_mismatch_then_replay(client: httpx.AsyncClient, world: World) -> None:
    verifier = "v" * 50
    code = await _code(client, world, _challenge(verifier))
    answer = await client.post(world.token_url(), data=_redeem(world, code, verifier, "http://localhost:1/other"))
    oauth_error(answer, 400, "invalid_grant", 50148)
    answer = await client.post(world.token_url(), data=_redeem(world, code, verifier))
    oauth_error(answer, 400, "invalid_grant", 54005)


async def test_authorization_code_pkce_mismatch(client: httpx.AsyncClient, world: World) -> None:
    code = await _code(client, world, _challenge("v" * 50))
    answer = await client.post(world.token_url(), data=_redeem(world, code, "w" * 50))
    oauth_error(answer, 400, "invalid_grant", 501481)


async def test_authorization_code_then_refresh_rotation_and_replay(client: httpx.AsyncClient, world: World) -> None:
    verifier = "p" * 60
    code = await _code(client, world, _challenge(verifier))
    answer = await client.post(world.token_url(), data=_redeem(world, code, verifier))
    assert answer.status_code == 200, answer.text
    first = answer.json()
    assert {"access_token", "refresh_token", "id_token", "client_info"} <= set(first)
    refresh = {"grant_type": "refresh_token", "client_id": CLI_CLIENT_ID, "refresh_token": first["refresh_token"],
               "scope": f"{COG_RESOURCE}/.default offline_access"}
    rotated = await client.post(world.token_url(), data=refresh)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["refresh_token"] != first["refresh_token"]
    replay = await client.post(world.token_url(), data=refresh)
    oauth_error(replay, 400, "invalid_grant", 50173)
    # The replay revoked the family: the rotated token is dead too.
    family = await client.post(world.token_url(), data={**refresh, "refresh_token": rotated.json()["refresh_token"]})
    oauth_error(family, 400, "invalid_grant", 50173)
    # Another sign-in is a new family, unaffected.
    other = await client.post(world.token_url(), data={
        "grant_type": "password", "client_id": CLI_CLIENT_ID, "username": ADMIN, "password": PASSWORD,
        "scope": f"{COG_RESOURCE}/.default offline_access"})
    assert other.status_code == 200, other.text
    fresh = await client.post(world.token_url(), data={**refresh, "refresh_token": other.json()["refresh_token"]})
    assert fresh.status_code == 200, fresh.text


async def test_unknown_refresh_token(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(world.token_url(), data={
        "grant_type": "refresh_token", "client_id": CLI_CLIENT_ID, "refresh_token": "garbage",
        "scope": f"{COG_RESOURCE}/.default"})
    oauth_error(answer, 400, "invalid_grant", 9002313)


# ----------------------------------------------------------------------------- device code
async def _device(client: httpx.AsyncClient, world: World) -> dict[str, str]:
    answer = await client.post(f"/{world.tenant}/oauth2/v2.0/devicecode", data={
        "client_id": CLI_CLIENT_ID, "scope": f"{COG_RESOURCE}/.default"})
    assert answer.status_code == 200, answer.text
    body: dict[str, str] = answer.json()
    assert body["verification_uri"] == "https://127.0.0.1:8443/devicelogin"
    return body


def _poll(code: str) -> dict[str, str]:
    return {"grant_type": DEVICE_GRANT, "client_id": CLI_CLIENT_ID, "device_code": code}


async def test_device_code_pending_then_declined(client: httpx.AsyncClient, world: World) -> None:
    device = await _device(client, world)
    oauth_error(await client.post(world.token_url(), data=_poll(device["device_code"])),
                400, "authorization_pending", 70016)
    client.cookies.set("cielo_csrf", "d" * 43)
    page = await client.post("/devicelogin", data={"user_code": device["user_code"], "csrf_token": "d" * 43,
                                                   "decision": "deny"})
    assert page.status_code == 200 and "denied" in page.text
    oauth_error(await client.post(world.token_url(), data=_poll(device["device_code"])),
                400, "authorization_declined", 70000)


async def test_device_code_expired(client: httpx.AsyncClient, world: World, moved_clock: FrozenClock) -> None:
    device = await _device(client, world)
    moved_clock.advance(int(device["expires_in"]) + 1)
    oauth_error(await client.post(world.token_url(), data=_poll(device["device_code"])),
                400, "expired_token", 70019)


async def test_device_code_unknown(client: httpx.AsyncClient, world: World) -> None:
    oauth_error(await client.post(world.token_url(), data=_poll("no-such-code")),
                400, "bad_verification_code", 70019)


async def test_device_login_without_csrf_pair_is_refused(client: httpx.AsyncClient, world: World) -> None:
    device = await _device(client, world)
    page = await client.post("/devicelogin", data={"user_code": device["user_code"], "decision": "deny"})
    assert page.status_code == 400
    oauth_error(await client.post(world.token_url(), data=_poll(device["device_code"])),
                400, "authorization_pending", 70016)
