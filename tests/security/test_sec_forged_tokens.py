"""Forged and misused bearer tokens, presented to all three surfaces that take them: the resource manager
(`GET /subscriptions`), the Azure OpenAI data plane (chat completions on the bootstrap deployment) and the
Graph-compatible directory (`GET /v1.0/me`). Every kind is refused with 401 and the surface's own answer:
ARM's and Graph's `{"error": {"code"}}` (AuthenticationFailed, InvalidAuthenticationToken,
ExpiredAuthenticationToken) and Azure OpenAI's gateway `{"statusCode": 401, "message"}`.

The kinds come in four families: an attacker without Cielo's keys (alg none, key confusion, unknown keys,
header-borne keys, tampering, another Cielo's tokens); claim checks proved one by one with tokens correctly
signed by the server's own key but wrong in one claim (expired, not yet valid, audience, issuer, tenant);
genuine tokens used where they do not belong (another audience, an id_token, a refresh token); and malformed
Authorization headers. Genuine tokens come from the real server; forged ones are minted here with PyJWT and
`cryptography`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from identity_support import graph, new_app, token_post
from security_support import (
    ACCOUNT,
    ARM,
    ARM_API,
    BEARER_DENIED,
    COGNITIVE,
    DEPLOYMENT,
    GRAPH,
    NO_CREDENTIAL,
    OPENAI_API,
    SigningKey,
    b64url,
    b64url_json,
    claims_of,
    client_of,
    header_of,
    new_rsa_key,
    server_signing_key,
)

from support.server import ADMIN_PASSWORD, ADMIN_USER, CLI_CLIENT_ID, CieloServer

pytestmark = pytest.mark.e2e

SURFACES = ("arm", "openai", "graph")
SKEW_S = 300  # CIELO_CLOCK_SKEW_S's default: a token this far past `exp` is still taken


@dataclass
class Genuine:
    """What an attacker can get honestly from the server, and (for the claim checks) its signing key."""

    server: CieloServer
    key: SigningKey
    tokens: dict[str, str]  # per surface, a genuine token that authenticates there
    elsewhere: dict[str, str]  # per surface, a genuine token of another Cielo audience
    id_token: str
    refresh_token: str
    client_secret: str
    app_api_v1: str  # app-only tokens for an app registration's own API (aud api://…, and v2 aud = appId)
    app_api_v2: str
    cache: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return self.server.base_url

    @property
    def tenant(self) -> str:
        return self.server.tenant_id

    def claims(self, surface: str) -> dict[str, Any]:
        return claims_of(self.tokens[surface])

    def parts(self, surface: str) -> list[str]:
        return self.tokens[surface].split(".")

    def signed(self, surface: str, **changes: Any) -> str:
        """The surface's genuine claims with `changes` (None drops a claim), signed with the server's key."""
        claims = {**self.claims(surface), **changes}
        return self.key.sign({k: v for k, v in claims.items() if v is not None})


@pytest.fixture(scope="module")
def genuine(cielo_server: CieloServer) -> Genuine:
    server = cielo_server
    app = new_app(server, "sec-forged")
    custom_v1 = new_app(server, "sec-api-v1", secret=False)
    graph(server, "PATCH", f"/applications/{custom_v1['objectId']}",
          {"identifierUris": [f"api://{custom_v1['appId']}"]})
    custom_v2 = graph(server, "POST", "/applications", {"displayName": f"sec-api-v2-{uuid.uuid4().hex[:6]}",
                                                        "api": {"requestedAccessTokenVersion": 2}})
    graph(server, "POST", "/servicePrincipals", {"appId": custom_v2["appId"]})

    def app_token(scope: str) -> str:
        answer = token_post(server, {"client_id": app["appId"], "client_secret": app["secret"],
                                     "grant_type": "client_credentials", "scope": scope})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    signed_in = token_post(server, {"client_id": CLI_CLIENT_ID, "grant_type": "password", "username": ADMIN_USER,
                                    "password": ADMIN_PASSWORD, "scope": f"{GRAPH}/.default openid offline_access"})
    assert signed_in.status_code == 200, signed_in.text
    user = signed_in.json()
    arm, cognitive = app_token(f"{ARM}.default"), app_token(f"{COGNITIVE}/.default")
    return Genuine(
        server=server, key=server_signing_key(server),
        tokens={"arm": arm, "openai": cognitive, "graph": user["access_token"]},
        elsewhere={"arm": user["access_token"], "openai": arm, "graph": cognitive},
        id_token=user["id_token"], refresh_token=user["refresh_token"], client_secret=app["secret"],
        app_api_v1=app_token(f"api://{custom_v1['appId']}/.default"),
        app_api_v2=app_token(f"{custom_v2['appId']}/.default"),
    )


# ----------------------------------------------------------------------------- presenting a token
Authorization = str | list[str] | None  # one header value, several Authorization headers, or none


def present(g: Genuine, surface: str, authorization: Authorization) -> httpx.Response:
    values = [] if authorization is None else [authorization] if isinstance(authorization, str) else authorization
    headers = [("Authorization", v) for v in values]
    client = client_of(g.server)
    if surface == "arm":
        return client.get("/subscriptions", params={"api-version": ARM_API}, headers=headers)
    if surface == "graph":
        return client.get("/v1.0/me", headers=headers)
    return client.post(f"/accounts/{ACCOUNT}/openai/deployments/{DEPLOYMENT}/chat/completions",
                       params={"api-version": OPENAI_API}, headers=headers,
                       json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1})


def assert_refused(response: httpx.Response, surface: str, code: str, why: str = "") -> None:
    """401, in the surface's words. Azure OpenAI has two: no credential at all, and a refused bearer."""
    assert response.status_code == 401, f"{surface}: {response.status_code} {response.text}"
    if surface == "openai":
        message = NO_CREDENTIAL if code == "AuthenticationFailed" else BEARER_DENIED
        assert response.json() == {"statusCode": 401, "message": message}
        assert response.headers["x-ms-error-code"] == "401"
        return
    error = response.json()["error"]
    assert error["code"] == code, response.text
    assert why in error["message"], response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer "), response.headers


# ----------------------------------------------------------------------------- the forgeries
def _unsigned(g: Genuine, surface: str, header: dict[str, Any], signature: str = "") -> str:
    return f"{b64url_json(header)}.{g.parts(surface)[1]}.{signature}"


def _hs256(g: Genuine, surface: str, secret: bytes) -> str:
    """Key confusion: HMAC-SHA256 keyed with public material, in the hope the verifier does the same."""
    signing_input = f"{b64url_json({'typ': 'JWT', 'alg': 'HS256', 'kid': g.key.kid})}.{g.parts(surface)[1]}"
    return f"{signing_input}.{b64url(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


def _stranger(g: Genuine, surface: str, **header: Any) -> str:
    """The genuine claims signed by a key the attacker made (named as `header` says)."""
    key = new_rsa_key()
    fields = {"kid": b64url(uuid.uuid4().bytes), **header}
    return jwt.encode(g.claims(surface), key, algorithm="RS256",
                      headers={k: v for k, v in fields.items() if v is not None})


def _jwk_injected(g: Genuine, surface: str) -> str:
    key = new_rsa_key()
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return jwt.encode(g.claims(surface), key, algorithm="RS256", headers={"kid": g.key.kid, "jwk": public})


def _x5c_injected(g: Genuine, surface: str) -> str:
    key = new_rsa_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Cielo token signing")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    return jwt.encode(g.claims(surface), key, algorithm="RS256",
                      headers={"kid": g.key.kid, "x5t": g.key.kid, "x5c": [base64.b64encode(der).decode()]})


def _tampered(g: Genuine, surface: str) -> str:
    """The genuine signature over claims the attacker improved: another object id and the admin role."""
    header, _, signature = g.parts(surface)
    claims = {**g.claims(surface), "oid": str(uuid.uuid4()), "wids": ["62e90394-69f5-4237-9190-012177145e10"]}
    return f"{header}.{b64url_json(claims)}.{signature}"


def _spliced(g: Genuine, surface: str) -> str:
    """Header and claims of this surface's token with the (valid) signature of another genuine token."""
    header, payload, _ = g.parts(surface)
    return f"{header}.{payload}.{g.elsewhere[surface].split('.')[2]}"


def _second_cielo(g: Genuine, surface: str, tmp: Path) -> str:
    """What another Cielo at the same address (a reinstall, a neighbour's copy) would mint for the same tenant id
    and object id: everything equal but the keys."""
    from cielo.identity.keys import KeyRing
    from cielo.identity.tokens import Subject, TokenMinter

    ring = KeyRing(tmp / f"keys-{uuid.uuid4().hex[:6]}", 5400)
    ring.ensure_key(time.time())
    claims = g.claims(surface)
    subject = Subject(claims["idtyp"], claims["oid"], claims["tid"], upn=claims.get("upn"), is_admin=True)
    minted = TokenMinter(ring, g.base, (3600, 5400)).access_token(
        subject, audience=claims["aud"], version=1, client_app_id=claims["appid"], client_auth=claims["appidacr"],
        scopes=str(claims.get("scp", "")).split(), now=time.time())
    return minted.token


def _long(g: Genuine, surface: str) -> str:
    header, payload, signature = g.parts(surface)
    return f"{header}.{payload}{'A' * 20_000}.{signature}"


Builder = Callable[[Genuine, str], Authorization]


@dataclass(frozen=True)
class Kind:
    name: str
    why: str  # what ARM's and Graph's message says: the check that refused it
    build: Builder
    code: str = "InvalidAuthenticationToken"  # ARM's and Graph's; the data plane's wording follows from it


# Which check refused a token, as the messages of ARM and Graph say it (the data plane says one thing for all).
ALG = "signing algorithm is not accepted"
SIGNATURE = "signature is invalid"
UNKNOWN_KEY = "not signed by a known key"
MALFORMED = "The token is malformed"
TOO_LONG = "The token is too long"
EXPIRED = "expiry UTC time is earlier than current UTC time"
NOT_YET = "The token is not yet valid"
AUDIENCE = "wrong audience or resource"
ISSUER = "wrong issuer"
TENANT = "tenant does not exist"
CLAIMS = "lacks required claims"
NO_BEARER = "missing or not a Bearer token"


def bearer(make: Callable[[Genuine, str], str]) -> Builder:
    return lambda g, surface: f"Bearer {make(g, surface)}"


def now() -> int:
    return int(time.time())


KINDS = [
    # --- an attacker without Cielo's keys
    Kind("alg-none", ALG, bearer(lambda g, s: _unsigned(g, s, {"typ": "JWT", "alg": "none"}))),
    Kind("alg-none-keeping-the-signature", ALG,
         bearer(lambda g, s: _unsigned(g, s, {"typ": "JWT", "alg": "None", "kid": g.key.kid}, g.parts(s)[2]))),
    Kind("hs256-keyed-with-the-public-key-pem", ALG, bearer(lambda g, s: _hs256(g, s, g.key.public_pem))),
    Kind("hs256-keyed-with-the-jwks-n", ALG, bearer(lambda g, s: _hs256(
        g, s, g.key.private_key.public_key().public_numbers().n.to_bytes(256, "big")))),
    Kind("rs256-unknown-key-known-kid", SIGNATURE,
         bearer(lambda g, s: _stranger(g, s, kid=g.key.kid, x5t=g.key.kid))),
    Kind("rs256-unknown-key-unknown-kid", UNKNOWN_KEY, bearer(lambda g, s: _stranger(g, s))),
    Kind("rs256-unknown-key-no-kid", UNKNOWN_KEY, bearer(lambda g, s: _stranger(g, s, kid=None))),
    Kind("kid-naming-a-file", UNKNOWN_KEY,
         bearer(lambda g, s: _stranger(g, s, kid=f"../tls/server-key.pem#{g.key.kid}"))),
    Kind("jku-header-injection", SIGNATURE,
         bearer(lambda g, s: _stranger(g, s, jku="https://attacker.example/keys", kid=g.key.kid))),
    Kind("x5u-header-injection", SIGNATURE,
         bearer(lambda g, s: _stranger(g, s, x5u="https://attacker.example/cert.pem", kid=g.key.kid))),
    Kind("jwk-header-injection", SIGNATURE, bearer(_jwk_injected)),
    Kind("x5c-header-injection", SIGNATURE, bearer(_x5c_injected)),
    Kind("signature-stripped", SIGNATURE, bearer(lambda g, s: ".".join(g.parts(s)[:2]) + ".")),
    Kind("signature-segment-missing", MALFORMED, bearer(lambda g, s: ".".join(g.parts(s)[:2]))),
    Kind("claims-tampered-after-signing", SIGNATURE, bearer(_tampered)),
    Kind("signature-of-another-genuine-token", SIGNATURE, bearer(_spliced)),
    # --- one claim wrong, correctly signed with the server's own key
    Kind("expired", EXPIRED, code="ExpiredAuthenticationToken", build=bearer(
        lambda g, s: g.signed(s, iat=now() - 7200, nbf=now() - 7200, exp=now() - SKEW_S - 120))),
    Kind("no-exp", EXPIRED, bearer(lambda g, s: g.signed(s, exp=None)), code="ExpiredAuthenticationToken"),
    Kind("nbf-in-the-future", NOT_YET,
         bearer(lambda g, s: g.signed(s, nbf=now() + 3600, iat=now() + 3600, exp=now() + 7200))),
    Kind("nbf-as-a-string", "nbf claim is not a number",
         bearer(lambda g, s: g.signed(s, nbf=str(now() + 3600)))),
    Kind("wrong-audience", AUDIENCE, bearer(lambda g, s: g.signed(s, aud="https://vault.azure.net"))),
    Kind("audience-as-a-list", CLAIMS,
         bearer(lambda g, s: g.signed(s, aud=[g.claims(s)["aud"], "https://vault.azure.net"]))),
    Kind("issuer-of-entra", ISSUER,
         bearer(lambda g, s: g.signed(s, iss=f"https://login.microsoftonline.com/{g.tenant}/"))),
    Kind("issuer-of-another-host", ISSUER,
         bearer(lambda g, s: g.signed(s, iss=f"https://localhost:{g.server.port}/{g.tenant}/"))),
    Kind("issuer-of-another-tenant", ISSUER, bearer(lambda g, s: g.signed(s, iss=f"{g.base}/{uuid.uuid4()}/"))),
    Kind("tid-of-a-tenant-that-does-not-exist", TENANT,
         bearer(lambda g, s: g.signed(s, tid=(other := str(uuid.uuid4())), iss=f"{g.base}/{other}/"))),
    Kind("tid-mismatched-with-issuer", ISSUER, bearer(lambda g, s: g.signed(s, tid=str(uuid.uuid4())))),
    Kind("no-oid", CLAIMS, bearer(lambda g, s: g.signed(s, oid=None))),
    # --- genuine tokens where they do not belong
    Kind("a-second-cielos-token", UNKNOWN_KEY, bearer(lambda g, s: g.cache[f"second-cielo-{s}"])),
    Kind("token-for-another-cielo-audience", AUDIENCE, bearer(lambda g, s: g.elsewhere[s])),
    Kind("token-for-an-app-registrations-api", AUDIENCE, bearer(lambda g, s: g.app_api_v1)),
    Kind("v2-token-for-an-app-registrations-api", AUDIENCE, bearer(lambda g, s: g.app_api_v2)),
    Kind("id-token-as-access-token", AUDIENCE, bearer(lambda g, s: g.id_token)),
    Kind("refresh-token-as-bearer", MALFORMED, bearer(lambda g, s: g.refresh_token)),
    Kind("client-secret-as-bearer", MALFORMED, bearer(lambda g, s: g.client_secret)),
    # --- the Authorization header itself
    Kind("no-authorization-header", NO_BEARER, lambda g, s: None, code="AuthenticationFailed"),
    Kind("bearer-without-a-token", NO_BEARER, lambda g, s: "Bearer", code="AuthenticationFailed"),
    Kind("basic-scheme-with-a-genuine-token", NO_BEARER, lambda g, s: f"Basic {g.tokens[s]}",
         code="AuthenticationFailed"),
    Kind("garbage", MALFORMED, lambda g, s: "Bearer garbage"),
    Kind("empty-segments", MALFORMED, lambda g, s: "Bearer .."),
    Kind("very-long", TOO_LONG, bearer(_long)),
    Kind("bearer-twice", MALFORMED, lambda g, s: f"Bearer Bearer {g.tokens[s]}"),
    Kind("lowercase-scheme-with-a-forged-token", ALG,
         lambda g, s: f"bearer {_unsigned(g, s, {'typ': 'JWT', 'alg': 'none'})}"),
    Kind("genuine-token-with-a-fourth-segment", MALFORMED, lambda g, s: f"Bearer {g.tokens[s]}.e30"),
    Kind("forged-header-before-a-genuine-one", ALG,
         lambda g, s: [f"Bearer {_unsigned(g, s, {'typ': 'JWT', 'alg': 'none'})}", f"Bearer {g.tokens[s]}"]),
]


@pytest.fixture(scope="module")
def forged(genuine: Genuine, tmp_path_factory: pytest.TempPathFactory) -> Genuine:
    """The genuine material plus the forgeries that are costly to make (a second Cielo's key ring)."""
    tmp = tmp_path_factory.mktemp("second-cielo")
    for surface in SURFACES:
        genuine.cache[f"second-cielo-{surface}"] = _second_cielo(genuine, surface, tmp)
    return genuine


# ----------------------------------------------------------------------------- the tests
def test_genuine_tokens_authenticate_on_every_surface(genuine: Genuine) -> None:
    """The control: the same requests with the genuine tokens get past authentication (the data plane then asks
    RBAC, which refuses a principal without the data action with its own 401 PermissionDenied)."""
    assert present(genuine, "arm", f"Bearer {genuine.tokens['arm']}").status_code == 200
    assert present(genuine, "graph", f"bearer {genuine.tokens['graph']}").status_code == 200  # RFC 7235: any case
    answer = present(genuine, "openai", f"Bearer {genuine.tokens['openai']}")
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == "PermissionDenied"
    # The claim checks below re-sign these claims with the server's key, changing one: unchanged, they pass.
    for surface, token in genuine.tokens.items():
        assert header_of(token)["kid"] == genuine.key.kid
        resigned = present(genuine, surface, f"Bearer {genuine.signed(surface, uti=b64url(uuid.uuid4().bytes))}")
        if surface == "openai":
            assert resigned.status_code == 401 and resigned.json()["error"]["code"] == "PermissionDenied"
        else:
            assert resigned.status_code == 200, resigned.text


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_forged_bearer_token_is_refused(forged: Genuine, kind: Kind, surface: str) -> None:
    assert_refused(present(forged, surface, kind.build(forged, surface)), surface, kind.code, kind.why)


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("tid", ["domain", "upper-case-id"])
def test_tenant_named_another_way_is_not_a_second_tenant(genuine: Genuine, surface: str, tid: str) -> None:
    """Cielo always mints the tenant's lower-case id in `tid` and `iss`; a token naming the tenant by its domain or
    an upper-case id is not one of its tokens. (Only the holder of the signing key could make one.)"""
    other = "cielo.local" if tid == "domain" else genuine.tenant.upper()
    token = genuine.signed(surface, tid=other, iss=f"{genuine.base}/{other}/")
    answer = present(genuine, surface, f"Bearer {token}")
    assert_refused(answer, surface, "InvalidAuthenticationToken", "" if surface == "openai" else "tenant id")
