"""Stored responses of the Responses API (`store: true`, the default): kept in the database, so that every worker
of a server (and every replica sharing the database) finds the response a `previous_response_id` names.

A row belongs to one account and one caller (`owner`); reads and deletes name both, so another caller's id reads
as unknown. Rows past `expires_at` are never returned, and are deleted by the next save.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Engine, Float, Index, String, Table, Text, bindparam, delete, insert, select

from cielo.store.db import metadata, open_engine
from cielo.store.jsontext import load_json

stored_responses = Table(
    "stored_responses",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("account_id", String(1024), nullable=False),  # the account's ARM id, lower-case
    Column("owner", String(80), nullable=False),  # "oid:<object id>" for a token's principal, "key" for api-key callers
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("response", Text, nullable=False),  # the response object, JSON
    Column("input_items", Text, nullable=False),  # this request's input items, JSON
    Column("context", Text, nullable=False),  # the conversation this response answered (chained ones included), JSON
)
Index("ix_stored_responses_expires_at", stored_responses.c.expires_at)


_t = stored_responses
# Built once: constructing a statement costs more CPU than SQLite takes to run it.
_INSERT = insert(_t)
_PURGE = delete(_t).where(_t.c.expires_at < bindparam("now"))
_MINE = (_t.c.id == bindparam("response_id"), _t.c.account_id == bindparam("account"), _t.c.owner == bindparam("owner"),
         _t.c.expires_at > bindparam("now"))
_FIND = select(_t.c.response, _t.c.input_items, _t.c.context).where(*_MINE)
_DELETE = delete(_t).where(*_MINE)


@dataclass(frozen=True)
class StoredResponse:
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    context: list[dict[str, Any]]


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class ResponseRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine  # the table is made by the migrations (0004_stored_responses)

    @classmethod
    def at(cls, database: Path | str) -> ResponseRepo:
        """A repository on the server's database, a SQLite file or a URL (opened, checked and migrated by
        build_services already)."""
        return cls(open_engine(database))

    def save(self, *, response_id: str, account_id: str, owner: str, created_at: float, expires_at: float,
             response: dict[str, Any], input_items: list[dict[str, Any]], context: list[dict[str, Any]]) -> None:
        with self._engine.begin() as conn:
            conn.execute(_PURGE, {"now": created_at})  # an indexed range: the expired ones only
            conn.execute(_INSERT, {"id": response_id, "account_id": account_id.lower(), "owner": owner,
                                   "created_at": created_at, "expires_at": expires_at, "response": _dump(response),
                                   "input_items": _dump(input_items), "context": _dump(context)})

    def find(self, account_id: str, owner: str, response_id: str, now: float) -> StoredResponse | None:
        with self._engine.connect() as conn:
            row = conn.execute(_FIND, _key(account_id, owner, response_id, now)).first()
        if row is None:
            return None
        return StoredResponse(load_json(row.response), load_json(row.input_items), load_json(row.context))

    def delete(self, account_id: str, owner: str, response_id: str, now: float) -> bool:
        with self._engine.begin() as conn:
            gone = conn.execute(_DELETE, _key(account_id, owner, response_id, now)).rowcount
        return bool(gone)


def _key(account_id: str, owner: str, response_id: str, now: float) -> dict[str, Any]:
    return {"response_id": response_id, "account": account_id.lower(), "owner": owner, "now": now}
