"""Local certificate authority and TLS server certificate for Cielo.

Azure SDK clients only talk to an Entra ID authority over HTTPS (azure-identity rejects ``http://``
authorities and MSAL validates the issuer's TLS certificate), so a self-hosted token service needs a
certificate that the clients trust.  This module keeps a small private CA on disk and issues server
certificates from it:

* the CA is an EC P-256 key with a self-signed certificate (``basicConstraints CA:true, pathlen 0``,
  ``keyUsage keyCertSign, cRLSign``; RFC 5280 sections 4.2.1.3 and 4.2.1.9) valid for ten years.  It is
  created once and then kept forever, so that trust established by clients survives restarts;
* the server certificate is an EC P-256 leaf with ``extendedKeyUsage serverAuth`` and subject alternative
  names for ``localhost``, ``127.0.0.1``, ``::1`` and any configured host names (RFC 6125 / RFC 2818
  section 3.1: clients match the SAN, not the CN).  Its lifetime is 397 days, the CA/Browser Forum
  maximum that Apple and Chrome clients enforce;
* ``bundle.pem`` holds the system CA certificates followed by Cielo's CA, for ``REQUESTS_CA_BUNDLE``
  and ``SSL_CERT_FILE``, so that clients which use it still reach the real internet.

Private keys are written with mode 0600 and every file is replaced atomically, so a concurrently
starting process never reads a half-written PEM file.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import os
import secrets
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cielo.core.certs import leaf_certificate
from cielo.core.file_lock import exclusive_file_lock
from cielo.core.ids import b64url

__all__ = [
    "CA_COMMON_NAME",
    "DEFAULT_SERVER_NAMES",
    "PkiError",
    "TlsFiles",
    "cert_thumbprints",
    "ensure_tls",
    "install_ca",
    "issue_certificate",
    "load_pem_certificates",
    "new_ca",
    "read_ca",
]

CA_COMMON_NAME = "Cielo Local CA"
CA_ORGANIZATION = "Cielo"
CA_VALIDITY = datetime.timedelta(days=3650)
SERVER_VALIDITY_DAYS = 397
RENEW_BEFORE = datetime.timedelta(days=30)
BACKDATE = datetime.timedelta(minutes=5)
DEFAULT_SERVER_NAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")

_KEY_MODE = 0o600
_CERT_MODE = 0o644
_DIR_MODE = 0o700
_SYSTEM_CA_FALLBACK = Path("/etc/ssl/certs/ca-certificates.crt")

# A (kind, value) pair: ("dns", "localhost") or ("ip", IPv4Address("127.0.0.1")).
_SanKey = tuple[str, object]


class PkiError(Exception):
    """The TLS directory is in a state that cannot be repaired without losing trust (e.g. a CA
    certificate without its key)."""


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the PEM files managed by :func:`ensure_tls`."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    bundle: Path

    @classmethod
    def in_dir(cls, tls_dir: Path) -> TlsFiles:
        """The standard file layout inside ``tls_dir``."""
        return cls(
            ca_cert=tls_dir / "ca.pem",
            ca_key=tls_dir / "ca-key.pem",
            server_cert=tls_dir / "server.pem",
            server_key=tls_dir / "server-key.pem",
            bundle=tls_dir / "bundle.pem",
        )


@dataclass(frozen=True)
class _Ca:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    pem: bytes


# ---------------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------------


def ensure_tls(tls_dir: Path, names: Sequence[str] = ()) -> TlsFiles:
    """Make sure ``tls_dir`` holds a CA, a current server certificate and a CA bundle; return their paths.

    The CA is created on the first call and never replaced.  The server certificate (leaf followed by
    the CA certificate, i.e. the chain a TLS server presents, RFC 8446 section 4.4.2) is re-issued when
    its SAN set differs from ``localhost, 127.0.0.1, ::1`` plus ``names``, when it expires within 30
    days, when it was not issued by the current CA, or when its key file does not match.
    ``bundle.pem`` is rebuilt on every call.
    """
    files = TlsFiles.in_dir(tls_dir)
    _make_private_dir(tls_dir)
    with _dir_lock(tls_dir):
        ca = _load_or_create_ca(files)
        wanted = _san_names([*DEFAULT_SERVER_NAMES, *names])
        if _server_cert_needs_issue(files, ca, wanted):
            _issue_leaf(ca, wanted, files.server_cert, files.server_key, SERVER_VALIDITY_DAYS)
        _write_bundle(files, ca)
    return files


def issue_certificate(
    tls_dir: Path, names: Sequence[str], cert_path: Path, key_path: Path, days: int = 365
) -> None:
    """Issue a TLS server certificate for exactly ``names`` from the CA in ``tls_dir``.

    Used to stand up extra HTTPS endpoints that clients trusting ``bundle.pem`` accept, e.g. a fake
    OIDC issuer for workload-identity federation tests.  The CA is created if it does not exist yet.
    ``cert_path`` receives the leaf followed by the CA certificate; ``key_path`` the key (mode 0600).
    """
    if not names:
        raise ValueError("at least one name is required")
    if days <= 0:
        raise ValueError("days must be positive")
    _make_private_dir(tls_dir)
    with _dir_lock(tls_dir):
        ca = _load_or_create_ca(TlsFiles.in_dir(tls_dir))
        _issue_leaf(ca, _san_names(names), cert_path, key_path, days)


def read_ca(tls_dir: Path) -> tuple[str, bytes] | None:
    """The CA in ``tls_dir`` as (certificate PEM, key PEM), checked to match; None when it has none."""
    files = TlsFiles.in_dir(tls_dir)
    if not (files.ca_cert.exists() or files.ca_key.exists()):
        return None
    ca = _load_or_create_ca(files)
    return ca.pem.decode("ascii"), _key_pem(ca.key)


def new_ca() -> tuple[str, bytes]:
    """A new CA, not written anywhere: (certificate PEM, key PEM)."""
    ca = _new_ca()
    return ca.pem.decode("ascii"), _key_pem(ca.key)


def install_ca(tls_dir: Path, cert_pem: str, key_pem: bytes) -> None:
    """Make the CA given (replicas share one, kept in their database) the CA of ``tls_dir``; the server certificate
    is issued again from it by the next :func:`ensure_tls`. Refuses a key that does not match the certificate."""
    certs = load_pem_certificates(cert_pem.encode("ascii"))
    key = serialization.load_pem_private_key(key_pem, password=None)
    if len(certs) != 1 or not isinstance(key, ec.EllipticCurvePrivateKey) or not _same_public_key(certs[0], key):
        raise PkiError("the shared CA's key does not match its certificate")
    files = TlsFiles.in_dir(tls_dir)
    _make_private_dir(tls_dir)
    with _dir_lock(tls_dir):
        if files.ca_cert.exists() and files.ca_cert.read_bytes() == cert_pem.encode("ascii") and \
                files.ca_key.exists() and files.ca_key.read_bytes() == key_pem:
            return
        _write_file(files.ca_key, key_pem, _KEY_MODE)
        _write_file(files.ca_cert, cert_pem.encode("ascii"), _CERT_MODE)


def cert_thumbprints(cert: x509.Certificate) -> tuple[str, str]:
    """Return ``(x5t, x5t#S256)``: base64url SHA-1 and SHA-256 of the DER certificate, unpadded.

    These are the JWS ``x5t`` and ``x5t#S256`` header values of RFC 7515 sections 4.1.7 and 4.1.8, and
    the ``customKeyIdentifier``-style thumbprints Entra ID shows for key credentials.
    """
    der = cert.public_bytes(serialization.Encoding.DER)
    sha1 = hashlib.sha1(der, usedforsecurity=False).digest()
    sha256 = hashlib.sha256(der).digest()
    return b64url(sha1), b64url(sha256)


def load_pem_certificates(data: bytes) -> list[x509.Certificate]:
    """Parse every ``CERTIFICATE`` block in ``data`` (other PEM blocks, such as keys, are skipped).

    Returns an empty list when there is no certificate block; raises ``ValueError`` when a
    certificate block is malformed.
    """
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return []
    return x509.load_pem_x509_certificates(data)


# ---------------------------------------------------------------------------------------------------------
# CA
# ---------------------------------------------------------------------------------------------------------


def _load_or_create_ca(files: TlsFiles) -> _Ca:
    """Load the CA, creating it only when neither of its files exists."""
    cert_exists, key_exists = files.ca_cert.exists(), files.ca_key.exists()
    if not cert_exists and not key_exists:
        return _create_ca(files)
    if not (cert_exists and key_exists):
        missing = files.ca_key if cert_exists else files.ca_cert
        raise PkiError(f"{missing} is missing; remove the TLS directory to create a new CA")
    return _load_ca(files)


def _create_ca(files: TlsFiles) -> _Ca:
    ca = _new_ca()
    # Key first: a CA certificate without its key is the state _load_or_create_ca refuses to repair.
    _write_file(files.ca_key, _key_pem(ca.key), _KEY_MODE)
    _write_file(files.ca_cert, ca.pem, _CERT_MODE)
    return ca


def _new_ca() -> _Ca:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, CA_ORGANIZATION),
        ]
    )
    now = _utcnow()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    return _Ca(cert=cert, key=key, pem=pem)


def _load_ca(files: TlsFiles) -> _Ca:
    pem = files.ca_cert.read_bytes()
    certs = load_pem_certificates(pem)
    if len(certs) != 1:
        raise PkiError(f"{files.ca_cert} must hold exactly one certificate")
    _restrict_key_mode(files.ca_key)
    key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not _same_public_key(certs[0], key):
        raise PkiError(f"{files.ca_key} does not match {files.ca_cert}")
    return _Ca(cert=certs[0], key=key, pem=certs[0].public_bytes(serialization.Encoding.PEM))


# ---------------------------------------------------------------------------------------------------------
# Leaf certificates
# ---------------------------------------------------------------------------------------------------------


def _issue_leaf(ca: _Ca, sans: list[x509.GeneralName], cert_path: Path, key_path: Path, days: int) -> None:
    now = _utcnow()
    cert, key = leaf_certificate(ca.cert, ca.key, sans, _common_name(sans), now - BACKDATE,
                                 now + datetime.timedelta(days=days))
    # Key first, so a reader that sees the new certificate also finds the matching key.
    _write_file(key_path, _key_pem(key), _KEY_MODE)
    _write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM) + ca.pem, _CERT_MODE)


def _server_cert_needs_issue(files: TlsFiles, ca: _Ca, wanted: list[x509.GeneralName]) -> bool:
    """True when the server certificate is missing, unreadable, stale or does not fit the CA or key."""
    try:
        certs = load_pem_certificates(files.server_cert.read_bytes())
        _restrict_key_mode(files.server_key)
        key = serialization.load_pem_private_key(files.server_key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return True
    if not certs or not _same_public_key(certs[0], key):
        return True
    leaf = certs[0]
    return not (
        _issued_by(leaf, ca.cert)
        and _san_set(leaf) == _san_keys(wanted)
        and leaf.not_valid_before_utc <= _utcnow()
        and leaf.not_valid_after_utc - _utcnow() > RENEW_BEFORE
    )


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _common_name(sans: list[x509.GeneralName]) -> str:
    """The first SAN as CN (informational only; RFC 6125 clients match SANs), within the 64-char limit."""
    value = str(sans[0].value)
    return value if len(value) <= 64 else "Cielo server"


def _key_usage(
    *, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


# ---------------------------------------------------------------------------------------------------------
# Subject alternative names
# ---------------------------------------------------------------------------------------------------------


def _san_names(names: Sequence[str]) -> list[x509.GeneralName]:
    """Turn host names into SAN entries: IP literals become iPAddress, everything else dNSName.

    Duplicates (after normalisation) are dropped; order is kept.  DNS names are lower-cased and
    internationalised names are converted to their A-label (RFC 5280 section 7.2 requires IA5String).
    """
    result: list[x509.GeneralName] = []
    seen: set[_SanKey] = set()
    for raw in names:
        general_name = _san_name(raw)
        key = _san_key(general_name)
        if key not in seen:
            seen.add(key)
            result.append(general_name)
    return result


def _san_name(raw: str) -> x509.GeneralName:
    name = raw.strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if not name:
        raise ValueError("empty host name")
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    if not name.isascii():
        name = name.encode("idna").decode("ascii")
    return x509.DNSName(name.lower().rstrip("."))


def _san_key(name: x509.GeneralName) -> _SanKey:
    if isinstance(name, x509.IPAddress):
        return ("ip", name.value)
    return ("dns", str(name.value).lower())


def _san_keys(names: list[x509.GeneralName]) -> frozenset[_SanKey]:
    return frozenset(_san_key(name) for name in names)


def _san_set(cert: x509.Certificate) -> frozenset[_SanKey]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset()
    return _san_keys(list(san))


# ---------------------------------------------------------------------------------------------------------
# CA bundle
# ---------------------------------------------------------------------------------------------------------


def _write_bundle(files: TlsFiles, ca: _Ca) -> None:
    system = _system_ca_file(exclude=files.bundle)
    data = system.read_bytes() if system is not None else b""
    if data and not data.endswith(b"\n"):
        data += b"\n"
    _write_file(files.bundle, data + ca.pem, _CERT_MODE)


def _system_ca_file(exclude: Path) -> Path | None:
    """The first existing system CA file, in the order OpenSSL and requests would look for one.

    ``exclude`` (our own bundle) is skipped: clients point ``SSL_CERT_FILE`` at it, and reading it back
    would append Cielo's CA again on every start.
    """
    for candidate in _system_ca_candidates():
        if candidate.is_file() and not _same_file(candidate, exclude):
            return candidate
    return None


def _system_ca_candidates() -> Iterator[Path]:
    paths = ssl.get_default_verify_paths()
    for name in (paths.cafile, paths.openssl_cafile):
        if name:
            yield Path(name)
    yield _SYSTEM_CA_FALLBACK
    try:
        import certifi  # optional dependency, last resort only
    except ImportError:
        return
    yield Path(certifi.where())


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and a.samefile(b))
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------


def _make_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) with mode 0700 if missing; an existing directory is left alone."""
    if not path.is_dir():
        path.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        os.chmod(path, _DIR_MODE)


@contextlib.contextmanager
def _dir_lock(tls_dir: Path) -> Iterator[None]:
    """Serialise CA creation and certificate issuance between processes (e.g. several workers)."""
    with exclusive_file_lock(tls_dir / ".lock"):
        yield


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Atomically replace ``path`` with ``data``; the file is created with ``mode`` (never wider)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _restrict_key_mode(path: Path) -> None:
    """Tighten a private key file that is readable by group or others back to 0600."""
    if path.stat().st_mode & 0o077:
        os.chmod(path, _KEY_MODE)


# ---------------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------------


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _same_public_key(cert: x509.Certificate, key: object) -> bool:
    public_key = getattr(key, "public_key", None)
    if public_key is None:
        return False
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(cert.public_key().public_bytes(*spki) == public_key().public_bytes(*spki))




def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
