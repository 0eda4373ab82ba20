"""What the repositories share: an engine, and writes that tell the caches about themselves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine


class Repo:
    """Each write runs in one transaction, then calls `on_change` (which bumps a generation marker)."""

    def __init__(self, engine: Engine, on_change: Callable[[], None] = lambda: None) -> None:
        self._engine = engine
        self._on_change = on_change

    def _write(self, *statements: Any) -> None:
        with self._engine.begin() as conn:
            for statement in statements:
                conn.execute(statement)
        self._on_change()
