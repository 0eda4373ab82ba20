"""Uniqueness in the database, not in a worker's memory: what Azure holds unique is a unique index.

- role_assignments: one per principal, role definition and scope (scope compared case-insensitively through
  the lower-case `scope_key`). Duplicates an earlier release let two workers store are removed, keeping the
  oldest: they granted exactly what the kept one grants.
- custom_roles: role names unique in a tenant, case-insensitively (new column `role_name_key`). A later role
  with a name already taken is renamed "NAME (GUID8)", never deleted: assignments may use it.
- resources: a Cognitive Services account's customSubDomainName, lower-case in the new column `subdomain_key`,
  unique. A later account sharing an earlier one's subdomain keeps its properties; its key is left empty (it
  no longer owns the subdomain) and the upgrade says so.
- federated_credentials: names unique within an application; a later duplicate is renamed "NAME-ID8".

Every change to existing rows is logged (a WARNING on logger `cielo.store.migrations`; `cielo up` prints them).
SQLite changes tables in batch mode (copy and rename) where it cannot ALTER them.

Revision ID: 0003_integrity
Revises: 0002_signin_failures
Create Date: 2026-12-08
"""

from __future__ import annotations

import json
import logging
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003_integrity"
down_revision = "0002_signin_failures"
branch_labels = None
depends_on = None

log = logging.getLogger("cielo.store.migrations")

_assignments = sa.table(
    "role_assignments", sa.column("name", sa.String), sa.column("scope", sa.String),
    sa.column("scope_key", sa.String), sa.column("principal_id", sa.String),
    sa.column("role_definition_name", sa.String), sa.column("created_on", sa.Float))
_roles = sa.table(
    "custom_roles", sa.column("name", sa.String), sa.column("tenant_id", sa.String),
    sa.column("role_name", sa.String), sa.column("role_name_key", sa.String), sa.column("created_on", sa.Float))
_resources = sa.table(
    "resources", sa.column("key", sa.String), sa.column("id", sa.String), sa.column("properties", sa.Text),
    sa.column("system_data", sa.Text), sa.column("subdomain_key", sa.String))
_federated = sa.table(
    "federated_credentials", sa.column("id", sa.String), sa.column("app_object_id", sa.String),
    sa.column("name", sa.String))


def upgrade() -> None:
    bind = op.get_bind()
    _deduplicate_assignments(bind)
    op.create_index("uq_role_assignments_principal_role_scope", "role_assignments",
                    ["principal_id", "role_definition_name", "scope_key"], unique=True)

    with op.batch_alter_table("custom_roles") as batch:
        batch.add_column(sa.Column("role_name_key", sa.String(512), nullable=True))
    _key_role_names(bind)
    with op.batch_alter_table("custom_roles") as batch:
        batch.alter_column("role_name_key", existing_type=sa.String(512), nullable=False)
        batch.create_index("uq_custom_roles_tenant_role_name", ["tenant_id", "role_name_key"], unique=True)

    with op.batch_alter_table("resources") as batch:
        batch.add_column(sa.Column("subdomain_key", sa.String(256), nullable=True))
    _key_subdomains(bind)
    op.create_index("uq_resources_subdomain_key", "resources", ["subdomain_key"], unique=True)

    _rename_duplicate_federated(bind)
    op.create_index("uq_federated_credentials_app_name", "federated_credentials", ["app_object_id", "name"],
                    unique=True)


def downgrade() -> None:
    op.drop_index("uq_federated_credentials_app_name", "federated_credentials")
    op.drop_index("uq_resources_subdomain_key", "resources")
    with op.batch_alter_table("resources") as batch:
        batch.drop_column("subdomain_key")
    with op.batch_alter_table("custom_roles") as batch:
        batch.drop_index("uq_custom_roles_tenant_role_name")
        batch.drop_column("role_name_key")
    op.drop_index("uq_role_assignments_principal_role_scope", "role_assignments")


# ----------------------------------------------------------------------------- data migrations
def _deduplicate_assignments(bind: Any) -> None:
    t = _assignments
    kept: dict[tuple[str, str, str], str] = {}
    rows = bind.execute(sa.select(t.c.name, t.c.scope, t.c.scope_key, t.c.principal_id, t.c.role_definition_name)
                        .order_by(t.c.created_on, t.c.name)).all()
    for row in rows:
        scope_key = row.scope.lower()
        if row.scope_key != scope_key:
            bind.execute(sa.update(t).where(t.c.name == row.name).values(scope_key=scope_key))
        triple = (row.principal_id.lower(), row.role_definition_name.lower(), scope_key)
        first = kept.setdefault(triple, row.name)
        if first != row.name:
            bind.execute(sa.delete(t).where(t.c.name == row.name))
            log.warning("removed role assignment %s at %s: it duplicated the older %s (same principal %s, role "
                        "%s and scope), which stays and grants the same", row.name, row.scope, first,
                        row.principal_id, row.role_definition_name)


def _key_role_names(bind: Any) -> None:
    t = _roles
    taken: set[tuple[str, str]] = set()
    for row in bind.execute(sa.select(t.c.name, t.c.tenant_id, t.c.role_name)
                            .order_by(t.c.created_on, t.c.name)).all():
        role_name = row.role_name
        if (row.tenant_id, role_name.lower()) in taken:
            role_name = f"{row.role_name} ({row.name[:8]})"
            log.warning("renamed custom role %s from %r to %r: an older role of tenant %s has that name",
                        row.name, row.role_name, role_name, row.tenant_id)
        taken.add((row.tenant_id, role_name.lower()))
        bind.execute(sa.update(t).where(t.c.name == row.name).values(role_name=role_name,
                                                                      role_name_key=role_name.lower()))


def _created_at(system_data: str | None) -> str:
    try:
        value = json.loads(system_data or "{}").get("createdAt")
    except (ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


def _key_subdomains(bind: Any) -> None:
    t = _resources
    rows = bind.execute(sa.select(t.c.key, t.c.id, t.c.properties, t.c.system_data)).all()
    owners: dict[str, str] = {}
    for row in sorted(rows, key=lambda r: (_created_at(r.system_data), r.key)):
        try:
            properties = json.loads(row.properties or "{}")
        except ValueError:
            continue
        subdomain = properties.get("customSubDomainName") if isinstance(properties, dict) else None
        if not isinstance(subdomain, str) or not subdomain:
            continue
        key = subdomain.lower()
        if key in owners:
            log.warning("account %s shares the custom subdomain %r with the older %s, which keeps it: give it "
                        "another account (or delete one of them)", row.id, subdomain, owners[key])
            continue
        owners[key] = row.id
        bind.execute(sa.update(t).where(t.c.key == row.key).values(subdomain_key=key))


def _rename_duplicate_federated(bind: Any) -> None:
    t = _federated
    seen: set[tuple[str | None, str]] = set()
    for row in bind.execute(sa.select(t.c.id, t.c.app_object_id, t.c.name).order_by(t.c.id)).all():
        name = row.name
        if (row.app_object_id, name) in seen:
            name = f"{row.name[:111]}-{row.id[:8]}"
            bind.execute(sa.update(t).where(t.c.id == row.id).values(name=name))
            log.warning("renamed federated credential %s of application %s from %r to %r: the application has "
                        "another credential of that name", row.id, row.app_object_id, row.name, name)
        seen.add((row.app_object_id, name))
