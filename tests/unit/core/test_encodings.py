"""core/ids.py's base64url helpers and core/certs.py's self-signed certificate: the one copy of each."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from cielo.core.certs import self_signed_certificate
from cielo.core.ids import b64url, b64url_decode, b64url_json, pkce_s256


@pytest.mark.parametrize("data", [b"", b"a", b"ab", b"abc", b"\xfb\xff\xfe", bytes(range(256))])
def test_b64url_is_unpadded_url_safe_and_round_trips(data: bytes) -> None:
    text = b64url(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64url_decode(text) == data
    assert b64url_decode(text + "=" * (-len(text) % 4)) == data  # padded input is accepted too


def test_b64url_json_is_compact() -> None:
    assert base64.urlsafe_b64decode(b64url_json({"a": 1, "b": [2]}) + "==") == b'{"a":1,"b":[2]}'


def test_pkce_s256_is_rfc7636_s256() -> None:
    verifier = "x" * 43
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert pkce_s256(verifier) == expected and len(expected) == 43


def test_self_signed_certificate() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = self_signed_certificate(key, "CLI-Login", now, dt.timedelta(days=365))
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CLI-Login"
    assert cert.not_valid_before_utc == now - dt.timedelta(minutes=5)
    assert cert.not_valid_after_utc == now - dt.timedelta(minutes=5) + dt.timedelta(days=365)
    assert isinstance(cert.public_key(), rsa.RSAPublicKey)
    cert.verify_directly_issued_by(cert)
    assert isinstance(cert, x509.Certificate)
