"""Shared fixtures. `cielo_server` is one real `cielo up` process for the whole test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.server import CieloServer, can_bind_443, start_server


@pytest.fixture(scope="session")
def cheap_password_hashes() -> Iterator[object]:
    """argon2id at its lowest cost (t=1, m=8 KiB, p=1) for passwords hashed in this process, and a dummy hash of
    the same cost for `burn_password_time`: a production hash costs ~0.15 s, and the in-process tiers (tests/unit,
    tests/api) hash and verify passwords hundreds of times without being about that cost. Verification reads the
    cost from the hash, so what is checked is unchanged. tests/unit/identity/test_secrets.py checks the production
    hasher (this fixture's value); a real server process (e2e, security) never sees this."""
    from argon2 import PasswordHasher

    from cielo.identity import secrets

    production = secrets._hasher
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(secrets, "_hasher", cheap)
        patch.setattr(secrets, "_DUMMY_HASH", cheap.hash("cielo-dummy-password-for-timing"))
        yield production


@pytest.fixture(scope="session")
def cielo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CieloServer]:
    data_dir = tmp_path_factory.mktemp("cielo") / "data"
    server = start_server(data_dir, listen_443=can_bind_443(),
                          # The whole suite signs in from one address: keep the per-address throttle out of its way.
                          env={"CIELO_DEVICE_CODE_INTERVAL_S": "1", "CIELO_SIGNIN_THROTTLE_FAILURES": "10000"})
    yield server
    server.stop()


@pytest.fixture()
def client_env(cielo_server: CieloServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Point this test process's clients at Cielo (CA bundle, authority host, CLI config dir)."""
    env = cielo_server.client_env()
    env["CIELO_CONFIG_DIR"] = str(tmp_path / "cielo-config")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_USERNAME",
                 "AZURE_PASSWORD", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE",
                 "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET"):
        monkeypatch.delenv(name, raising=False)
    return env
