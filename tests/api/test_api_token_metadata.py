"""The token service's metadata in-process, as MSAL, azure-identity and az read it: OpenID discovery (v1 and v2),
the signing keys (a token the service issued verifies with them), MSAL's instance discovery and user realm, and
the v1 device-code answer. Endpoint URLs are built from the host the client used when it names this server."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pytest
from inproc import ADMIN, ARM_RESOURCE, BASE_URL, CLI_CLIENT_ID, COG_RESOURCE, World, oauth_error


@pytest.mark.parametrize("version", [1, 2])
async def test_discovery_for_a_tenant_by_id_or_domain(client: httpx.AsyncClient, world: World, version: int) -> None:
    path = "v2.0/.well-known/openid-configuration" if version == 2 else ".well-known/openid-configuration"
    by_id = await client.get(f"/{world.tenant}/{path}")
    assert by_id.status_code == 200
    assert by_id.headers["cache-control"] == "max-age=86400, private"
    assert by_id.headers["access-control-allow-origin"] == "*"
    body: dict[str, Any] = by_id.json()
    v2 = "v2.0/" if version == 2 else ""
    assert body["token_endpoint"] == f"{BASE_URL}/{world.tenant}/oauth2/{v2}token"
    assert body["authorization_endpoint"] == f"{BASE_URL}/{world.tenant}/oauth2/{v2}authorize"
    assert body["device_authorization_endpoint"] == f"{BASE_URL}/{world.tenant}/oauth2/{v2}devicecode"
    assert body["jwks_uri"] == f"{BASE_URL}/{world.tenant}/discovery/{v2}keys"
    assert body["issuer"] == (f"{BASE_URL}/{world.tenant}/v2.0" if version == 2 else f"{BASE_URL}/{world.tenant}/")
    by_domain = (await client.get(f"/cielo.local/{path}")).json()
    assert by_domain["issuer"] == body["issuer"]  # the same tenant, named by its domain
    assert by_domain["token_endpoint"] == f"{BASE_URL}/cielo.local/oauth2/{v2}token"
    common = (await client.get(f"/organizations/{path}")).json()
    assert "{tenantid}" in common["issuer"]


async def test_discovery_of_an_unknown_tenant_is_invalid_tenant(client: httpx.AsyncClient) -> None:
    for path in ("/nowhere.example/v2.0/.well-known/openid-configuration",
                 "/nowhere.example/discovery/v2.0/keys"):
        answer = await client.get(path)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_tenant", answer.text


async def test_a_token_verifies_with_the_published_keys(client: httpx.AsyncClient, world: World) -> None:
    keys = (await client.get(f"/{world.tenant}/discovery/v2.0/keys")).json()["keys"]
    assert keys == (await client.get(f"/{world.tenant}/discovery/keys")).json()["keys"]
    token = world.admin_tokens[ARM_RESOURCE]
    kid = jwt.get_unverified_header(token)["kid"]
    [key] = [k for k in keys if k["kid"] == kid]
    assert key["kty"] == "RSA" and key["use"] == "sig" and key["x5c"]
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["RS256"], audience=ARM_RESOURCE,
                        options={"verify_exp": False})
    assert claims["upn"] == ADMIN


async def test_instance_discovery_and_user_realm(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.get("/common/discovery/instance", params={
        "api-version": "1.1", "authorization_endpoint": f"https://127.0.0.1/{world.tenant}/oauth2/v2.0/authorize"})
    body = answer.json()
    assert body["tenant_discovery_endpoint"] == f"{BASE_URL}/{world.tenant}/v2.0/.well-known/openid-configuration"
    assert body["metadata"] == [{"preferred_network": "127.0.0.1:8443", "preferred_cache": "127.0.0.1:8443",
                                 "aliases": ["127.0.0.1:8443"]}]  # the port kept, which MSAL dropped
    bare = (await client.get("/common/discovery/instance")).json()
    assert bare["tenant_discovery_endpoint"] == f"{BASE_URL}/common/v2.0/.well-known/openid-configuration"
    for upn, kind in ((ADMIN, "Managed"), ("someone@cielo.local", "Managed"), ("x@elsewhere.example", "Unknown")):
        realm = (await client.get(f"/common/userrealm/{upn}", params={"api-version": "1.0"})).json()
        assert (realm["account_type"], realm["domain_name"]) == (kind, upn.rpartition("@")[2])


async def test_v1_device_code_answers_in_v1_shape(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(f"/{world.tenant}/oauth2/devicecode", data={
        "client_id": CLI_CLIENT_ID, "resource": COG_RESOURCE})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["verification_url"] == f"{BASE_URL}/devicelogin"
    assert isinstance(body["expires_in"], str) and isinstance(body["interval"], str)
    # v1 polls with `code`, not `device_code`.
    pending = await client.post(world.token_url(v1=True), data={
        "grant_type": "device_code", "client_id": CLI_CLIENT_ID, "code": body["device_code"],
        "resource": COG_RESOURCE})
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending", pending.text


async def test_a_device_code_for_an_unknown_client_is_refused(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(f"/{world.tenant}/oauth2/v2.0/devicecode", data={
        "client_id": "00000000-0000-0000-0000-0000000000dd", "scope": f"{COG_RESOURCE}/.default"})
    oauth_error(answer, 400, "unauthorized_client", 700016)


@pytest.mark.parametrize("host", ["login.microsoftonline.com", "LOGIN.windows.net:443", "sts.windows.net"])
async def test_instance_discovery_under_entras_host_answers_as_entra(client: httpx.AsyncClient, world: World,
                                                                     host: str) -> None:
    """Intercept mode: MSAL asks Entra's host; the answer has the public cloud's alias group, as Entra's does."""
    answer = await client.get("/common/discovery/instance", headers={"Host": host}, params={
        "api-version": "1.1",
        "authorization_endpoint": f"https://login.microsoftonline.com/{world.tenant}/oauth2/v2.0/authorize"})
    body = answer.json()
    name = host.lower().split(":")[0]
    assert body["tenant_discovery_endpoint"] == f"https://{name}/{world.tenant}/v2.0/.well-known/openid-configuration"
    [group] = body["metadata"]
    assert group["preferred_network"] == "login.microsoftonline.com"
    assert set(group["aliases"]) == {"login.microsoftonline.com", "login.windows.net", "login.microsoft.com",
                                     "sts.windows.net"}
