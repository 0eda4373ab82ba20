"""Intercept mode's pieces in-process: which hosts are served, the Host routing middleware, the CONNECT
request parser, the per-host certificates, and the proxy's handshake, tunnel and refusals on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from cielo.identity.pki import ensure_tls
from cielo.intercept.certs import LEAF_LIFETIME, HostCertificates
from cielo.intercept.hosts import HostRouting, account_subdomain, is_served
from cielo.intercept.proxy import InterceptProxy, ProxyRefusal, Upstream, imds_request, listen, parse_connect


@pytest.mark.parametrize(("host", "served"), [
    ("login.microsoftonline.com", True), ("LOGIN.MicrosoftOnline.com:443", True), ("login.microsoft.com", True),
    ("login.windows.net", True), ("sts.windows.net", True), ("management.azure.com", True),
    ("graph.microsoft.com", True), ("contoso.openai.azure.com", True), ("contoso.cognitiveservices.azure.com", True),
    ("example.com", False), ("openai.azure.com", False), ("a.b.openai.azure.com", False),
    ("evil-openai.azure.com", False), ("login.microsoftonline.com.example.com", False), ("127.0.0.1", False),
    ("-bad.openai.azure.com", False), ("graph.windows.net", False),
])
def test_served_hosts(host: str, served: bool) -> None:
    assert is_served(host) is served


def test_account_subdomain_is_one_label_in_lower_case() -> None:
    assert account_subdomain("Contoso.OpenAI.Azure.com:443") == "contoso"
    assert account_subdomain("my-acct.cognitiveservices.azure.com") == "my-acct"
    assert account_subdomain("management.azure.com") is None


async def _routed(host: str, path: str) -> str:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope)

    scope = {"type": "http", "path": path, "raw_path": path.encode(), "headers": [(b"host", host.encode())]}
    await HostRouting(app)(scope, None, None)
    return str(seen["path"])


async def test_host_routing_serves_an_account_host_as_its_accounts_path() -> None:
    assert await _routed("Contoso.openai.azure.com", "/openai/deployments/d/chat/completions") == \
        "/accounts/contoso/openai/deployments/d/chat/completions"
    assert await _routed("contoso.cognitiveservices.azure.com", "/openai/models") == "/accounts/contoso/openai/models"
    # Other hosts and other paths pass unchanged: ARM, Graph and the token service have Cielo's own paths.
    assert await _routed("management.azure.com", "/subscriptions") == "/subscriptions"
    assert await _routed("127.0.0.1:8443", "/openai/models") == "/openai/models"
    assert await _routed("contoso.openai.azure.com", "/openaix") == "/openaix"
    # openai 0.28 with api_base "https://contoso.openai.azure.com/" (the how-to's form) sends `//openai/...`.
    assert await _routed("contoso.openai.azure.com", "//openai/deployments/d/completions") == \
        "/accounts/contoso/openai/deployments/d/completions"
    assert await _routed("management.azure.com", "//subscriptions") == "//subscriptions"  # CollapseSlashes' job


@pytest.mark.parametrize(("head", "status", "named"), [
    (b"CONNECT example.com:443 HTTP/1.1\r\n\r\n", 403, "example.com:443"),
    (b"CONNECT management.azure.com:80 HTTP/1.1\r\n\r\n", 403, "management.azure.com:80"),
    (b"CONNECT 10.0.0.1:443 HTTP/1.1\r\n\r\n", 403, "10.0.0.1:443"),
    (b"GET http://example.com/x HTTP/1.1\r\n\r\n", 403, "example.com"),
    (b"GET http://management.azure.com/ HTTP/1.1\r\n\r\n", 403, "management.azure.com"),
    (b"CONNECT management.azure.com HTTP/1.1\r\n\r\n", 400, "host:port"),
    (b"nonsense\r\n\r\n", 400, "malformed"),
])
def test_parse_connect_refuses(head: bytes, status: int, named: str) -> None:
    with pytest.raises(ProxyRefusal) as caught:
        parse_connect(head)
    assert caught.value.status == status and named in caught.value.message


def test_parse_connect_accepts_a_served_host() -> None:
    assert parse_connect(b"CONNECT Contoso.OpenAI.azure.com:443 HTTP/1.1\r\nHost: x\r\n\r\n") == \
        ("contoso.openai.azure.com", 443)


def test_parse_connect_accepts_cielos_own_address_only() -> None:
    own = Upstream("127.0.0.1", 8443, Path("ca.pem")).own()
    assert parse_connect(b"CONNECT 127.0.0.1:8443 HTTP/1.1\r\n\r\n", own) == ("127.0.0.1", 8443)
    assert parse_connect(b"CONNECT [::1]:8443 HTTP/1.1\r\n\r\n", own) == ("::1", 8443)
    assert parse_connect(b"CONNECT localhost:8443 HTTP/1.1\r\n\r\n", own) == ("localhost", 8443)
    for other in (b"127.0.0.1:8444", b"127.0.0.2:8443", b"example.com:8443"):
        with pytest.raises(ProxyRefusal):
            parse_connect(b"CONNECT " + other + b" HTTP/1.1\r\n\r\n", own)


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("intercept-tls") / "tls"
    ensure_tls(path)
    return path


def test_leaf_names_one_host_for_a_day(tls_dir: Path) -> None:
    certs = HostCertificates(tls_dir / "ca.pem", tls_dir / "ca-key.pem")
    now = dt.datetime.now(dt.UTC)
    pem, _key, expires = certs.issue("contoso.openai.azure.com", now)
    cert = x509.load_pem_x509_certificate(pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["contoso.openai.azure.com"]
    assert expires == now + LEAF_LIFETIME
    assert abs((cert.not_valid_after_utc - expires).total_seconds()) < 1  # X.509 keeps whole seconds
    assert cert.issuer == x509.load_pem_x509_certificate((tls_dir / "ca.pem").read_bytes()).subject


def test_contexts_are_cached_per_host_and_renewed_before_expiry(tls_dir: Path) -> None:
    certs = HostCertificates(tls_dir / "ca.pem", tls_dir / "ca-key.pem")
    now = dt.datetime.now(dt.UTC)
    first = certs.context("management.azure.com", now)
    assert certs.context("MANAGEMENT.azure.com:443", now + dt.timedelta(hours=1)) is first
    assert certs.context("graph.microsoft.com", now) is not first
    assert certs.context("management.azure.com", now + LEAF_LIFETIME) is not first
    with pytest.raises(ValueError, match=r"example\.com"):
        certs.context("example.com")


def test_the_cache_is_bounded(tls_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cielo.intercept.certs.MAX_CACHED", 3)
    certs = HostCertificates(tls_dir / "ca.pem", tls_dir / "ca-key.pem")
    first = certs.context("a0.openai.azure.com")
    for i in range(1, 4):
        certs.context(f"a{i}.openai.azure.com")
    assert certs.context("a3.openai.azure.com") is certs.context("a3.openai.azure.com")
    assert certs.context("a0.openai.azure.com") is not first  # dropped as the oldest, issued again


async def test_tunnel_reaches_the_upstream_with_the_clients_bytes(tls_dir: Path) -> None:
    received: list[bytes] = []

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tls_dir / "server.pem", tls_dir / "server-key.pem")
    cielo = await asyncio.start_server(upstream, "127.0.0.1", 0, ssl=server_ctx)
    proxy = InterceptProxy(HostCertificates(tls_dir / "ca.pem", tls_dir / "ca-key.pem"),
                           Upstream("127.0.0.1", cielo.sockets[0].getsockname()[1], tls_dir / "ca.pem"))
    served = await proxy.serve(listen("127.0.0.1", 0))
    port = served.sockets[0].getsockname()[1]
    async with cielo, served:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"CONNECT contoso.openai.azure.com:443 HTTP/1.1\r\n\r\n")
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 200 Connection Established\r\n\r\n"
        await writer.start_tls(ssl.create_default_context(cafile=str(tls_dir / "bundle.pem")),
                               server_hostname="contoso.openai.azure.com")
        writer.write(b"GET /openai/models HTTP/1.1\r\nHost: contoso.openai.azure.com\r\n\r\n")
        answer = await reader.read()
        writer.close()
        # Cielo's own address: passed through, Cielo's own certificate end to end.
        reader3, writer3 = await asyncio.open_connection("127.0.0.1", port)
        writer3.write(f"CONNECT 127.0.0.1:{cielo.sockets[0].getsockname()[1]} HTTP/1.1\r\n\r\n".encode())
        assert await reader3.readuntil(b"\r\n\r\n") == b"HTTP/1.1 200 Connection Established\r\n\r\n"
        await writer3.start_tls(ssl.create_default_context(cafile=str(tls_dir / "bundle.pem")),
                                server_hostname="127.0.0.1")
        writer3.write(b"GET /own HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert (await reader3.read()).endswith(b"\r\n\r\nok")
        writer3.close()
        # Untrusted: the system's CAs alone reject the proxy's leaf.
        reader2, writer2 = await asyncio.open_connection("127.0.0.1", port)
        writer2.write(b"CONNECT graph.microsoft.com:443 HTTP/1.1\r\n\r\n")
        await reader2.readuntil(b"\r\n\r\n")
        with pytest.raises(ssl.SSLCertVerificationError):
            await writer2.start_tls(ssl.create_default_context(), server_hostname="graph.microsoft.com")
        writer2.close()
    assert answer.endswith(b"\r\n\r\nok")
    assert received == [b"GET /openai/models HTTP/1.1\r\nHost: contoso.openai.azure.com\r\n\r\n",
                        b"GET /own HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"]


async def test_refusal_is_a_403_naming_the_host_and_the_served_list(tls_dir: Path) -> None:
    proxy = InterceptProxy(HostCertificates(tls_dir / "ca.pem", tls_dir / "ca-key.pem"),
                           Upstream("127.0.0.1", 1, tls_dir / "ca.pem"))
    served = await proxy.serve(listen("127.0.0.1", 0))
    async with served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.sockets[0].getsockname()[1])
        writer.write(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        answer = (await reader.read()).decode()
        writer.close()
    assert answer.startswith("HTTP/1.1 403 Forbidden\r\n")
    body = answer.partition("\r\n\r\n")[2]
    assert "example.com:443" in body and "login.microsoftonline.com" in body and "*.openai.azure.com" in body


def test_imds_request_is_rewritten_for_the_agent() -> None:
    head = (b"GET http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x HTTP/1.1\r\n"
            b"Host: 169.254.169.254\r\nMetadata: true\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive\r\n"
            b"Proxy-Authorization: Basic eA==\r\n\r\n")
    forwarded = imds_request(head)
    assert forwarded is not None
    lines = forwarded.split(b"\r\n")
    assert lines[0] == b"GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=x HTTP/1.1"
    assert b"Metadata: true" in lines and b"Host: 169.254.169.254" in lines
    assert lines[-3:] == [b"Connection: close", b"", b""]
    assert not any(line.lower().startswith((b"proxy-", b"connection: keep")) for line in lines)
    assert imds_request(head.replace(b"169.254.169.254/", b"169.254.169.254:80/", 1)) == forwarded


@pytest.mark.parametrize("head", [
    b"GET http://169.254.169.253/metadata HTTP/1.1\r\n\r\n",  # another address: refused as any other host
    b"GET http://169.254.169.254.example.com/metadata HTTP/1.1\r\n\r\n",
    b"GET http://169.254.169.254:8080/metadata HTTP/1.1\r\n\r\n",
    b"CONNECT 169.254.169.254:443 HTTP/1.1\r\n\r\n",
    b"GET /metadata HTTP/1.1\r\n\r\n",
])
def test_only_plain_http_to_imds_on_port_80_is_for_the_agent(head: bytes) -> None:
    assert imds_request(head) is None


@pytest.mark.parametrize(("head", "status"), [
    (b"POST http://169.254.169.254/metadata/identity/oauth2/token HTTP/1.1\r\nContent-Length: 2\r\n\r\n", 405),
    (b"GET http://169.254.169.254/metadata/identity/oauth2/token HTTP/1.1\r\nContent-Length: 5\r\n\r\n", 400),
    (b"GET http://169.254.169.254/metadata HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
])
def test_imds_requests_with_a_body_are_refused(head: bytes, status: int) -> None:
    with pytest.raises(ProxyRefusal) as refused:
        imds_request(head)
    assert refused.value.status == status


async def test_imds_without_an_agent_is_unreachable(tls_dir: Path) -> None:
    """azure-identity reads a 403 saying "unreachable" as "no IMDS here" and moves on to its next credential."""
    proxy = InterceptProxy(HostCertificates(tls_dir / "ca.pem", tls_dir / "ca-key.pem"),
                           Upstream("127.0.0.1", 1, tls_dir / "ca.pem"))
    server = await proxy.serve(listen("127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET http://169.254.169.254/metadata/identity/oauth2/token HTTP/1.1\r\n"
                     b"Host: 169.254.169.254\r\nMetadata: true\r\n\r\n")
        answer = await reader.read()
        writer.close()
    finally:
        server.close()
    assert answer.startswith(b"HTTP/1.1 403") and b"unreachable" in answer and b"--intercept-imds" in answer
