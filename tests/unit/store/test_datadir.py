"""A damaged or incomplete data directory is refused with one error naming the file; --reset moves it aside."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect

from cielo.core.sealing import Sealer
from cielo.errors import DataDirectoryError
from cielo.identity.keys import KeyRing
from cielo.store import integrity
from cielo.store.datadir import move_aside, open_database

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "release-bc75321"


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    """A copy of a previous release's data directory (database, signing key, sealing key)."""
    target = tmp_path / "data"
    shutil.copytree(FIXTURE, target)
    (target / "manifest.json").unlink()
    return target


def test_a_new_data_directory_gets_a_database(tmp_path: Path) -> None:
    engine, upgraded = open_database(tmp_path, tmp_path / "cielo.db")
    assert upgraded is not None and "tenants" in inspect(engine).get_table_names()
    engine.dispose()


def test_every_named_constraint_exists_in_the_database(tmp_path: Path) -> None:
    engine, _ = open_database(tmp_path, tmp_path / "cielo.db")
    inspector = inspect(engine)
    keys = [value for value in vars(integrity).values() if isinstance(value, integrity.UniqueKey)]
    assert len(keys) >= 10
    for key in keys:
        unique = [tuple(i["column_names"]) for i in inspector.get_indexes(key.table) if i["unique"]]
        unique += [tuple(c["column_names"]) for c in inspector.get_unique_constraints(key.table)]
        unique.append(tuple(inspector.get_pk_constraint(key.table)["constrained_columns"]))
        assert key.columns in unique, key
    engine.dispose()


@pytest.mark.parametrize("emptied", [False, True])
def test_a_missing_database_beside_keys_is_refused(data_dir: Path, emptied: bool) -> None:
    db = data_dir / "cielo.db"
    if emptied:
        db.write_bytes(b"")
    else:
        db.unlink()
    with pytest.raises(DataDirectoryError) as caught:
        open_database(data_dir, db)
    assert str(caught.value).startswith(f"{db}: is {'empty' if emptied else 'missing'}, but {data_dir} holds keys")
    assert db.exists() == emptied  # nothing created meanwhile


def test_only_a_sealing_key_left_is_enough_to_refuse(data_dir: Path) -> None:
    shutil.rmtree(data_dir / "keys")
    (data_dir / "cielo.db").unlink()
    with pytest.raises(DataDirectoryError, match=r"sealing\.key"):
        open_database(data_dir, data_dir / "cielo.db")


@pytest.mark.parametrize("content", [b"garbage, not SQLite" * 300, b"SQLite format 3\x00" + b"\xff" * 4000])
def test_a_damaged_database_is_refused(data_dir: Path, content: bytes) -> None:
    (data_dir / "cielo.db").write_bytes(content)
    with pytest.raises(DataDirectoryError) as caught:
        open_database(data_dir, data_dir / "cielo.db")
    assert str(caught.value).startswith(f"{data_dir / 'cielo.db'}: ")
    assert "\n" not in str(caught.value)


def test_a_database_that_is_a_directory_is_refused(data_dir: Path) -> None:
    (data_dir / "cielo.db").unlink()
    (data_dir / "cielo.db").mkdir()
    with pytest.raises(DataDirectoryError, match="is a directory"):
        open_database(data_dir, data_dir / "cielo.db")


def test_a_missing_sealing_key_beside_sealed_account_keys_is_refused(data_dir: Path) -> None:
    (data_dir / "sealing.key").unlink()
    with pytest.raises(DataDirectoryError, match=r"sealing\.key: is missing, but the database holds account keys"):
        open_database(data_dir, data_dir / "cielo.db")


def test_a_truncated_sealing_key_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "sealing.key"
    Sealer(key)
    key.write_bytes(key.read_bytes()[:20])
    with pytest.raises(DataDirectoryError, match=f"^{key}: is not a sealing key"):
        Sealer(key)


@pytest.mark.parametrize("damage", ["garbage", "not-an-object", "no-kid", "bad-x5c", "truncated-pem", "no-pem"])
def test_damaged_signing_keys_are_refused_naming_the_file(data_dir: Path, damage: str) -> None:
    keys = data_dir / "keys"
    meta = next(keys.glob("*.json"))
    pem = meta.with_suffix(".key")
    named = meta
    if damage == "garbage":
        meta.write_text("{ this is not json")
    elif damage == "not-an-object":
        meta.write_text("[1, 2]")
    elif damage == "no-kid":
        meta.write_text(json.dumps({k: v for k, v in json.loads(meta.read_text()).items() if k != "kid"}))
    elif damage == "bad-x5c":
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "x5c": "%%%"}))
    elif damage == "truncated-pem":
        pem.write_bytes(pem.read_bytes()[:300])
        named = pem
    else:
        pem.unlink()
        named = pem
    with pytest.raises(DataDirectoryError) as caught:
        KeyRing(keys, 3600).ensure_key(0.0)
    assert str(caught.value).startswith(f"{named}: ")


def test_intact_signing_keys_load(data_dir: Path) -> None:
    ring = KeyRing(data_dir / "keys", 3600)
    ring.ensure_key(0.0)
    assert [k.kid for k in ring.active_keys(0.0)] == [next((data_dir / "keys").glob("*.json")).stem]


def test_move_aside_keeps_everything(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "cielo.db").write_text("x")
    now = dt.datetime(2026, 12, 8, 9, 30, 0, tzinfo=dt.UTC)
    moved = move_aside(data, now)
    assert moved == tmp_path / "data.bak-20261208T093000Z" and (moved / "cielo.db").read_text() == "x"
    assert not data.exists()
    data.mkdir()
    assert move_aside(data, now) == tmp_path / "data.bak-20261208T093000Z-1"
    assert move_aside(data, now) is None  # nothing left to move


def test_move_aside_refuses_while_a_server_runs_there(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # A process whose command line names cielo, as `cielo up` does, recorded in server.json as `cielo up` does.
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "cielo", "up"])
    try:
        (data / "server.json").write_text(json.dumps({"base_url": "https://x", "pid": server.pid}))
        with pytest.raises(DataDirectoryError, match=f"in use by a running Cielo \\(process {server.pid}\\)"):
            move_aside(data)
    finally:
        server.kill()
        server.wait()
    assert move_aside(data) is not None  # it stopped: the recorded pid is stale
