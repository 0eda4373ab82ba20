"""azure-identity credentials, unmodified, against a real `cielo up` over HTTPS on loopback.

Every token is verified with PyJWT against the server's JWKS and checked claim by claim
(learn.microsoft.com/entra/identity-platform/access-token-claims-reference). Sync MSAL-based credentials get
`disable_instance_discovery=True`, which is the documented way to stop MSAL from asking
login.microsoftonline.com about an authority host it does not know.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from azure.identity import (
    CertificateCredential,
    ClientSecretCredential,
    DefaultAzureCredential,
    DeviceCodeCredential,
    EnvironmentCredential,
    UsernamePasswordCredential,
    WorkloadIdentityCredential,
)
from identity_support import (
    COGNITIVE,
    COGNITIVE_SCOPE,
    GRAPH,
    Metadata,
    OidcIssuer,
    UserAccount,
    approve_device_code,
    check_app_token,
    check_user_token,
    decode,
    graph,
    new_app,
)

from support.server import CLI_CLIENT_ID, CieloServer


@pytest.fixture(scope="module")
def secret_app(cielo_server: CieloServer) -> dict[str, Any]:
    return new_app(cielo_server, "e2e-cred")


def test_client_secret_credential(client_env: dict[str, str], cielo_server: CieloServer, metadata: Metadata,
                                  secret_app: dict[str, Any]) -> None:
    with ClientSecretCredential(
        cielo_server.tenant_id, secret_app["appId"], secret_app["secret"],
        authority=cielo_server.base_url, disable_instance_discovery=True,
    ) as credential:
        token = credential.get_token(COGNITIVE_SCOPE)
        claims = check_app_token(token.token, metadata, audience=COGNITIVE, app_id=secret_app["appId"],
                                 sp_object_id=secret_app["spObjectId"], acr="1")
        assert token.expires_on == claims["exp"]
        # MSAL caches: the same scope again is the same token, without a request.
        assert credential.get_token(COGNITIVE_SCOPE).token == token.token


def test_certificate_credential_sync(client_env: dict[str, str], cielo_server: CieloServer, metadata: Metadata,
                                     cert_app: dict[str, Any]) -> None:
    with CertificateCredential(
        cielo_server.tenant_id, cert_app["appId"], certificate_path=str(cert_app["cert"].pem_path),
        authority=cielo_server.base_url, disable_instance_discovery=True,
    ) as credential:
        token = credential.get_token(COGNITIVE_SCOPE)
        # MSAL reuses its assertion (same jti) for the next resource; the server must accept that.
        second = credential.get_token("https://management.azure.com/.default")
    check_app_token(token.token, metadata, audience=COGNITIVE, app_id=cert_app["appId"],
                    sp_object_id=cert_app["spObjectId"], acr="2")
    check_app_token(second.token, metadata, audience="https://management.azure.com",
                    app_id=cert_app["appId"], sp_object_id=cert_app["spObjectId"], acr="2")


def test_certificate_credential_sync_with_chain(client_env: dict[str, str], cielo_server: CieloServer,
                                                metadata: Metadata, cert_app: dict[str, Any]) -> None:
    with CertificateCredential(
        cielo_server.tenant_id, cert_app["appId"], certificate_path=str(cert_app["cert"].pem_path),
        authority=cielo_server.base_url, disable_instance_discovery=True, send_certificate_chain=True,
    ) as credential:
        token = credential.get_token(COGNITIVE_SCOPE)
    check_app_token(token.token, metadata, audience=COGNITIVE, app_id=cert_app["appId"],
                    sp_object_id=cert_app["spObjectId"], acr="2")


async def test_certificate_credential_async(client_env: dict[str, str], cielo_server: CieloServer,
                                            metadata: Metadata, cert_app: dict[str, Any]) -> None:
    from azure.identity.aio import CertificateCredential as AsyncCertificateCredential

    # aiohttp builds its default SSL context when first imported, so SSL_CERT_FILE set by a fixture
    # may come too late in a shared pytest process; name the bundle as an application can.
    async with AsyncCertificateCredential(
        cielo_server.tenant_id, cert_app["appId"], certificate_path=str(cert_app["cert"].pem_path),
        authority=cielo_server.base_url, connection_verify=cielo_server.bundle,
    ) as credential:
        token = await credential.get_token(COGNITIVE_SCOPE)
    check_app_token(token.token, metadata, audience=COGNITIVE, app_id=cert_app["appId"],
                    sp_object_id=cert_app["spObjectId"], acr="2")


async def test_client_secret_credential_async(client_env: dict[str, str], cielo_server: CieloServer,
                                              metadata: Metadata, secret_app: dict[str, Any]) -> None:
    from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential

    async with AsyncClientSecretCredential(
        cielo_server.tenant_id, secret_app["appId"], secret_app["secret"],
        authority=cielo_server.base_url, connection_verify=cielo_server.bundle,
    ) as credential:
        token = await credential.get_token(COGNITIVE_SCOPE)
    check_app_token(token.token, metadata, audience=COGNITIVE, app_id=secret_app["appId"],
                    sp_object_id=secret_app["spObjectId"], acr="1")


def test_username_password_credential_organizations(client_env: dict[str, str], needs_443: None,
                                                    cielo_server: CieloServer, metadata: Metadata,
                                                    member_user: UserAccount) -> None:
    """No tenant_id: azure-identity's default `organizations`; the user's home tenant answers."""
    with pytest.warns(DeprecationWarning), UsernamePasswordCredential(
        CLI_CLIENT_ID, member_user.upn, member_user.password, authority=cielo_server.base_url,
        disable_instance_discovery=True,
    ) as credential:
        token = credential.get_token(COGNITIVE_SCOPE)
    check_user_token(token.token, metadata, audience=COGNITIVE, app_id=CLI_CLIENT_ID, user=member_user,
                     scp="user_impersonation")


def test_username_password_credential(client_env: dict[str, str], needs_443: None, cielo_server: CieloServer,
                                      metadata: Metadata, member_user: UserAccount) -> None:
    with pytest.warns(DeprecationWarning), UsernamePasswordCredential(
        CLI_CLIENT_ID, member_user.upn, member_user.password, tenant_id=cielo_server.tenant_id,
        authority=cielo_server.base_url, disable_instance_discovery=True,
    ) as credential:
        token = credential.get_token(f"{GRAPH}/.default")
        cognitive = credential.get_token(COGNITIVE_SCOPE)  # a second resource: silent, by refresh token
    check_user_token(token.token, metadata, audience=GRAPH, app_id=CLI_CLIENT_ID, user=member_user,
                     scp="User.Read")
    check_user_token(cognitive.token, metadata, audience=COGNITIVE, app_id=CLI_CLIENT_ID, user=member_user,
                     scp="user_impersonation")


def test_device_code_credential(client_env: dict[str, str], cielo_server: CieloServer, metadata: Metadata,
                                member_user: UserAccount) -> None:
    prompts: list[tuple[str, str]] = []

    def prompt(verification_uri: str, user_code: str, expires_on: Any) -> None:
        prompts.append((verification_uri, user_code))
        approve_device_code(cielo_server, user_code, member_user)

    with DeviceCodeCredential(
        CLI_CLIENT_ID, tenant_id=cielo_server.tenant_id, authority=cielo_server.base_url,
        disable_instance_discovery=True, prompt_callback=prompt, timeout=30,
    ) as credential:
        token = credential.get_token(COGNITIVE_SCOPE)
    assert prompts and prompts[0][0] == f"{cielo_server.base_url}/devicelogin"
    check_user_token(token.token, metadata, audience=COGNITIVE, app_id=CLI_CLIENT_ID, user=member_user,
                     scp="user_impersonation")


def test_workload_identity_credential(client_env: dict[str, str], cielo_server: CieloServer,
                                      metadata: Metadata, oidc_issuer: OidcIssuer,
                                      federated_app: dict[str, Any], tmp_path: Path) -> None:
    token_file = tmp_path / "federated-token"
    token_file.write_text(oidc_issuer.token(federated_app["subject"]))
    with WorkloadIdentityCredential(
        tenant_id=cielo_server.tenant_id, client_id=federated_app["appId"], token_file_path=str(token_file),
        authority=cielo_server.base_url,
    ) as credential:
        token = credential.get_token(COGNITIVE_SCOPE)
    check_app_token(token.token, metadata, audience=COGNITIVE, app_id=federated_app["appId"],
                    sp_object_id=federated_app["spObjectId"], acr="2")


async def test_workload_identity_credential_async(client_env: dict[str, str], cielo_server: CieloServer,
                                                  metadata: Metadata, oidc_issuer: OidcIssuer,
                                                  federated_app: dict[str, Any], tmp_path: Path) -> None:
    from azure.identity.aio import WorkloadIdentityCredential as AsyncWorkloadIdentityCredential

    token_file = tmp_path / "federated-token"
    token_file.write_text(oidc_issuer.token(federated_app["subject"]))
    async with AsyncWorkloadIdentityCredential(
        tenant_id=cielo_server.tenant_id, client_id=federated_app["appId"], token_file_path=str(token_file),
        authority=cielo_server.base_url, connection_verify=cielo_server.bundle,
    ) as credential:
        token = await credential.get_token(COGNITIVE_SCOPE)
    check_app_token(token.token, metadata, audience=COGNITIVE, app_id=federated_app["appId"],
                    sp_object_id=federated_app["spObjectId"], acr="2")


def test_workload_identity_after_issuer_key_rotation(client_env: dict[str, str], cielo_server: CieloServer,
                                                     metadata: Metadata, oidc_issuer: OidcIssuer,
                                                     federated_app: dict[str, Any], tmp_path: Path) -> None:
    """The issuer starts signing with a new key: Cielo's cached JWKS lacks it, so it must refetch."""
    token_file = tmp_path / "federated-token"
    token_file.write_text(oidc_issuer.token(federated_app["subject"]))
    with WorkloadIdentityCredential(tenant_id=cielo_server.tenant_id, client_id=federated_app["appId"],
                                    token_file_path=str(token_file), authority=cielo_server.base_url) as first:
        first.get_token(COGNITIVE_SCOPE)  # the issuer's keys are now cached by the server
    oidc_issuer.rotate()
    token_file.write_text(oidc_issuer.token(federated_app["subject"]))
    with WorkloadIdentityCredential(tenant_id=cielo_server.tenant_id, client_id=federated_app["appId"],
                                    token_file_path=str(token_file), authority=cielo_server.base_url) as second:
        token = second.get_token(COGNITIVE_SCOPE)
    check_app_token(token.token, metadata, audience=COGNITIVE, app_id=federated_app["appId"],
                    sp_object_id=federated_app["spObjectId"], acr="2")


def test_app_token_for_v2_api(client_env: dict[str, str], cielo_server: CieloServer, metadata: Metadata,
                              secret_app: dict[str, Any]) -> None:
    """An API that asks for v2 tokens (requestedAccessTokenVersion 2): aud is its appId, iss the v2 issuer."""
    uri = f"api://e2e-v2-{secrets.token_hex(3)}"
    api = graph(cielo_server, "POST", "/applications", {
        "displayName": "e2e-v2-api", "identifierUris": [uri], "api": {"requestedAccessTokenVersion": 2}})
    with ClientSecretCredential(cielo_server.tenant_id, secret_app["appId"], secret_app["secret"],
                                authority=cielo_server.base_url, disable_instance_discovery=True) as credential:
        token = credential.get_token(f"{uri}/.default")
    claims = decode(token.token, metadata.jwks, api["appId"])
    assert claims["iss"] == metadata.issuer_v2 and claims["ver"] == "2.0"
    assert claims["azp"] == secret_app["appId"] and claims["azpacr"] == "1"
    assert claims["oid"] == claims["sub"] == secret_app["spObjectId"]
    assert claims["idtyp"] == "app" and claims["tid"] == metadata.tenant_id
    assert "appid" not in claims and "scp" not in claims


def test_workload_identity_from_environment(client_env: dict[str, str], cielo_server: CieloServer,
                                            metadata: Metadata, oidc_issuer: OidcIssuer,
                                            federated_app: dict[str, Any], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """DefaultAzureCredential with only the workload-identity environment (one POST of the federated token to the
    token endpoint)."""
    token_file = tmp_path / "federated-token"
    token_file.write_text(oidc_issuer.token(federated_app["subject"]))
    monkeypatch.setenv("AZURE_TENANT_ID", cielo_server.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", federated_app["appId"])
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    with DefaultAzureCredential(exclude_environment_credential=True, exclude_cli_credential=True,
                                exclude_developer_cli_credential=True, exclude_powershell_credential=True,
                                exclude_visual_studio_code_credential=True,
                                exclude_shared_token_cache_credential=True) as credential:
        token = credential.get_token(COGNITIVE_SCOPE)
    check_app_token(token.token, metadata, audience=COGNITIVE, app_id=federated_app["appId"],
                    sp_object_id=federated_app["spObjectId"], acr="2")


def test_workload_identity_wrong_subject_is_refused(client_env: dict[str, str], cielo_server: CieloServer,
                                                    oidc_issuer: OidcIssuer, federated_app: dict[str, Any],
                                                    tmp_path: Path) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    token_file = tmp_path / "federated-token"
    token_file.write_text(oidc_issuer.token("system:serviceaccount:default:intruder"))
    with WorkloadIdentityCredential(
        tenant_id=cielo_server.tenant_id, client_id=federated_app["appId"], token_file_path=str(token_file),
        authority=cielo_server.base_url,
    ) as credential, pytest.raises(ClientAuthenticationError, match="AADSTS70021"):
        credential.get_token(COGNITIVE_SCOPE)


def test_environment_credential_secret(client_env: dict[str, str], cielo_server: CieloServer,
                                       metadata: Metadata, secret_app: dict[str, Any],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", cielo_server.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", secret_app["appId"])
    monkeypatch.setenv("AZURE_CLIENT_SECRET", secret_app["secret"])
    with EnvironmentCredential(disable_instance_discovery=True) as credential:
        token = credential.get_token(COGNITIVE_SCOPE)
    check_app_token(token.token, metadata, audience=COGNITIVE, app_id=secret_app["appId"],
                    sp_object_id=secret_app["spObjectId"], acr="1")


def test_environment_credential_certificate(client_env: dict[str, str], cielo_server: CieloServer,
                                            metadata: Metadata, cert_app: dict[str, Any],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", cielo_server.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", cert_app["appId"])
    monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PATH", str(cert_app["cert"].pem_path))
    with EnvironmentCredential(disable_instance_discovery=True) as credential:
        token = credential.get_token(COGNITIVE_SCOPE)
    check_app_token(token.token, metadata, audience=COGNITIVE, app_id=cert_app["appId"],
                    sp_object_id=cert_app["spObjectId"], acr="2")


def test_default_azure_credential(client_env: dict[str, str], cielo_server: CieloServer, metadata: Metadata,
                                  secret_app: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", cielo_server.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", secret_app["appId"])
    monkeypatch.setenv("AZURE_CLIENT_SECRET", secret_app["secret"])
    with DefaultAzureCredential(disable_instance_discovery=True) as credential:
        token = credential.get_token(COGNITIVE_SCOPE)
    check_app_token(token.token, metadata, audience=COGNITIVE, app_id=secret_app["appId"],
                    sp_object_id=secret_app["spObjectId"], acr="1")


def test_authentication_record_and_organizations(client_env: dict[str, str], cielo_server: CieloServer,
                                                 metadata: Metadata, member_user: UserAccount) -> None:
    """Without tenant_id azure-identity signs in through `organizations`; the AuthenticationRecord it
    builds from the id_token then names the user's home tenant and this authority."""
    def prompt(verification_uri: str, user_code: str, expires_on: Any) -> None:
        approve_device_code(cielo_server, user_code, member_user)

    with DeviceCodeCredential(CLI_CLIENT_ID, authority=cielo_server.base_url, disable_instance_discovery=True,
                              prompt_callback=prompt, timeout=30) as credential:
        record = credential.authenticate(scopes=[COGNITIVE_SCOPE])
        assert record.username == member_user.upn
        assert record.tenant_id == metadata.tenant_id
        assert record.home_account_id == f"{member_user.object_id}.{metadata.tenant_id}"
        assert record.authority == cielo_server.base_url.removeprefix("https://")
        # Silent from here on: the refresh token answers for another resource.
        token = credential.get_token(f"{GRAPH}/.default")
    check_user_token(token.token, metadata, audience=GRAPH, app_id=CLI_CLIENT_ID, user=member_user,
                     scp="User.Read")


def test_tenant_named_by_domain(client_env: dict[str, str], cielo_server: CieloServer, metadata: Metadata,
                                cert_app: dict[str, Any]) -> None:
    """`cielo.local` instead of the tenant id: MSAL builds the assertion audience from that URL."""
    with CertificateCredential("cielo.local", cert_app["appId"], certificate_path=str(cert_app["cert"].pem_path),
                               authority=cielo_server.base_url, disable_instance_discovery=True) as credential:
        token = credential.get_token(COGNITIVE_SCOPE)
    check_app_token(token.token, metadata, audience=COGNITIVE, app_id=cert_app["appId"],
                    sp_object_id=cert_app["spObjectId"], acr="2")


def test_concurrent_credentials(client_env: dict[str, str], cielo_server: CieloServer, metadata: Metadata,
                                secret_app: dict[str, Any], cert_app: dict[str, Any]) -> None:
    """Many clients at once (each its own MSAL cache): every one gets a valid token."""
    from concurrent.futures import ThreadPoolExecutor

    def one(index: int) -> tuple[str, str]:
        if index % 2:
            credential: Any = ClientSecretCredential(
                cielo_server.tenant_id, secret_app["appId"], secret_app["secret"],
                authority=cielo_server.base_url, disable_instance_discovery=True)
            app = secret_app
        else:
            credential = CertificateCredential(
                cielo_server.tenant_id, cert_app["appId"], certificate_path=str(cert_app["cert"].pem_path),
                authority=cielo_server.base_url, disable_instance_discovery=True)
            app = cert_app
        with credential:
            return credential.get_token(COGNITIVE_SCOPE).token, app["appId"]

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(one, range(24)))
    for token, app_id in results:
        app = secret_app if app_id == secret_app["appId"] else cert_app
        check_app_token(token, metadata, audience=COGNITIVE, app_id=app_id, sp_object_id=app["spObjectId"],
                        acr="1" if app is secret_app else "2")


def test_certificate_credential_through_localhost(client_env: dict[str, str], cielo_server: CieloServer,
                                                  metadata: Metadata, cert_app: dict[str, Any]) -> None:
    """Another name on the server's certificate: MSAL's assertion then names https://localhost:PORT."""
    with CertificateCredential(cielo_server.tenant_id, cert_app["appId"],
                               certificate_path=str(cert_app["cert"].pem_path),
                               authority=f"https://localhost:{cielo_server.port}",
                               disable_instance_discovery=True) as credential:
        token = credential.get_token(COGNITIVE_SCOPE)
    check_app_token(token.token, metadata, audience=COGNITIVE, app_id=cert_app["appId"],
                    sp_object_id=cert_app["spObjectId"], acr="2")
