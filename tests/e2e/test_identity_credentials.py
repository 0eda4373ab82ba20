"""azure-identity credentials, unmodified, against a real `cielo up` over HTTPS on loopback.

Every token is verified with PyJWT against the server's JWKS and checked claim by claim
(azure-facts.md §4.1). Sync MSAL-based credentials get `disable_instance_discovery=True`, which is
the documented way to stop MSAL from asking login.microsoftonline.com (client-compat.md §0.5).
"""

from __future__ import annotations

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

from support.server import CLI_CLIENT_ID, CieloServer

from identity_support import (
    COGNITIVE,
    COGNITIVE_SCOPE,
    EXCHANGE_AUDIENCE,
    GRAPH,
    Metadata,
    OidcIssuer,
    UserAccount,
    approve_device_code,
    check_app_token,
    check_user_token,
    new_app,
)




@pytest.fixture(scope="module")
def secret_app(cielo_server: CieloServer) -> dict[str, Any]:
    return new_app(cielo_server, "e2e-cred")


def test_client_secret_credential(client_env: dict[str, str], cielo_server: CieloServer, metadata: Metadata,
                                  secret_app: dict[str, Any]) -> None:
    credential = ClientSecretCredential(
        cielo_server.tenant_id, secret_app["appId"], secret_app["secret"],
        authority=cielo_server.base_url, disable_instance_discovery=True,
    )
    token = credential.get_token(COGNITIVE_SCOPE)
    claims = check_app_token(token.token, metadata, audience=COGNITIVE, app_id=secret_app["appId"],
                             sp_object_id=secret_app["spObjectId"], acr="1")
    assert token.expires_on == claims["exp"]
    # MSAL caches: the same scope again is the same token, without a request.
    assert credential.get_token(COGNITIVE_SCOPE).token == token.token


def test_certificate_credential_sync(client_env: dict[str, str], cielo_server: CieloServer, metadata: Metadata,
                                     cert_app: dict[str, Any]) -> None:
    credential = CertificateCredential(
        cielo_server.tenant_id, cert_app["appId"], certificate_path=str(cert_app["cert"].pem_path),
        authority=cielo_server.base_url, disable_instance_discovery=True,
    )
    token = credential.get_token(COGNITIVE_SCOPE)
    check_app_token(token.token, metadata, audience=COGNITIVE, app_id=cert_app["appId"],
                    sp_object_id=cert_app["spObjectId"], acr="2")
    # MSAL reuses its assertion (same jti) for the next resource; the server must accept that.
    second = credential.get_token("https://management.azure.com/.default")
    check_app_token(second.token, metadata, audience="https://management.azure.com",
                    app_id=cert_app["appId"], sp_object_id=cert_app["spObjectId"], acr="2")


def test_certificate_credential_sync_with_chain(client_env: dict[str, str], cielo_server: CieloServer,
                                                metadata: Metadata, cert_app: dict[str, Any]) -> None:
    credential = CertificateCredential(
        cielo_server.tenant_id, cert_app["appId"], certificate_path=str(cert_app["cert"].pem_path),
        authority=cielo_server.base_url, disable_instance_discovery=True, send_certificate_chain=True,
    )
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


def test_username_password_credential(client_env: dict[str, str], needs_443: None, cielo_server: CieloServer,
                                      metadata: Metadata, member_user: UserAccount) -> None:
    with pytest.warns(DeprecationWarning):
        credential = UsernamePasswordCredential(
            CLI_CLIENT_ID, member_user.upn, member_user.password, tenant_id=cielo_server.tenant_id,
            authority=cielo_server.base_url, disable_instance_discovery=True,
        )
    token = credential.get_token(f"{GRAPH}/.default")
    check_user_token(token.token, metadata, audience=GRAPH, app_id=CLI_CLIENT_ID, user=member_user,
                     scp="User.Read")
    cognitive = credential.get_token(COGNITIVE_SCOPE)  # a second resource: silent, by refresh token
    check_user_token(cognitive.token, metadata, audience=COGNITIVE, app_id=CLI_CLIENT_ID, user=member_user,
                     scp="user_impersonation")


def test_device_code_credential(client_env: dict[str, str], cielo_server: CieloServer, metadata: Metadata,
                                member_user: UserAccount) -> None:
    prompts: list[tuple[str, str]] = []

    def prompt(verification_uri: str, user_code: str, expires_on: Any) -> None:
        prompts.append((verification_uri, user_code))
        approve_device_code(cielo_server, user_code, member_user)

    credential = DeviceCodeCredential(
        CLI_CLIENT_ID, tenant_id=cielo_server.tenant_id, authority=cielo_server.base_url,
        disable_instance_discovery=True, prompt_callback=prompt, timeout=30,
    )
    token = credential.get_token(COGNITIVE_SCOPE)
    assert prompts and prompts[0][0] == f"{cielo_server.base_url}/devicelogin"
    check_user_token(token.token, metadata, audience=COGNITIVE, app_id=CLI_CLIENT_ID, user=member_user,
                     scp="user_impersonation")


@pytest.fixture(scope="module")
def federated_app(cielo_server: CieloServer, oidc_issuer: OidcIssuer) -> dict[str, Any]:
    app = new_app(cielo_server, "e2e-wi", secret=False)
    subject = "system:serviceaccount:default:workload"
    cielo_server.graph("POST", f"/applications/{app['objectId']}/federatedIdentityCredentials", {
        "name": "k8s", "issuer": oidc_issuer.url, "subject": subject, "audiences": [EXCHANGE_AUDIENCE],
    })
    return {**app, "subject": subject}


def test_workload_identity_credential(client_env: dict[str, str], cielo_server: CieloServer,
                                      metadata: Metadata, oidc_issuer: OidcIssuer,
                                      federated_app: dict[str, Any], tmp_path: Path) -> None:
    token_file = tmp_path / "federated-token"
    token_file.write_text(oidc_issuer.token(federated_app["subject"]))
    credential = WorkloadIdentityCredential(
        tenant_id=cielo_server.tenant_id, client_id=federated_app["appId"], token_file_path=str(token_file),
        authority=cielo_server.base_url,
    )
    token = credential.get_token(COGNITIVE_SCOPE)
    check_app_token(token.token, metadata, audience=COGNITIVE, app_id=federated_app["appId"],
                    sp_object_id=federated_app["spObjectId"], acr="2")


def test_workload_identity_from_environment(client_env: dict[str, str], cielo_server: CieloServer,
                                            metadata: Metadata, oidc_issuer: OidcIssuer,
                                            federated_app: dict[str, Any], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """DefaultAzureCredential with only the workload-identity environment (client-compat.md §2.6)."""
    token_file = tmp_path / "federated-token"
    token_file.write_text(oidc_issuer.token(federated_app["subject"]))
    monkeypatch.setenv("AZURE_TENANT_ID", cielo_server.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", federated_app["appId"])
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    credential = DefaultAzureCredential(exclude_environment_credential=True, exclude_cli_credential=True,
                                        exclude_developer_cli_credential=True,
                                        exclude_powershell_credential=True,
                                        exclude_visual_studio_code_credential=True,
                                        exclude_shared_token_cache_credential=True)
    token = credential.get_token(COGNITIVE_SCOPE)
    check_app_token(token.token, metadata, audience=COGNITIVE, app_id=federated_app["appId"],
                    sp_object_id=federated_app["spObjectId"], acr="2")


def test_workload_identity_wrong_subject_is_refused(client_env: dict[str, str], cielo_server: CieloServer,
                                                    oidc_issuer: OidcIssuer, federated_app: dict[str, Any],
                                                    tmp_path: Path) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    token_file = tmp_path / "federated-token"
    token_file.write_text(oidc_issuer.token("system:serviceaccount:default:intruder"))
    credential = WorkloadIdentityCredential(
        tenant_id=cielo_server.tenant_id, client_id=federated_app["appId"], token_file_path=str(token_file),
        authority=cielo_server.base_url,
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS70021"):
        credential.get_token(COGNITIVE_SCOPE)


def test_environment_credential_secret(client_env: dict[str, str], cielo_server: CieloServer,
                                       metadata: Metadata, secret_app: dict[str, Any],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", cielo_server.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", secret_app["appId"])
    monkeypatch.setenv("AZURE_CLIENT_SECRET", secret_app["secret"])
    token = EnvironmentCredential(disable_instance_discovery=True).get_token(COGNITIVE_SCOPE)
    check_app_token(token.token, metadata, audience=COGNITIVE, app_id=secret_app["appId"],
                    sp_object_id=secret_app["spObjectId"], acr="1")


def test_environment_credential_certificate(client_env: dict[str, str], cielo_server: CieloServer,
                                            metadata: Metadata, cert_app: dict[str, Any],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", cielo_server.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", cert_app["appId"])
    monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PATH", str(cert_app["cert"].pem_path))
    token = EnvironmentCredential(disable_instance_discovery=True).get_token(COGNITIVE_SCOPE)
    check_app_token(token.token, metadata, audience=COGNITIVE, app_id=cert_app["appId"],
                    sp_object_id=cert_app["spObjectId"], acr="2")


def test_default_azure_credential(client_env: dict[str, str], cielo_server: CieloServer, metadata: Metadata,
                                  secret_app: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", cielo_server.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", secret_app["appId"])
    monkeypatch.setenv("AZURE_CLIENT_SECRET", secret_app["secret"])
    credential = DefaultAzureCredential(disable_instance_discovery=True)
    token = credential.get_token(COGNITIVE_SCOPE)
    check_app_token(token.token, metadata, audience=COGNITIVE, app_id=secret_app["appId"],
                    sp_object_id=secret_app["spObjectId"], acr="1")
