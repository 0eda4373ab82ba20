"""Template deployment records (`Microsoft.Resources/deployments`, docs/templates.md): kept in the database, so
every worker of a server answers GET, list, `operationStatuses` and `operations`, and a record outlives a restart.

A row holds what GET shows (`record`, the `DeploymentExtended` JSON), the operations list (`operations`), the
state, the `Azure-AsyncOperation` id, and who runs it: `owner` (`host:pid:boot`, the process and app instance that
accepted it) and `heartbeat`, which that process refreshes while the deployment runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Engine, Float, String, Table, Text, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from cielo.store.db import metadata, open_engine
from cielo.store.jsontext import load_json

template_deployments = Table(
    "template_deployments",
    metadata,
    Column("key", String(1024), primary_key=True),  # the deployment's ARM id, lower-case
    Column("group_key", String(1024), nullable=False, index=True),  # its resource group's ARM id, lower-case
    Column("name", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # Accepted, Running, Succeeded, Failed
    Column("operation_id", String(36), nullable=False),  # the id Azure-AsyncOperation names
    Column("record", Text, nullable=False),  # DeploymentExtended, JSON
    Column("operations", Text, nullable=False),  # [DeploymentOperation], JSON
    Column("owner", String(300), nullable=False),  # host:pid:boot of the process running it
    Column("created_at", Float, nullable=False),
    Column("heartbeat", Float, nullable=False),  # refreshed by the owner while it runs; the last write's time after
)

_t = template_deployments
_ACTIVE = ("Accepted", "Running")
_INSERT = insert(_t)
_UPDATE = update(_t).where(_t.c.key == bindparam("k")).values(
    {c.name: bindparam(c.name) for c in _t.columns if c.name != "key"})
_REPLACE_ENDED = update(_t).where(_t.c.key == bindparam("k"), _t.c.state.not_in(_ACTIVE)).values(
    {c.name: bindparam(c.name) for c in _t.columns if c.name != "key"})
_FIND = select(_t).where(_t.c.key == bindparam("k"))
_LIST = select(_t).where(_t.c.group_key == bindparam("g")).order_by(_t.c.created_at)
_DELETE = delete(_t).where(_t.c.key == bindparam("k"))
_DELETE_GROUP = delete(_t).where(_t.c.group_key == bindparam("g"))
_BEAT = (update(_t).where(_t.c.key == bindparam("k"), _t.c.owner == bindparam("o"), _t.c.state.in_(_ACTIVE))
         .values(heartbeat=bindparam("now")))


@dataclass(frozen=True)
class StoredDeployment:
    key: str
    name: str
    state: str
    operation_id: str
    record: dict[str, Any]
    operations: list[dict[str, Any]]
    owner: str
    created_at: float
    heartbeat: float

    @property
    def active(self) -> bool:
        return self.state in _ACTIVE


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _values(*, deployment_id: str, group_id: str, name: str, state: str, operation_id: str,
            record: dict[str, Any], operations: list[dict[str, Any]], owner: str, created_at: float,
            now: float) -> dict[str, Any]:
    return {"key": deployment_id.lower(), "group_key": group_id.lower(), "name": name, "state": state,
            "operation_id": operation_id, "record": _dump(record), "operations": _dump(operations), "owner": owner,
            "created_at": created_at, "heartbeat": now}


def _row(row: Any) -> StoredDeployment:
    return StoredDeployment(row.key, row.name, row.state, row.operation_id, load_json(row.record),
                            load_json(row.operations), row.owner, row.created_at, row.heartbeat)


class DeploymentRecordRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine  # the table is made by the migrations (0005_template_deployments)

    @classmethod
    def at(cls, database: Path | str) -> DeploymentRecordRepo:
        """A repository on the server's database, a SQLite file or a URL (opened, checked and migrated by
        build_services already)."""
        return cls(open_engine(database))

    def start(self, **fields: Any) -> bool:
        """A new deployment's first write (the fields of `save`), unless a deployment of that id is active: False
        then. Atomic, so of two workers accepting the same deployment at once only one runs it."""
        values = _values(**fields)
        try:
            with self._engine.begin() as conn:
                if not conn.execute(_REPLACE_ENDED, {**values, "k": values["key"]}).rowcount:
                    conn.execute(_INSERT, values)  # the key is taken (by an active one): IntegrityError
        except IntegrityError:
            return False
        return True

    def save(self, *, deployment_id: str, group_id: str, name: str, state: str, operation_id: str,
             record: dict[str, Any], operations: list[dict[str, Any]], owner: str, created_at: float,
             now: float) -> None:
        """Writes the whole record, as its running owner does at each change."""
        values = _values(deployment_id=deployment_id, group_id=group_id, name=name, state=state,
                         operation_id=operation_id, record=record, operations=operations, owner=owner,
                         created_at=created_at, now=now)
        with self._engine.begin() as conn:  # update, else insert, in one transaction
            if not conn.execute(_UPDATE, {**values, "k": values["key"]}).rowcount:
                conn.execute(_INSERT, values)

    def beat(self, deployment_id: str, owner: str, now: float) -> None:
        with self._engine.begin() as conn:
            conn.execute(_BEAT, {"k": deployment_id.lower(), "o": owner, "now": now})

    def mark_interrupted(self, seen: StoredDeployment, record: dict[str, Any], operations: list[dict[str, Any]],
                         now: float) -> bool:
        """Failed, written only if the row is still the one read (same owner and heartbeat, still active):
        a live owner that moved on in the meantime wins."""
        statement = (update(_t).where(_t.c.key == seen.key, _t.c.owner == seen.owner,
                                      _t.c.heartbeat == seen.heartbeat, _t.c.state.in_(_ACTIVE))
                     .values(state="Failed", record=_dump(record), operations=_dump(operations), heartbeat=now))
        with self._engine.begin() as conn:
            return bool(conn.execute(statement).rowcount)

    def find(self, deployment_id: str) -> StoredDeployment | None:
        with self._engine.connect() as conn:
            row = conn.execute(_FIND, {"k": deployment_id.lower()}).first()
        return None if row is None else _row(row)

    def in_group(self, group_id: str) -> list[StoredDeployment]:
        with self._engine.connect() as conn:
            return [_row(r) for r in conn.execute(_LIST, {"g": group_id.lower()})]

    def delete(self, deployment_id: str) -> bool:
        with self._engine.begin() as conn:
            return bool(conn.execute(_DELETE, {"k": deployment_id.lower()}).rowcount)

    def delete_group(self, group_id: str) -> int:
        """Every record of a resource group (for the group's deletion)."""
        with self._engine.begin() as conn:
            return int(conn.execute(_DELETE_GROUP, {"g": group_id.lower()}).rowcount)
