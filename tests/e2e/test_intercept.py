"""Intercept mode end to end: a `cielo up --intercept` of its own, and client code written for real Azure (no
authority, no instance-discovery flag, `https://{account}.openai.azure.com/`) run in a child process whose
only Cielo settings are the variables `cielo env --intercept` prints (HTTPS_PROXY, NO_PROXY and the CA bundle).

The account `cielo-openai` has the custom subdomain `cielo-openai`; the mock deployment answers quickly."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest_dataplane import ACCOUNT, MOCK_DEPLOYMENT, DataPlane
from frameworks_support import REQUIREMENTS, _tiktoken_cache, cached_venv
from intercept_support import intercept_env, intercept_plane, run_python

from support.server import ADMIN_PASSWORD, ADMIN_USER, CLI_CLIENT_ID

pytestmark = pytest.mark.e2e

HOST = f"{ACCOUNT}.openai.azure.com"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataPlane]:
    with intercept_plane(tmp_path_factory, "intercept") as plane:
        yield plane


@pytest.fixture(scope="module")
def proxy_env(plane: DataPlane) -> dict[str, str]:
    """`cielo env --intercept --format dotenv`, as a user would source it; nothing else of Cielo's."""
    pairs = intercept_env(plane.server.data_dir)
    assert pairs["HTTPS_PROXY"].startswith("http://127.0.0.1:")
    assert pairs["SSL_CERT_FILE"] == plane.server.bundle and pairs["REQUESTS_CA_BUNDLE"] == plane.server.bundle
    assert "AZURE_AUTHORITY_HOST" not in pairs
    return pairs


def _proxy_port(env: dict[str, str]) -> int:
    return int(env["HTTPS_PROXY"].rsplit(":", 1)[1])


def test_msal_with_the_public_authority(plane: DataPlane, proxy_env: dict[str, str]) -> None:
    app = plane.app
    result = run_python(f"""
        import json, msal
        cca = msal.ConfidentialClientApplication({app['appId']!r}, client_credential={app['secret']!r},
                                                 authority="https://login.microsoftonline.com/{plane.server.tenant_id}")
        result = cca.acquire_token_for_client(scopes=["https://cognitiveservices.azure.com/.default"])
        print(json.dumps({{"ok": "access_token" in result, "error": result.get("error_description")}}))
    """, proxy_env, plane.work_dir)
    assert result == {"ok": True, "error": None}


def test_azure_identity_and_openai_with_azure_hosts(plane: DataPlane, proxy_env: dict[str, str]) -> None:
    app = plane.app
    result = run_python(f"""
        import json
        from azure.identity import ClientSecretCredential, get_bearer_token_provider
        from openai import AzureOpenAI
        credential = ClientSecretCredential({plane.server.tenant_id!r}, {app['appId']!r}, {app['secret']!r})
        client = AzureOpenAI(
            azure_endpoint="https://{HOST}/",
            azure_ad_token_provider=get_bearer_token_provider(credential, "https://cognitiveservices.azure.com/.default"),
            api_version="2024-10-21",
        )
        reply = client.chat.completions.create(model={MOCK_DEPLOYMENT!r},
                                               messages=[{{"role": "user", "content": "Say hello."}}], max_tokens=8)
        print(json.dumps({{"content": reply.choices[0].message.content, "object": reply.object}}))
    """, proxy_env, plane.work_dir)
    assert result["object"] == "chat.completion"
    assert isinstance(result["content"], str) and result["content"]


def test_with_https_proxy_and_the_bundle_alone(plane: DataPlane, proxy_env: dict[str, str]) -> None:
    """No NO_PROXY: the token request to Cielo's own address (its discovery names it) goes through the proxy too,
    which tunnels it to Cielo's listener untouched."""
    app = plane.app
    only = {name: proxy_env[name] for name in ("HTTPS_PROXY", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")}
    result = run_python(f"""
        import json
        from azure.identity import ClientSecretCredential, get_bearer_token_provider
        from openai import AzureOpenAI
        credential = ClientSecretCredential({plane.server.tenant_id!r}, {app['appId']!r}, {app['secret']!r})
        client = AzureOpenAI(
            azure_endpoint="https://{HOST}/",
            azure_ad_token_provider=get_bearer_token_provider(credential, "https://cognitiveservices.azure.com/.default"),
            api_version="2024-10-21",
        )
        reply = client.chat.completions.create(model={MOCK_DEPLOYMENT!r},
                                               messages=[{{"role": "user", "content": "Hi"}}],
                                               max_tokens=4)
        print(json.dumps({{"object": reply.object}}))
    """, only, plane.work_dir)
    assert result == {"object": "chat.completion"}


def test_default_azure_credential_from_environment(plane: DataPlane, proxy_env: dict[str, str]) -> None:
    app = plane.app
    env = {**proxy_env, "AZURE_CLIENT_ID": app["appId"], "AZURE_TENANT_ID": plane.server.tenant_id,
           "AZURE_CLIENT_SECRET": app["secret"]}
    result = run_python("""
        import json
        from azure.identity import DefaultAzureCredential
        token = DefaultAzureCredential().get_token("https://management.azure.com/.default")
        print(json.dumps({"length": len(token.token)}))
    """, env, plane.work_dir)
    assert result["length"] > 100


def test_curl_chat_through_the_proxy(plane: DataPlane, proxy_env: dict[str, str]) -> None:
    token = plane.sp_token()
    done = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "-H", f"Authorization: Bearer {token}", "-H",
         "Content-Type: application/json", "-d", json.dumps({"messages": [{"role": "user", "content": "Hi"}]}),
         f"https://{HOST}/openai/deployments/{MOCK_DEPLOYMENT}/chat/completions?api-version=2024-10-21"],
        env={"PATH": os.environ.get("PATH", ""), **proxy_env}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr + done.stdout
    assert json.loads(done.stdout)["object"] == "chat.completion"


def test_other_hosts_are_refused_and_never_connected(proxy_env: dict[str, str]) -> None:
    port = _proxy_port(proxy_env)
    with socket.socket() as bait:  # a loopback listener the proxy must never dial
        bait.bind(("127.0.0.1", 0))
        bait.listen(1)
        bait.settimeout(0.5)
        for target in ("example.com:443", f"127.0.0.1:{bait.getsockname()[1]}", f"{HOST}:8443"):
            status, body = _connect(port, target)
            assert status.startswith("HTTP/1.1 403"), (target, status)
            assert target.split(":")[0] in body and "login.microsoftonline.com" in body and "*.openai.azure.com" in body
        with pytest.raises(TimeoutError):
            bait.accept()
    done = subprocess.run(["curl", "-sS", "https://example.com/"], env={"PATH": os.environ.get("PATH", ""),
                                                                         **proxy_env},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 56 and "403" in done.stderr  # CONNECT tunnel failed, response 403


def test_the_proxy_certificate_is_not_trusted_without_cielo_ca(proxy_env: dict[str, str]) -> None:
    with socket.create_connection(("127.0.0.1", _proxy_port(proxy_env)), timeout=10) as sock:
        sock.sendall(f"CONNECT {HOST}:443 HTTP/1.1\r\nHost: {HOST}:443\r\n\r\n".encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        system_only = ssl.create_default_context()  # the system's CAs, not Cielo's
        with pytest.raises(ssl.SSLCertVerificationError):
            system_only.wrap_socket(sock, server_hostname=HOST)


def test_the_leaf_names_only_the_host_and_lives_a_day(plane: DataPlane, proxy_env: dict[str, str]) -> None:
    from cryptography import x509
    with socket.create_connection(("127.0.0.1", _proxy_port(proxy_env)), timeout=10) as sock:
        sock.sendall(f"CONNECT {HOST}:443 HTTP/1.1\r\n\r\n".encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        trusted = ssl.create_default_context(cafile=plane.server.bundle)
        with trusted.wrap_socket(sock, server_hostname=HOST) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert names == [HOST]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime.total_seconds() <= 24 * 3600 + 600


def _connect(port: int, target: str) -> tuple[str, str]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    head, _, body = data.decode().partition("\r\n\r\n")
    return head.splitlines()[0], body


def test_arm_and_graph_under_their_azure_hosts(plane: DataPlane, proxy_env: dict[str, str]) -> None:
    """The hosts the azure-mgmt-* and Graph SDKs name, over requests (azure-core's default transport)."""
    app = plane.app
    result = run_python(f"""
        import json, requests
        from azure.identity import ClientSecretCredential
        credential = ClientSecretCredential({plane.server.tenant_id!r}, {app['appId']!r}, {app['secret']!r})
        arm = credential.get_token("https://management.azure.com/.default").token
        subs = requests.get("https://management.azure.com/subscriptions?api-version=2022-12-01",
                            headers={{"Authorization": "Bearer " + arm}})
        print(json.dumps({{"status": subs.status_code, "body": subs.json()}}))
    """, proxy_env, plane.work_dir)
    assert result["status"] == 200 and isinstance(result["body"]["value"], list)
    # A token Cielo issued on its own address is good under Graph's Azure host, through the proxy.
    admin = plane.server.admin_token()
    with httpx.Client(proxy=proxy_env["HTTPS_PROXY"], verify=plane.tls(), timeout=30) as via_proxy:
        users = via_proxy.get("https://graph.microsoft.com/v1.0/users", headers={"Authorization": f"Bearer {admin}"})
    assert users.status_code == 200, users.text
    assert any(u["userPrincipalName"] == "admin@cielo.local" for u in users.json()["value"])


def test_a_token_from_the_azure_authority_is_good_on_cielos_own_address(plane: DataPlane,
                                                                        proxy_env: dict[str, str]) -> None:
    app = plane.app
    token = run_python(f"""
        import json, msal
        cca = msal.ConfidentialClientApplication({app['appId']!r}, client_credential={app['secret']!r},
                                                 authority="https://login.microsoftonline.com/{plane.server.tenant_id}")
        print(json.dumps(cca.acquire_token_for_client(scopes=["https://cognitiveservices.azure.com/.default"])))
    """, proxy_env, plane.work_dir)["access_token"]
    direct = f"{plane.server.base_url}/accounts/{ACCOUNT}/"
    answer = plane.post(MOCK_DEPLOYMENT, "chat/completions", {"messages": [{"role": "user", "content": "Hi"}]},
                        token=token, endpoint=direct)
    assert answer.status_code == 200, answer.text


def test_msal_username_password_needs_no_port_443(plane: DataPlane, proxy_env: dict[str, str]) -> None:
    """MSAL's user-realm lookup drops the authority's port (clients.md: `--listen-443`); under the Azure host it
    is port 443 of the proxy's tunnel. The token is then found again from MSAL's cache."""
    result = run_python(f"""
        import json, msal
        app = msal.PublicClientApplication({CLI_CLIENT_ID!r}, authority="https://login.microsoftonline.com/organizations")
        scopes = ["https://management.azure.com/.default"]
        first = app.acquire_token_by_username_password({ADMIN_USER!r}, {ADMIN_PASSWORD!r}, scopes=scopes)
        again = app.acquire_token_silent(scopes, account=app.get_accounts()[0])
        print(json.dumps({{"first": "access_token" in first, "error": first.get("error_description"),
                          "again": again["access_token"] == first["access_token"]}}))
    """, proxy_env, plane.work_dir)
    assert result == {"first": True, "error": None, "again": True}


def test_llama_index_with_default_azure_credential(plane: DataPlane, proxy_env: dict[str, str],
                                                  tmp_path: Path) -> None:
    """llama-index's documented Entra setup, verbatim: `use_azure_ad=True` with a token provider over
    `DefaultAzureCredential()` built with no arguments (EnvironmentCredential here, signing in at
    login.microsoftonline.com through the proxy), on `https://{account}.openai.azure.com/`."""
    python = cached_venv(REQUIREMENTS, "frameworks")
    app = plane.app
    env = {**proxy_env, "AZURE_CLIENT_ID": app["appId"], "AZURE_TENANT_ID": plane.server.tenant_id,
           "AZURE_CLIENT_SECRET": app["secret"], "TIKTOKEN_CACHE_DIR": str(_tiktoken_cache(tmp_path / "tiktoken"))}
    result = run_python(f"""
        import json
        from azure.identity import DefaultAzureCredential, get_bearer_token_provider
        from llama_index.core.llms import ChatMessage
        from llama_index.llms.azure_openai import AzureOpenAI
        provider = get_bearer_token_provider(DefaultAzureCredential(), "https://cognitiveservices.azure.com/.default")
        llm = AzureOpenAI(engine={MOCK_DEPLOYMENT!r}, model="gpt-4o-mini", azure_endpoint="https://{HOST}/",
                          api_version="2024-10-21", use_azure_ad=True, azure_ad_token_provider=provider, max_retries=0)
        answer = llm.chat([ChatMessage(role="user", content="Say hello.")])
        print(json.dumps({{"content": answer.message.content}}))
    """, env, tmp_path, python)
    assert isinstance(result["content"], str) and result["content"]
