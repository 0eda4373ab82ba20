"""A real `cielo up --database-url` process on PostgreSQL: refused with one line without the key-encryption key;
with it, tokens are signed with the key in the database (nothing of the kind in the data directory), the server's
certificate comes from the CA in the database, and `cielo keys` rotates the shared keys."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from cielo.cli.main import cli
from cielo.store.db import open_engine
from postgres.database import TEST_KEK, temporary_database
from support.server import start_server


@pytest.fixture()
def url() -> Iterator[str]:
    with temporary_database("cielo_up") as url:
        yield url


def test_up_on_postgresql_needs_the_key_encryption_key(tmp_path: Path, url: str) -> None:
    done = subprocess.run([sys.executable, "-m", "cielo.cli.main", "up", "--data-dir", str(tmp_path / "d"),
                           "--port", "0", "--database-url", url], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 1
    assert "\nERROR: cannot start: --database-url needs a key-encryption key" in done.stderr, done.stderr
    assert "CIELO_KEY_ENCRYPTION_KEY or --key-encryption-key-file" in done.stderr


def test_up_on_postgresql_signs_with_the_shared_keys(tmp_path: Path, url: str) -> None:
    (tmp_path / "kek").write_text(TEST_KEK + "\n")
    data_dir = tmp_path / "data"
    server = start_server(data_dir, env={"CIELO_DATABASE_URL": url,
                                         "CIELO_KEY_ENCRYPTION_KEY_FILE": str(tmp_path / "kek")})
    try:
        token = server.admin_token()
        kid = jwt.get_unverified_header(token)["kid"]
        engine = open_engine(url)
        with engine.connect() as conn:
            rows = {(r.kind, r.name): r for r in conn.execute(text("SELECT kind, name, public FROM shared_keys"))}
        assert ("signing", kid) in rows and ("sealing", "sealing") in rows
        assert rows[("ca", "ca")].public == (data_dir / "tls" / "ca.pem").read_text()
        assert not (data_dir / "keys").exists() and not (data_dir / "sealing.key").exists()
        assert not (data_dir / "cielo.db").exists()
        # `cielo keys rotate` on the shared database: the running server publishes the new key within a second.
        rotated = CliRunner().invoke(cli, ["keys", "rotate", "--database-url", url, "-o", "json"],
                                     env={"CIELO_KEY_ENCRYPTION_KEY": TEST_KEK})
        assert rotated.exit_code == 0, rotated.output
        new_kid = json.loads(rotated.output)["kid"]
        with server.http() as client:
            for _ in range(40):
                jwks = client.get(f"{server.base_url}/common/discovery/v2.0/keys").json()
                if new_kid in {k["kid"] for k in jwks["keys"]}:
                    break
                time.sleep(0.1)
        assert {kid, new_kid} <= {k["kid"] for k in jwks["keys"]}
        assert base64.b64decode(jwks["keys"][0]["x5c"][0])
        engine.dispose()
    finally:
        server.stop()


def test_a_replica_serves_its_own_certificate(tmp_path: Path, url: str) -> None:
    import socket
    import ssl

    from cielo.identity.pki import issue_certificate
    from support.server import free_port

    issue_certificate(tmp_path / "own-ca", ["127.0.0.1"], tmp_path / "cert.pem", tmp_path / "key.pem")
    issue_certificate(tmp_path / "own-ca", ["127.0.0.1"], tmp_path / "other-cert.pem", tmp_path / "other-key.pem")
    base = [sys.executable, "-m", "cielo.cli.main", "up", "--data-dir", str(tmp_path / "d"), "--database-url", url]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CIELO_KEY_ENCRYPTION_KEY": TEST_KEK,
           "CIELO_ADMIN_PASSWORD": "Replica-Passw0rd!1"}
    mismatched = subprocess.run([*base, "--port", "0", "--tls-cert", str(tmp_path / "cert.pem"), "--tls-key",
                                 str(tmp_path / "other-key.pem")], capture_output=True, text=True, timeout=60, env=env)
    assert mismatched.returncode == 1 and "not a PEM certificate chain and its private key" in mismatched.stderr
    port = free_port()
    process = subprocess.Popen([*base, "--port", str(port), "--tls-cert", str(tmp_path / "cert.pem"), "--tls-key",
                                str(tmp_path / "key.pem")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env)
    try:
        context = ssl.create_default_context(cafile=str(tmp_path / "own-ca" / "ca.pem"))
        served = None
        for _ in range(150):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as sock, \
                        context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
                    served = tls.getpeercert(binary_form=True)
                break
            except OSError:
                time.sleep(0.2)
        assert served is not None  # verified against the replica's own CA, not Cielo's
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_up_on_postgresql_without_redis_warns_that_it_is_for_one_replica(tmp_path: Path, url: str) -> None:
    (tmp_path / "kek").write_text(TEST_KEK)
    server = start_server(tmp_path / "data", env={"CIELO_DATABASE_URL": url,
                                                  "CIELO_KEY_ENCRYPTION_KEY_FILE": str(tmp_path / "kek")})
    try:
        assert "WARNING: --database-url without --redis-url: run one replica" in server.log_text()
    finally:
        server.stop()
