"""`cielo export` / `cielo import`: every row of a Cielo database, written to one file and loaded into another
database (a SQLite data directory into PostgreSQL, for replicas), without loss.

The file is JSON lines: a header (format, schema revision, tables), then one line per row (`{"t": table, "r": {column:
value}}`, bytes as `{"$b": base64}`; floats are written as Python writes them, which reads back to the same double).
A data directory's key files (signing keys, the sealing key, the CA) travel as `shared_keys` rows sealed with the
key-encryption key the replicas will use, never in plaintext. Password hashes, hashed secrets and sealed account keys
are in it as they are in the database: keep the file as private as the database (it is written 0600).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, MetaData, func, insert, select, text

from cielo.core.sealing import KeyEncryptionKey
from cielo.errors import DataDirectoryError
from cielo.store.keystore import CA, KEK, SEALING, SIGNING, key_versions, sealed_row, shared_keys

FORMAT = "cielo-export"
VERSION = 1
SKIP = ("alembic_version",)
_CHECK = b"cielo key-encryption key check"


def _tables(engine: Engine) -> MetaData:
    found = MetaData()
    found.reflect(bind=engine)
    return found


def _revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return {"$b": base64.b64encode(bytes(value)).decode("ascii")}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"$b"}:
        return base64.b64decode(value["$b"])
    return value


def key_file_rows(data_dir: Path, kek: KeyEncryptionKey, now: float) -> list[dict[str, Any]]:
    """A data directory's key files as the `shared_keys` rows a replica on a shared database would hold."""
    rows: list[dict[str, Any]] = [sealed_row(kek, KEK, "check", "", _CHECK, now, None)]
    keys_dir = data_dir / "keys"
    for meta_path in sorted(keys_dir.glob("*.json")) if keys_dir.is_dir() else []:
        try:
            meta = json.loads(meta_path.read_text())
            kid, x5c = str(meta["kid"]), str(meta["x5c"])
            pem = (keys_dir / f"{kid}.key").read_bytes()
            created, retire = float(meta["created_at"]), meta.get("retire_at")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataDirectoryError(meta_path, f"is not a readable signing key with its .key file ({exc})") from exc
        rows.append(sealed_row(kek, SIGNING, kid, x5c, pem, created, None if retire is None else float(retire)))
    sealing = data_dir / "sealing.key"
    if sealing.exists():
        rows.append(sealed_row(kek, SEALING, "sealing", "", sealing.read_bytes().strip(), now, None))
    ca_cert, ca_key = data_dir / "tls" / "ca.pem", data_dir / "tls" / "ca-key.pem"
    if ca_cert.exists() and ca_key.exists():
        rows.append(sealed_row(kek, CA, "ca", ca_cert.read_text(), ca_key.read_bytes(), now, None))
    return rows


def export_lines(engine: Engine, extra_keys: Iterable[dict[str, Any]] = ()) -> Iterator[str]:
    """The export of the database behind `engine` (at this Cielo's newest revision), with `extra_keys` (rows of
    `shared_keys`, from `key_file_rows`) added."""
    tables = [t for t in _tables(engine).sorted_tables if t.name not in SKIP]
    extra = list(extra_keys)
    yield json.dumps({"format": FORMAT, "version": VERSION, "revision": _revision(engine),
                      "tables": [t.name for t in tables]})
    with engine.connect() as conn:
        for table in tables:
            for row in conn.execute(select(table)):
                yield json.dumps({"t": table.name, "r": {k: _encode(v) for k, v in row._mapping.items()}},
                                 ensure_ascii=False)
    kinds = sorted({row["kind"] for row in extra})
    for key_row in extra:
        yield json.dumps({"t": shared_keys.name, "r": key_row})
    for kind in kinds:
        yield json.dumps({"t": key_versions.name, "r": {"kind": kind, "version": 1}})


def write_export(lines: Iterable[str], path: Path) -> int:
    """Write the export to `path` (created 0600, never over an existing file); the number of rows."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    rows = -1
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")
            rows += 1
    return rows


def import_file(handle: IO[str], engine: Engine, where: str) -> dict[str, int]:
    """Load an export into the (migrated, empty) database behind `engine`, in one transaction; rows per table.
    `DataDirectoryError` for a file that is not an export of this schema revision, or a database that holds data."""
    header = _header(handle.readline(), where)
    revision = _revision(engine)
    if header["revision"] != revision:
        raise DataDirectoryError(where, f"is at schema revision {revision}, the export at {header['revision']}: run "
                                        "`cielo migrate` on the data directory with this Cielo, then export again")
    tables = {t.name: t for t in _tables(engine).sorted_tables if t.name not in SKIP}
    with engine.connect() as conn:
        for table in tables.values():
            if conn.execute(select(func.count()).select_from(table)).scalar():
                raise DataDirectoryError(where, f"is not empty (table {table.name} has rows): import into a new "
                                                "database")
    pending: dict[str, list[dict[str, Any]]] = {name: [] for name in tables}
    for number, line in enumerate(handle, start=2):
        try:
            item = json.loads(line)
            pending[item["t"]].append({k: _decode(v) for k, v in item["r"].items()})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataDirectoryError(where, f"cannot take line {number} of the export ({exc})") from exc
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        for name, table in tables.items():  # parents before children (foreign keys)
            if pending[name]:
                conn.execute(insert(table), pending[name])
            counts[name] = len(pending[name])
    return counts


def _header(line: str, where: str) -> dict[str, Any]:
    try:
        header = json.loads(line)
        if header.get("format") != FORMAT or header.get("version") != VERSION:
            raise ValueError("not a Cielo export")
    except (ValueError, AttributeError) as exc:
        raise DataDirectoryError(where, f"cannot import a file that is not a `cielo export` ({exc})") from exc
    return dict(header)
