"""Tests for cielo.identity.assertions, using assertions built by the real client libraries.

* MSAL's own ``JwtAssertionCreator`` (what sync azure-identity ``CertificateCredential`` uses);
* azure-identity's ``AadClientBase._get_client_certificate_assertion`` (what azure.identity.aio uses);
* both credentials end to end against a local HTTPS token endpoint trusted through Cielo's bundle;
* hand-built tokens for the hostile cases (wrong key, tampering, ``alg: none``, HS256, ...).

Verification is PyJWT's (``jwt.decode`` with explicit algorithms, audience, issuer, subject and leeway);
these tests hold it to the reasons and the behaviour Cielo had with its own verifier.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import hashlib
import hmac
import json
import os
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from msal.oauth2cli.assertion import JwtAssertionCreator  # type: ignore[import-untyped]

from cielo.identity.assertions import (
    DEFAULT_SKEW,
    InvalidAssertion,
    b64url_decode,
    parse_jwt,
    select_certificate,
    select_jwk,
    verify_certificate_assertion,
    verify_federated_assertion,
)
from cielo.identity.pki import cert_thumbprints, ensure_tls

CLIENT_ID = "0b7c6a3e-4f1d-4c1e-9a53-2f9d3c1e8a77"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
TOKEN_URL = f"https://localhost:8443/{TENANT}/oauth2/v2.0/token"
ISSUER = "https://issuer.test/"
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"


@dataclass(frozen=True)
class ClientCert:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    key_pem: str
    pem: bytes  # key followed by certificate, as azure-identity takes it

    @property
    def sha1_hex(self) -> str:
        return self.cert.fingerprint(hashes.SHA1()).hex()

    @property
    def sha256_hex(self) -> str:
        return self.cert.fingerprint(hashes.SHA256()).hex()


def _make_client_cert(common_name: str, key_size: int = 2048) -> ClientCert:
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ClientCert(key, cert, key_pem.decode(), key_pem + cert.public_bytes(serialization.Encoding.PEM))


def _self_signed(key: Any, common_name: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def client() -> ClientCert:
    return _make_client_cert("cielo-test-client")


@pytest.fixture(scope="module")
def attacker() -> ClientCert:
    return _make_client_cert("attacker")


# --------------------------------------------------------------------------------------------------------
# Token building helpers
# --------------------------------------------------------------------------------------------------------


def _b64(data: bytes, pad: bool = False) -> str:
    text = base64.urlsafe_b64encode(data).decode()
    return text if pad else text.rstrip("=")


def _sign(alg: str, key: Any, signing_input: bytes) -> bytes:
    if alg == "RS256":
        return bytes(key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256()))
    if alg == "PS256":
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
        return bytes(key.sign(signing_input, pss, hashes.SHA256()))
    if alg == "ES256":
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if alg == "HS256":
        return hmac.new(key, signing_input, hashlib.sha256).digest()
    if alg == "none":
        return b""
    raise AssertionError(alg)


def make_token(header: dict[str, Any], claims: dict[str, Any], key: Any, *, pad: bool = False) -> str:
    """Build a compact JWS the way a client would; ``pad`` mimics azure.identity.aio's padded segments."""
    signing_input = f"{_b64(json.dumps(header).encode(), pad)}.{_b64(json.dumps(claims).encode(), pad)}"
    signature = _sign(header["alg"], key, signing_input.encode())
    return f"{signing_input}.{_b64(signature, pad)}"


def client_claims(now: float | None = None, **overrides: Any) -> dict[str, Any]:
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {
        "aud": TOKEN_URL,
        "iss": CLIENT_ID,
        "sub": CLIENT_ID,
        "jti": str(uuid.uuid4()),
        "iat": int(issued),
        "nbf": int(issued),
        "exp": int(issued) + 600,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def x5t_header(cert: x509.Certificate, alg: str = "RS256") -> dict[str, Any]:
    return {"alg": alg, "typ": "JWT", "x5t": _b64(cert.fingerprint(hashes.SHA1()), pad=True)}


def verify_client(token: str | bytes, client: ClientCert, **kwargs: Any) -> dict[str, Any]:
    text = token.decode() if isinstance(token, bytes) else token
    options: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "audiences": [TOKEN_URL],
        "certificates": [client.cert],
    }
    options.update(kwargs)
    return verify_certificate_assertion(text, **options)


def reason_of(excinfo: pytest.ExceptionInfo[InvalidAssertion]) -> str:
    return excinfo.value.reason


# --------------------------------------------------------------------------------------------------------
# Real client assertion builders
# --------------------------------------------------------------------------------------------------------


def test_msal_rs256_with_padded_x5t_and_float_times(client: ClientCert) -> None:
    creator = JwtAssertionCreator(client.key_pem, "RS256", sha1_thumbprint=client.sha1_hex)
    token = creator.create_normal_assertion(audience=TOKEN_URL, issuer=CLIENT_ID).decode()
    parsed = parse_jwt(token)
    assert parsed.header["x5t"].endswith("="), "MSAL pads x5t"
    assert "=" not in token, "PyJWT does not pad segments"
    assert isinstance(parsed.claims["exp"], float) and isinstance(parsed.claims["iat"], float)
    claims = verify_client(token, client)
    assert claims["sub"] == CLIENT_ID


def test_msal_with_x5c_chain_containing_line_breaks(client: ClientCert) -> None:
    from msal.application import extract_certs  # type: ignore[import-untyped]

    x5c = extract_certs(client.cert.public_bytes(serialization.Encoding.PEM).decode())
    assert "\n" in x5c[0], "MSAL copies the PEM body, line breaks included"
    creator = JwtAssertionCreator(
        client.key_pem, "RS256", sha1_thumbprint=client.sha1_hex, headers={"x5c": x5c}
    )
    token = creator.create_normal_assertion(audience=TOKEN_URL, issuer=CLIENT_ID).decode()
    assert parse_jwt(token).header["x5c"] == x5c
    verify_client(token, client)


def test_msal_ps256_with_sha256_thumbprint(client: ClientCert) -> None:
    creator = JwtAssertionCreator(client.key_pem, "PS256", sha256_thumbprint=client.sha256_hex)
    token = creator.create_normal_assertion(audience=TOKEN_URL, issuer=CLIENT_ID).decode()
    assert "x5t#S256" in parse_jwt(token).header
    verify_client(token, client)


def test_azure_identity_aio_ps256_with_padded_segments(client: ClientCert) -> None:
    from azure.identity._internal.aadclient_certificate import AadClientCertificate
    from azure.identity.aio._internal.aad_client import AadClient

    aad = AadClient(TENANT, CLIENT_ID, authority="https://localhost:8443")
    token = aad._get_client_certificate_assertion(AadClientCertificate(client.pem))
    signature_segment = token.split(".")[2]
    assert signature_segment.endswith("=="), "a 256-byte RSA signature is padded by urlsafe_b64encode"
    parsed = parse_jwt(token)
    assert parsed.header["alg"] == "PS256" and parsed.header["x5t#S256"].endswith("=")
    assert "x5t" not in parsed.header
    assert isinstance(parsed.claims["exp"], int) and parsed.claims["exp"] - parsed.claims["nbf"] == 1800
    assert verify_client(token, client)["aud"] == TOKEN_URL


def test_hand_built_padded_ps256_with_x5t_s256(client: ClientCert) -> None:
    header = {"typ": "JWT", "alg": "PS256", "x5t#S256": _b64(client.cert.fingerprint(hashes.SHA256()), True)}
    token = make_token(header, client_claims(), client.key, pad=True)
    assert token.count("=") >= 1
    verify_client(token, client)


def test_pss_with_maximum_salt_length_is_refused(client: ClientCert) -> None:
    """RFC 7518 section 3.5: the salt is as long as the hash (PyJWT, azure-identity and MSAL sign so);
    a maximum-length salt (OpenSSL's default) is not a PS256 signature."""
    header = {"alg": "PS256", "x5t": cert_thumbprints(client.cert)[0]}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(client_claims()).encode())}"
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
    signature = client.key.sign(signing_input.encode(), pss, hashes.SHA256())
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(f"{signing_input}.{_b64(signature)}", client)
    assert reason_of(excinfo) == "bad_signature"


def test_unpadded_thumbprints_from_cert_thumbprints_match(client: ClientCert) -> None:
    x5t, x5t_s256 = cert_thumbprints(client.cert)
    token = make_token({"alg": "RS256", "x5t": x5t, "x5t#S256": x5t_s256}, client_claims(), client.key)
    verify_client(token, client)


def test_certificate_selected_among_several(client: ClientCert, attacker: ClientCert) -> None:
    token = make_token(x5t_header(client.cert), client_claims(), client.key)
    assert verify_client(token, client, certificates=[attacker.cert, client.cert])


def test_x5c_without_thumbprint_matches_registered_certificate(client: ClientCert) -> None:
    der = base64.b64encode(client.cert.public_bytes(serialization.Encoding.DER)).decode()
    token = make_token({"alg": "RS256", "x5c": [der]}, client_claims(), client.key)
    verify_client(token, client)


# --------------------------------------------------------------------------------------------------------
# Real clients end to end (HTTPS token endpoint trusted through Cielo's CA bundle)
# --------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _token_endpoint(tls_dir: Path) -> Iterator[tuple[str, list[str]]]:
    """A minimal HTTPS authority: OIDC discovery plus a token endpoint that records client assertions."""
    import ssl

    files = ensure_tls(tls_dir)
    assertions: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _json(self, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            base = f"https://127.0.0.1:{self.server.server_port}/{TENANT}"  # type: ignore[attr-defined]
            self._json(
                {
                    "issuer": f"{base}/v2.0",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                }
            )

        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            assertions.append(form["client_assertion"][0])
            self._json({"access_token": "t", "token_type": "Bearer", "expires_in": 3600})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.server_cert, files.server_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    # serve_forever checks for shutdown every poll_interval (0.5 s by default): poll often, so closing is prompt.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", assertions
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def authority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[str]]]:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "tls" / "bundle.pem"))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "tls" / "bundle.pem"))
    with _token_endpoint(tmp_path / "tls") as endpoint:
        yield endpoint


def test_sync_certificate_credential_end_to_end(client: ClientCert, authority: tuple[str, list[str]]) -> None:
    from azure.identity import CertificateCredential

    url, assertions = authority
    credential = CertificateCredential(
        TENANT,
        CLIENT_ID,
        certificate_data=client.pem,
        authority=url,
        disable_instance_discovery=True,
        send_certificate_chain=True,
    )
    credential.get_token("https://cognitiveservices.azure.com/.default")
    credential.get_token("https://management.azure.com/.default")
    assert len(assertions) == 2
    assert assertions[0] == assertions[1], "MSAL reuses one assertion (same jti) across token requests"
    header = parse_jwt(assertions[0]).header
    assert header["alg"] == "RS256" and header["x5t"].endswith("=") and len(header["x5c"]) == 1
    audience = f"{url}/{TENANT}/oauth2/v2.0/token"
    options: dict[str, Any] = {"audiences": [audience]}
    verify_client(assertions[0], client, **options)
    verify_client(assertions[1], client, **options)  # accepted again: Entra does not check jti for replay


def test_async_certificate_credential_end_to_end(
    client: ClientCert, authority: tuple[str, list[str]]
) -> None:
    from azure.identity.aio import CertificateCredential

    url, assertions = authority
    # aiohttp builds its default SSL context when it is imported, so SSL_CERT_FILE only works when it is
    # set before the process imports aiohttp; name the bundle explicitly instead.
    bundle = os.environ["SSL_CERT_FILE"]

    async def fetch() -> None:
        async with CertificateCredential(
            TENANT, CLIENT_ID, certificate_data=client.pem, authority=url, connection_verify=bundle
        ) as cred:
            await cred.get_token("https://cognitiveservices.azure.com/.default")

    asyncio.run(fetch())
    (assertion,) = assertions
    assert "=" in assertion
    claims = verify_client(assertion, client, audiences=[f"{url}/{TENANT}/oauth2/v2.0/token"])
    assert claims["iss"] == CLIENT_ID


# --------------------------------------------------------------------------------------------------------
# Rejections
# --------------------------------------------------------------------------------------------------------


def test_wrong_audience(client: ClientCert) -> None:
    token = make_token(x5t_header(client.cert), client_claims(aud="https://login.example/token"), client.key)
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(token, client)
    assert reason_of(excinfo) == "wrong_audience"


def test_audience_trailing_slash_and_list(client: ClientCert) -> None:
    token = make_token(x5t_header(client.cert), client_claims(aud=["other", TOKEN_URL + "/"]), client.key)
    verify_client(token, client)


def test_expired(client: ClientCert) -> None:
    past = time.time() - 3600
    token = make_token(x5t_header(client.cert), client_claims(now=past), client.key)
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(token, client)
    assert reason_of(excinfo) == "expired"


def test_not_yet_valid(client: ClientCert) -> None:
    future = time.time() + 3600
    token = make_token(x5t_header(client.cert), client_claims(now=future), client.key)
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(token, client)
    assert reason_of(excinfo) == "not_yet_valid"


def test_lifetime_too_long(client: ClientCert) -> None:
    claims = client_claims()
    claims["exp"] = claims["nbf"] + 2 * 86400
    token = make_token(x5t_header(client.cert), claims, client.key)
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(token, client)
    assert reason_of(excinfo) == "lifetime_too_long"


def test_wrong_key_claiming_registered_thumbprint(client: ClientCert, attacker: ClientCert) -> None:
    token = make_token(x5t_header(client.cert), client_claims(), attacker.key)
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(token, client)
    assert reason_of(excinfo) == "bad_signature"


def test_unregistered_certificate(client: ClientCert, attacker: ClientCert) -> None:
    token = make_token(x5t_header(attacker.cert), client_claims(), attacker.key)
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(token, client)
    assert reason_of(excinfo) == "unknown_key"


def test_no_thumbprint_at_all(client: ClientCert) -> None:
    token = make_token({"alg": "RS256", "typ": "JWT"}, client_claims(), client.key)
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(token, client)
    assert reason_of(excinfo) == "unknown_key"


def test_thumbprints_must_agree(client: ClientCert, attacker: ClientCert) -> None:
    header = {
        "alg": "RS256",
        "x5t": cert_thumbprints(client.cert)[0],
        "x5t#S256": cert_thumbprints(attacker.cert)[1],
    }
    token = make_token(header, client_claims(), client.key)
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(token, client, certificates=[client.cert, attacker.cert])
    assert reason_of(excinfo) == "unknown_key"


def test_tampered_claims(client: ClientCert) -> None:
    token = make_token(x5t_header(client.cert), client_claims(), client.key)
    header, _, signature = token.split(".")
    forged = _b64(json.dumps(client_claims(sub="someone-else")).encode())
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(f"{header}.{forged}.{signature}", client)
    assert reason_of(excinfo) == "bad_signature"


def test_tampered_padding_still_fails_for_signature(client: ClientCert) -> None:
    """The signature covers the segments as sent: re-encoding a padded token without padding breaks it."""
    token = make_token(x5t_header(client.cert, "PS256"), client_claims(), client.key, pad=True)
    header, claims, signature = token.split(".")
    if "=" not in header + claims:
        pytest.skip("segments happen to need no padding")
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(f"{header.rstrip('=')}.{claims.rstrip('=')}.{signature}", client)
    assert reason_of(excinfo) == "bad_signature"


@pytest.mark.parametrize(
    ("iss", "sub"), [("someone-else", CLIENT_ID), (CLIENT_ID, "someone-else"), (None, CLIENT_ID)]
)
def test_issuer_and_subject_must_be_client_id(client: ClientCert, iss: str | None, sub: str) -> None:
    claims = client_claims(iss=iss, sub=sub)
    token = make_token(x5t_header(client.cert), claims, client.key)
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(token, client)
    assert reason_of(excinfo) == "wrong_issuer"


def test_alg_none(client: ClientCert) -> None:
    token = make_token(x5t_header(client.cert, "none"), client_claims(), None)
    assert token.endswith(".")
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(token, client)
    assert reason_of(excinfo) == "unsupported_alg"


def test_hs256_with_public_key_as_secret(client: ClientCert) -> None:
    secret = client.cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = make_token(x5t_header(client.cert, "HS256"), client_claims(), secret)
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(token, client)
    assert reason_of(excinfo) == "unsupported_alg"


def test_hs256_with_a_public_key_that_is_not_pem(client: ClientCert) -> None:
    """The other classic confusion: the DER of the certificate as the HMAC secret."""
    secret = client.cert.public_bytes(serialization.Encoding.DER)
    token = make_token(x5t_header(client.cert, "HS256"), client_claims(), secret)
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(token, client)
    assert reason_of(excinfo) == "unsupported_alg"


@pytest.mark.parametrize("alg", ["HS384", "HS512", "EdDSA", "RS1", "", "NONE"])
def test_algorithms_outside_the_allow_list(client: ClientCert, alg: str) -> None:
    header = {"alg": alg, "x5t": cert_thumbprints(client.cert)[0]}
    signing_input = f"{_segment(header)}.{_segment(client_claims())}"
    signature = client.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(f"{signing_input}.{_b64(signature)}", client)
    assert reason_of(excinfo) == "unsupported_alg"


def test_missing_alg(client: ClientCert) -> None:
    token = make_token(x5t_header(client.cert), client_claims(), client.key)
    header = _segment({"x5t": cert_thumbprints(client.cert)[0]})
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(header + token[token.index("."):], client)
    assert reason_of(excinfo) == "unsupported_alg"


def test_ec_certificate_es256_and_an_rs256_header() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _self_signed(key, "ec-client")
    header = {"alg": "ES256", "x5t": cert_thumbprints(cert)[0]}
    options: dict[str, Any] = {"client_id": CLIENT_ID, "audiences": [TOKEN_URL], "certificates": [cert]}
    assert verify_certificate_assertion(make_token(header, client_claims(), key), **options)["sub"] == CLIENT_ID
    # An allowed algorithm that does not fit the registered key: never verified with it.
    token = make_token(header, client_claims(), key)
    forged = _segment(dict(header, alg="RS256")) + token[token.index("."):]
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_certificate_assertion(forged, **options)
    assert reason_of(excinfo) == "bad_signature"
    # ES384 names the wrong curve for a P-256 key.
    forged = _segment(dict(header, alg="ES384")) + token[token.index("."):]
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_certificate_assertion(forged, **options)
    assert reason_of(excinfo) == "bad_signature"


def test_small_rsa_key_is_weak() -> None:
    small = _make_client_cert("small", key_size=1024)
    token = make_token(x5t_header(small.cert), client_claims(), small.key)
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(token, small)
    assert reason_of(excinfo) == "weak_key"


def test_wrong_thumbprints(client: ClientCert) -> None:
    """Well-formed x5t / x5t#S256 values that name no registered certificate."""
    for header in (
        {"alg": "RS256", "x5t": _b64(b"\x00" * 20)},
        {"alg": "PS256", "x5t#S256": _b64(b"\x00" * 32)},
        {"alg": "RS256", "x5t": _b64(client.cert.fingerprint(hashes.SHA256())[:20])},
    ):
        token = make_token(header, client_claims(), client.key)
        with pytest.raises(InvalidAssertion) as excinfo:
            verify_client(token, client)
        assert reason_of(excinfo) == "unknown_key"


def test_x5t_matching_an_expired_certificate_left_out(client: ClientCert, attacker: ClientCert) -> None:
    """The caller passes only the certificates valid now; an x5t naming another one is unknown_key."""
    token = make_token(x5t_header(client.cert), client_claims(), client.key)
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(token, client, certificates=[attacker.cert])
    assert reason_of(excinfo) == "unknown_key"


def _segment(value: Any) -> str:
    return _b64(json.dumps(value).encode())


_RS256 = _segment({"alg": "RS256"})
_CLAIMS = _segment({"a": 1})


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        f".{_CLAIMS}.sig",
        f"{_RS256}..sig",
        f"{_RS256}.{_CLAIMS}.s!g",
        f"{_RS256}.{_CLAIMS}.a+b/",
        f"{_segment(['alg'])}.{_CLAIMS}.sig",
        f"{_RS256}.{_segment('claims')}.sig",
        f"{_RS256}.{_b64(b'not json')}.sig",
        _RS256 + "." + _b64(b'{"exp": NaN}') + ".sig",
        _RS256 + "." + _b64(b'{"a": 1, "a": 2}') + ".sig",
        f"{_segment({'alg': 'RS256', 'crit': ['b64'], 'b64': False})}.{_CLAIMS}.sig",
        f"{_RS256}.{_b64(bytes([0xFF, 0xFE]))}.sig",
        f"{_RS256}.{_b64(b'[' * 5000 + b']' * 5000)}.sig",
        f"{_RS256}.{_CLAIMS}.A",
        f"{_RS256}.{_CLAIMS}.AAAA===",
        "ey\u00e9.ey.sig",
    ],
)
def test_malformed(token: str) -> None:
    with pytest.raises(InvalidAssertion) as excinfo:
        parse_jwt(token)
    assert reason_of(excinfo) == "malformed"


def test_oversized(client: ClientCert) -> None:
    claims = client_claims(padding="x" * 20000)
    token = make_token(x5t_header(client.cert), claims, client.key)
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(token, client)
    assert reason_of(excinfo) == "malformed"
    assert parse_jwt(token, max_length=len(token)).claims["padding"] == "x" * 20000


def test_non_string_input() -> None:
    with pytest.raises(InvalidAssertion) as excinfo:
        parse_jwt(b"a.b.c")  # type: ignore[arg-type]
    assert reason_of(excinfo) == "malformed"


def test_errors_never_contain_the_token(client: ClientCert, attacker: ClientCert) -> None:
    bad = [
        make_token(x5t_header(client.cert), client_claims(), attacker.key),
        make_token(x5t_header(client.cert), client_claims(aud="x" * 50), client.key),
        make_token(x5t_header(client.cert), client_claims(now=0), client.key),
    ]
    for token in bad:
        with pytest.raises(InvalidAssertion) as excinfo:
            verify_client(token, client)
        text = str(excinfo.value) + repr(excinfo.value.args)
        for segment in token.split("."):
            assert segment[:40] not in text


def test_malformed_thumbprint(client: ClientCert) -> None:
    for value in ("not base64!", 12, "AAAA"):
        token = make_token({"alg": "RS256", "x5t": value}, client_claims(), client.key)
        with pytest.raises(InvalidAssertion) as excinfo:
            select_certificate(parse_jwt(token), [client.cert])
        assert reason_of(excinfo) == "malformed"


# --------------------------------------------------------------------------------------------------------
# Time and audience claims (PyJWT with DEFAULT_SKEW of leeway against the system clock)
# --------------------------------------------------------------------------------------------------------


def _now() -> int:
    return int(time.time())


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": None}, "malformed"),
        ({"exp": "2000000000"}, "malformed"),
        ({"exp": True}, "malformed"),
        ({"nbf": "x"}, "malformed"),
        ({"iat": [1]}, "malformed"),
        ({"exp": "past"}, "expired"),
        ({"nbf": "future"}, "not_yet_valid"),
        ({"iat": "future", "nbf": None}, "not_yet_valid"),
    ],
)
def test_time_claims_rejections(client: ClientCert, overrides: dict[str, Any], reason: str) -> None:
    moments = {"past": _now() - DEFAULT_SKEW - 60, "future": _now() + DEFAULT_SKEW + 60}
    claims = client_claims()
    for name, value in overrides.items():
        claims[name] = moments.get(value, value) if isinstance(value, str) else value
    claims = {name: value for name, value in claims.items() if value is not None}
    token = make_token(x5t_header(client.cert), claims, client.key)
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(token, client)
    assert reason_of(excinfo) == reason


def test_an_infinite_exp_is_malformed(client: ClientCert) -> None:
    """JSON's 1e400 parses as an infinite float: not a NumericDate (and never handed to int())."""
    text = json.dumps(client_claims(exp=None))[:-1] + ', "exp": 1e400}'
    signing_input = f"{_segment(x5t_header(client.cert))}.{_b64(text.encode())}"
    signature = client.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(f"{signing_input}.{_b64(signature)}", client)
    assert reason_of(excinfo) == "malformed"


def test_missing_exp_is_refused(client: ClientCert) -> None:
    token = make_token(x5t_header(client.cert), client_claims(exp=None), client.key)
    assert "exp" not in parse_jwt(token).claims
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(token, client)
    assert reason_of(excinfo) == "malformed" and "exp" in excinfo.value.message


def test_future_nbf_alone_is_refused(client: ClientCert) -> None:
    claims = client_claims(nbf=_now() + 3600, iat=_now())
    claims["exp"] = claims["nbf"] + 600
    token = make_token(x5t_header(client.cert), claims, client.key)
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(token, client)
    assert reason_of(excinfo) == "not_yet_valid" and "nbf" in excinfo.value.message


def test_time_claims_tolerate_skew(client: ClientCert) -> None:
    inside = DEFAULT_SKEW - 60
    for claims in (
        client_claims(now=_now() - 600 - inside),  # expired `inside` seconds ago
        client_claims(now=_now() + inside),  # nbf and iat `inside` seconds ahead
        client_claims(exp=_now() + 60.5, iat=time.time(), nbf=None),  # floats, as MSAL sends them
    ):
        verify_client(make_token(x5t_header(client.cert), claims, client.key), client)


def test_lifetime_of_a_day_is_the_bound(client: ClientCert) -> None:
    claims = client_claims(nbf=None)
    claims["exp"] = claims["iat"] + 86400
    verify_client(make_token(x5t_header(client.cert), claims, client.key), client)
    claims["exp"] += 1
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(make_token(x5t_header(client.cert), claims, client.key), client)
    assert reason_of(excinfo) == "lifetime_too_long"


def test_audience(client: ClientCert) -> None:
    def check(aud: Any, accepted: str) -> None:
        token = make_token(x5t_header(client.cert), client_claims(aud=aud), client.key)
        verify_client(token, client, audiences=[accepted])

    check("https://a/token/", "https://a/token")
    check("https://a/token", "https://a/token/")
    check(["x", "https://a/token"], "https://a/token")
    for aud in ([], 5, [1], ["x", 1], "https://a/token//", "https://a/TOKEN", "https://a/tok"):
        with pytest.raises(InvalidAssertion) as excinfo:
            check(aud, "https://a/token")
        assert reason_of(excinfo) == "wrong_audience"
    token = make_token(x5t_header(client.cert), client_claims(aud=None), client.key)
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(token, client)
    assert reason_of(excinfo) == "wrong_audience"


def test_b64url_decode_padding() -> None:
    assert b64url_decode("YQ") == b"a"
    assert b64url_decode("YQ==") == b"a"
    assert b64url_decode("") == b""
    assert b64url_decode("-_8") == b"\xfb\xff"
    for bad in ("YQ===", "Y", "+/8", "YQ ", "Y=Q"):
        with pytest.raises(InvalidAssertion):
            b64url_decode(bad)


# --------------------------------------------------------------------------------------------------------
# Federated assertions (keys as PyJWT PyJWKs, as identity/federation.py hands them over)
# --------------------------------------------------------------------------------------------------------

SUBJECT = "system:serviceaccount:default:workload"


@dataclass(frozen=True)
class Issuer:
    rsa_keys: dict[str, rsa.RSAPrivateKey]
    ec_key: ec.EllipticCurvePrivateKey
    jwks: list[dict[str, Any]]

    def keys(self, jwks: list[dict[str, Any]] | None = None) -> list[jwt.PyJWK]:
        return jwt.PyJWKSet.from_dict({"keys": self.jwks if jwks is None else jwks}).keys


def _public_jwk(key: Any, kid: str | None) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(
        jwt.algorithms.get_default_algorithms()[
            "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        ].to_jwk(key.public_key())
    )
    if kid is not None:
        jwk["kid"] = kid
    jwk["use"] = "sig"
    return jwk


@pytest.fixture(scope="module")
def issuer(client: ClientCert, attacker: ClientCert) -> Issuer:
    rsa_keys = {"key-1": client.key, "key-2": attacker.key}
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks = [_public_jwk(key, kid) for kid, key in rsa_keys.items()] + [_public_jwk(ec_key, "ec-1")]
    return Issuer(rsa_keys, ec_key, jwks)


def federated_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": SUBJECT,
        "aud": [EXCHANGE_AUDIENCE],
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def verify_federated(token: str, keys: list[jwt.PyJWK], **kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"issuer": ISSUER, "subject": SUBJECT, "audiences": [EXCHANGE_AUDIENCE]}
    options.update(kwargs)
    return verify_federated_assertion(token, keys=keys, **options)


def federated_reason(token: str, keys: list[jwt.PyJWK], **kwargs: Any) -> str:
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_federated(token, keys, **kwargs)
    return reason_of(excinfo)


@pytest.mark.parametrize("kid", ["key-1", "key-2"])
def test_federated_rs256_selects_key_by_kid(issuer: Issuer, kid: str) -> None:
    token = jwt.encode(federated_claims(), issuer.rsa_keys[kid], algorithm="RS256", headers={"kid": kid})
    assert verify_federated(token, issuer.keys())["sub"] == SUBJECT


def test_federated_es256(issuer: Issuer) -> None:
    token = jwt.encode(federated_claims(), issuer.ec_key, algorithm="ES256", headers={"kid": "ec-1"})
    verify_federated(token, issuer.keys())


def test_federated_kid_pointing_at_other_key(issuer: Issuer) -> None:
    token = jwt.encode(
        federated_claims(), issuer.rsa_keys["key-1"], algorithm="RS256", headers={"kid": "key-2"}
    )
    assert federated_reason(token, issuer.keys()) == "bad_signature"


def test_federated_unknown_kid(issuer: Issuer) -> None:
    token = jwt.encode(
        federated_claims(), issuer.rsa_keys["key-1"], algorithm="RS256", headers={"kid": "nope"}
    )
    assert federated_reason(token, issuer.keys()) == "unknown_key"


def test_federated_without_kid_needs_a_single_key(issuer: Issuer) -> None:
    token = jwt.encode(federated_claims(), issuer.rsa_keys["key-1"], algorithm="RS256")
    assert "kid" not in jwt.get_unverified_header(token)
    verify_federated(token, issuer.keys([issuer.jwks[0]]))
    assert federated_reason(token, issuer.keys(issuer.jwks[:2])) == "unknown_key"


def test_federated_wrong_issuer(issuer: Issuer) -> None:
    for wrong in ("https://evil.test/", ISSUER.rstrip("/"), None, 5):
        claims = federated_claims(iss=wrong)
        token = make_token({"alg": "RS256", "kid": "key-1"}, claims, issuer.rsa_keys["key-1"])
        assert federated_reason(token, issuer.keys()) == "wrong_issuer"


def test_federated_wrong_or_missing_subject(issuer: Issuer) -> None:
    for wrong in ("system:serviceaccount:default:other", None, 5):
        claims = federated_claims(sub=wrong)
        token = make_token({"alg": "RS256", "kid": "key-1"}, claims, issuer.rsa_keys["key-1"])
        assert federated_reason(token, issuer.keys()) == "wrong_issuer"


def test_federated_wrong_audience_expired_and_not_yet_valid(issuer: Issuer) -> None:
    key = issuer.rsa_keys["key-1"]
    now = int(time.time())
    cases = {
        "wrong_audience": federated_claims(aud="api://other"),
        "expired": federated_claims(exp=now - 3600),
        "not_yet_valid": federated_claims(nbf=now + 3600, exp=now + 7200),
        "malformed": federated_claims(exp=None),
    }
    for reason, claims in cases.items():
        token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "key-1"})
        assert federated_reason(token, issuer.keys()) == reason


def test_federated_alg_none_and_hmac_are_refused(issuer: Issuer) -> None:
    none = make_token({"alg": "none", "kid": "key-1"}, federated_claims(), None)
    assert federated_reason(none, issuer.keys()) == "unsupported_alg"
    public_pem = issuer.rsa_keys["key-1"].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs = make_token({"alg": "HS256", "kid": "key-1"}, federated_claims(), public_pem)
    assert federated_reason(hs, issuer.keys()) == "unsupported_alg"


def test_an_hmac_key_in_the_issuers_set_is_never_used(issuer: Issuer) -> None:
    """PyJWT parses an `oct` JWK as an HS256 key: a token naming it is refused by the allow-list."""
    secret = b"s" * 32
    oct_jwk = {"kty": "oct", "k": _b64(secret), "kid": "oct-1", "use": "sig"}
    token = make_token({"alg": "HS256", "kid": "oct-1"}, federated_claims(), secret)
    assert federated_reason(token, issuer.keys([*issuer.jwks, oct_jwk])) == "unsupported_alg"


def test_select_jwk_honours_use_and_alg(issuer: Issuer) -> None:
    token = jwt.encode(
        federated_claims(), issuer.rsa_keys["key-1"], algorithm="RS256", headers={"kid": "key-1"}
    )
    parsed = parse_jwt(token)
    with pytest.raises(InvalidAssertion):
        select_jwk(parsed, issuer.keys([dict(issuer.jwks[0], use="enc")]))
    with pytest.raises(InvalidAssertion):
        select_jwk(parsed, issuer.keys([dict(issuer.jwks[0], alg="PS256")]))
    assert select_jwk(parsed, issuer.keys([dict(issuer.jwks[0], alg="RS256")])).key_id == "key-1"


def test_federated_ps256_needs_a_jwk_that_says_so(issuer: Issuer) -> None:
    """PyJWT verifies a JWK with its own algorithm: RS256 for an RSA key without `alg`."""
    token = jwt.encode(federated_claims(), issuer.rsa_keys["key-1"], algorithm="PS256", headers={"kid": "key-1"})
    assert federated_reason(token, issuer.keys()) == "unknown_key"
    verify_federated(token, issuer.keys([dict(issuer.jwks[0], alg="PS256")]))


def test_federated_weak_rsa_key() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    token = make_token({"alg": "RS256", "kid": "small"}, federated_claims(), small)
    jwks = [_public_jwk(small, "small")]
    assert federated_reason(token, jwt.PyJWKSet.from_dict({"keys": jwks}).keys) == "weak_key"


def test_the_configured_skew_is_the_leeway(client: ClientCert, issuer: Issuer) -> None:
    """CIELO_CLOCK_SKEW_S reaches PyJWT's leeway for both kinds of assertion."""
    expired = client_claims(now=_now() - 700)  # exp 100 s ago
    token = make_token(x5t_header(client.cert), expired, client.key)
    verify_client(token, client)
    with pytest.raises(InvalidAssertion) as excinfo:
        verify_client(token, client, skew=30)
    assert reason_of(excinfo) == "expired"
    future = federated_claims(nbf=_now() + 100)
    federated = jwt.encode(future, issuer.rsa_keys["key-1"], algorithm="RS256", headers={"kid": "key-1"})
    verify_federated(federated, issuer.keys())
    assert federated_reason(federated, issuer.keys(), skew=30) == "not_yet_valid"


# --------------------------------------------------------------------------------------------------------
# The issuer's keys (identity/federation.py: discovery, then PyJWKClient's cache)
# --------------------------------------------------------------------------------------------------------


def _fetcher_answering(monkeypatch: pytest.MonkeyPatch, answers: dict[str, Any]) -> list[str]:
    import httpx

    from cielo.identity import federation

    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json=answers[request.url.path])

    def client(*, verify: Any, timeout: float) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(handle), timeout=timeout)

    monkeypatch.setattr(federation, "httpx", SimpleNamespace(Client=client, HTTPError=httpx.HTTPError))
    return seen


def test_a_plain_http_jwks_uri_is_refused(monkeypatch: pytest.MonkeyPatch, issuer: Issuer) -> None:
    from cielo.identity.federation import FederationError, JwksFetcher

    seen = _fetcher_answering(monkeypatch, {"/.well-known/openid-configuration": {"jwks_uri": "http://i.test/keys"}})
    with pytest.raises(FederationError, match="could not read the issuer's signing keys"):
        JwksFetcher(None).keys("https://i.test")
    assert seen == ["https://i.test/.well-known/openid-configuration"]


def test_unusable_keys_are_skipped_and_a_set_without_any_is_an_error(monkeypatch: pytest.MonkeyPatch,
                                                                     issuer: Issuer) -> None:
    from cielo.identity.federation import FederationError, JwksFetcher

    broken = [{"kty": "RSA", "n": "AQAB", "kid": "no-e"}, {"kty": "EC", "crv": "secp999", "kid": "odd"}]
    answers: dict[str, Any] = {"/.well-known/openid-configuration": {"jwks_uri": "https://i.test/keys"},
                               "/keys": {"keys": [*broken, issuer.jwks[0]]}}
    _fetcher_answering(monkeypatch, answers)
    assert [key.key_id for key in JwksFetcher(None).keys("https://i.test")] == ["key-1"]
    answers["/keys"] = {"keys": broken}
    with pytest.raises(FederationError, match="PyJWKSetError"):
        JwksFetcher(None).keys("https://i.test")
