"""The one self-signed certificate Cielo makes: a bare RS256 certificate around a key, for the token
signing keys' `x5c` (identity/keys.py) and for `cielo ad sp create-for-rbac --create-cert`, as az makes
(cli/ad.py). The TLS CA and server certificates, which need extensions, are made in identity/pki.py."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

# Backdated so a verifier whose clock runs a little behind still accepts a certificate made just now.
BACKDATE = dt.timedelta(minutes=5)


def self_signed_certificate(key: rsa.RSAPrivateKey, common_name: str, now: dt.datetime,
                            valid_for: dt.timedelta) -> x509.Certificate:
    """`CN=common_name`, issued by itself, valid from `now` less five minutes for `valid_for`, signed SHA-256."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = now - BACKDATE
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + valid_for)
        .sign(key, hashes.SHA256())
    )
