"""Helpers of the security regression suite (tests/security/test_sec_*.py).

The attacker's tools: reading a token's parts without verifying it, and signing JWTs with any key. The
auditor's tools: the server's own signing key (read from its data directory, to forge tokens that are
correctly signed but wrong in one claim, so each claim check is proved on its own), and a look at
everything the server keeps on disk.
"""

from __future__ import annotations

import base64
import functools
import json
import sqlite3
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from arm_support import version_for
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from identity_support import admin_token

from support.server import CieloServer

ARM_API = "2022-12-01"
OPENAI_API = "2024-10-21"
ACCOUNT = "cielo-openai"  # the account and deployment bootstrap makes
DEPLOYMENT = "smollm2"
GRAPH = "https://graph.microsoft.com"
COGNITIVE = "https://cognitiveservices.azure.com"
ARM = "https://management.azure.com/"
GRAPH_DENIED = "Authorization_RequestDenied"

# Azure OpenAI's gateway wording for a refused bearer and for no credential (as public reports quote it,
# e.g. Azure-Samples/azure-search-openai-demo#458 and openai/openai-python#1527).
BEARER_DENIED = ("Unauthorized. Access token is missing, invalid, audience is incorrect "
                 "(https://cognitiveservices.azure.com), or have expired.")
NO_CREDENTIAL = ("Access denied due to missing subscription key. Make sure to include subscription key when making "
                 "requests to an API.")


# ----------------------------------------------------------------------------- JWT pieces
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def claims_of(token: str) -> dict[str, Any]:
    """A token's claims, read without verifying anything (what anyone holding the token can do)."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def header_of(token: str) -> dict[str, Any]:
    header: dict[str, Any] = jwt.get_unverified_header(token)
    return header


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    @property
    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        """An RS256 JWT with `kid` (and `x5t`) naming this key unless `header` says otherwise."""
        fields = {"typ": "JWT", "x5t": self.kid, "kid": self.kid, **(header or {})}
        return jwt.encode(claims, self.private_key, algorithm="RS256",
                          headers={k: v for k, v in fields.items() if v is not None})


def server_signing_key(server: CieloServer) -> SigningKey:
    """The server's current signing key, read from DATA_DIR/keys as only its operator can."""
    keys_dir = server.data_dir / "keys"
    current = [m for m in (json.loads(p.read_text()) for p in keys_dir.glob("*.json")) if m.get("retire_at") is None]
    assert current, f"no current signing key in {keys_dir}"
    kid = max(current, key=lambda m: m["created_at"])["kid"]
    private = serialization.load_pem_private_key((keys_dir / f"{kid}.key").read_bytes(), None)
    assert isinstance(private, rsa.RSAPrivateKey)
    return SigningKey(kid, private)


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# ----------------------------------------------------------------------------- the three surfaces
@functools.cache
def http(base_url: str, bundle: str) -> httpx.Client:
    """One pooled client per server for the whole run: loading the CA bundle (system CAs + Cielo's) into a new
    TLS context costs more than the request, so the suite pays it once."""
    return httpx.Client(base_url=base_url, verify=ssl.create_default_context(cafile=bundle), timeout=30)


def client_of(server: CieloServer) -> httpx.Client:
    return http(server.base_url, server.bundle)


def arm_call(server: CieloServer, method: str, path: str, token: str, body: Any = None,
             api_version: str | None = None) -> httpx.Response:
    """An ARM call with a version Azure serves for the path (arm_support.version_for) unless one is given."""
    return client_of(server).request(method, path, params={"api-version": api_version or version_for(path)},
                                     json=body, headers={"Authorization": f"Bearer {token}"})


def graph_call(server: CieloServer, method: str, path: str, token: str, body: Any = None) -> httpx.Response:
    return client_of(server).request(method, "/v1.0" + path, json=body, headers={"Authorization": f"Bearer {token}"})


def admin_graph(server: CieloServer, method: str, path: str, body: Any = None) -> Any:
    """The directory API as the administrator (its token fetched once per server)."""
    response = graph_call(server, method, path, admin_token(server), body)
    assert response.is_success, f"{method} {path}: {response.status_code} {response.text}"
    return response.json() if response.content else None


def graph_denied(response: httpx.Response) -> None:
    """Graph's 403 `Authorization_RequestDenied` ("Insufficient privileges to complete the operation.")."""
    assert response.status_code == 403, f"{response.status_code} {response.text}"
    error = response.json()["error"]
    assert error["code"] == GRAPH_DENIED, response.text
    assert error["message"] == "Insufficient privileges to complete the operation.", response.text


# ----------------------------------------------------------------------------- what the server keeps on disk
def database_texts(data_dir: Path) -> Iterator[tuple[str, str, str]]:
    """(table, column, value) of every non-null cell of every table of DATA_DIR/cielo.db, read through SQLite (so
    rows still in the write-ahead log are seen), as text (blobs decoded leniently)."""
    connection = sqlite3.connect(f"file:{data_dir / 'cielo.db'}?mode=ro", uri=True, timeout=30)
    try:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cursor = connection.execute(f'SELECT * FROM "{table}"')  # table names come from sqlite_master
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                    yield table, column, text
    finally:
        connection.close()


def files_containing(root: Path, needle: str) -> list[Path]:
    """Every file under `root` whose raw bytes contain `needle` (the database, its WAL, keys, anything)."""
    raw = needle.encode()
    return [p for p in sorted(root.rglob("*")) if p.is_file() and raw in p.read_bytes()]
