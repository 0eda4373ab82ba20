"""A service principal with a certificate, through the CLI in-process: `cielo ad sp create-for-rbac --create-cert`
writes the key and certificate (PEM, mode 0600) in the home directory as az does, and `cielo login
--service-principal` signs in with it (a client assertion signed with that key: RFC 7523, x5t), by `--certificate`
or by a `-p` that names the file. And what it refuses: no credential, an unreadable file, a key that is not RSA."""

from __future__ import annotations

import datetime as dt
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from inproc import World, unique
from inproc_cli import Cli, cli_in, signed_in_cli


@pytest.fixture()
def admin(world: World, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Cli]:
    with signed_in_cli(world, tmp_path_factory, tmp_path) as runner:
        yield runner


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's home, where --create-cert writes (as az writes to ~)."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    return path


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def test_a_certificate_service_principal_signs_in(admin: Cli, world: World, home: Path, tmp_path: Path) -> None:
    created = admin("ad", "sp", "create-for-rbac", "-n", unique("cli-cert-sp"), "--create-cert")
    assert created.exit_code == 0, created.stderr
    sp = json.loads(created.stdout)
    pem = Path(sp["fileWithCertAndPrivateKey"])
    assert pem.parent == home and stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert "password" not in sp or sp["password"] is None
    assert f"Please copy {pem} to a safe place" in created.stderr
    text = pem.read_text()
    assert "PRIVATE KEY-----" in text and "BEGIN CERTIFICATE-----" in text
    for how in (("--certificate", str(pem)), ("-p", str(pem))):
        with cli_in(world, tmp_path / f"sp{len(how[0])}") as as_sp:
            [entry] = as_sp.json("login", "--service-principal", "-u", sp["appId"], *how, "-t", world.tenant,
                                 "--allow-no-subscriptions")
            assert entry["user"] == {"name": sp["appId"], "type": "servicePrincipal"}
            token = as_sp.json("account", "get-access-token", "--resource", "https://cognitiveservices.azure.com")
            claims = _claims(token["accessToken"])
            assert (claims["appid"], claims["tid"], claims["appidacr"]) == (sp["appId"], world.tenant, "2")


def test_service_principal_sign_in_refusals(world: World, tmp_path: Path) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec")])
    now = dt.datetime.now(dt.UTC)
    ec_cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ec_key.public_key())
               .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
               .sign(ec_key, hashes.SHA256()))
    ec_pem = tmp_path / "ec.pem"
    ec_pem.write_bytes(ec_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption())
                       + ec_cert.public_bytes(serialization.Encoding.PEM))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN NOTHING-----\n")
    app_id = "00000000-0000-0000-0000-0000000000cc"
    with cli_in(world, tmp_path / "cli") as as_sp:
        assert as_sp.fails("login", "--service-principal", "-u", app_id, "-t", world.tenant) == \
            "ERROR: --service-principal needs --password, --certificate or --federated-token.\n"
        err = as_sp.fails("login", "--service-principal", "-u", app_id, "-t", world.tenant, "--certificate",
                          str(garbage))
        assert err.startswith(f"ERROR: cannot read a private key and certificate from {garbage}"), err
        err = as_sp.fails("login", "--service-principal", "-u", app_id, "-t", world.tenant, "--certificate",
                          str(ec_pem))
        assert err == "ERROR: the certificate's key must be an RSA key\n", err
        # A federated token from nowhere: the token service says why.
        err = as_sp.fails("login", "--service-principal", "-u", app_id, "-t", world.tenant, "--federated-token",
                          "not.a.jwt")
        assert err.startswith("ERROR: AADSTS"), err
