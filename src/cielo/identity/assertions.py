"""JWT client assertions (RFC 7523) as Entra ID accepts them, verified with PyJWT.

Two kinds of assertion reach the token endpoint as ``client_assertion``:

* certificate credentials (RFC 7523 section 2.2, Entra "certificate credentials"): a JWT signed with
  the private key of a certificate registered on the application, found through the JWS ``x5t``
  (SHA-1) or ``x5t#S256`` (SHA-256) header (RFC 7515 sections 4.1.7/4.1.8).  ``iss`` and ``sub`` are
  the client id and ``aud`` the token endpoint URL;
* federated credentials (workload identity federation): a JWT from an external OIDC issuer (GitHub
  Actions, Kubernetes, another Cielo tenant), verified against that issuer's JWKS (RFC 7517), whose
  keys come to this module as PyJWT ``PyJWK`` objects (identity/federation.py fetches them).

This module parses the compact serialization strictly (:func:`parse_jwt`: bounded length, ASCII,
base64url with or without padding, JSON objects without duplicate members, no ``crit``), picks the key
(the registered certificate by thumbprint, or the issuer's JWK by ``kid``), and hands verification to
``jwt.decode``: the signature with an explicit allow-list of algorithms that fit the key (RS/PS/ES with
SHA-256/384/512; ``none`` and the HMAC algorithms never, RFC 8725 sections 3.1/3.2), ``exp`` required,
``exp``/``nbf``/``iat`` with the configured clock skew as leeway against the system clock, ``aud`` among the
token endpoints, ``iss``/``sub`` equal to the client id (certificates) or to the federated credential's
issuer and subject.  Cielo's own access tokens take the measured hot path in identity/jwt.py instead.

What real clients send, all accepted:

* MSAL (sync azure-identity ``CertificateCredential``) sends RS256 with a *padded* base64url ``x5t``,
  unpadded segments and float ``exp``/``iat``; with ``send_certificate_chain`` also ``x5c``.
  MSAL reuses one assertion (same ``jti``) for up to 9 minutes across token requests, and Entra accepts
  that, so ``jti`` is not checked for replay;
* azure.identity.aio ``CertificateCredential`` sends PS256 with a padded ``x5t#S256`` and base64url
  segments *with* ``=`` padding (the signature covers the padded text, as PyJWT checks it), integer
  ``nbf``/``exp`` and a 30-minute lifetime.

PS256/384/512 signatures must use a salt as long as the hash (RFC 7518 section 3.5), as PyJWT,
azure-identity and MSAL (through PyJWT) produce them.  Error messages never contain the token.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.exceptions import InvalidSubjectError

from cielo.core import ids

__all__ = [
    "ALGORITHMS",
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_SKEW",
    "MAX_CERTIFICATE_ASSERTION_LIFETIME",
    "InvalidAssertion",
    "ParsedJwt",
    "b64url_decode",
    "parse_jwt",
    "select_certificate",
    "select_jwk",
    "verify_certificate_assertion",
    "verify_federated_assertion",
]

DEFAULT_MAX_LENGTH: Final = 16384
# Clock difference tolerated both ways on exp, nbf and iat (PyJWT's leeway) unless the caller passes the
# configured one (CIELO_CLOCK_SKEW_S, the same default as for Cielo's own tokens).
DEFAULT_SKEW: Final = 300.0
# Entra documents no hard limit; azure-identity's async credential uses 30 minutes, MSAL 10 minutes.
MAX_CERTIFICATE_ASSERTION_LIFETIME: Final = 24 * 3600.0
MIN_RSA_KEY_SIZE: Final = 2048

_RSA_ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGORITHMS: Final = ("ES256", "ES384", "ES512")
# RFC 7518 section 3.1.  HS* and "none" are intentionally absent.
ALGORITHMS: Final = _RSA_ALGORITHMS + _EC_ALGORITHMS
_REQUIRED: Final = ["exp", "iss", "sub", "aud"]

_B64URL_RE: Final = re.compile(r"[A-Za-z0-9_-]*")
_MESSAGE_VALUE_LIMIT: Final = 120


class InvalidAssertion(Exception):
    """An assertion was rejected.

    ``reason`` is a short machine code: ``malformed``, ``bad_signature``, ``expired``, ``not_yet_valid``,
    ``wrong_audience``, ``unknown_key``, ``weak_key``, ``unsupported_alg``, ``wrong_issuer`` or
    ``lifetime_too_long``.  ``message`` is human readable and never contains the token.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


@dataclass(frozen=True)
class ParsedJwt:
    """A JWS compact serialization's header and claims (RFC 7515 section 7.1); not verified."""

    header: dict[str, Any]
    claims: dict[str, Any]


# ---------------------------------------------------------------------------------------------------------
# Parsing (before any key is chosen; verification is PyJWT's)
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
    not ASCII, not exactly three segments, not base64url (the signature segment too), not JSON, when
    header or claims are not JSON objects or contain duplicate member names (RFC 7515 section 4), or
    when the header carries ``crit`` (RFC 7515 section 4.1.11: no extensions are understood here).
    Nothing is verified: the claims only say which key to verify with.
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
    b64url_decode(parts[2])
    return ParsedJwt(header=header, claims=claims)


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
# Choosing the key
# ---------------------------------------------------------------------------------------------------------


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


def select_jwk(parsed: ParsedJwt, keys: Sequence[jwt.PyJWK]) -> jwt.PyJWK:
    """Pick the issuer's key for the assertion (RFC 7515 section 4.1.4, RFC 7517 section 4).

    With a ``kid`` header the key with that ``kid`` is used; without one, the key set must hold exactly
    one usable key.  Keys whose ``use`` is not ``sig``, or whose algorithm (the JWK's ``alg``, else
    PyJWT's default for its type: RS256 for RSA, ES256/384/512 by curve) is not the header's, are
    ignored: PyJWT verifies a JWK with its own algorithm only.  Raises ``unknown_key``.
    """
    alg = parsed.header.get("alg")
    usable = [key for key in keys if key.public_key_use in (None, "sig") and key.algorithm_name == alg]
    kid = parsed.header.get("kid")
    matches = [key for key in usable if kid is None or key.key_id == kid]
    if len(matches) != 1:
        raise InvalidAssertion("unknown_key", "no key in the issuer's JWKS matches the assertion")
    return matches[0]


# ---------------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------------


def verify_certificate_assertion(
    assertion: str,
    *,
    client_id: str,
    audiences: Collection[str],
    certificates: Sequence[x509.Certificate],
    skew: float = DEFAULT_SKEW,
) -> dict[str, Any]:
    """Verify a certificate client assertion (RFC 7523 section 3; Entra "certificate credentials").

    The certificate is chosen by ``x5t``/``x5t#S256`` among ``certificates`` (the application's
    registered keys); PyJWT verifies the signature with its public key, ``iss`` and ``sub`` equal to
    ``client_id``, ``aud`` one of ``audiences`` (the token endpoint URLs) and the time claims (``skew``
    seconds of leeway); the
    lifetime may be at most 24 hours.  ``jti`` is not checked for replay: MSAL reuses one assertion for
    minutes and Entra accepts that.  Returns the claims.
    """
    parsed = parse_jwt(assertion)
    certificate = select_certificate(parsed, certificates)
    public_key = certificate.public_key()
    claims = _decode(assertion, parsed, public_key, _algorithms_for(public_key), audiences=audiences,
                     issuer=client_id, subject=client_id, skew=skew)
    _check_lifetime(claims, MAX_CERTIFICATE_ASSERTION_LIFETIME)
    return claims


def verify_federated_assertion(
    assertion: str,
    *,
    keys: Sequence[jwt.PyJWK],
    issuer: str,
    subject: str,
    audiences: Collection[str],
    skew: float = DEFAULT_SKEW,
) -> dict[str, Any]:
    """Verify an external identity provider's token for workload identity federation.

    An algorithm outside :data:`ALGORITHMS` is refused before any key is looked at.  The key is chosen
    from the issuer's ``keys`` by ``kid`` (see :func:`select_jwk`); PyJWT verifies
    the signature with it, ``iss`` equal to ``issuer`` exactly (Entra compares the federated
    credential's issuer verbatim), ``sub`` equal to the credential's ``subject``, ``aud`` one of
    ``audiences`` (usually ``api://AzureADTokenExchange``) and the time claims (``skew`` seconds of
    leeway).  Returns the claims.
    """
    parsed = parse_jwt(assertion)
    _check_algorithm(parsed)
    key = select_jwk(parsed, keys)
    return _decode(assertion, parsed, key, ALGORITHMS, audiences=audiences, issuer=issuer, subject=subject,
                   skew=skew)


def _check_algorithm(parsed: ParsedJwt) -> str:
    """The header's ``alg`` if it is in :data:`ALGORITHMS` (PyJWT checks it again), else ``unsupported_alg``."""
    alg = parsed.header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        shown = _shorten(alg) if isinstance(alg, str) else type(alg).__name__
        raise InvalidAssertion("unsupported_alg", f"JWS algorithm {shown} is not accepted")
    return alg


def _algorithms_for(public_key: Any) -> Sequence[str]:
    """The allowed algorithms that fit the key: never one the token's header picks on its own."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return _RSA_ALGORITHMS
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return _EC_ALGORITHMS
    return ()


def _decode(
    assertion: str,
    parsed: ParsedJwt,
    key: Any,
    algorithms: Sequence[str],
    *,
    audiences: Collection[str],
    issuer: str,
    subject: str,
    skew: float,
) -> dict[str, Any]:
    """``jwt.decode`` with everything explicit; PyJWT's errors become :class:`InvalidAssertion`."""
    alg = _check_algorithm(parsed)
    if not algorithms:
        raise InvalidAssertion("bad_signature", "the signing key's type is not accepted")
    public_key = key.key if isinstance(key, jwt.PyJWK) else key
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size < MIN_RSA_KEY_SIZE:
        raise InvalidAssertion("weak_key", f"RSA keys must have at least {MIN_RSA_KEY_SIZE} bits")
    _check_numeric_dates(parsed.claims)
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            key,
            algorithms=list(algorithms),
            audience=_audience_variants(audiences),
            issuer=issuer,
            subject=subject,
            leeway=skew,
            options={"require": _REQUIRED, "verify_jti": False},
        )
    except jwt.InvalidAlgorithmError as exc:  # allowed, but not for this key
        raise InvalidAssertion("bad_signature", f"JWS algorithm {alg} does not fit the signing key") from exc
    except (jwt.InvalidSignatureError, jwt.InvalidKeyError) as exc:
        raise InvalidAssertion("bad_signature", "signature verification failed") from exc
    except jwt.ExpiredSignatureError as exc:
        raise InvalidAssertion("expired", "assertion has expired") from exc
    except jwt.ImmatureSignatureError as exc:
        which = "iat" if "(iat)" in str(exc) else "nbf"
        raise InvalidAssertion("not_yet_valid", f"assertion {which} is in the future") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise _missing(exc.claim, parsed.claims) from exc
    except jwt.InvalidAudienceError as exc:
        raise _wrong_audience(parsed.claims) from exc
    except (jwt.InvalidIssuerError, InvalidSubjectError) as exc:
        raise _wrong_issuer(parsed.claims, issuer, subject) from exc
    except jwt.PyJWTError as exc:
        raise InvalidAssertion("malformed", "assertion could not be decoded") from exc
    return claims


def _missing(claim: str, claims: Mapping[str, Any]) -> InvalidAssertion:
    if claim == "aud":
        return _wrong_audience(claims)
    if claim in ("iss", "sub"):
        return InvalidAssertion("wrong_issuer", f"assertion has no {claim} claim")
    return InvalidAssertion("malformed", f"assertion has no {claim} claim")


def _wrong_audience(claims: Mapping[str, Any]) -> InvalidAssertion:
    return InvalidAssertion("wrong_audience", f"assertion audience {_shorten(claims.get('aud'))} is not accepted")


def _wrong_issuer(claims: Mapping[str, Any], issuer: str, subject: str) -> InvalidAssertion:
    if issuer == subject:  # a certificate assertion: both are the client id
        return InvalidAssertion("wrong_issuer", "assertion iss and sub must both be the client id")
    if claims.get("iss") != issuer:
        return InvalidAssertion("wrong_issuer", f"assertion issuer {_shorten(claims.get('iss'))} is not accepted")
    return InvalidAssertion("wrong_issuer", f"assertion subject {_shorten(claims.get('sub'))} is not accepted")


def _audience_variants(accepted: Collection[str]) -> list[str]:
    """The accepted ``aud`` values with and without one trailing ``/`` (clients differ on
    ``.../oauth2/v2.0/token`` vs ``.../token/``); PyJWT then compares exactly."""
    variants: set[str] = set()
    for value in accepted:
        variants.add(value)
        variants.add(value[:-1] if value.endswith("/") else value + "/")
    return sorted(variants)


def _check_numeric_dates(claims: Mapping[str, Any]) -> None:
    """``exp``, ``nbf`` and ``iat`` are JSON numbers when present (RFC 7519 section 2, NumericDate):
    PyJWT would take ``"1000"`` or ``true`` through ``int()``.  Floats are fine (MSAL sends them)."""
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidAssertion("malformed", f"{name} claim is not a NumericDate")


def _check_lifetime(claims: Mapping[str, Any], max_lifetime: float) -> None:
    """``exp`` minus ``nbf`` (else ``iat``, else now) at most ``max_lifetime`` (Cielo's bound; PyJWT has none)."""
    start = next((float(claims[name]) for name in ("nbf", "iat") if claims.get(name) is not None), time.time())
    if float(claims["exp"]) - start > max_lifetime:
        raise InvalidAssertion("lifetime_too_long", f"assertion lifetime exceeds {max_lifetime:g} seconds")


def _shorten(value: Any) -> str:
    """A bounded ``repr`` of a claim value for error messages."""
    text = repr(value)
    return text if len(text) <= _MESSAGE_VALUE_LIMIT else text[: _MESSAGE_VALUE_LIMIT - 3] + "..."
