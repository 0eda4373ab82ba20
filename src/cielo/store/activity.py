"""The activity log (docs/monitoring.md): one row per event, as Azure's Activity Log API lists them
(`GET /subscriptions/{id}/providers/Microsoft.Insights/eventtypes/management/values`).

The columns a `$filter` names are columns (compared lower-cased where Azure compares case-insensitively); what is
only shown (authorization, claims, httpRequest, properties, localized names) is one JSON document, `detail`.
Nothing secret is ever stored: the recorder (control/activity.py) builds the rows from what it chooses to keep.
Portable SQLAlchemy types only: the same table on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Engine, Float, Index, String, Table, Text, and_, bindparam, delete, insert, or_, select

from cielo.store.db import metadata, open_engine
from cielo.store.jsontext import load_json

activity_log = Table(
    "activity_log",
    metadata,
    Column("event_data_id", String(36), primary_key=True),
    Column("tenant_id", String(36), nullable=False),
    Column("subscription_id", String(36), nullable=True),  # None: a tenant-wide event (sign-in, token issuance)
    Column("event_ts", Float, nullable=False),
    Column("category", String(32), nullable=False),  # Administrative, Security
    Column("level", String(16), nullable=False),
    Column("operation_name", String(256), nullable=False),
    Column("status", String(16), nullable=False),  # Started, Succeeded, Failed
    Column("caller", String(256), nullable=False),  # UPN for users, app id for service principals
    Column("caller_lower", String(256), nullable=False),
    Column("correlation_id", String(100), nullable=False),
    Column("resource_id", String(1024), nullable=False),
    Column("resource_lower", String(1024), nullable=False),
    Column("group_lower", String(90), nullable=False),  # "" outside a resource group
    Column("provider_lower", String(128), nullable=False),
    Column("detail", Text, nullable=False),  # JSON: what is shown but never filtered on
)
Index("ix_activity_log_sub_ts", activity_log.c.subscription_id, activity_log.c.event_ts)
Index("ix_activity_log_tenant_ts", activity_log.c.tenant_id, activity_log.c.event_ts)

_t = activity_log
_INSERT = insert(_t)
_PURGE = delete(_t).where(_t.c.event_ts < bindparam("before"))


@dataclass(frozen=True)
class ActivityRow:
    event_data_id: str
    tenant_id: str
    subscription_id: str | None
    event_ts: float
    category: str
    level: str
    operation_name: str
    status: str
    caller: str
    correlation_id: str
    resource_id: str
    resource_group: str
    resource_provider: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class ActivityQuery:
    """One page's worth of conditions: the time window, the equality filters (lower-cased), whether tenant-wide
    events of `tenant_id` are included, and the keyset position after which the page starts (newest first)."""

    subscription_id: str
    tenant_id: str
    start: float
    end: float
    include_tenant_events: bool = False
    resource_group: str | None = None
    resource_uri: str | None = None
    resource_provider: str | None = None
    correlation_id: str | None = None
    caller: str | None = None
    status: str | None = None
    after: tuple[float, str] | None = None


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def row_values(row: ActivityRow) -> dict[str, Any]:
    return {"event_data_id": row.event_data_id, "tenant_id": row.tenant_id, "subscription_id": row.subscription_id,
            "event_ts": row.event_ts, "category": row.category, "level": row.level,
            "operation_name": row.operation_name, "status": row.status, "caller": row.caller,
            "caller_lower": row.caller.lower(), "correlation_id": row.correlation_id, "resource_id": row.resource_id,
            "resource_lower": row.resource_id.lower(), "group_lower": row.resource_group.lower(),
            "provider_lower": row.resource_provider.lower(), "detail": _dump(row.detail)}


def _row(r: Any) -> ActivityRow:
    return ActivityRow(r.event_data_id, r.tenant_id, r.subscription_id, r.event_ts, r.category, r.level,
                       r.operation_name, r.status, r.caller, r.correlation_id, r.resource_id, r.group_lower,
                       r.provider_lower, load_json(r.detail))


class ActivityRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine  # the table is made by the migrations (0006_activity_log)

    @classmethod
    def at(cls, database: str | Path) -> ActivityRepo:
        """A repository on the server's database (opened, checked and migrated by build_services already)."""
        return cls(open_engine(database))

    def add(self, rows: Sequence[ActivityRow], purge_before: float | None = None) -> None:
        """Stores `rows` in one transaction; with `purge_before`, also deletes what is older (retention)."""
        with self._engine.begin() as conn:
            if rows:
                conn.execute(_INSERT, [row_values(r) for r in rows])
            if purge_before is not None:
                conn.execute(_PURGE, {"before": purge_before})

    def ping(self) -> None:
        """One round trip to the database (readiness)."""
        with self._engine.connect() as conn:
            conn.execute(select(1))

    def purge(self, before: float) -> int:
        with self._engine.begin() as conn:
            return int(conn.execute(_PURGE, {"before": before}).rowcount)

    def query(self, q: ActivityQuery, limit: int) -> list[ActivityRow]:
        """Newest first (then by id), at most `limit` rows after `q.after`."""
        where: list[Any] = [_t.c.event_ts >= q.start, _t.c.event_ts <= q.end]
        if q.include_tenant_events:
            where.append(or_(_t.c.subscription_id == q.subscription_id,
                             and_(_t.c.subscription_id.is_(None), _t.c.tenant_id == q.tenant_id)))
        else:
            where.append(_t.c.subscription_id == q.subscription_id)
        for column, value in ((_t.c.group_lower, q.resource_group), (_t.c.resource_lower, q.resource_uri),
                              (_t.c.provider_lower, q.resource_provider), (_t.c.caller_lower, q.caller)):
            if value is not None:
                where.append(column == value.lower())
        if q.correlation_id is not None:
            where.append(_t.c.correlation_id == q.correlation_id)
        if q.status is not None:
            where.append(_t.c.status == q.status)
        if q.after is not None:
            ts, event_id = q.after
            where.append(or_(_t.c.event_ts < ts, and_(_t.c.event_ts == ts, _t.c.event_data_id < event_id)))
        statement = (select(_t).where(*where).order_by(_t.c.event_ts.desc(), _t.c.event_data_id.desc())
                     .limit(limit))
        with self._engine.connect() as conn:
            return [_row(r) for r in conn.execute(statement)]
