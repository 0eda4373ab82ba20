"""Schema migrations (Alembic), run by Cielo itself: `cielo up` brings the database to the newest revision before
its workers fork. The scripts ship inside the package (store/migrations/); no alembic.ini is needed.

- A new database is built by running every revision from the baseline.
- A database made by the last release before migrations (tables, no `alembic_version`) is stamped with the
  baseline revision (its schema), then upgraded.
- Before changing an existing SQLite database, Cielo checks it (`PRAGMA quick_check`) and copies it with
  SQLite's backup API to `cielo.db.before-upgrade-<timestamp>` beside it, so an upgrade can always be undone
  by putting that file back (with the Cielo that made it).
- A database at the newest revision costs one query at start (Alembic is not even imported).

Developers add a revision with `python -m cielo.store.migrate revision -m "what changes"`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DBAPIError

from cielo.errors import DataDirectoryError

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPTS = Path(__file__).with_name("migrations")
BASELINE = "0001_baseline"
# The newest revision. Only a shortcut: a database at another revision goes through Alembic, which knows best;
# tests/unit/store/test_migrations.py checks that this is the head of the scripts.
HEAD = "0007_shared_keys"
PRE_MIGRATIONS = "(none: a release before migrations)"
NEW = "(new database)"

log = logging.getLogger("cielo.store.migrations")


@dataclass(frozen=True)
class Upgrade:
    """What `upgrade` did: from which revision to which, the backup it made, and the changes to rows it logged
    (duplicates removed or renamed)."""

    from_revision: str
    to_revision: str
    backup: Path | None = None
    notes: tuple[str, ...] = field(default=())


def stored_revision(engine: Engine) -> str | None:
    """The revision recorded in the database; None when it has no `alembic_version` table (a new database, or
    one from a release before migrations)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine, db_path: Path | None = None) -> Upgrade | None:
    """Bring the database to the newest revision; None when it was there already. `db_path` (SQLite) is where
    the backup goes beside. Raises `DataDirectoryError` for a database this Cielo cannot upgrade."""
    where = db_path or engine.url.render_as_string(hide_password=True)
    current = _fast_revision(engine)
    if current == HEAD:
        return None
    from alembic import command
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
    config = _config()
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    head = ScriptDirectory.from_config(config).get_current_head()
    if current is not None and current not in known:
        raise DataDirectoryError(where, f"has schema revision {current!r}, which this Cielo does not know: a newer "
                                        "Cielo made or upgraded it; run that one, or restore a backup made by this one")
    if current == head:
        return None
    from_revision = current or (PRE_MIGRATIONS if "tenants" in tables else NEW)
    backup = None
    if tables - {"alembic_version"} and db_path is not None:
        _check_integrity(engine, db_path)
        backup = _backup(db_path)
    notes: list[str] = []
    migration_engine = _transactional_engine(engine)
    try:
        with _collect(notes):
            if current is None and "tenants" in tables:
                missing = _baseline_missing(tables)
                if missing:
                    raise DataDirectoryError(where, "is not a complete Cielo database (no table "
                                                    f"{', '.join(sorted(missing))}); restore it from a backup")
                _run(migration_engine, config, lambda cfg: command.stamp(cfg, BASELINE))
            _run(migration_engine, config, lambda cfg: command.upgrade(cfg, "head"))
    except CommandError as exc:
        raise DataDirectoryError(where, f"cannot be upgraded: {exc}") from exc
    except DBAPIError as exc:
        raise DataDirectoryError(where, f"cannot be upgraded: {exc.orig}") from exc
    finally:
        migration_engine.dispose()
    upgraded = Upgrade(from_revision, str(head), backup, tuple(notes))
    if backup is not None:
        log.info("upgraded the database %s from %s to %s; the previous one is kept at %s", where, from_revision,
                 head, backup)
    return upgraded


# ----------------------------------------------------------------------------- internals
def _fast_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None  # no such table; a damaged file fails again, with its message, below


def _config(connection: Any = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _run(engine: Engine, config: Config, action: Any) -> None:
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        action(config)
        conn.commit()


def _transactional_engine(engine: Engine) -> Engine:
    """An engine for the migrations whose transactions are real: Python's sqlite3 module otherwise runs DDL
    outside any transaction (SQLAlchemy's pysqlite recipe), and a failed upgrade could leave half a schema. One
    write lock for the whole upgrade (BEGIN IMMEDIATE); foreign keys off while batch mode copies tables."""
    if engine.dialect.name != "sqlite":
        return create_engine(engine.url)
    migration = create_engine(engine.url)

    @event.listens_for(migration, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.close()

    @event.listens_for(migration, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return migration


def _baseline_missing(tables: set[str]) -> set[str]:
    from cielo.store.migrations.versions import v0001_baseline

    return set(v0001_baseline.TABLES) - tables


def _check_integrity(engine: Engine, db_path: Path) -> None:
    with engine.connect() as conn:
        problems = [row[0] for row in conn.exec_driver_sql("PRAGMA quick_check(5)")]
    if problems != ["ok"]:
        raise DataDirectoryError(db_path, f"is damaged (SQLite integrity check: {'; '.join(problems)}); restore it "
                                          "from a backup")


def _backup(db_path: Path) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = db_path.with_name(f"{db_path.name}.before-upgrade-{stamp}")
    counter = 1
    while target.exists():
        target = db_path.with_name(f"{db_path.name}.before-upgrade-{stamp}-{counter}")
        counter += 1
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # private, as the database is
    source = sqlite3.connect(db_path)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    return target


class _Notes(logging.Handler):
    def __init__(self, notes: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.notes = notes

    def emit(self, record: logging.LogRecord) -> None:
        self.notes.append(record.getMessage())


@contextlib.contextmanager
def _collect(notes: list[str]) -> Iterator[None]:
    handler = _Notes(notes)
    log.addHandler(handler)
    propagate = log.propagate
    log.propagate = False  # `cielo up` prints them itself; a server's log gets them from its caller
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.propagate = propagate


# ----------------------------------------------------------------------------- for developers
def main(argv: list[str] | None = None) -> int:
    """`python -m cielo.store.migrate revision -m MESSAGE`: a new revision, autogenerated against a scratch
    database at the newest revision (review it before committing)."""
    import argparse

    from alembic import command

    parser = argparse.ArgumentParser(prog="python -m cielo.store.migrate")
    sub = parser.add_subparsers(dest="command", required=True)
    revision = sub.add_parser("revision", help="write a new revision into store/migrations/versions/")
    revision.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        from cielo.store.db import open_engine

        engine = open_engine(Path(scratch) / "scratch.db")
        upgrade(engine)
        with engine.connect() as conn:
            config = _config(conn)
            config.set_main_option("file_template", "v%%(rev)s_%%(slug)s")  # a module name mypy accepts
            command.revision(config, message=args.message, autogenerate=True)
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
