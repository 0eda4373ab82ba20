"""Schema migrations: the revisions build exactly the tables of store/db.py; the baseline is the previous
release's schema; a previous release's database upgrades without loss, duplicates removed (the oldest kept)
or renamed, a backup kept; a failed upgrade changes nothing."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from cielo.errors import DataDirectoryError
from cielo.store import activity, keystore, responses, signin, template_deployments
from cielo.store.db import metadata, open_engine
from cielo.store.migrate import BASELINE, HEAD, PRE_MIGRATIONS, _config, stored_revision, upgrade

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "release-bc75321"
MANIFEST = json.loads((FIXTURE / "manifest.json").read_text())
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"


def _schema(path: Path, *, skip: tuple[str, ...] = ("alembic_version",)) -> dict[str, str]:
    """name -> CREATE statement, whitespace and quoting normalised."""
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
    finally:
        connection.close()
    return {name: re.sub(r"\s+", " ", sql.replace('"', "")).replace("( ", "(").replace(" )", ")")
            for name, sql in rows if name not in skip}


def _release_db(tmp_path: Path) -> Path:
    target = tmp_path / "cielo.db"
    shutil.copy(FIXTURE / "cielo.db", target)
    return target


def _engine(path: Path) -> Engine:
    return open_engine(path)


def test_head_is_the_newest_script() -> None:
    assert ScriptDirectory.from_config(_config()).get_current_head() == HEAD


def test_a_new_database_gets_exactly_the_tables_of_store_db(tmp_path: Path) -> None:
    assert signin.signin_failures.name in metadata.tables and responses.stored_responses.name in metadata.tables
    assert template_deployments.template_deployments.name in metadata.tables
    assert activity.activity_log.name in metadata.tables and keystore.shared_keys.name in metadata.tables
    engine = _engine(tmp_path / "new.db")
    done = upgrade(engine, tmp_path / "new.db")
    assert done is not None and done.to_revision == HEAD and done.backup is None
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    assert stored_revision(engine) == HEAD
    assert upgrade(engine, tmp_path / "new.db") is None  # at the newest revision: nothing to do
    engine.dispose()
    # The same statements as metadata.create_all would issue.
    reference = _engine(tmp_path / "reference.db")
    metadata.create_all(reference)
    reference.dispose()
    assert _schema(tmp_path / "new.db") == _schema(tmp_path / "reference.db")


def test_the_baseline_is_the_schema_of_the_previous_release(tmp_path: Path) -> None:
    from alembic import command

    engine = _engine(tmp_path / "baseline.db")
    with engine.connect() as conn:
        command.upgrade(_config(conn), BASELINE)
        conn.commit()
    engine.dispose()
    assert _schema(tmp_path / "baseline.db") == _schema(FIXTURE / "cielo.db")


def _rows(path: Path, query: str) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(query).fetchall()
    finally:
        connection.close()


def test_a_previous_release_database_upgrades_with_its_data(tmp_path: Path) -> None:
    db = _release_db(tmp_path)
    tables = {name: _rows(db, f'SELECT * FROM "{name}"') for name in _schema(db) if not name.startswith("ix_")}
    engine = _engine(db)
    assert stored_revision(engine) is None
    done = upgrade(engine, db)
    engine.dispose()
    assert done is not None and (done.from_revision, done.to_revision) == (PRE_MIGRATIONS, HEAD)
    assert done.backup is not None and done.backup.parent == tmp_path and done.notes == ()
    for name, rows in tables.items():
        after = _rows(db, f'SELECT * FROM "{name}"')
        width = len(rows[0]) if rows else 0
        assert sorted(row[:width] for row in after) == sorted(rows), name  # new columns come last
    assert _rows(db, "SELECT version_num FROM alembic_version") == [(HEAD,)]
    assert _rows(db, "SELECT role_name_key FROM custom_roles") == [("fixture reader",)]
    assert _rows(db, "SELECT subdomain_key FROM resources WHERE subdomain_key IS NOT NULL") == [("cielo-openai",)]
    # The backup is the database as the release left it.
    assert _schema(done.backup) == _schema(FIXTURE / "cielo.db")
    assert oct(done.backup.stat().st_mode & 0o777) == "0o600"


def _insert_duplicates(db: Path) -> dict[str, str]:
    """What two workers of the previous release could store at once: the same principal, role and scope under
    other names (one older, one newer than the original), a custom role name twice, a subdomain twice, a
    federated credential name twice."""
    connection = sqlite3.connect(db)
    try:
        original = connection.execute(
            "SELECT name, scope, scope_key, tenant_id, principal_id, created_on FROM role_assignments "
            "WHERE role_definition_name = ?", (READER,)).fetchone()
        name, scope, scope_key, tenant, principal, created = original
        ids = {"original": name, "older": "00000000-0000-4000-8000-000000000001",
               "newer": "00000000-0000-4000-8000-000000000002"}
        for key, when in (("older", created - 10), ("newer", created + 10)):
            connection.execute(
                "INSERT INTO role_assignments (name, scope, scope_key, tenant_id, role_definition_name, principal_id,"
                " principal_type, created_on, updated_on) VALUES (?, ?, ?, ?, ?, ?, 'User', ?, ?)",
                (ids[key], scope.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/"), scope_key.upper(), tenant,
                 READER, principal, when, when))
        role = connection.execute("SELECT * FROM custom_roles").fetchone()
        connection.execute("INSERT INTO custom_roles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           ("00000000-0000-4000-8000-0000000000aa", role[1], "FIXTURE READER", *role[3:6],
                            role[6] + 10, role[7] + 10, role[8]))
        account = connection.execute("SELECT * FROM resources WHERE type = 'Microsoft.CognitiveServices/accounts'"
                                     ).fetchone()
        twin = "/subscriptions/x/resourcegroups/y/providers/microsoft.cognitiveservices/accounts/twin"
        system_data = json.dumps({"createdAt": "2999-01-01T00:00:00+00:00"})
        connection.execute("INSERT INTO resources VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (twin, twin, *account[2:5], account[5], "twin", *account[7:13], system_data, account[14]))
        fic = connection.execute("SELECT * FROM federated_credentials").fetchone()
        connection.execute("INSERT INTO federated_credentials VALUES (?, ?, ?, ?, ?, ?, ?)",
                           ("ffffffff-0000-4000-8000-000000000000", *fic[1:]))
        connection.commit()
    finally:
        connection.close()
    return ids


def test_duplicates_an_old_release_stored_are_resolved_keeping_the_oldest(tmp_path: Path) -> None:
    db = _release_db(tmp_path)
    ids = _insert_duplicates(db)
    engine = _engine(db)
    done = upgrade(engine, db)
    engine.dispose()
    assert done is not None
    kept = _rows(db, f"SELECT name, scope_key FROM role_assignments WHERE role_definition_name = '{READER}'")
    assert [row[0] for row in kept] == [ids["older"]]
    assert kept[0][1] == kept[0][1].lower()
    roles = sorted(row[0] for row in _rows(db, "SELECT role_name FROM custom_roles"))
    assert roles == ["FIXTURE READER (00000000)", "Fixture Reader"]
    assert sorted(_rows(db, "SELECT name, subdomain_key FROM resources WHERE type LIKE '%/accounts'"),
                  key=str) == [("cielo-openai", "cielo-openai"), ("twin", None)]
    assert sorted(row[0] for row in _rows(db, "SELECT name FROM federated_credentials")) == ["ci", "ci-ffffffff"]
    notes = "\n".join(done.notes)
    for word in (ids["original"], ids["newer"], "FIXTURE READER", "twin", "ci-ffffffff"):
        assert word in notes, notes
    assert ids["older"] not in [line.split()[3] for line in done.notes if line.startswith("removed")]
    # Nothing is lost for good: the backup still holds every row.
    assert len(_rows(done.backup, f"SELECT 1 FROM role_assignments WHERE role_definition_name = '{READER}'")) == 3
    # From now on the database refuses them itself.
    connection = sqlite3.connect(db)
    with pytest.raises(sqlite3.IntegrityError, match=r"role_assignments\.principal_id"):
        connection.execute(
            "INSERT INTO role_assignments SELECT '00000000-0000-4000-8000-000000000009', scope, scope_key, "
            "tenant_id, role_definition_name, principal_id, principal_type, description, condition, "
            "condition_version, created_on, updated_on, created_by, updated_by FROM role_assignments LIMIT 1")
    connection.close()


def test_a_build_that_made_signin_failures_itself_upgrades(tmp_path: Path) -> None:
    """Builds between the release and migrations created `signin_failures` with create(checkfirst=True)."""
    db = _release_db(tmp_path)
    engine = _engine(db)
    signin.signin_failures.create(engine)
    with engine.begin() as conn:
        conn.execute(signin.signin_failures.insert().values(key="k", failures=2, window_start=1.0, locked_until=0.0,
                                                            lockouts=0, last_failure=1.0))
    assert upgrade(engine, db) is not None
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        assert conn.execute(signin.signin_failures.select()).one().failures == 2
    engine.dispose()


def test_a_failed_upgrade_changes_nothing(tmp_path: Path) -> None:
    db = _release_db(tmp_path)
    _insert_duplicates(db)
    connection = sqlite3.connect(db)
    connection.execute("ALTER TABLE custom_roles ADD COLUMN role_name_key TEXT")  # the upgrade will trip on it
    connection.commit()
    connection.close()
    before = {name: sorted(_rows(db, f'SELECT * FROM "{name}"'), key=str)
              for name in ("role_assignments", "custom_roles", "resources")}
    engine = _engine(db)
    with pytest.raises(DataDirectoryError, match="cannot be upgraded"):
        upgrade(engine, db)
    engine.dispose()
    # The deduplication and the new table ran in the same transaction as the step that failed.
    for name, rows in before.items():
        assert sorted(_rows(db, f'SELECT * FROM "{name}"'), key=str) == rows, name
    assert "signin_failures" not in _schema(db)
    assert _rows(db, "SELECT version_num FROM alembic_version") == [(BASELINE,)]


def test_a_database_from_a_newer_cielo_is_refused(tmp_path: Path) -> None:
    engine = _engine(tmp_path / "new.db")
    upgrade(engine, tmp_path / "new.db")
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    with pytest.raises(DataDirectoryError, match=r"9999_from_the_future.*newer Cielo"):
        upgrade(engine, tmp_path / "new.db")
    engine.dispose()
