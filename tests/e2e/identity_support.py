"""Helpers for the end-to-end identity tests (test_identity_*.py): token checks, error envelopes,
browser-like sign-in, certificates and a tiny OIDC issuer. Fixtures live in conftest.py.

Tokens are checked with PyJWT against the server's published JWKS, never by trusting the server.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
import ssl
import threading
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from support.browser import device_login
from support.server import CieloServer

GRAPH = "https://graph.microsoft.com"
COGNITIVE = "https://cognitiveservices.azure.com"
COGNITIVE_SCOPE = f"{COGNITIVE}/.default"
USER_PASSWORD = "Us3r-Passw0rd!x"
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
LOOPBACK_REDIRECT = "http://localhost:8400"


# ----------------------------------------------------------------------------- server facts
@dataclass(frozen=True)
class Metadata:
    """What the server publishes for its tenant: the two discovery documents and the JWKS."""

    tenant_id: str
    issuer_v1: str
    issuer_v2: str
    token_endpoint: str
    jwks: dict[str, Any]


def _tls(server: CieloServer) -> ssl.SSLContext:
    """Trust exactly what clients are told to trust: the bundle (system CAs + Cielo's CA)."""
    return ssl.create_default_context(cafile=server.bundle)


def fetch_metadata(server: CieloServer) -> Metadata:
    with server.http() as client:
        v2 = client.get(f"/{server.tenant_id}/v2.0/.well-known/openid-configuration").json()
        v1 = client.get(f"/{server.tenant_id}/.well-known/openid-configuration").json()
        jwks = client.get(f"/{server.tenant_id}/discovery/v2.0/keys").json()
    return Metadata(server.tenant_id, v1["issuer"], v2["issuer"], v2["token_endpoint"], jwks)


def listens_on_443(server: CieloServer) -> bool:
    """`cielo up --listen-443` says so in its banner; the fixture asks for it only when 443 was free."""
    return "also listening on https://127.0.0.1:443" in server.log_text()


# ----------------------------------------------------------------------------- token checks
@dataclass(frozen=True)
class UserAccount:
    upn: str
    password: str
    object_id: str


def decode(token: str, jwks: dict[str, Any], audience: str) -> dict[str, Any]:
    """Verify the RS256 signature with the JWKS key named by `kid`, and exp/nbf/iat/aud."""
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    matches = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    assert len(matches) == 1, f"kid {header['kid']} is not in the JWKS"
    key = jwt.PyJWK(matches[0]).key
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=["RS256"], audience=audience,
        options={"require": ["exp", "iat", "nbf", "aud", "iss"]},
    )
    return claims


def check_app_token(token: str, meta: Metadata, *, audience: str, app_id: str, sp_object_id: str,
                    acr: str) -> dict[str, Any]:
    """The claims Entra's access-token claims reference lists for a v1 app-only token."""
    claims = decode(token, meta.jwks, audience)
    assert claims["aud"] == audience
    assert claims["iss"] == meta.issuer_v1
    _check_times(claims)
    assert claims["appid"] == app_id
    assert claims["appidacr"] == acr
    assert claims["idp"] == meta.issuer_v1
    assert claims["idtyp"] == "app"
    assert claims["oid"] == sp_object_id
    assert claims["sub"] == sp_object_id
    assert claims["tid"] == meta.tenant_id
    assert claims["ver"] == "1.0"
    assert "scp" not in claims and "upn" not in claims
    return claims


def check_user_token(token: str, meta: Metadata, *, audience: str, app_id: str, user: UserAccount,
                     scp: str, acr: str = "0") -> dict[str, Any]:
    """The claims Entra's access-token claims reference lists for a v1 delegated (user) token."""
    claims = decode(token, meta.jwks, audience)
    assert claims["aud"] == audience
    assert claims["iss"] == meta.issuer_v1
    _check_times(claims)
    assert claims["appid"] == app_id
    assert claims["appidacr"] == acr
    assert claims["idtyp"] == "user"
    assert claims["oid"] == user.object_id
    assert claims["sub"] and claims["sub"] != user.object_id  # pairwise per application
    assert claims["tid"] == meta.tenant_id
    assert claims["ver"] == "1.0"
    assert claims["upn"] == user.upn
    assert claims["unique_name"] == user.upn
    assert claims["scp"] == scp
    return claims


def _check_times(claims: dict[str, Any]) -> None:
    now = dt.datetime.now(dt.UTC).timestamp()
    assert abs(claims["iat"] - now) < 120
    assert claims["nbf"] <= claims["iat"] + 1
    lifetime = claims["exp"] - claims["iat"]
    assert 3600 <= lifetime <= 5400, f"lifetime {lifetime}s is outside Entra's 60-90 minutes"


def check_oauth_error(response: httpx.Response, status: int, error: str, code: int) -> dict[str, Any]:
    """Entra's error envelope (learn.microsoft.com/entra/identity-platform/reference-error-codes) with the given
    status, error and AADSTS code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    assert body["error_codes"] == [code], body
    assert body["error_description"].startswith(f"AADSTS{code}:"), body
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", body["timestamp"]), body
    for name in ("trace_id", "correlation_id"):
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", body[name]), body
    return body


def token_post(server: CieloServer, form: dict[str, str] | None = None, *, tenant: str | None = None,
               content: bytes | None = None, headers: dict[str, str] | None = None,
               path: str = "oauth2/v2.0/token") -> httpx.Response:
    """A raw call of the token endpoint (or another endpoint under the tenant)."""
    with server.http() as client:
        url = f"/{tenant or server.tenant_id}/{path}"
        if content is not None:
            return client.post(url, content=content, headers=headers)
        return client.post(url, data=form, headers=headers)


# ----------------------------------------------------------------------------- directory objects
_ADMIN_TOKENS: dict[tuple[str, str], str] = {}


def admin_token(server: CieloServer) -> str:
    """A Graph token for the administrator, fetched once per server (each sign-in costs an argon2 hash)."""
    key = (server.base_url, str(server.data_dir))
    if key not in _ADMIN_TOKENS:
        _ADMIN_TOKENS[key] = server.admin_token()
    return _ADMIN_TOKENS[key]


def graph(server: CieloServer, method: str, path: str, body: Any = None) -> Any:
    """`server.graph`, with the administrator's token reused."""
    with httpx.Client(base_url=server.base_url, verify=_tls(server), timeout=30) as client:
        response = client.request(method, "/v1.0" + path, json=body,
                                  headers={"Authorization": f"Bearer {admin_token(server)}"})
    response.raise_for_status()
    return response.json() if response.content else None


def new_app(server: CieloServer, prefix: str, *, secret: bool = True, sp: bool = True) -> dict[str, Any]:
    """An app registration (+ secret, + service principal), as `server.create_app` makes one."""
    app = graph(server, "POST", "/applications", {"displayName": f"{prefix}-{secrets.token_hex(4)}"})
    result = {"appId": app["appId"], "objectId": app["id"]}
    if secret:
        result["secret"] = graph(server, "POST", f"/applications/{app['id']}/addPassword",
                                 {"passwordCredential": {"displayName": "test"}})["secretText"]
    if sp:
        result["spObjectId"] = graph(server, "POST", "/servicePrincipals", {"appId": app["appId"]})["id"]
    return result


def new_user(server: CieloServer, prefix: str = "alice") -> UserAccount:
    upn = f"{prefix}-{secrets.token_hex(4)}@cielo.local"
    created = graph(server, "POST", "/users", {
        "userPrincipalName": upn, "displayName": prefix.title(),
        "passwordProfile": {"password": USER_PASSWORD},
    })
    return UserAccount(upn, USER_PASSWORD, created["id"])


@dataclass(frozen=True)
class AppCertificate:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey
    pem_path: Path  # private key followed by the certificate, as CertificateCredential reads it

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()

    @property
    def sha1_hex(self) -> str:
        return self.cert.fingerprint(hashes.SHA1()).hex()  # x5t is SHA-1 by definition

    @property
    def x5t(self) -> str:
        return base64.urlsafe_b64encode(self.cert.fingerprint(hashes.SHA1())).decode().rstrip("=")


def make_certificate(directory: Path, name: str = "cielo-e2e-app") -> AppCertificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    pem_path = directory / f"{name}-{secrets.token_hex(3)}.pem"
    pem_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    return AppCertificate(cert, key, pem_path)


def register_certificate(server: CieloServer, app: dict[str, Any], cert: AppCertificate) -> None:
    graph(server, "PATCH", f"/applications/{app['objectId']}", {"keyCredentials": [{
        "type": "AsymmetricX509Cert", "usage": "Verify", "key": base64.b64encode(cert.der).decode(),
    }]})


# ----------------------------------------------------------------------------- a person with a browser
class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action = values.get("action", "")
        if tag == "input" and values.get("type") == "hidden":
            self.fields[values["name"]] = values.get("value", "")


def submit_sign_in(server: CieloServer, auth_url: str, username: str, password: str) -> httpx.Response:
    """GET the sign-in page and post its form with the hidden fields and the credentials."""
    with httpx.Client(verify=_tls(server), timeout=30, follow_redirects=False) as browser:
        page = browser.get(auth_url)
        assert page.status_code == 200, page.text
        parser = _FormParser()
        parser.feed(page.text)
        assert parser.action, "the sign-in page has no form"
        form = {**parser.fields, "username": username, "password": password}
        return browser.post(urljoin(auth_url, parser.action), data=form)


def sign_in_via_browser(server: CieloServer, auth_url: str, username: str, password: str) -> str:
    """Sign in like a person with a browser; return the Location the server redirects to."""
    answer = submit_sign_in(server, auth_url, username, password)
    assert answer.status_code == 302, answer.text
    return str(answer.headers["location"])


def auto_post_form(html: str) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of a response_mode=form_post page."""
    parser = _FormParser()
    parser.feed(html)
    assert parser.action, "no form in the page"
    return parser.action, parser.fields


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def approve_device_code(server: CieloServer, user_code: str, user: UserAccount,
                        decision: str = "approve") -> None:
    """What a person does on the verification page: enter the code, sign in and allow."""
    answer = device_login(server.base_url, _tls(server), user_code, user.upn, user.password, decision)
    assert answer.status_code == 200, answer.text


# ----------------------------------------------------------------------------- an OIDC issuer
@dataclass
class OidcIssuer:
    """A tiny HTTPS OpenID Connect issuer on loopback, with a certificate from Cielo's CA."""

    url: str
    key: rsa.RSAPrivateKey
    kid: str
    published: list[dict[str, Any]]  # the JWKS it serves, shared with the request handler
    httpd: ThreadingHTTPServer = field(repr=False)

    def token(self, subject: str, *, audience: str = EXCHANGE_AUDIENCE, lifetime: int = 600) -> str:
        now = int(dt.datetime.now(dt.UTC).timestamp())
        claims = {"iss": self.url, "sub": subject, "aud": audience, "iat": now, "nbf": now,
                  "exp": now + lifetime, "jti": secrets.token_hex(8)}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def rotate(self) -> None:
        """Publish a new key next to the old one and sign with it from now on."""
        self.key, self.kid = _new_issuer_key()
        self.published.append(_jwk(self.key, self.kid))

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _new_issuer_key() -> tuple[rsa.RSAPrivateKey, str]:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048), secrets.token_hex(8)


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    return jwk


def start_oidc_issuer(tls_dir: Path, work_dir: Path) -> OidcIssuer:
    """Serve /.well-known/openid-configuration and a JWKS over TLS that chains to Cielo's CA."""
    from cielo.identity.pki import issue_certificate

    cert_path, key_path = work_dir / "issuer.pem", work_dir / "issuer-key.pem"
    issue_certificate(tls_dir, ["127.0.0.1"], cert_path, key_path)
    signing_key, kid = _new_issuer_key()
    published = [_jwk(signing_key, kid)]
    state: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                body: dict[str, Any] = {"issuer": state["url"], "jwks_uri": state["url"] + "/keys",
                                        "id_token_signing_alg_values_supported": ["RS256"]}
            elif self.path == "/keys":
                body = {"keys": list(published)}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    state["url"] = f"https://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return OidcIssuer(state["url"], signing_key, kid, published, httpd)
