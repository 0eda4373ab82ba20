"""Upgrades and damaged data directories, through a real `cielo up`.

A data directory made by the previous release (bc75321, the last before schema migrations) starts on today's
Cielo with all its data: the committed copy in tests/fixtures/release-bc75321/ (tests/fixtures/
make_release_datadir.py regenerates it), and one built right here from that release's source when git has it.
A damaged or incomplete data directory is refused with one line naming the file and a non-zero exit, never a
traceback; `cielo up --reset` moves it aside and starts over.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.make_release_datadir import FIXTURE, RELEASE, build, release_available
from support.server import CLI_CLIENT_ID, CieloServer, free_port, start_server

pytestmark = pytest.mark.e2e

CIELO = [sys.executable, "-m", "cielo.cli.main"]
ARM_SCOPE = "https://management.core.windows.net//.default"
API = {"api-version": "2022-04-01"}


@pytest.fixture()
def servers() -> Iterator[list[CieloServer]]:
    started: list[CieloServer] = []
    yield started
    for server in started:
        server.stop()


def _copy_fixture(target: Path) -> dict[str, Any]:
    shutil.copytree(FIXTURE, target)
    manifest: dict[str, Any] = json.loads((target / "manifest.json").read_text())
    (target / "manifest.json").unlink()
    return manifest


def _bearer(server: CieloServer, form: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token(form)['access_token']}"}


def check_everything_is_there(server: CieloServer, manifest: dict[str, Any], data_dir: Path) -> None:
    """The release's data, through today's APIs: same tenant and subscription, the user signs in with her
    password, the application with its secret, the group, the federated credential, the custom role, the role
    assignments (and they grant), the account keys sealed by the release."""
    assert (server.tenant_id, server.subscription_id) == (manifest["tenantId"], manifest["subscriptionId"])
    log = server.log_text()
    assert f"Upgraded the database {data_dir / 'cielo.db'} from schema (none: a release before migrations)" in log
    assert len(list(data_dir.glob("cielo.db.before-upgrade-*"))) == 1
    user, app = manifest["user"], manifest["app"]
    alice = _bearer(server, {"client_id": CLI_CLIENT_ID, "grant_type": "password", "username": user["upn"],
                             "password": user["password"], "scope": ARM_SCOPE})
    service = _bearer(server, {"client_id": app["appId"], "client_secret": app["secret"],
                               "grant_type": "client_credentials", "scope": ARM_SCOPE})
    admin = {"Authorization": f"Bearer {server.admin_token('https://management.core.windows.net/')}"}
    sub = f"/subscriptions/{manifest['subscriptionId']}"
    with server.http() as client:
        members = server.graph("GET", f"/groups/{manifest['group']['id']}/members")["value"]
        assert [m["id"] for m in members] == [user["id"]]
        federated = server.graph("GET", f"/applications/{app['objectId']}/federatedIdentityCredentials")["value"]
        assert [f["name"] for f in federated] == [app["federatedName"]]
        assert server.graph("GET", f"/servicePrincipals/{app['spObjectId']}")["appId"] == app["appId"]
        role = client.get(f"{sub}/providers/Microsoft.Authorization/roleDefinitions/{manifest['customRole']['id']}",
                          params=API, headers=admin)
        assert role.status_code == 200 and role.json()["properties"]["roleName"] == manifest["customRole"]["roleName"]
        listed = client.get(f"{sub}/providers/Microsoft.Authorization/roleAssignments", params=API, headers=admin)
        assert listed.status_code == 200
        found = {a["name"]: a["properties"]["principalId"] for a in listed.json()["value"]}
        for name, expected in manifest["assignments"].items():
            assert found.get(name) == expected["principalId"], (name, found)
        # Both assignments grant (Reader; the custom role's resource group read), through the index loaded at start.
        for who in (alice, service):
            groups = client.get(f"{sub}/resourcegroups", params={"api-version": "2022-09-01"}, headers=who)
            assert groups.status_code == 200 and "cielo-rg" in {g["name"] for g in groups.json()["value"]}
        keys = client.post(f"{manifest['account']}/listKeys", params={"api-version": "2023-05-01"}, headers=admin)
        assert keys.status_code == 200 and keys.json() == manifest["accountKeys"]


def test_the_committed_release_data_directory_upgrades_without_loss(tmp_path: Path,
                                                                    servers: list[CieloServer]) -> None:
    data = tmp_path / "data"
    manifest = _copy_fixture(data)
    servers.append(start_server(data))
    check_everything_is_there(servers[0], manifest, data)


@pytest.mark.skipif(not release_available(), reason=f"git cannot hand out {RELEASE} (a shallow clone?); the "
                                                    "committed copy of its data directory is tested instead")
def test_a_data_directory_the_release_makes_now_upgrades_without_loss(tmp_path: Path,
                                                                      servers: list[CieloServer]) -> None:
    """The release's own `cielo up` (its source from git, this environment's packages) makes the data directory
    here, so this does not depend on the committed copy being what that release makes."""
    data = tmp_path / "release-data"
    manifest = build(data, work=tmp_path)
    assert "signin_failures" not in {row[0] for row in sqlite3.connect(data / "cielo.db").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}  # really the old schema
    servers.append(start_server(data))
    check_everything_is_there(servers[0], manifest, data)


# ----------------------------------------------------------------------------- damaged data directories
def _up(data: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CIELO, "up", "--data-dir", str(data), "--port", str(free_port()), *extra],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def _garbage_key_metadata(data: Path) -> Path:
    meta = next((data / "keys").glob("*.json"))
    meta.write_text("{\"kid\": ")
    return meta


def _truncated_signing_key(data: Path) -> Path:
    pem = next((data / "keys").glob("*.key"))
    pem.write_bytes(pem.read_bytes()[:200])
    return pem


def _truncated_sealing_key(data: Path) -> Path:
    key = data / "sealing.key"
    key.write_bytes(key.read_bytes()[:17])
    return key


def _missing_database(data: Path) -> Path:
    (data / "cielo.db").unlink()
    return data / "cielo.db"


def _corrupt_database(data: Path) -> Path:
    db = data / "cielo.db"
    db.write_bytes(b"\x00garbage where a database was" * 1000)
    return db


def _unreadable_database(data: Path) -> Path:
    db = data / "cielo.db"
    db.unlink()
    db.mkdir()  # root reads any file; a directory no one can open as a database
    return db


def _missing_sealing_key(data: Path) -> Path:
    (data / "sealing.key").unlink()
    return data / "sealing.key"


def _contents(data: Path) -> list[str]:
    """The files of a data directory, change markers aside (reading the keys may create keys/generation)."""
    return sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.name != "generation")


DAMAGES: dict[str, Callable[[Path], Path]] = {
    "garbage key metadata": _garbage_key_metadata, "truncated signing key": _truncated_signing_key,
    "truncated sealing key": _truncated_sealing_key, "missing database beside keys": _missing_database,
    "corrupt database": _corrupt_database, "unreadable database": _unreadable_database,
    "missing sealing key beside sealed account keys": _missing_sealing_key,
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_data_directory_is_refused_with_one_line_naming_the_file(tmp_path: Path, damage: str) -> None:
    data = tmp_path / "data"
    _copy_fixture(data)
    named = DAMAGES[damage](data)
    before = _contents(data)
    done = _up(data)
    assert done.returncode != 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith(f"ERROR: cannot start: {named}: "), errors[0]
    assert f"restore it from a backup, or run `cielo up --reset` to move {data} aside" in errors[0]
    assert "Cielo is running" not in done.stdout
    # Refused before anything was created or upgraded: no new tenant, no backup, no TLS files.
    assert _contents(data) == before


def test_reset_moves_the_old_data_directory_aside_and_starts_over(tmp_path: Path,
                                                                   servers: list[CieloServer]) -> None:
    data = tmp_path / "data"
    manifest = _copy_fixture(data)
    _missing_database(data)
    assert _up(data).returncode != 0
    server = start_server(data, extra_args=("--reset",))
    servers.append(server)
    kept = list(tmp_path.glob("data.bak-*"))
    assert len(kept) == 1 and sorted(p.name for p in kept[0].iterdir()) == ["keys", "sealing.key"]
    assert f"Moved the data directory {data} aside to {kept[0]}" in server.log_text()
    assert server.tenant_id and server.tenant_id != manifest["tenantId"]  # a new tenant, on purpose
    assert "Created the administrator" in server.log_text()
    with httpx.Client(verify=server.bundle) as client:
        assert client.get(f"{server.base_url}/healthz").status_code == 200
    # While it runs, its data directory is not moved from under it.
    refused = _up(data, "--reset")
    assert refused.returncode != 0 and f"is in use by a running Cielo (process {server.process.pid})" in refused.stderr
    assert data.exists() and len(list(tmp_path.glob("data.bak-*"))) == 1


@pytest.mark.parametrize("command", [["keys", "list"], ["keys", "rotate"]])
def test_cielo_keys_names_a_damaged_key_file(tmp_path: Path, command: list[str]) -> None:
    data = tmp_path / "data"
    _copy_fixture(data)
    meta = _garbage_key_metadata(data)
    done = subprocess.run([*CIELO, *command, "--data-dir", str(data)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip() == f"ERROR: {meta}: is not signing key metadata (JSON with kid, x5c and created_at)"
