"""Bad input at the token endpoint: each answer must carry Entra's OAuth envelope and status, and
nothing may be stored wrongly afterwards (the good credentials keep working)."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import msal
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential
from identity_support import (
    COGNITIVE,
    COGNITIVE_SCOPE,
    GRAPH,
    AppCertificate,
    Metadata,
    UserAccount,
    admin_token,
    check_app_token,
    check_oauth_error,
    graph,
    make_certificate,
    new_app,
    token_post,
)

from support.server import CLI_CLIENT_ID, CieloServer

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture(scope="module")
def app(cielo_server: CieloServer) -> dict[str, Any]:
    return new_app(cielo_server, "e2e-errors")


def _client_credentials(app: dict[str, Any], **extra: str) -> dict[str, str]:
    form = {"client_id": app["appId"], "grant_type": "client_credentials", "scope": COGNITIVE_SCOPE}
    if "secret" in app:
        form["client_secret"] = app["secret"]
    form.update(extra)
    return form


# ----------------------------------------------------------------------------- client authentication
def test_wrong_secret_through_azure_identity(client_env: dict[str, str], cielo_server: CieloServer,
                                             app: dict[str, Any]) -> None:
    with ClientSecretCredential(cielo_server.tenant_id, app["appId"], "not-the-secret",
                                authority=cielo_server.base_url, disable_instance_discovery=True) as credential, \
            pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        credential.get_token(COGNITIVE_SCOPE)


def test_secret_with_past_end_date_is_refused(cielo_server: CieloServer, app: dict[str, Any]) -> None:
    with cielo_server.http() as client:
        response = client.post(f"/v1.0/applications/{app['objectId']}/addPassword",
                               json={"passwordCredential": {"endDateTime": "2020-01-01T00:00:00Z"}},
                               headers={"Authorization": f"Bearer {admin_token(cielo_server)}"})
    assert response.status_code == 400
    assert graph(cielo_server, "GET", f"/applications/{app['objectId']}")["passwordCredentials"].__len__() == 1


def test_unknown_tenant_through_msal(client_env: dict[str, str], cielo_server: CieloServer,
                                     app: dict[str, Any]) -> None:
    """MSAL reads the discovery document first; there Entra answers `invalid_tenant` (AADSTS90002),
    and MSAL puts that body in its error."""
    import requests

    tenant = str(uuid.uuid4())
    with requests.Session() as session, pytest.raises(ValueError) as raised:
        msal.ConfidentialClientApplication(app["appId"], client_credential=app["secret"],
                                           authority=f"{cielo_server.base_url}/{tenant}",
                                           instance_discovery=False, http_client=session)
    chain = [str(exc) for exc in (raised.value, raised.value.__cause__, raised.value.__context__) if exc]
    assert any("invalid_tenant" in text and "AADSTS90002" in text for text in chain), chain
    with cielo_server.http() as client:
        for path in ("v2.0/.well-known/openid-configuration", ".well-known/openid-configuration",
                     "discovery/v2.0/keys"):
            check_oauth_error(client.get(f"/{tenant}/{path}"), 400, "invalid_tenant", 90002)


# ----------------------------------------------------------------------------- refresh token replay
def test_refresh_token_of_another_client(cielo_server: CieloServer, member_user: UserAccount) -> None:
    response = token_post(cielo_server, {
        "client_id": CLI_CLIENT_ID, "grant_type": "password", "username": member_user.upn,
        "password": member_user.password, "scope": f"{GRAPH}/.default offline_access",
    })
    token = response.json()["refresh_token"]
    stolen = token_post(cielo_server, {"client_id": "1950a258-227b-4e31-a9cf-717495945fc2",
                                       "grant_type": "refresh_token", "refresh_token": token,
                                       "scope": f"{GRAPH}/.default"})
    check_oauth_error(stolen, 400, "invalid_grant", 70000)


def test_failed_refresh_does_not_burn_the_token(cielo_server: CieloServer, member_user: UserAccount,
                                               app: dict[str, Any]) -> None:
    """A refresh that fails for a reason of the request alone (unknown resource, bad client secret) must
    leave the refresh token usable: MSAL keeps its old refresh token after an error and presents it
    again later, which must not be taken for a replay."""

    def refresh(token: str, scope: str, **extra: str) -> Any:
        return token_post(cielo_server, {"client_id": extra.pop("client_id", CLI_CLIENT_ID),
                                         "grant_type": "refresh_token", "refresh_token": token,
                                         "scope": scope, **extra})

    token = token_post(cielo_server, {
        "client_id": CLI_CLIENT_ID, "grant_type": "password", "username": member_user.upn,
        "password": member_user.password, "scope": f"{GRAPH}/.default offline_access",
    }).json()["refresh_token"]
    check_oauth_error(refresh(token, "api://no-such-api/.default"), 400, "invalid_resource", 500011)
    again = refresh(token, f"{GRAPH}/.default offline_access")
    assert again.status_code == 200, again.text

    # A confidential client that gets its own secret wrong once.
    confidential = token_post(cielo_server, {
        "client_id": app["appId"], "client_secret": app["secret"], "grant_type": "password",
        "username": member_user.upn, "password": member_user.password,
        "scope": f"{GRAPH}/.default offline_access",
    })
    assert confidential.status_code == 200, confidential.text
    token = confidential.json()["refresh_token"]
    check_oauth_error(refresh(token, f"{GRAPH}/.default", client_id=app["appId"], client_secret="wrong"),
                      401, "invalid_client", 7000215)
    again = refresh(token, f"{GRAPH}/.default", client_id=app["appId"], client_secret=app["secret"])
    assert again.status_code == 200, again.text


# ----------------------------------------------------------------------------- malformed bodies
def test_missing_content_type_is_refused(cielo_server: CieloServer, app: dict[str, Any]) -> None:
    response = token_post(cielo_server, content=b"grant_type=client_credentials", headers={"Content-Type": ""})
    check_oauth_error(response, 400, "invalid_request", 9002313)


@pytest.mark.parametrize("body", [
    b"grant_type=client_credentials&client_id=%ZZ",          # not a percent escape
    b"grant_type=client_credentials&client_id=abc%",         # truncated escape
    b"grant_type=client_credentials&client_id=%FF%FE",       # escapes that are not UTF-8
    b"grant_type=client_credentials&client_id=\xff\xfe",     # raw bytes that are not UTF-8
    b"grant_type=client_credentials&grant_type=password",    # a parameter twice
    b"grant_type=client_credentials&&client_id=x",           # an empty pair
    b"grant_type",                                           # no '='
], ids=["bad-escape", "truncated-escape", "escaped-non-utf8", "raw-non-utf8", "duplicate", "empty-pair",
        "no-equals"])
def test_malformed_form(cielo_server: CieloServer, body: bytes) -> None:
    response = token_post(cielo_server, content=body,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    check_oauth_error(response, 400, "invalid_request", 9002313)


def test_oversized_chunked_body(cielo_server: CieloServer, app: dict[str, Any]) -> None:
    """Without Content-Length the limit still holds while the body streams in."""

    def chunks() -> Iterator[bytes]:
        yield b"grant_type=client_credentials&padding="
        for _ in range(80):
            yield b"a" * 1024

    with cielo_server.http() as client:
        response = client.post(f"/{cielo_server.tenant_id}/oauth2/v2.0/token", content=chunks(),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert "content-length" not in response.request.headers
    check_oauth_error(response, 413, "invalid_request", 9002313)


# ----------------------------------------------------------------------------- forged client assertions
@pytest.fixture(scope="module")
def assertion_app(cielo_server: CieloServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from identity_support import register_certificate

    registered = new_app(cielo_server, "e2e-assert")  # has a secret too, to check nothing changes
    cert = make_certificate(tmp_path_factory.mktemp("assert"))
    register_certificate(cielo_server, registered, cert)
    return {**registered, "cert": cert}


def _assertion(cert: AppCertificate, *, client_id: str, audience: str, signer: Any = None,
               lifetime: int = 600, issued: float | None = None, alg: str = "RS256",
               x5t: str | None = None) -> str:
    now = int(issued if issued is not None else time.time())
    claims = {"aud": audience, "iss": client_id, "sub": client_id, "jti": str(uuid.uuid4()),
              "nbf": now, "iat": now, "exp": now + lifetime}
    return jwt.encode(claims, signer or cert.key, algorithm=alg, headers={"x5t": x5t or cert.x5t})


def _assertion_form(client_id: str, assertion: str) -> dict[str, str]:
    return {"client_id": client_id, "grant_type": "client_credentials", "scope": COGNITIVE_SCOPE,
            "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}


def test_genuine_assertion(cielo_server: CieloServer, metadata: Metadata, assertion_app: dict[str, Any]) -> None:
    """The control for the forgeries below: the same construction, done right, is accepted."""
    assertion = _assertion(assertion_app["cert"], client_id=assertion_app["appId"],
                           audience=metadata.token_endpoint)
    response = token_post(cielo_server, _assertion_form(assertion_app["appId"], assertion))
    assert response.status_code == 200, response.text
    check_app_token(response.json()["access_token"], metadata, audience=COGNITIVE,
                    app_id=assertion_app["appId"], sp_object_id=assertion_app["spObjectId"], acr="2")


def test_assertion_wrong_audience(cielo_server: CieloServer, assertion_app: dict[str, Any]) -> None:
    assertion = _assertion(assertion_app["cert"], client_id=assertion_app["appId"],
                           audience="https://login.microsoftonline.com/common/oauth2/v2.0/token")
    response = token_post(cielo_server, _assertion_form(assertion_app["appId"], assertion))
    check_oauth_error(response, 401, "invalid_client", 700212)


def test_assertion_for_another_tenant(cielo_server: CieloServer, assertion_app: dict[str, Any]) -> None:
    other = f"{cielo_server.base_url}/{uuid.uuid4()}/oauth2/v2.0/token"
    assertion = _assertion(assertion_app["cert"], client_id=assertion_app["appId"], audience=other)
    response = token_post(cielo_server, _assertion_form(assertion_app["appId"], assertion))
    check_oauth_error(response, 401, "invalid_client", 700212)


def test_assertion_expired(cielo_server: CieloServer, metadata: Metadata, assertion_app: dict[str, Any]) -> None:
    assertion = _assertion(assertion_app["cert"], client_id=assertion_app["appId"],
                           audience=metadata.token_endpoint, issued=time.time() - 3600, lifetime=600)
    response = token_post(cielo_server, _assertion_form(assertion_app["appId"], assertion))
    check_oauth_error(response, 401, "invalid_client", 700024)


def test_assertion_signed_by_unregistered_key(cielo_server: CieloServer, metadata: Metadata,
                                              assertion_app: dict[str, Any], tmp_path: Path) -> None:
    """Claims the registered certificate's x5t but is signed with another private key."""
    impostor = make_certificate(tmp_path, "impostor")
    assertion = _assertion(assertion_app["cert"], client_id=assertion_app["appId"],
                           audience=metadata.token_endpoint, signer=impostor.key)
    response = token_post(cielo_server, _assertion_form(assertion_app["appId"], assertion))
    check_oauth_error(response, 401, "invalid_client", 700027)


def test_assertion_naming_unregistered_certificate(cielo_server: CieloServer, metadata: Metadata,
                                                   assertion_app: dict[str, Any], tmp_path: Path) -> None:
    impostor = make_certificate(tmp_path, "impostor")
    assertion = _assertion(impostor, client_id=assertion_app["appId"], audience=metadata.token_endpoint)
    response = token_post(cielo_server, _assertion_form(assertion_app["appId"], assertion))
    check_oauth_error(response, 401, "invalid_client", 700027)


def test_assertion_with_hmac_or_none(cielo_server: CieloServer, metadata: Metadata,
                                     assertion_app: dict[str, Any]) -> None:
    cert = assertion_app["cert"]
    now = int(time.time())
    claims = {"aud": metadata.token_endpoint, "iss": assertion_app["appId"], "sub": assertion_app["appId"],
              "jti": str(uuid.uuid4()), "nbf": now, "exp": now + 600}
    hs = jwt.encode(claims, assertion_app["secret"], algorithm="HS256", headers={"x5t": cert.x5t})
    check_oauth_error(token_post(cielo_server, _assertion_form(assertion_app["appId"], hs)),
                      401, "invalid_client", 700027)
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    import json

    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    check_oauth_error(token_post(cielo_server, _assertion_form(assertion_app["appId"], f"{header}.{body}.")),
                      401, "invalid_client", 700027)


def test_assertion_for_another_client(cielo_server: CieloServer, metadata: Metadata,
                                      assertion_app: dict[str, Any], app: dict[str, Any]) -> None:
    """A genuine assertion of one app presented as another app's credential."""
    assertion = _assertion(assertion_app["cert"], client_id=assertion_app["appId"],
                           audience=metadata.token_endpoint)
    response = token_post(cielo_server, _assertion_form(app["appId"], assertion))
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"


def test_assertion_app_intact(cielo_server: CieloServer, metadata: Metadata,
                              assertion_app: dict[str, Any]) -> None:
    registered = graph(cielo_server, "GET", f"/applications/{assertion_app['objectId']}")
    assert len(registered["keyCredentials"]) == 1
    assert len(registered["passwordCredentials"]) == 1
    response = token_post(cielo_server, _client_credentials(assertion_app))
    assert response.status_code == 200, response.text


# ----------------------------------------------------------------------------- forged federated tokens
def _federated_form(app: dict[str, Any], assertion: str) -> dict[str, str]:
    return _assertion_form(app["appId"], assertion)


def test_federated_control(cielo_server: CieloServer, oidc_issuer: Any, federated_app: dict[str, Any]) -> None:
    response = token_post(cielo_server, _federated_form(federated_app, oidc_issuer.token(federated_app["subject"])))
    assert response.status_code == 200, response.text


def test_federated_wrong_audience(cielo_server: CieloServer, oidc_issuer: Any,
                                  federated_app: dict[str, Any]) -> None:
    assertion = oidc_issuer.token(federated_app["subject"], audience="api://SomethingElse")
    check_oauth_error(token_post(cielo_server, _federated_form(federated_app, assertion)),
                      401, "invalid_client", 700212)


def test_federated_expired(cielo_server: CieloServer, oidc_issuer: Any, federated_app: dict[str, Any]) -> None:
    assertion = oidc_issuer.token(federated_app["subject"], lifetime=-900)
    check_oauth_error(token_post(cielo_server, _federated_form(federated_app, assertion)),
                      401, "invalid_client", 700024)


def test_federated_signed_by_another_key(cielo_server: CieloServer, oidc_issuer: Any,
                                         federated_app: dict[str, Any]) -> None:
    """Right issuer, subject and kid, wrong private key."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    now = int(time.time())
    claims = {"iss": oidc_issuer.url, "sub": federated_app["subject"], "aud": "api://AzureADTokenExchange",
              "iat": now, "nbf": now, "exp": now + 600}
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assertion = jwt.encode(claims, other, algorithm="RS256", headers={"kid": oidc_issuer.kid})
    check_oauth_error(token_post(cielo_server, _federated_form(federated_app, assertion)),
                      401, "invalid_client", 700027)


def test_federated_subject_of_another_app(cielo_server: CieloServer, oidc_issuer: Any,
                                          federated_app: dict[str, Any], app: dict[str, Any]) -> None:
    """A genuine token of the trusted subject, presented for an app that does not trust it."""
    assertion = oidc_issuer.token(federated_app["subject"])
    check_oauth_error(token_post(cielo_server, _assertion_form(app["appId"], assertion)),
                      401, "invalid_client", 70021)


def test_assertion_for_another_sts_with_spoofed_host(cielo_server: CieloServer,
                                                     assertion_app: dict[str, Any]) -> None:
    """An assertion minted for Entra (aud = its token endpoint), replayed here with `Host:` naming Entra.
    The audience must name this server whatever the Host header says (RFC 7523 §3)."""
    entra = f"https://login.microsoftonline.com/{cielo_server.tenant_id}/oauth2/v2.0/token"
    assertion = _assertion(assertion_app["cert"], client_id=assertion_app["appId"], audience=entra)
    response = token_post(cielo_server, _assertion_form(assertion_app["appId"], assertion),
                          headers={"Host": "login.microsoftonline.com"})
    check_oauth_error(response, 401, "invalid_client", 700212)


def test_discovery_ignores_a_foreign_host_header(cielo_server: CieloServer, metadata: Metadata) -> None:
    with cielo_server.http() as client:
        spoofed = client.get(f"/{cielo_server.tenant_id}/v2.0/.well-known/openid-configuration",
                             headers={"Host": "evil.example"}).json()
        local = client.get(f"/{cielo_server.tenant_id}/v2.0/.well-known/openid-configuration",
                           headers={"Host": f"localhost:{cielo_server.port}"}).json()
    assert spoofed["token_endpoint"] == metadata.token_endpoint
    assert spoofed["authorization_endpoint"].startswith(cielo_server.base_url + "/")
    # A name the server does answer to (it is on its certificate) is kept, so clients stay on it.
    assert local["token_endpoint"] == f"https://localhost:{cielo_server.port}/{cielo_server.tenant_id}/oauth2/v2.0/token"
