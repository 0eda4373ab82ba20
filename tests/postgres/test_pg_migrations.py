"""The same Alembic migrations on PostgreSQL as on SQLite: a new database gets exactly the tables of store/db.py;
a previous release's data (with the duplicates two workers could store) upgrades through every revision to the
same rows SQLite's upgrade leaves; a failed upgrade changes nothing; a newer schema is refused."""

from __future__ import annotations

import importlib
import pkgutil
import shutil
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, insert, inspect, text

import cielo.store
from cielo.errors import DataDirectoryError
from cielo.store.db import metadata, open_engine
from cielo.store.migrate import BASELINE, HEAD, _config, stored_revision, upgrade
from postgres.database import table_rows, temporary_database

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "release-bc75321"
# Every store module's tables in the metadata (some modules define their own).
for _module in pkgutil.iter_modules(cielo.store.__path__):
    importlib.import_module(f"cielo.store.{_module.name}")


def test_a_new_postgresql_database_gets_exactly_the_tables_of_store_db() -> None:
    with temporary_database() as url:
        engine = open_engine(url)
        done = upgrade(engine)
        assert done is not None and done.to_revision == HEAD and done.backup is None
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
            names = {i["name"] for t in metadata.tables for i in inspect(conn).get_indexes(t)}
        # The unique indexes the services map to Azure's conflicts exist under their names (store/integrity.py).
        assert {"uq_role_assignments_principal_role_scope", "uq_custom_roles_tenant_role_name",
                "uq_resources_subdomain_key", "uq_federated_credentials_app_name"} <= names
        assert stored_revision(engine) == HEAD and upgrade(engine) is None
        engine.dispose()


def _release_rows_into(url: str, sqlite_db: Path) -> None:
    """A PostgreSQL database at the baseline revision holding every row of a previous release's SQLite database."""
    engine = open_engine(url)
    with engine.connect() as conn:
        command.upgrade(_config(conn), BASELINE)
        conn.commit()
    source = open_engine(sqlite_db)
    target = MetaData()
    target.reflect(bind=engine)
    with source.connect() as read, engine.begin() as write:
        for table in target.sorted_tables:
            if table.name == "alembic_version":
                continue
            rows = [dict(r._mapping) for r in read.execute(text(f'SELECT * FROM "{table.name}"'))]
            if rows:
                write.execute(insert(table), rows)
    source.dispose()
    engine.dispose()


def test_a_previous_release_upgrades_on_postgresql_to_the_rows_sqlite_gets(tmp_path: Path) -> None:
    from unit.store.test_migrations import _insert_duplicates  # what two workers of that release could store

    db = tmp_path / "cielo.db"
    shutil.copy(FIXTURE / "cielo.db", db)
    _insert_duplicates(db)
    shutil.copy(db, tmp_path / "copy.db")
    with temporary_database() as url:
        _release_rows_into(url, tmp_path / "copy.db")
        engine = open_engine(url)
        # Stamped with the baseline already (its tables exist): upgrade runs 0002 .. HEAD on the data.
        done = upgrade(engine)
        assert done is not None and done.to_revision == HEAD
        sqlite_engine = open_engine(db)
        sqlite_done = upgrade(sqlite_engine, db)
        assert sqlite_done is not None
        assert sorted(done.notes) == sorted(sqlite_done.notes) and len(done.notes) == 5  # each duplicate resolved
        on_postgres, on_sqlite = table_rows(engine), table_rows(sqlite_engine)
        assert on_postgres == on_sqlite
        assert on_postgres["custom_roles"] and on_postgres["role_assignments"]
        sqlite_engine.dispose()
        engine.dispose()


def test_a_failed_upgrade_on_postgresql_changes_nothing(tmp_path: Path) -> None:
    from unit.store.test_migrations import _insert_duplicates

    db = tmp_path / "cielo.db"
    shutil.copy(FIXTURE / "cielo.db", db)
    _insert_duplicates(db)
    with temporary_database() as url:
        _release_rows_into(url, db)
        engine = open_engine(url)
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE custom_roles ADD COLUMN role_name_key TEXT"))  # 0003 will trip on it
        before = table_rows(engine)
        with pytest.raises(DataDirectoryError, match="cannot be upgraded"):
            upgrade(engine)
        # 0002's new table and 0003's deduplication ran in the transaction of the step that failed.
        assert table_rows(engine) == before and stored_revision(engine) == BASELINE
        engine.dispose()


def test_a_postgresql_database_from_a_newer_cielo_is_refused() -> None:
    with temporary_database() as url:
        engine = open_engine(url)
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
        with pytest.raises(DataDirectoryError, match="9999_future"):
            upgrade(engine)
        engine.dispose()
