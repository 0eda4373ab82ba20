"""The data directory's database: refused when damaged or missing beside the data that needs it, upgraded when
an older Cielo made it, and moved aside (never deleted) when the administrator asks to start over.

A data directory holds the database (`cielo.db`), the token signing keys (`keys/`), the key that seals account
keys (`sealing.key`) and the TLS files (`tls/`). Signing keys or a sealing key without a database mean the
database was lost: starting anyway would silently make a brand-new tenant beside the old keys, so Cielo refuses,
and says how to recover (restore from a backup, or `cielo up --reset`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from pathlib import Path

from sqlalchemy import Engine, inspect, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError

from cielo.errors import DataDirectoryError
from cielo.store.db import open_engine
from cielo.store.migrate import Upgrade, upgrade

SEALING_KEY = "sealing.key"
KEYS = "keys"


def _existing_keys(data_dir: Path) -> list[Path]:
    found: list[Path] = []
    keys = data_dir / KEYS
    if keys.is_dir():
        found += sorted(p for p in keys.iterdir() if p.suffix in (".json", ".key"))
    if (data_dir / SEALING_KEY).exists():
        found.append(data_dir / SEALING_KEY)
    return found


def check_database_present(data_dir: Path, db_path: Path) -> None:
    """Refuse a missing (or emptied) database beside existing keys: the tenant, its users and its resources were
    in it."""
    with contextlib.suppress(FileNotFoundError):
        if db_path.is_dir():
            raise DataDirectoryError(db_path, "is a directory, not a database")
        if db_path.stat().st_size > 0:
            return
    keys = _existing_keys(data_dir)
    if keys:
        state = "is empty" if db_path.exists() else "is missing"
        raise DataDirectoryError(db_path, f"{state}, but {data_dir} holds keys of an existing Cielo "
                                          f"({keys[0].relative_to(data_dir)}): its tenant, users and resources "
                                          "were in that database")


def open_database(data_dir: Path, db_path: Path, database_url: str | None = None) -> tuple[Engine, Upgrade | None]:
    """Open the SQLite database of `data_dir`, refusing a damaged or missing one, and bring its schema to the
    newest revision (a backup is kept when an existing database changes). Raises `DataDirectoryError`.

    With `database_url` (a server such as PostgreSQL, shared by replicas) that database is opened and migrated
    instead; the data directory then keeps only what is per replica."""
    if database_url is not None:
        return open_server_database(database_url)
    check_database_present(data_dir, db_path)
    try:
        engine = open_engine(db_path)
    except OSError as exc:
        raise DataDirectoryError(db_path, f"cannot be opened ({exc.strerror or exc})") from exc
    try:
        with engine.connect() as conn:
            conn.execute(text("PRAGMA schema_version")).scalar()  # reads the header: "file is not a database"
    except DBAPIError as exc:
        engine.dispose()
        raise DataDirectoryError(db_path, f"cannot be read as a SQLite database ({exc.orig})") from exc
    try:
        _check_sealing_key(data_dir, engine)  # before the upgrade: a refused directory is left as it was
        upgraded = upgrade(engine, db_path)
    except BaseException:
        engine.dispose()
        raise
    if upgraded is not None:
        engine.dispose()  # pooled connections may cache the schema as it was (SQLite's PRAGMAs read that cache)
    return engine, upgraded


def open_server_database(url: str) -> tuple[Engine, Upgrade | None]:
    """Open the database at `url` and bring its schema to the newest revision (no backup: take the server's own,
    e.g. pg_dump, before upgrading Cielo). Raises `DataDirectoryError` naming the URL without its password."""
    try:
        engine = open_engine(url)
    except (ArgumentError, ImportError, ValueError) as exc:
        raise DataDirectoryError(_shown(url), f"is not a database URL Cielo can open ({exc})") from exc
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1")).scalar()
    except DBAPIError as exc:
        engine.dispose()
        raise DataDirectoryError(where, f"cannot be reached ({_first_line(exc.orig)})") from exc
    try:
        upgraded = upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    if upgraded is not None:
        engine.dispose()
    return engine, upgraded


def _shown(url: str) -> str:
    """A URL for a message: without the password (even one that does not parse)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1] if "@" in url else url


def _first_line(error: BaseException | None) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _check_sealing_key(data_dir: Path, engine: Engine) -> None:
    """Account keys are sealed with `sealing.key`: without it they can never be shown again (listKeys), and a
    new key would hide that until someone asks."""
    if (data_dir / SEALING_KEY).exists():
        return
    with engine.connect() as conn:
        if not inspect(conn).has_table("account_keys"):  # a new database
            return
        sealed = conn.execute(text("SELECT 1 FROM account_keys LIMIT 1")).first()
    if sealed is not None:
        raise DataDirectoryError(data_dir / SEALING_KEY, "is missing, but the database holds account keys sealed "
                                                         "with it")


def running_server_pid(data_dir: Path) -> int | None:
    """The process id of a `cielo up` serving `data_dir` now (from its server.json), if one is alive."""
    import json

    try:
        pid = int(json.loads((data_dir / "server.json").read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid == os.getpid() or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return pid  # no /proc to tell: assume it is the server
    # Empty while a process is being started (or is a zombie): cannot tell, so assume it is.
    return pid if b"cielo" in cmdline or not cmdline else None


def move_aside(data_dir: Path, now: dt.datetime | None = None) -> Path | None:
    """Rename `data_dir` to `DATA_DIR.bak-<UTC timestamp>` (nothing is deleted); None when there is nothing to move.
    Refuses while a server runs on it."""
    if not data_dir.exists():
        return None
    pid = running_server_pid(data_dir)
    if pid is not None:
        raise DataDirectoryError(data_dir, f"is in use by a running Cielo (process {pid}); stop it first")
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    target = data_dir.with_name(f"{data_dir.name}.bak-{stamp}")
    counter = 1
    while target.exists():
        target = data_dir.with_name(f"{data_dir.name}.bak-{stamp}-{counter}")
        counter += 1
    data_dir.rename(target)
    return target
