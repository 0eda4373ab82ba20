"""Failed password sign-ins, counted per user name and per client address (smart lockout, throttling).

Kept in the database so every worker of a server (and every replica sharing the database) counts the
same failures. Keys are SHA-256 digests, so a flood of made-up user names costs a bounded row each and
never stores what was typed; rows not touched for a while are forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Column, Engine, Float, Index, Integer, String, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from cielo.store.db import metadata

signin_failures = Table(
    "signin_failures",
    metadata,
    Column("key", String(80), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_start", Float, nullable=False),
    Column("locked_until", Float, nullable=False),
    Column("lockouts", Integer, nullable=False),
    Column("last_failure", Float, nullable=False),
)
Index("ix_signin_failures_last_failure", signin_failures.c.last_failure)


@dataclass(frozen=True)
class FailureCount:
    failures: int
    window_start: float
    locked_until: float
    lockouts: int


class FailureCounts(Protocol):
    """Where failed sign-ins are counted: the database (`SignInFailureRepo`, the default) or Redis for replicas
    (`cielo.shared.signin.RedisSignInFailures`). Every change is atomic wherever it is stored."""

    def get(self, key: str) -> FailureCount | None: ...

    def record_failure(self, key: str, now: float, window_s: float) -> FailureCount: ...

    def lock(self, key: str, until: float, lockouts: int) -> None: ...

    def clear(self, key: str) -> None: ...

    def forget_before(self, cutoff: float) -> None: ...


class SignInFailureRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine  # the table is made by the migrations (0002_signin_failures), as every other

    def get(self, key: str) -> FailureCount | None:
        t = signin_failures
        with self._engine.connect() as conn:
            row = conn.execute(select(t.c.failures, t.c.window_start, t.c.locked_until, t.c.lockouts)
                               .where(t.c.key == key)).first()
        return FailureCount(*row) if row is not None else None

    def record_failure(self, key: str, now: float, window_s: float) -> FailureCount:
        """Count one failure atomically (a window older than `window_s` starts again) and return the count."""
        t = signin_failures
        with self._engine.begin() as conn:
            # The UPDATE takes the write lock first, so concurrent workers never lose a count.
            changed = conn.execute(
                update(t).where(t.c.key == key).values(
                    failures=(t.c.window_start > now - window_s).cast(Integer) * t.c.failures + 1,
                    last_failure=now,
                )
            ).rowcount
            if changed:
                conn.execute(update(t).where(t.c.key == key, t.c.failures == 1).values(window_start=now))
            else:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(t).values(key=key, failures=1, window_start=now, locked_until=0.0,
                                                      lockouts=0, last_failure=now))
                except IntegrityError:
                    conn.execute(update(t).where(t.c.key == key).values(failures=t.c.failures + 1,
                                                                         last_failure=now))
            row = conn.execute(select(t.c.failures, t.c.window_start, t.c.locked_until, t.c.lockouts)
                               .where(t.c.key == key)).one()
        return FailureCount(*row)

    def lock(self, key: str, until: float, lockouts: int) -> None:
        t = signin_failures
        with self._engine.begin() as conn:
            conn.execute(update(t).where(t.c.key == key).values(locked_until=until, lockouts=lockouts, failures=0))

    def clear(self, key: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(signin_failures).where(signin_failures.c.key == key))

    def forget_before(self, cutoff: float) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(signin_failures).where(signin_failures.c.last_failure < cutoff))
