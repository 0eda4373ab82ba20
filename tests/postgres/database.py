"""PostgreSQL for the tests: a database of its own per test session (or test), made on the server the machine
runs (127.0.0.1:5432, trust auth; `CIELO_TEST_POSTGRES_URL` names another) and dropped afterwards.

Where no PostgreSQL answers, the tests that need one skip, saying so; CI has one."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from functools import cache
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, MetaData, make_url, select

ADMIN_URL = os.environ.get("CIELO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
# `CIELO_TEST_DATABASE=postgresql pytest tests/api`: the in-process API tier on PostgreSQL (docs/testing.md).
API_PASS = os.environ.get("CIELO_TEST_DATABASE", "sqlite").lower() in ("postgresql", "postgres", "pg")


def _connect(dbname: str | None = None) -> psycopg.Connection[Any]:
    url = make_url(ADMIN_URL)
    return psycopg.connect(host=url.host or "127.0.0.1", port=url.port or 5432, user=url.username or "postgres",
                           password=url.password, dbname=dbname or url.database or "postgres", autocommit=True,
                           connect_timeout=3)


@cache
def unavailable() -> str | None:
    """Why PostgreSQL cannot be used here (None when it can)."""
    try:
        with contextlib.closing(_connect()) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure means: skip, saying why
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (f"no PostgreSQL at {make_url(ADMIN_URL).render_as_string(hide_password=True)} ({first}); "
                "start one or set CIELO_TEST_POSTGRES_URL (CI has one)")
    return None


def require() -> None:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)


@contextlib.contextmanager
def temporary_database(prefix: str = "cielo_test") -> Iterator[str]:
    """A new, empty database; yields its SQLAlchemy URL and drops it (closing what is still connected) at the end."""
    require()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with contextlib.closing(_connect()) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with contextlib.closing(_connect()) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def settings_for(database_url: str | None) -> dict[str, Any]:
    """The Settings fields that put a test server on `database_url` (none for SQLite): the URL, and the
    key-encryption key a shared database needs."""
    if database_url is None:
        return {}
    return {"database_url": database_url, "key_encryption_key": TEST_KEK}


# A fixed key-encryption key for the tests (32 url-safe base64 bytes): never one for a real server.
TEST_KEK = "dGVzdC1vbmx5LWtleS1lbmNyeXB0aW9uLWtleS0wMDA="


def table_rows(engine: Engine, *, skip: tuple[str, ...] = ("alembic_version",)) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (reflected from the database itself), as sorted tuples with the columns in name
    order: two databases hold the same data exactly when these are equal."""
    found = MetaData()
    found.reflect(bind=engine)
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in found.sorted_tables:
            if table.name in skip:
                continue
            columns = sorted(table.columns, key=lambda c: c.name)
            rows[table.name] = sorted((tuple(_plain(v) for v in row) for row in conn.execute(select(*columns))),
                                      key=repr)
    return rows


def _plain(value: Any) -> Any:
    """SQLite hands booleans back as 0/1 where the column was not declared BOOLEAN, bytes as memoryview on PG."""
    if isinstance(value, memoryview):
        return bytes(value)
    return value
