"""Refresh tokens are redeemed once, and a replay's family revocation also catches the token the first redemption
was storing at that moment (workers or replicas racing on one database)."""

from __future__ import annotations

import threading
from pathlib import Path

from cielo.store.datadir import open_database
from cielo.store.grants import GrantRepo
from cielo.store.models import RefreshToken

T0 = 1_900_000_000.0


def _repo(tmp_path: Path) -> GrantRepo:
    engine, _ = open_database(tmp_path, tmp_path / "cielo.db")
    return GrantRepo(engine)


def _token(name: str, family: str = "family") -> RefreshToken:
    return RefreshToken(name, family, "t", "c", "u", T0 + 3600, False, False)


def test_a_token_stored_after_its_family_was_revoked_is_not_redeemed(tmp_path: Path) -> None:
    grants = _repo(tmp_path)
    grants.add_refresh_token(_token("first"))
    assert grants.redeem_refresh_token("first")[1]  # the winner ...
    replayed, first_time = grants.redeem_refresh_token("first")  # ... and a replay, before the new token is stored
    assert replayed is not None and not first_time
    grants.revoke_family("family")
    grants.add_refresh_token(_token("second"))  # the winner's new token lands only now: not revoked itself
    token, first_time = grants.redeem_refresh_token("second")
    assert token is not None and not first_time  # refused: its family holds a revoked token
    grants.add_refresh_token(_token("other", family="another"))
    assert grants.redeem_refresh_token("other")[1]  # other families are untouched


def test_of_many_concurrent_redemptions_one_wins(tmp_path: Path) -> None:
    grants = _repo(tmp_path)
    grants.add_refresh_token(_token("raced"))
    results: list[bool] = []
    start = threading.Barrier(8)

    def redeem() -> None:
        start.wait()
        results.append(grants.redeem_refresh_token("raced")[1])

    threads = [threading.Thread(target=redeem) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1 and len(results) == 8
