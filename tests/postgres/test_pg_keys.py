"""Replicas on one PostgreSQL database share their keys, sealed with the key-encryption key: a token one signs
validates on the other, a rotation on one is used by the other, account keys sealed by one open on the other, both
serve from one CA; without a KEK, or with another one, a replica refuses to start, saying why; and no private key is
in the database in plaintext (raw rows read back)."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cielo.api.app import Services, build_services
from cielo.core.clock import FrozenClock
from cielo.core.sealing import KeyEncryptionKey
from cielo.errors import ConfigError, DataDirectoryError
from cielo.identity.keys import share_ca
from cielo.identity.pki import ensure_tls
from cielo.settings import Settings
from cielo.store.datadir import open_server_database
from cielo.store.keystore import CA, SEALING, SIGNING, KeyStore
from postgres.database import TEST_KEK, table_rows, temporary_database


@pytest.fixture()
def url() -> Iterator[str]:
    with temporary_database("cielo_keys") as url:
        yield url


def _replica(tmp_path: Path, url: str, name: str, clock: FrozenClock, **extra: object) -> Services:
    settings = Settings(data_dir=tmp_path / name, database_url=url, key_encryption_key=TEST_KEK,
                        **extra)  # type: ignore[arg-type]
    return build_services(settings, clock)


def test_replicas_sign_with_the_same_keys_and_see_each_others_rotation(tmp_path: Path, url: str) -> None:
    clock = FrozenClock()
    one, two = _replica(tmp_path, url, "one", clock), _replica(tmp_path, url, "two", clock)
    assert one.keys.signing_key().kid == two.keys.signing_key().kid  # started together: one key, not one each
    assert one.keys.jwks() == two.keys.jwks()
    assert not (tmp_path / "one" / "keys").exists() and not (tmp_path / "one" / "sealing.key").exists()
    first = one.keys.signing_key().kid
    rotated = one.keys.rotate(clock.now())
    # The other replica validates a token signed with the new key at once (an unknown kid makes it look)...
    assert two.keys.public_key(rotated.kid, clock.now()) is not None
    # ... and signs with it after its next version check (at most a second later).
    two.keys.reload()
    assert two.keys.signing_key().kid == rotated.kid
    assert {k["kid"] for k in two.keys.jwks()["keys"]} == {first, rotated.kid}
    # Pruned on one when its last token has expired: gone from the other's JWKS too.
    clock.advance(two.settings.token_lifetime_max_s + 301)
    assert one.keys.prune(clock.now()) == [first]
    two.keys.reload()
    assert {k["kid"] for k in two.keys.jwks()["keys"]} == {rotated.kid}
    # Account keys sealed by one replica open on the other.
    assert two.resources._sealer.open(one.resources._sealer.seal("secret-42")) == "secret-42"  # type: ignore[attr-defined]


def test_a_shared_database_needs_the_key_encryption_key(tmp_path: Path, url: str) -> None:
    settings = Settings(data_dir=tmp_path / "nokek", database_url=url)
    with pytest.raises(ConfigError, match="CIELO_KEY_ENCRYPTION_KEY or --key-encryption-key-file"):
        build_services(settings, FrozenClock())
    with pytest.raises(ConfigError, match="not a key-encryption key"):
        build_services(settings.model_copy(update={"key_encryption_key": "too-short"}), FrozenClock())
    _replica(tmp_path, url, "first", FrozenClock())
    other = base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(DataDirectoryError, match="another key-encryption key"):
        build_services(settings.model_copy(update={"key_encryption_key": other}), FrozenClock())
    (tmp_path / "kek").write_text(TEST_KEK + "\n")
    build_services(settings.model_copy(update={"key_encryption_key_file": tmp_path / "kek"}), FrozenClock())


def test_replicas_serve_certificates_from_one_shared_ca(tmp_path: Path, url: str) -> None:
    engine, _ = open_server_database(url)
    settings = [Settings(data_dir=tmp_path / n, database_url=url, key_encryption_key=TEST_KEK) for n in ("a", "b")]
    for each in settings:
        share_ca(each, engine, 0.0)
    files = [ensure_tls(each.tls_dir, ["replica.example"]) for each in settings]
    assert files[0].ca_cert.read_bytes() == files[1].ca_cert.read_bytes()
    ca = x509.load_pem_x509_certificate(files[0].ca_cert.read_bytes())
    for each in files:
        leaf = x509.load_pem_x509_certificates(each.server_cert.read_bytes())[0]
        leaf.verify_directly_issued_by(ca)
        assert oct(each.ca_key.stat().st_mode & 0o777) == "0o600"
    engine.dispose()


def test_no_key_is_stored_in_plaintext(tmp_path: Path, url: str) -> None:
    clock = FrozenClock()
    services = _replica(tmp_path, url, "one", clock)
    services.keys.rotate(clock.now())
    engine, _ = open_server_database(url)
    share_ca(services.settings, engine, clock.now())
    store = KeyStore(engine, KeyEncryptionKey.parse(TEST_KEK, "test"))
    secrets = [k.secret for kind in (SIGNING, SEALING, CA) for k in store.keys(kind)]
    assert len(secrets) == 4  # two signing keys, the sealing key, the CA's key
    for key in services.keys.active_keys(clock.now()):  # the signing keys as the tokens' signer holds them
        secrets.append(key.private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    raw = repr(table_rows(engine)).encode()
    for secret in secrets:
        body = secret.replace(b"\n", b"")
        for shown in (secret, body, base64.b64encode(secret), base64.urlsafe_b64encode(secret), secret.hex().encode()):
            middle = len(shown) // 2
            assert shown[middle:middle + 32] not in raw  # from the middle: PEM and DER headers are alike for all keys
    assert b"PRIVATE KEY" not in raw
    engine.dispose()


def test_the_key_encryption_key_is_rotated_by_sealing_every_key_again(tmp_path: Path, url: str) -> None:
    from click.testing import CliRunner

    from cielo.cli.main import cli

    clock = FrozenClock()
    kid = _replica(tmp_path, url, "before", clock).keys.signing_key().kid
    new = base64.b64encode(os.urandom(32)).decode()
    (tmp_path / "old").write_text(TEST_KEK)
    (tmp_path / "new").write_text(new)
    done = CliRunner().invoke(cli, ["keys", "rewrap", "--database-url", url, "--key-encryption-key-file",
                                    str(tmp_path / "old"), "--new-key-encryption-key-file", str(tmp_path / "new"),
                                    "-o", "json"])
    assert done.exit_code == 0, done.output
    assert '"resealed": 3' in done.output  # the KEK's check, the signing key, the sealing key
    after = Settings(data_dir=tmp_path / "after", database_url=url, key_encryption_key=new)
    assert build_services(after, clock).keys.signing_key().kid == kid
    with pytest.raises(DataDirectoryError, match="another key-encryption key"):
        _replica(tmp_path, url, "stale", clock)
