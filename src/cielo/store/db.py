"""Database engine and tables (SQLAlchemy Core). SQLite with WAL by default.

These tables are what the newest schema revision builds: every change to them comes with a revision in
store/migrations/versions/ (tests/unit/store/test_migrations.py checks that both agree). Unique constraints
hold what Azure holds unique; store/integrity.py names the ones the services map to their errors.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)

metadata = MetaData()

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("display_name", String(256), nullable=False),
    Column("default_domain", String(256), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(36), ForeignKey("tenants.id"), nullable=False),
    Column("display_name", String(256), nullable=False),
    Column("state", String(32), nullable=False, default="Enabled"),
)

users = Table(
    "users",
    metadata,
    Column("object_id", String(36), primary_key=True),
    Column("tenant_id", String(36), ForeignKey("tenants.id"), nullable=False),
    Column("upn", String(256), nullable=False),
    Column("upn_lower", String(256), nullable=False, unique=True),
    Column("display_name", String(256), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("account_enabled", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False),
)

groups = Table(
    "groups",
    metadata,
    Column("object_id", String(36), primary_key=True),
    Column("tenant_id", String(36), ForeignKey("tenants.id"), nullable=False),
    Column("display_name", String(256), nullable=False),
    Column("mail_nickname", String(256), nullable=False),
    Column("description", Text, nullable=True),
    Column("created_at", Float, nullable=False),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", String(36), ForeignKey("groups.object_id", ondelete="CASCADE"), primary_key=True),
    Column("member_id", String(36), primary_key=True),
)

applications = Table(
    "applications",
    metadata,
    Column("object_id", String(36), primary_key=True),
    Column("tenant_id", String(36), ForeignKey("tenants.id"), nullable=False),
    Column("app_id", String(36), nullable=False, unique=True),
    Column("display_name", String(256), nullable=False),
    Column("is_public_client", Boolean, nullable=False, default=False),
    Column("access_token_version", Integer, nullable=False, default=1),
    Column("identifier_uris", Text, nullable=False, default="[]"),
    Column("redirect_uris", Text, nullable=False, default="[]"),
    Column("created_at", Float, nullable=False),
)

service_principals = Table(
    "service_principals",
    metadata,
    Column("object_id", String(36), primary_key=True),
    Column("tenant_id", String(36), ForeignKey("tenants.id"), nullable=False),
    Column("app_id", String(36), nullable=False),
    Column("display_name", String(256), nullable=False),
    Column("sp_type", String(32), nullable=False, default="Application"),
    Column("created_at", Float, nullable=False),
    Index("ix_sp_tenant_app", "tenant_id", "app_id", unique=True),
)

password_credentials = Table(
    "password_credentials",
    metadata,
    Column("key_id", String(36), primary_key=True),
    Column("app_object_id", String(36), ForeignKey("applications.object_id", ondelete="CASCADE")),
    Column("display_name", String(256), nullable=True),
    Column("hint", String(8), nullable=False),
    Column("secret_hash", String(128), nullable=False),
    Column("start", Float, nullable=False),
    Column("end", Float, nullable=False),
)

key_credentials = Table(
    "key_credentials",
    metadata,
    Column("key_id", String(36), primary_key=True),
    Column("app_object_id", String(36), ForeignKey("applications.object_id", ondelete="CASCADE")),
    Column("display_name", String(256), nullable=True),
    Column("cert_der", LargeBinary, nullable=False),
    Column("start", Float, nullable=False),
    Column("end", Float, nullable=False),
)

federated_credentials = Table(
    "federated_credentials",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("app_object_id", String(36), ForeignKey("applications.object_id", ondelete="CASCADE")),
    Column("name", String(120), nullable=False),
    Column("issuer", String(600), nullable=False),
    Column("subject", String(600), nullable=False),
    Column("audiences", Text, nullable=False),
    Column("description", Text, nullable=True),
    # Graph: a federated identity credential's name is unique within its application.
    Index("uq_federated_credentials_app_name", "app_object_id", "name", unique=True),
)

auth_codes = Table(
    "auth_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("tenant_id", String(36), nullable=False),
    Column("client_id", String(36), nullable=False),
    Column("user_id", String(36), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("code_challenge", String(128), nullable=True),
    Column("code_challenge_method", String(16), nullable=True),
    Column("nonce", Text, nullable=True),
    Column("expires_at", Float, nullable=False),
    Column("redeemed", Boolean, nullable=False, default=False),
    Column("family_id", String(36), nullable=True),
)

device_codes = Table(
    "device_codes",
    metadata,
    Column("device_code_hash", String(64), primary_key=True),
    Column("user_code", String(16), nullable=False, unique=True),
    Column("tenant_id", String(36), nullable=True),
    Column("client_id", String(36), nullable=False),
    Column("scope", Text, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("status", String(16), nullable=False, default="pending"),
    Column("user_id", String(36), nullable=True),
    Column("last_poll", Float, nullable=True),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("family_id", String(36), nullable=False, index=True),
    Column("tenant_id", String(36), nullable=False),
    Column("client_id", String(36), nullable=False),
    Column("user_id", String(36), nullable=False, index=True),
    Column("expires_at", Float, nullable=False),
    Column("redeemed", Boolean, nullable=False, default=False),
    Column("revoked", Boolean, nullable=False, default=False),
)


# ----------------------------------------------------------------------------- resource manager
resources = Table(
    "resources",
    metadata,
    Column("key", String(1024), primary_key=True),  # the lower-case ARM id
    Column("id", String(1024), nullable=False),  # the ARM id with its case preserved
    Column("subscription_id", String(36), nullable=False, index=True),
    Column("resource_group", String(90), nullable=True, index=True),  # lower-case name
    Column("parent_key", String(1024), nullable=True, index=True),
    Column("type", String(256), nullable=False),
    Column("name", String(256), nullable=False),
    Column("location", String(64), nullable=True),
    Column("kind", String(64), nullable=True),
    Column("sku", Text, nullable=True),
    Column("tags", Text, nullable=True),
    Column("properties", Text, nullable=False, default="{}"),
    Column("identity", Text, nullable=True),
    Column("system_data", Text, nullable=True),
    Column("etag", String(64), nullable=False),
    # A Cognitive Services account's customSubDomainName, lower-case (NULL for other resources): the subdomain
    # names the account's endpoint, so no two accounts may share it (ARM: 409 CustomDomainInUse).
    Column("subdomain_key", String(256), nullable=True),
    Index("uq_resources_subdomain_key", "subdomain_key", unique=True),
)

account_keys = Table(
    "account_keys",
    metadata,
    Column("resource_key", String(1024), primary_key=True),
    Column("key1_hash", String(64), nullable=False),
    Column("key2_hash", String(64), nullable=False),
    Column("key1_encrypted", Text, nullable=False),
    Column("key2_encrypted", Text, nullable=False),
)

role_assignments = Table(
    "role_assignments",
    metadata,
    Column("name", String(36), primary_key=True),
    Column("scope", String(1024), nullable=False),
    Column("scope_key", String(1024), nullable=False, index=True),
    Column("tenant_id", String(36), nullable=False),
    Column("role_definition_name", String(36), nullable=False),
    Column("principal_id", String(36), nullable=False, index=True),
    Column("principal_type", String(32), nullable=False),
    Column("description", Text, nullable=True),
    Column("condition", Text, nullable=True),
    Column("condition_version", String(8), nullable=True),
    Column("created_on", Float, nullable=False),
    Column("updated_on", Float, nullable=False),
    Column("created_by", String(36), nullable=True),
    Column("updated_by", String(36), nullable=True),
    # Azure: one assignment per principal, role and scope (the scope compared case-insensitively, so the key is
    # the lower-case scope); another name for the same triple is 409 RoleAssignmentExists.
    Index("uq_role_assignments_principal_role_scope", "principal_id", "role_definition_name", "scope_key",
          unique=True),
)

custom_roles = Table(
    "custom_roles",
    metadata,
    Column("name", String(36), primary_key=True),
    Column("tenant_id", String(36), nullable=False),
    Column("role_name", String(512), nullable=False),
    Column("description", Text, nullable=True),
    Column("permissions", Text, nullable=False),
    Column("assignable_scopes", Text, nullable=False),
    Column("created_on", Float, nullable=False),
    Column("updated_on", Float, nullable=False),
    Column("created_by", String(36), nullable=True),
    # Azure: custom role names are unique in a directory, case-insensitively (409 RoleDefinitionWithSameNameExists).
    Column("role_name_key", String(512), nullable=False),
    Index("uq_custom_roles_tenant_role_name", "tenant_id", "role_name_key", unique=True),
)


host_credentials = Table(
    "host_credentials",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("resource_key", String(1024), nullable=False, index=True),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


SQLITE_FILE_MODE = 0o600


def _private_sqlite_files(path: Path) -> None:
    """The database and its `-wal`/`-shm` files readable by this user only (they hold password hashes and sealed
    keys). The database is created here with mode 0600, so SQLite never makes it with its default 0644;
    SQLite creates the `-wal` and `-shm` files with the database file's mode. Files an earlier version created
    wider are narrowed."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                         SQLITE_FILE_MODE))  # an empty file is an empty SQLite database
    for name in (path.name, f"{path.name}-wal", f"{path.name}-shm", f"{path.name}-journal"):
        with contextlib.suppress(FileNotFoundError):
            file = path.with_name(name)
            mode = stat.S_IMODE(file.stat().st_mode)
            if mode & ~SQLITE_FILE_MODE:
                os.chmod(file, mode & SQLITE_FILE_MODE)


def open_engine(url_or_path: str | Path) -> Engine:
    """Open (and create, empty) the database. A Path means SQLite at that path. The tables are made and upgraded
    by the migrations (store/datadir.py `open_database`), never here."""
    if isinstance(url_or_path, Path):
        url_or_path.parent.mkdir(parents=True, exist_ok=True)
        _private_sqlite_files(url_or_path)
        url = f"sqlite:///{url_or_path}"
    else:
        url = url_or_path
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    elif engine.dialect.name == "postgresql":
        event.listen(engine, "before_cursor_execute", _without_nul, retval=True)
    return engine


def _nul_free(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


def _without_nul(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
                 executemany: bool) -> tuple[str, Any]:
    """PostgreSQL's text cannot hold a NUL character (SQLite's can): a value with one, from a request body, a path
    or a form, would fail the statement (a 500). It is written, and looked up, with U+FFFD in its place instead (as
    store/jsontext.py reads lone surrogates): the text is stored visibly marked, and found again by the same value.
    JSON columns never carry one (json.dumps writes the escape `\\u0000`)."""
    def clean(params: Any) -> Any:
        if isinstance(params, dict):
            return {k: _nul_free(v) for k, v in params.items()}
        if isinstance(params, list | tuple):
            return type(params)(_nul_free(v) for v in params)
        return params

    if executemany:
        return statement, [clean(p) for p in parameters]
    return statement, clean(parameters)
