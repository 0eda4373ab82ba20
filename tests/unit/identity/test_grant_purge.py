"""Expired codes and refresh tokens are deleted, at most every PURGE_INTERVAL_S, from the token endpoint's path."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import func, select

from cielo.core.clock import FrozenClock
from cielo.identity.context import GrantContext
from cielo.identity.service import PURGE_INTERVAL_S, TokenService
from cielo.store import db
from cielo.store.datadir import open_database
from cielo.store.grants import GrantRepo
from cielo.store.models import AuthCode, DeviceCode, RefreshToken

DAY = 86400.0
T0 = 1_900_000_000.0


def _fill(grants: GrantRepo, name: str, expires_at: float) -> None:
    grants.add_auth_code(AuthCode(f"code-{name}", "t", "c", "u", "http://localhost", "openid", None, None, None,
                                  expires_at, False, None))
    grants.add_device_code(DeviceCode(f"device-{name}", f"U{name}"[:9], "t", "c", "openid", expires_at, "pending",
                                      None, None))
    grants.add_refresh_token(RefreshToken(f"rt-{name}", "f", "t", "c", "u", expires_at, False, False))


def _counts(grants: GrantRepo) -> tuple[int, ...]:
    engine = grants._engine
    with engine.connect() as conn:
        return tuple(int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                     for t in (db.auth_codes, db.device_codes, db.refresh_tokens))


@pytest.fixture()
def grants(tmp_path: Path) -> GrantRepo:
    engine, _ = open_database(tmp_path, tmp_path / "cielo.db")
    return GrantRepo(engine)


def test_purge_keeps_a_day_of_expired_state_for_precise_answers(grants: GrantRepo) -> None:
    _fill(grants, "live", T0 + 600)
    _fill(grants, "recent", T0 - DAY + 60)  # expired, but recently enough to answer "expired"
    _fill(grants, "old", T0 - DAY - 60)
    assert grants.purge_expired(T0) == 3
    assert _counts(grants) == (2, 2, 2)


def test_token_service_purges_at_most_once_per_interval(grants: GrantRepo) -> None:
    clock = FrozenClock(T0)
    service = TokenService(cast(GrantContext, SimpleNamespace(grants=grants, clock=clock)))
    _fill(grants, "old", T0 - 2 * DAY)
    service.purge_if_due()
    assert _counts(grants) == (0, 0, 0)
    _fill(grants, "later", T0 - 2 * DAY)
    clock.advance(PURGE_INTERVAL_S - 1)
    service.purge_if_due()
    assert _counts(grants) == (1, 1, 1)  # not due yet
    clock.advance(1)
    service.purge_if_due()
    assert _counts(grants) == (0, 0, 0)


def test_a_failing_purge_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def purge_expired(self, now: float) -> Any:
            raise RuntimeError("database is locked")

    service = TokenService(cast(GrantContext, SimpleNamespace(grants=Broken(), clock=FrozenClock(T0))))
    with caplog.at_level(logging.WARNING, logger="cielo.identity"):
        service.purge_if_due()
    assert "Could not delete expired grants" in caplog.text
