"""What the repositories share: an engine, and writes that tell the caches about themselves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from cielo.store.integrity import translated


class Repo:
    """Each write runs in one transaction, then calls `on_change` (which bumps a generation marker).

    A write that breaks a unique constraint raises `cielo.errors.DuplicateKey` (see store/integrity.py)."""

    def __init__(self, engine: Engine, on_change: Callable[[], None] = lambda: None) -> None:
        self._engine = engine
        self._on_change = on_change

    def _write(self, *statements: Any) -> None:
        try:
            with self._engine.begin() as conn:
                for statement in statements:
                    conn.execute(statement)
        except IntegrityError as exc:
            raise translated(exc) from exc
        self._on_change()
