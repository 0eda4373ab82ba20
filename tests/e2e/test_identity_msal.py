"""msal, used directly: confidential clients (secret, certificate) and public clients (ROPC, device
flow, refresh tokens) against a real `cielo up`, with `instance_discovery=False`.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import msal
import pytest
from cryptography.hazmat.primitives import serialization
from identity_support import (
    COGNITIVE,
    COGNITIVE_SCOPE,
    GRAPH,
    Metadata,
    UserAccount,
    approve_device_code,
    check_app_token,
    check_user_token,
    decode,
    graph,
    new_app,
    new_user,
)

from support.server import CLI_CLIENT_ID, CieloServer


def _authority(server: CieloServer) -> str:
    return f"{server.base_url}/{server.tenant_id}"


@pytest.fixture()
def public_app(client_env: dict[str, str], cielo_server: CieloServer) -> Iterator[msal.PublicClientApplication]:
    app = msal.PublicClientApplication(CLI_CLIENT_ID, authority=_authority(cielo_server),
                                       instance_discovery=False)
    yield app
    app.http_client.close()


def _confidential(server: CieloServer, client_id: str, credential: Any) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(client_id, client_credential=credential,
                                              authority=_authority(server), instance_discovery=False)


def test_confidential_client_secret(client_env: dict[str, str], cielo_server: CieloServer,
                                    metadata: Metadata) -> None:
    registered = new_app(cielo_server, "e2e-msal")
    app = _confidential(cielo_server, registered["appId"], registered["secret"])
    try:
        result = app.acquire_token_for_client([COGNITIVE_SCOPE])
        assert "access_token" in result, result
        assert result["token_type"] == "Bearer"
        assert result["token_source"] == "identity_provider"
        check_app_token(result["access_token"], metadata, audience=COGNITIVE, app_id=registered["appId"],
                        sp_object_id=registered["spObjectId"], acr="1")
        assert 3600 - 5 <= result["expires_in"] <= 5400
        cached = app.acquire_token_for_client([COGNITIVE_SCOPE])
        assert cached["token_source"] == "cache" and cached["access_token"] == result["access_token"]
    finally:
        app.http_client.close()


def test_confidential_client_certificate_sha1(client_env: dict[str, str], cielo_server: CieloServer,
                                              metadata: Metadata, cert_app: dict[str, Any]) -> None:
    """The legacy form: a SHA-1 thumbprint, so MSAL signs RS256 with `x5t`."""
    cert = cert_app["cert"]
    app = _confidential(cielo_server, cert_app["appId"],
                        {"private_key": cert.key_pem, "thumbprint": cert.sha1_hex})
    try:
        result = app.acquire_token_for_client([COGNITIVE_SCOPE])
        assert "access_token" in result, result
        check_app_token(result["access_token"], metadata, audience=COGNITIVE, app_id=cert_app["appId"],
                        sp_object_id=cert_app["spObjectId"], acr="2")
    finally:
        app.http_client.close()


def test_confidential_client_certificate_sha256(client_env: dict[str, str], cielo_server: CieloServer,
                                                metadata: Metadata, cert_app: dict[str, Any]) -> None:
    """Since MSAL 1.35, a certificate without a thumbprint means PS256 with `x5t#S256` and `x5c`."""
    cert = cert_app["cert"]
    public = cert.cert.public_bytes(serialization.Encoding.PEM).decode()
    app = _confidential(cielo_server, cert_app["appId"],
                        {"private_key": cert.key_pem, "public_certificate": public})
    try:
        result = app.acquire_token_for_client(["https://management.azure.com/.default"])
        assert "access_token" in result, result
        check_app_token(result["access_token"], metadata, audience="https://management.azure.com",
                        app_id=cert_app["appId"], sp_object_id=cert_app["spObjectId"], acr="2")
    finally:
        app.http_client.close()


def test_confidential_client_wrong_certificate(client_env: dict[str, str], cielo_server: CieloServer,
                                               cert_app: dict[str, Any], tmp_path: Any) -> None:
    from identity_support import make_certificate

    stranger = make_certificate(tmp_path, "stranger")
    app = _confidential(cielo_server, cert_app["appId"],
                        {"private_key": stranger.key_pem, "thumbprint": stranger.sha1_hex})
    try:
        result = app.acquire_token_for_client([COGNITIVE_SCOPE])
    finally:
        app.http_client.close()
    assert result.get("error") == "invalid_client", result
    assert result["error_codes"] == [700027]


def test_username_password_and_refresh(public_app: msal.PublicClientApplication, needs_443: None,
                                       metadata: Metadata, member_user: UserAccount) -> None:
    result = public_app.acquire_token_by_username_password(member_user.upn, member_user.password,
                                                            scopes=[f"{GRAPH}/.default"])
    assert "access_token" in result, result
    check_user_token(result["access_token"], metadata, audience=GRAPH, app_id=CLI_CLIENT_ID, user=member_user,
                     scp="User.Read")
    # MSAL read the id_token and client_info into an account.
    accounts = public_app.get_accounts(username=member_user.upn)
    assert len(accounts) == 1
    assert accounts[0]["home_account_id"] == f"{member_user.object_id}.{metadata.tenant_id}"
    id_claims = result["id_token_claims"]
    assert id_claims["aud"] == CLI_CLIENT_ID and id_claims["tid"] == metadata.tenant_id
    assert id_claims["oid"] == member_user.object_id and id_claims["preferred_username"] == member_user.upn
    # Another resource: MSAL redeems its refresh token silently.
    silent = public_app.acquire_token_silent([COGNITIVE_SCOPE], account=accounts[0])
    assert silent and "access_token" in silent, silent
    assert silent["token_source"] == "identity_provider"
    check_user_token(silent["access_token"], metadata, audience=COGNITIVE, app_id=CLI_CLIENT_ID,
                     user=member_user, scp="user_impersonation")
    # A forced refresh of the first resource uses the rotated refresh token.
    forced = public_app.acquire_token_silent([f"{GRAPH}/.default"], account=accounts[0], force_refresh=True)
    assert forced and "access_token" in forced, forced
    assert forced["access_token"] != result["access_token"]
    check_user_token(forced["access_token"], metadata, audience=GRAPH, app_id=CLI_CLIENT_ID, user=member_user,
                     scp="User.Read")


def test_refresh_token_grant(public_app: msal.PublicClientApplication, needs_443: None, metadata: Metadata,
                             member_user: UserAccount) -> None:
    first = public_app.acquire_token_by_username_password(member_user.upn, member_user.password,
                                                           scopes=[f"{GRAPH}/.default"])
    assert "refresh_token" in first, first
    refreshed = public_app.acquire_token_by_refresh_token(first["refresh_token"], scopes=[COGNITIVE_SCOPE])
    assert "access_token" in refreshed, refreshed
    assert refreshed["refresh_token"] != first["refresh_token"]
    check_user_token(refreshed["access_token"], metadata, audience=COGNITIVE, app_id=CLI_CLIENT_ID,
                     user=member_user, scp="user_impersonation")


def test_device_flow(public_app: msal.PublicClientApplication, cielo_server: CieloServer, metadata: Metadata,
                     member_user: UserAccount) -> None:
    flow = public_app.initiate_device_flow(scopes=[COGNITIVE_SCOPE])
    assert "user_code" in flow, flow
    assert flow["verification_uri"] == f"{cielo_server.base_url}/devicelogin"
    assert flow["interval"] == 1
    assert flow["user_code"] in flow["message"]

    def person() -> None:
        time.sleep(1.2)  # let the client poll at least once and see authorization_pending
        approve_device_code(cielo_server, flow["user_code"], member_user)

    approver = threading.Thread(target=person)
    approver.start()
    started = time.monotonic()
    result = public_app.acquire_token_by_device_flow(flow)
    approver.join()
    assert "access_token" in result, result
    assert time.monotonic() - started < 15
    check_user_token(result["access_token"], metadata, audience=COGNITIVE, app_id=CLI_CLIENT_ID,
                     user=member_user, scp="user_impersonation")
    assert result["id_token_claims"]["oid"] == member_user.object_id


def test_device_flow_declined(public_app: msal.PublicClientApplication, cielo_server: CieloServer) -> None:
    person = new_user(cielo_server, "dave")
    flow = public_app.initiate_device_flow(scopes=[COGNITIVE_SCOPE])
    approve_device_code(cielo_server, flow["user_code"], person, decision="deny")
    result = public_app.acquire_token_by_device_flow(flow)
    assert result.get("error") == "authorization_declined", result
    assert "access_token" not in result


def test_user_token_for_v2_application(client_env: dict[str, str], cielo_server: CieloServer,
                                       metadata: Metadata, member_user: UserAccount,
                                       public_app: msal.PublicClientApplication, needs_443: None) -> None:
    """An API registered with requestedAccessTokenVersion 2 gets v2 tokens: aud = its appId."""
    uri = f"api://e2e-v2-user-{secrets.token_hex(3)}"
    api = graph(cielo_server, "POST", "/applications", {
        "displayName": "e2e-v2-api", "identifierUris": [uri], "api": {"requestedAccessTokenVersion": 2},
    })
    result = public_app.acquire_token_by_username_password(member_user.upn, member_user.password,
                                                            scopes=[f"{uri}/Data.Read"])
    assert "access_token" in result, result
    claims = decode(result["access_token"], metadata.jwks, api["appId"])
    assert claims["iss"] == metadata.issuer_v2
    assert claims["ver"] == "2.0"
    assert claims["azp"] == CLI_CLIENT_ID and claims["azpacr"] == "0"
    assert claims["scp"] == "Data.Read"
    assert claims["preferred_username"] == member_user.upn
    assert claims["oid"] == member_user.object_id and claims["tid"] == metadata.tenant_id
