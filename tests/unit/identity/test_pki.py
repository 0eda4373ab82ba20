"""Tests for cielo.identity.pki: local CA, server certificate, CA bundle and a real TLS handshake."""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import ipaddress
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cielo.identity.pki import (
    PkiError,
    TlsFiles,
    cert_thumbprints,
    ensure_tls,
    issue_certificate,
    load_pem_certificates,
)

DEFAULT_SANS = {("dns", "localhost"), ("ip", "127.0.0.1"), ("ip", "::1")}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _certs(path: Path) -> list[x509.Certificate]:
    return load_pem_certificates(path.read_bytes())


def _sans(cert: x509.Certificate) -> set[tuple[str, str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = {("dns", name) for name in san.get_values_for_type(x509.DNSName)}
    ips = {("ip", str(ip)) for ip in san.get_values_for_type(x509.IPAddress)}
    return dns | ips


@pytest.fixture
def tls_dir(tmp_path: Path) -> Path:
    return tmp_path / "state" / "tls"


@pytest.fixture
def files(tls_dir: Path) -> TlsFiles:
    return ensure_tls(tls_dir)


# --------------------------------------------------------------------------------------------------------
# Files and modes
# --------------------------------------------------------------------------------------------------------


def test_creates_all_files_with_private_modes(tls_dir: Path, files: TlsFiles) -> None:
    assert files == TlsFiles.in_dir(tls_dir)
    assert _mode(tls_dir) == 0o700
    for path in (files.ca_cert, files.ca_key, files.server_cert, files.server_key, files.bundle):
        assert path.is_file()
    assert _mode(files.ca_key) == 0o600
    assert _mode(files.server_key) == 0o600
    assert not list(tls_dir.glob(".*.tmp")), "temporary files must not be left behind"


def test_loose_key_permissions_are_tightened(tls_dir: Path, files: TlsFiles) -> None:
    files.ca_key.chmod(0o644)
    files.server_key.chmod(0o640)
    ensure_tls(tls_dir)
    assert _mode(files.ca_key) == 0o600
    assert _mode(files.server_key) == 0o600


# --------------------------------------------------------------------------------------------------------
# Certificate contents
# --------------------------------------------------------------------------------------------------------


def test_ca_certificate_properties(files: TlsFiles) -> None:
    (ca,) = _certs(files.ca_cert)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Cielo Local CA"
    assert ca.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Cielo"
    assert ca.issuer == ca.subject
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    key = ca.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert datetime.timedelta(days=3649) < lifetime < datetime.timedelta(days=3651)
    ca.verify_directly_issued_by(ca)


def test_server_certificate_properties(files: TlsFiles) -> None:
    leaf, chain_ca = _certs(files.server_cert)
    (ca,) = _certs(files.ca_cert)
    assert chain_ca == ca, "server.pem must be the leaf followed by the CA certificate"
    leaf.verify_directly_issued_by(ca)
    assert _sans(leaf) == DEFAULT_SANS
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    key = leaf.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert datetime.timedelta(days=397) <= lifetime <= datetime.timedelta(days=397, hours=1)
    server_key = serialization.load_pem_private_key(files.server_key.read_bytes(), password=None)
    assert server_key.public_key().public_numbers() == key.public_numbers()  # type: ignore[union-attr]


def test_extra_names_become_dns_or_ip_sans(tls_dir: Path) -> None:
    files = ensure_tls(tls_dir, ["cielo.test", "10.1.2.3", "[fe80::1]", "LOCALHOST", "Bücher.example"])
    (leaf, _) = _certs(files.server_cert)
    expected = DEFAULT_SANS | {
        ("dns", "cielo.test"),
        ("ip", "10.1.2.3"),
        ("ip", "fe80::1"),
        ("dns", "xn--bcher-kva.example"),
    }
    assert _sans(leaf) == expected
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("10.1.2.3") in san.get_values_for_type(x509.IPAddress)


# --------------------------------------------------------------------------------------------------------
# Restart behaviour
# --------------------------------------------------------------------------------------------------------


def test_restart_keeps_ca_and_server_certificate(tls_dir: Path, files: TlsFiles) -> None:
    before = {path: path.read_bytes() for path in (files.ca_cert, files.ca_key, files.server_cert)}
    server_key = files.server_key.read_bytes()
    again = ensure_tls(tls_dir)
    assert {path: path.read_bytes() for path in before} == before
    assert again.server_key.read_bytes() == server_key


def test_adding_or_removing_a_name_reissues_only_the_server_certificate(
    tls_dir: Path, files: TlsFiles
) -> None:
    ca_pem, first = files.ca_cert.read_bytes(), files.server_cert.read_bytes()
    ensure_tls(tls_dir, ["cielo.test"])
    second = files.server_cert.read_bytes()
    assert second != first
    assert ("dns", "cielo.test") in _sans(_certs(files.server_cert)[0])
    ensure_tls(tls_dir, ["cielo.test"])
    assert files.server_cert.read_bytes() == second, "same names must keep the certificate"
    ensure_tls(tls_dir)
    assert _sans(_certs(files.server_cert)[0]) == DEFAULT_SANS
    assert files.ca_cert.read_bytes() == ca_pem


def test_certificate_close_to_expiry_is_reissued(tls_dir: Path, files: TlsFiles) -> None:
    issue_certificate(
        tls_dir, ["localhost", "127.0.0.1", "::1"], files.server_cert, files.server_key, days=10
    )
    short = _certs(files.server_cert)[0]
    ensure_tls(tls_dir)
    renewed = _certs(files.server_cert)[0]
    assert renewed.serial_number != short.serial_number
    assert renewed.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > datetime.timedelta(days=390)


def test_server_key_that_does_not_match_is_reissued(tls_dir: Path, files: TlsFiles) -> None:
    old_serial = _certs(files.server_cert)[0].serial_number
    other = ec.generate_private_key(ec.SECP256R1())
    files.server_key.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    ensure_tls(tls_dir)
    assert _certs(files.server_cert)[0].serial_number != old_serial


def test_corrupt_server_certificate_is_reissued(tls_dir: Path, files: TlsFiles) -> None:
    files.server_cert.write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    ensure_tls(tls_dir)
    assert len(_certs(files.server_cert)) == 2


def test_ca_without_key_is_refused_rather_than_replaced(tls_dir: Path, files: TlsFiles) -> None:
    files.ca_key.unlink()
    with pytest.raises(PkiError, match=r"ca-key\.pem"):
        ensure_tls(tls_dir)


def test_existing_directory_mode_is_left_alone(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    ensure_tls(tmp_path)
    assert _mode(tmp_path) == 0o755


# --------------------------------------------------------------------------------------------------------
# Bundle
# --------------------------------------------------------------------------------------------------------


def test_bundle_holds_system_cas_followed_by_cielo_ca(files: TlsFiles) -> None:
    bundle = files.bundle.read_bytes()
    assert bundle.endswith(files.ca_cert.read_bytes())
    cafile = ssl.get_default_verify_paths().cafile
    if cafile is not None or Path("/etc/ssl/certs/ca-certificates.crt").is_file():
        # Counted, not parsed: some system stores hold certificates newer cryptography refuses to load.
        assert bundle.count(b"-----BEGIN CERTIFICATE-----") > 1


def test_bundle_does_not_grow_when_ssl_cert_file_points_at_it(
    tls_dir: Path, files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(files.bundle))
    first = files.bundle.read_bytes()
    ensure_tls(tls_dir)
    ensure_tls(tls_dir)
    assert files.bundle.read_bytes() == first
    assert first.count(files.ca_cert.read_bytes()) == 1


def test_bundle_without_any_system_store_is_just_the_ca(
    tls_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cielo.identity.pki as pki

    monkeypatch.setattr(pki, "_system_ca_candidates", lambda: iter([tmp_path / "missing.pem"]))
    files = ensure_tls(tls_dir)
    assert files.bundle.read_bytes() == files.ca_cert.read_bytes()


# --------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------


def test_cert_thumbprints_are_unpadded_base64url_sha1_and_sha256(files: TlsFiles) -> None:
    (ca,) = _certs(files.ca_cert)
    der = ca.public_bytes(serialization.Encoding.DER)
    x5t, x5t_s256 = cert_thumbprints(ca)
    assert "=" not in x5t and "=" not in x5t_s256
    assert base64.urlsafe_b64decode(x5t + "=") == hashlib.sha1(der).digest()
    assert base64.urlsafe_b64decode(x5t_s256 + "=") == hashlib.sha256(der).digest()
    assert len(x5t) == 27 and len(x5t_s256) == 43


def test_load_pem_certificates(files: TlsFiles) -> None:
    assert len(load_pem_certificates(files.server_cert.read_bytes())) == 2
    assert load_pem_certificates(files.server_key.read_bytes()) == []
    assert load_pem_certificates(b"") == []
    mixed = files.server_key.read_bytes() + files.ca_cert.read_bytes()
    assert load_pem_certificates(mixed) == _certs(files.ca_cert)
    with pytest.raises(ValueError):
        load_pem_certificates(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


def test_issue_certificate_requires_names(tls_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        issue_certificate(tls_dir, [], tmp_path / "c.pem", tmp_path / "k.pem")


# --------------------------------------------------------------------------------------------------------
# Real TLS handshakes
# --------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _tls_server(cert: Path, key: Path) -> Iterator[int]:
    """Serve TLS on 127.0.0.1 in a thread: each connection gets b"hello" after the handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.01)  # how often the loop looks at `stop`: a stopped server is closed at once
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with contextlib.suppress(ssl.SSLError, OSError), conn:
                conn.settimeout(5)
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"hello")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def _fetch(port: int, hostname: str, cafile: Path) -> bytes:
    context = ssl.create_default_context(cafile=str(cafile))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=hostname) as tls,
    ):
        return tls.recv(5)


@pytest.mark.parametrize("hostname", ["127.0.0.1", "localhost"])
def test_tls_handshake_with_bundle(files: TlsFiles, hostname: str) -> None:
    with _tls_server(files.server_cert, files.server_key) as port:
        assert _fetch(port, hostname, files.bundle) == b"hello"


def test_tls_handshake_rejects_name_not_in_certificate(files: TlsFiles) -> None:
    with (
        _tls_server(files.server_cert, files.server_key) as port,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        _fetch(port, "example.com", files.bundle)


def test_tls_handshake_fails_without_cielo_ca(files: TlsFiles, tmp_path: Path) -> None:
    other = ensure_tls(tmp_path / "other")
    with (
        _tls_server(files.server_cert, files.server_key) as port,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        _fetch(port, "localhost", other.bundle)


def test_tls_handshake_after_restart_with_new_name(tls_dir: Path, files: TlsFiles) -> None:
    renewed = ensure_tls(tls_dir, ["cielo.test"])
    with _tls_server(renewed.server_cert, renewed.server_key) as port:
        assert _fetch(port, "cielo.test", files.bundle) == b"hello"


def test_issued_certificate_serves_a_fake_issuer(tls_dir: Path, files: TlsFiles, tmp_path: Path) -> None:
    cert, key = tmp_path / "issuer.pem", tmp_path / "issuer-key.pem"
    issue_certificate(tls_dir, ["issuer.test", "127.0.0.1"], cert, key, days=2)
    assert _mode(key) == 0o600
    leaf, ca = _certs(cert)
    assert ca == _certs(files.ca_cert)[0]
    assert _sans(leaf) == {("dns", "issuer.test"), ("ip", "127.0.0.1")}
    with _tls_server(cert, key) as port:
        assert _fetch(port, "issuer.test", files.bundle) == b"hello"
        assert _fetch(port, "127.0.0.1", files.bundle) == b"hello"
