"""Shared fixtures. `cielo_server` is one real `cielo up` process for the whole test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.server import CieloServer, can_bind_443, start_server


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
