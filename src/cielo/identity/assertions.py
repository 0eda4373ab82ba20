"""Parsing and verification of JWT client assertions (RFC 7523) as Entra ID accepts them.

Two kinds of assertion reach the token endpoint as ``client_assertion``:

* certificate credentials (RFC 7523 section 2.2, Entra "certificate credentials"): a JWT signed with
  the private key of a certificate registered on the application, found through the JWS ``x5t``
  (SHA-1) or ``x5t#S256`` (SHA-256) header (RFC 7515 sections 4.1.7/4.1.8).  ``iss`` and ``sub`` are
  the client id and ``aud`` the token endpoint URL;
* federated credentials (workload identity federation): a JWT from an external OIDC issuer (GitHub
  Actions, Kubernetes, another Cielo tenant), verified against that issuer's JWKS (RFC 7517).

The parser is deliberately tolerant of what real clients send and strict about everything else:

* MSAL (sync azure-identity ``CertificateCredential``) sends RS256 with a *padded* base64url ``x5t``,
  unpadded segments and float ``exp``/``iat``; with ``send_certificate_chain`` also ``x5c``.
  MSAL reuses one assertion (same ``jti``) for up to 9 minutes across token requests, and Entra accepts
  that, so ``jti`` is not checked for replay;
* azure.identity.aio ``CertificateCredential`` sends PS256 with a padded ``x5t#S256`` and base64url
  segments *with* ``=`` padding (the signature covers the padded text), integer ``nbf``/``exp`` and a
  30-minute lifetime.

Segments may therefore be padded or not; the signature is always checked over the segments exactly as
received (RFC 7515 section 5.2).  ``alg: none`` and the HMAC algorithms are rejected (RFC 8725
section 3.1/3.2): a client assertion is verified with a public key only.  Error messages never contain
the token.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from cielo.core import ids

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_SKEW",
    "MAX_CERTIFICATE_ASSERTION_LIFETIME",
    "InvalidAssertion",
    "ParsedJwt",
    "b64url_decode",
    "check_audience",
    "check_time_claims",
    "jwk_to_public_key",
    "parse_jwt",
    "select_certificate",
    "select_jwk",
    "verify_certificate_assertion",
    "verify_federated_assertion",
    "verify_signature",
]

DEFAULT_MAX_LENGTH: Final = 16384
DEFAULT_SKEW: Final = 300.0
# Entra documents no hard limit; azure-identity's async credential uses 30 minutes, MSAL 10 minutes.
MAX_CERTIFICATE_ASSERTION_LIFETIME: Final = 24 * 3600.0
MIN_RSA_KEY_SIZE: Final = 2048

_B64URL_RE: Final = re.compile(r"[A-Za-z0-9_-]*")
_MESSAGE_VALUE_LIMIT: Final = 120


class InvalidAssertion(Exception):
    """An assertion was rejected.

    ``reason`` is a short machine code: ``malformed``, ``bad_signature``, ``expired``, ``not_yet_valid``,
    ``wrong_audience``, ``unknown_key``, ``invalid_key``, ``weak_key``, ``unsupported_alg``,
    ``wrong_issuer`` or ``lifetime_too_long``.  ``message`` is human readable and never
    contains the token.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


@dataclass(frozen=True)
class ParsedJwt:
    """A JWS compact serialization split into its parts (RFC 7515 section 7.1); not yet verified."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


@dataclass(frozen=True)
class _Alg:
    family: str  # "RS", "PS" or "ES"
    hash_cls: type[hashes.SHA256] | type[hashes.SHA384] | type[hashes.SHA512]
    curve: type[ec.EllipticCurve] | None = None


# RFC 7518 section 3.1.  HS* and "none" are intentionally absent.
_ALGORITHMS: Final[dict[str, _Alg]] = {
    "RS256": _Alg("RS", hashes.SHA256),
    "RS384": _Alg("RS", hashes.SHA384),
    "RS512": _Alg("RS", hashes.SHA512),
    "PS256": _Alg("PS", hashes.SHA256),
    "PS384": _Alg("PS", hashes.SHA384),
    "PS512": _Alg("PS", hashes.SHA512),
    "ES256": _Alg("ES", hashes.SHA256, ec.SECP256R1),
    "ES384": _Alg("ES", hashes.SHA384, ec.SECP384R1),
    "ES512": _Alg("ES", hashes.SHA512, ec.SECP521R1),
}

# RFC 7518 section 6.2.1.1.
_JWK_CURVES: Final[dict[str, type[ec.EllipticCurve]]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}


# ---------------------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------------------


def b64url_decode(segment: str) -> bytes:
    """Decode base64url (RFC 4648 section 5) with or without ``=`` padding.

    RFC 7515 section 2 requires unpadded segments, but azure.identity.aio pads its segments and both
    MSAL and azure-identity pad ``x5t``/``x5t#S256``, so padding is accepted.  Characters outside the
    URL-safe alphabet (including ``+``, ``/`` and whitespace) are rejected with ``malformed``.
    """
    if not isinstance(segment, str):
        raise InvalidAssertion("malformed", "base64url value is not a string")
    body = segment.rstrip("=")
    if len(segment) - len(body) > 2 or not _B64URL_RE.fullmatch(body) or len(body) % 4 == 1:
        raise InvalidAssertion("malformed", "invalid base64url encoding")
    try:
        return ids.b64url_decode(body)
    except (binascii.Error, ValueError) as exc:
        raise InvalidAssertion("malformed", "invalid base64url encoding") from exc


def parse_jwt(token: str, max_length: int = DEFAULT_MAX_LENGTH) -> ParsedJwt:
    """Split a JWS compact serialization and decode its header and claims (RFC 7515 section 5.2).

    Raises ``InvalidAssertion('malformed')`` when the token is not a string, longer than ``max_length``,
    not ASCII, not exactly three segments, not base64url, not JSON, when header or claims are not JSON
    objects or contain duplicate member names (RFC 7515 section 4), or when the header carries ``crit``
    (RFC 7515 section 4.1.11: no extensions are understood here).
    """
    if not isinstance(token, str):
        raise InvalidAssertion("malformed", "assertion is not a string")
    if len(token) > max_length:
        raise InvalidAssertion("malformed", f"assertion is longer than {max_length} characters")
    if not token.isascii():
        raise InvalidAssertion("malformed", "assertion contains non-ASCII characters")
    parts = token.split(".")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise InvalidAssertion("malformed", "assertion is not a JWS compact serialization")
    header = _decode_json_object(parts[0], "header")
    if "crit" in header:
        raise InvalidAssertion("malformed", "unsupported critical header parameters")
    claims = _decode_json_object(parts[1], "claims")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    return ParsedJwt(
        header=header, claims=claims, signing_input=signing_input, signature=b64url_decode(parts[2])
    )


def _decode_json_object(segment: str, what: str) -> dict[str, Any]:
    raw = b64url_decode(segment)
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_object, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidAssertion("malformed", f"{what} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise InvalidAssertion("malformed", f"{what} is not a JSON object")
    return value


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member name")
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# ---------------------------------------------------------------------------------------------------------
# Signatures and keys
# ---------------------------------------------------------------------------------------------------------


def verify_signature(parsed: ParsedJwt, public_key: Any) -> None:
    """Verify the JWS signature with ``public_key`` (RFC 7515 section 5.2, RFC 7518 section 3).

    Supports RS256/384/512 (PKCS#1 v1.5), PS256/384/512 (PSS with MGF1 using the same hash; any salt
    length is accepted because the RFC's salt = digest length is what azure-identity uses while older
    PyJWT, and so older MSAL, used the maximum salt length) and ES256/384/512 (raw ``r || s``, converted
    to DER).  ``none`` and HS* are ``unsupported_alg``; a key that does not fit the algorithm or a wrong
    signature is ``bad_signature``; RSA keys under 2048 bits are ``weak_key``.
    """
    alg = _algorithm(parsed.header)
    try:
        if alg.family == "ES":
            _verify_ecdsa(parsed, public_key, alg)
        else:
            _verify_rsa(parsed, public_key, alg)
    except InvalidSignature as exc:
        raise InvalidAssertion("bad_signature", "signature verification failed") from exc


def _algorithm(header: Mapping[str, Any]) -> _Alg:
    name = header.get("alg")
    alg = _ALGORITHMS.get(name) if isinstance(name, str) else None
    if alg is None:
        shown = _shorten(name) if isinstance(name, str) else type(name).__name__
        raise InvalidAssertion("unsupported_alg", f"JWS algorithm {shown} is not accepted")
    return alg


def _verify_rsa(parsed: ParsedJwt, public_key: Any, alg: _Alg) -> None:
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise InvalidAssertion("bad_signature", "the signing key is not an RSA key")
    if public_key.key_size < MIN_RSA_KEY_SIZE:
        raise InvalidAssertion("weak_key", f"RSA keys must have at least {MIN_RSA_KEY_SIZE} bits")
    hash_alg = alg.hash_cls()
    pad: padding.AsymmetricPadding
    if alg.family == "PS":
        pad = padding.PSS(mgf=padding.MGF1(hash_alg), salt_length=padding.PSS.AUTO)
    else:
        pad = padding.PKCS1v15()
    public_key.verify(parsed.signature, parsed.signing_input, pad, hash_alg)


def _verify_ecdsa(parsed: ParsedJwt, public_key: Any, alg: _Alg) -> None:
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, alg.curve or ()
    ):
        raise InvalidAssertion("bad_signature", "the signing key is not on the algorithm's curve")
    size = (public_key.curve.key_size + 7) // 8
    if len(parsed.signature) != 2 * size:
        raise InvalidAssertion("bad_signature", "ECDSA signature has the wrong length")
    r = int.from_bytes(parsed.signature[:size], "big")
    s = int.from_bytes(parsed.signature[size:], "big")
    public_key.verify(encode_dss_signature(r, s), parsed.signing_input, ec.ECDSA(alg.hash_cls()))


def jwk_to_public_key(jwk: Mapping[str, Any]) -> Any:
    """Build a public key from an RSA (``n``, ``e``) or EC (``crv``, ``x``, ``y``) JWK (RFC 7518 section 6).

    Raises ``InvalidAssertion('invalid_key')`` for other key types or malformed members.
    """
    kty = jwk.get("kty")
    try:
        if kty == "RSA":
            return rsa.RSAPublicNumbers(_b64url_int(jwk, "e"), _b64url_int(jwk, "n")).public_key()
        if kty == "EC":
            crv = jwk.get("crv")
            curve = _JWK_CURVES.get(crv) if isinstance(crv, str) else None
            if curve is None:
                raise InvalidAssertion("invalid_key", "unsupported EC curve in JWK")
            numbers = ec.EllipticCurvePublicNumbers(_b64url_int(jwk, "x"), _b64url_int(jwk, "y"), curve())
            return numbers.public_key()
    except (ValueError, TypeError) as exc:
        raise InvalidAssertion("invalid_key", "JWK does not describe a valid public key") from exc
    raise InvalidAssertion("invalid_key", "unsupported JWK key type")


def _b64url_int(jwk: Mapping[str, Any], member: str) -> int:
    value = jwk.get(member)
    if not isinstance(value, str) or not value:
        raise InvalidAssertion("invalid_key", f"JWK member {member!r} is missing")
    try:
        return int.from_bytes(b64url_decode(value), "big")
    except InvalidAssertion as exc:
        raise InvalidAssertion("invalid_key", f"JWK member {member!r} is not base64url") from exc


def select_certificate(parsed: ParsedJwt, certificates: Sequence[x509.Certificate]) -> x509.Certificate:
    """Find the registered certificate the assertion names (RFC 7515 sections 4.1.6-4.1.8).

    Thumbprints are compared as decoded bytes, so padded (MSAL, azure-identity) and unpadded values
    both match.  When both ``x5t`` and ``x5t#S256`` are present both must match the same certificate.
    Without either, a certificate whose DER equals the first ``x5c`` entry is accepted.  ``x5c`` is
    otherwise not used: the key must be registered, as in Entra.  Raises ``unknown_key``.
    """
    wanted = _wanted_thumbprints(parsed.header)
    if wanted:
        for cert in certificates:
            if all(cert.fingerprint(hash_alg) == digest for hash_alg, digest in wanted):
                return cert
    else:
        leaf = _x5c_leaf(parsed.header)
        for cert in certificates:
            if leaf is not None and cert.public_bytes(serialization.Encoding.DER) == leaf:
                return cert
    raise InvalidAssertion("unknown_key", "no registered certificate matches the assertion's thumbprint")


def _wanted_thumbprints(header: Mapping[str, Any]) -> list[tuple[hashes.HashAlgorithm, bytes]]:
    wanted: list[tuple[hashes.HashAlgorithm, bytes]] = []
    # x5t is SHA-1 by definition (RFC 7515 section 4.1.7); it only names a registered certificate.
    sha1 = hashes.SHA1()  # noqa: S303
    for member, hash_alg, size in (("x5t#S256", hashes.SHA256(), 32), ("x5t", sha1, 20)):
        if member in header:
            digest = _thumbprint(header[member], member)
            if len(digest) != size:
                raise InvalidAssertion("malformed", f"{member} header has the wrong length")
            wanted.append((hash_alg, digest))
    return wanted


def _thumbprint(value: Any, member: str) -> bytes:
    try:
        return b64url_decode(value)
    except InvalidAssertion as exc:
        raise InvalidAssertion("malformed", f"{member} header is not base64url") from exc


def _x5c_leaf(header: Mapping[str, Any]) -> bytes | None:
    """DER of the first ``x5c`` entry (standard base64, RFC 7515 section 4.1.6).

    MSAL copies PEM bodies verbatim, so entries may contain line breaks; whitespace is removed.
    """
    chain = header.get("x5c")
    if not isinstance(chain, list) or not chain or not isinstance(chain[0], str):
        return None
    try:
        return base64.b64decode("".join(chain[0].split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def select_jwk(parsed: ParsedJwt, jwks: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """Pick the JWK for the assertion (RFC 7515 section 4.1.4, RFC 7517 section 4).

    With a ``kid`` header the key with that ``kid`` is used; without one, the key set must hold exactly
    one usable key.  Keys whose ``use`` is not ``sig`` or whose ``alg`` differs from the header's are
    ignored.  Raises ``unknown_key``.
    """
    alg = parsed.header.get("alg")
    usable = [jwk for jwk in jwks if jwk.get("use", "sig") == "sig" and jwk.get("alg", alg) == alg]
    kid = parsed.header.get("kid")
    if kid is not None:
        matches = [jwk for jwk in usable if jwk.get("kid") == kid]
    else:
        matches = usable if len(usable) == 1 else []
    if len(matches) != 1:
        raise InvalidAssertion("unknown_key", "no key in the issuer's JWKS matches the assertion")
    return matches[0]


# ---------------------------------------------------------------------------------------------------------
# Claims
# ---------------------------------------------------------------------------------------------------------


def check_time_claims(
    claims: Mapping[str, Any], now: float, skew: float = DEFAULT_SKEW, max_lifetime: float | None = None
) -> None:
    """Check ``exp`` (required), ``nbf`` and ``iat`` (optional) against ``now`` (RFC 7519 section 4.1.4-6).

    Integer and float NumericDates are accepted (MSAL sends floats).  ``skew`` seconds of clock
    difference are tolerated both ways.  ``expired`` when ``now > exp + skew``; ``not_yet_valid`` when
    ``nbf`` or ``iat`` lies more than ``skew`` in the future; ``lifetime_too_long`` when ``max_lifetime``
    is set and ``exp`` minus ``nbf`` (else ``iat``, else ``now``) exceeds it.
    """
    exp = _numeric_date(claims, "exp")
    if exp is None:
        raise InvalidAssertion("malformed", "assertion has no exp claim")
    nbf = _numeric_date(claims, "nbf")
    iat = _numeric_date(claims, "iat")
    if now > exp + skew:
        raise InvalidAssertion("expired", "assertion has expired")
    for name, value in (("nbf", nbf), ("iat", iat)):
        if value is not None and value > now + skew:
            raise InvalidAssertion("not_yet_valid", f"assertion {name} is in the future")
    if max_lifetime is not None:
        start = next((value for value in (nbf, iat) if value is not None), now)
        if exp - start > max_lifetime:
            raise InvalidAssertion(
                "lifetime_too_long", f"assertion lifetime exceeds {max_lifetime:g} seconds"
            )


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidAssertion("malformed", f"{name} claim is not a NumericDate")
    return float(value)


def check_audience(claims: Mapping[str, Any], accepted: Collection[str]) -> None:
    """Require an ``aud`` value (string or array, RFC 7519 section 4.1.3) among ``accepted``.

    Values are compared exactly, except that one trailing ``/`` on either side is ignored (clients
    differ on ``.../oauth2/v2.0/token`` vs ``.../token/``).  Raises ``wrong_audience``.
    """
    aud = claims.get("aud")
    values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    normalized = {_strip_slash(value) for value in accepted}
    if not any(isinstance(value, str) and _strip_slash(value) in normalized for value in values):
        raise InvalidAssertion("wrong_audience", f"assertion audience {_shorten(aud)} is not accepted")


def _strip_slash(value: str) -> str:
    return value[:-1] if value.endswith("/") else value


def _check_issuer_subject(claims: Mapping[str, Any], client_id: str) -> None:
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise InvalidAssertion("wrong_issuer", "assertion iss and sub must both be the client id")


# ---------------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------------


def verify_certificate_assertion(
    assertion: str,
    *,
    client_id: str,
    audiences: Collection[str],
    certificates: Sequence[x509.Certificate],
    now: float,
) -> dict[str, Any]:
    """Verify a certificate client assertion (RFC 7523 section 3; Entra "certificate credentials").

    The certificate is chosen by ``x5t``/``x5t#S256`` among ``certificates`` (the application's
    registered keys), the signature verified with its public key, ``iss`` and ``sub`` must equal
    ``client_id``, ``aud`` must be one of ``audiences`` (the token endpoint URLs), the time claims must
    hold with a lifetime of at most 24 hours.  ``jti`` is not checked for replay: MSAL reuses one
    assertion for minutes and Entra accepts that.  Returns the claims.
    """
    parsed = parse_jwt(assertion)
    certificate = select_certificate(parsed, certificates)
    verify_signature(parsed, certificate.public_key())
    claims = parsed.claims
    _check_issuer_subject(claims, client_id)
    check_audience(claims, audiences)
    check_time_claims(claims, now, max_lifetime=MAX_CERTIFICATE_ASSERTION_LIFETIME)
    return claims


def verify_federated_assertion(
    assertion: str,
    *,
    jwks: Sequence[Mapping[str, Any]],
    issuer: str,
    audiences: Collection[str],
    now: float,
) -> dict[str, Any]:
    """Verify an external identity provider's token for workload identity federation.

    The key is chosen from the issuer's ``jwks`` by ``kid`` (see :func:`select_jwk`), the signature is
    verified, ``iss`` must equal ``issuer`` exactly (Entra compares the federated credential's issuer
    verbatim), ``aud`` must be one of ``audiences`` (usually ``api://AzureADTokenExchange``) and the
    time claims must hold.  Returns the claims; the caller matches ``sub`` against the federated
    credential.
    """
    parsed = parse_jwt(assertion)
    verify_signature(parsed, jwk_to_public_key(select_jwk(parsed, jwks)))
    claims = parsed.claims
    if claims.get("iss") != issuer:
        raise InvalidAssertion(
            "wrong_issuer", f"assertion issuer {_shorten(claims.get('iss'))} is not accepted"
        )
    check_audience(claims, audiences)
    check_time_claims(claims, now)
    return claims


def _shorten(value: Any) -> str:
    """A bounded ``repr`` of a claim value for error messages."""
    text = repr(value)
    return text if len(text) <= _MESSAGE_VALUE_LIMIT else text[: _MESSAGE_VALUE_LIMIT - 3] + "..."
