"""The certificates Cielo makes. `self_signed_certificate`: a bare RS256 certificate around a key, for the token
signing keys' `x5c` (identity/keys.py) and for `cielo ad sp create-for-rbac --create-cert`, as az makes
(cli/ad.py). `leaf_certificate`: a TLS server leaf signed by Cielo's CA, for `cielo up`'s server certificate
(identity/pki.py, which also makes the CA) and intercept mode's per-host leaves (intercept/certs.py)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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


def leaf_certificate(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, sans: list[x509.GeneralName],
                     common_name: str, not_before: dt.datetime, not_after: dt.datetime,
                     ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A TLS server leaf for exactly `sans`, with a new P-256 key, signed by the CA (SHA-256)."""
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    usage = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key
