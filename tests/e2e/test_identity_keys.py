"""Signing-key rotation with `cielo keys rotate` against a running server (its own data directory,
so the session server's keys stay as they are)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from identity_support import GRAPH, decode, fetch_metadata

from support.server import ADMIN_USER, CieloServer, start_server


@pytest.fixture()
def private_server(tmp_path: Path) -> Iterator[CieloServer]:
    server = start_server(tmp_path / "data")
    yield server
    server.stop()


def _me(server: CieloServer, token: str) -> httpx.Response:
    with server.http() as client:
        return client.get("/v1.0/me", headers={"Authorization": f"Bearer {token}"})


def test_rotation_keeps_old_tokens_valid(private_server: CieloServer) -> None:
    before = fetch_metadata(private_server)
    assert len(before.jwks["keys"]) == 1
    old_kid = before.jwks["keys"][0]["kid"]
    old_token = private_server.admin_token()
    assert jwt.get_unverified_header(old_token)["kid"] == old_kid

    rotated = subprocess.run(
        [sys.executable, "-m", "cielo.cli.main", "keys", "rotate", "--data-dir", str(private_server.data_dir),
         "-o", "json"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert rotated.returncode == 0, rotated.stderr
    new_kid = json.loads(rotated.stdout)["kid"]
    assert new_kid != old_kid

    # The running server sees the new key at once: the JWKS publishes both, newest first.
    after = fetch_metadata(private_server)
    assert [k["kid"] for k in after.jwks["keys"]] == [new_kid, old_kid]
    for key in after.jwks["keys"]:
        assert key["kty"] == "RSA" and key["use"] == "sig" and key["x5t"] == key["kid"] and key["x5c"]

    new_token = private_server.admin_token()
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    new_claims = decode(new_token, after.jwks, GRAPH)
    assert new_claims["upn"] == ADMIN_USER and new_claims["iss"] == after.issuer_v1

    # A token signed with the old key still verifies against the published keys, and is still accepted.
    assert decode(old_token, after.jwks, GRAPH)["upn"] == ADMIN_USER
    for token in (old_token, new_token):
        response = _me(private_server, token)
        assert response.status_code == 200, response.text
        assert response.json()["userPrincipalName"] == ADMIN_USER

    # The old key only verifies: a token the server had signed with it and then tampered with is refused.
    header, payload, signature = old_token.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    assert _me(private_server, forged).status_code == 401
