"""Certificates for the hosts intercept mode serves, issued by Cielo's local CA.

Each host gets its own leaf naming that host only (never a wildcard, never another host), valid for one day
and renewed an hour before it ends; leaves and their keys live in memory (the ssl module loads a chain only
from a file, so each is written to a private temporary directory just long enough to be loaded). The CA
files are read, never written: `cielo up` made them (identity/pki.py)."""

from __future__ import annotations

import datetime as dt
import os
import ssl
import tempfile
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cielo.core.certs import leaf_certificate
from cielo.intercept.hosts import host_name, is_served

LEAF_LIFETIME = dt.timedelta(days=1)
RENEW_BEFORE = dt.timedelta(hours=1)
BACKDATE = dt.timedelta(minutes=5)  # a client whose clock is a little behind still accepts a new leaf
# `*.openai.azure.com` admits any label: the cache is bounded so that a local program asking for many names
# cannot grow it without end (the oldest leaf is dropped and issued again if asked for).
MAX_CACHED = 256


class HostCertificates:
    """One server-side TLS context per served host name, cached until its leaf is about to expire."""

    def __init__(self, ca_cert: Path, ca_key: Path) -> None:
        self._ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
        key = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{ca_key} is not Cielo's EC CA key")
        self._ca_key = key
        self._ca_pem = self._ca.public_bytes(serialization.Encoding.PEM)
        self._cache: dict[str, tuple[dt.datetime, ssl.SSLContext]] = {}
        self._lock = threading.Lock()

    def context(self, host: str, now: dt.datetime | None = None) -> ssl.SSLContext:
        name = host_name(host)
        if not is_served(name):
            raise ValueError(f"{name} is not a host intercept mode serves")
        now = now or dt.datetime.now(dt.UTC)
        with self._lock:
            cached = self._cache.get(name)
            if cached is not None and cached[0] - RENEW_BEFORE > now:
                return cached[1]
            cert_pem, key_pem, expires = self.issue(name, now)
            context = _server_context(cert_pem + self._ca_pem, key_pem)
            self._cache.pop(name, None)
            while len(self._cache) >= MAX_CACHED:
                del self._cache[next(iter(self._cache))]
            self._cache[name] = (expires, context)
            return context

    def issue(self, name: str, now: dt.datetime) -> tuple[bytes, bytes, dt.datetime]:
        """A leaf for exactly `name`: (certificate PEM, key PEM, not-after)."""
        end = now + LEAF_LIFETIME
        cert, key = leaf_certificate(self._ca, self._ca_key, [x509.DNSName(name)], name, now - BACKDATE, end)
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return cert.public_bytes(serialization.Encoding.PEM), key_pem, end


def _server_context(chain_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])  # Cielo speaks HTTP/1.1 behind the tunnel
    with tempfile.TemporaryDirectory(prefix="cielo-intercept-") as tmp:  # mode 0700
        cert_path, key_path = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        with open(cert_path, "wb") as f:
            f.write(chain_pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        context.load_cert_chain(cert_path, key_path)
    return context
