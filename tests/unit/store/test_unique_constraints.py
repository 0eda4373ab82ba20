"""Uniqueness decided by the database: violations become `DuplicateKey` naming the constraint, upserts survive
a concurrent insert, and the RBAC index loads whatever the database holds (skipping what it cannot take)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError

from cielo.control.access import AccessService
from cielo.errors import DuplicateKey
from cielo.identity.directory_view import DirectoryView
from cielo.store import db
from cielo.store.datadir import open_database
from cielo.store.directory import DirectoryRepo
from cielo.store.generation import Generation
from cielo.store.integrity import (
    RESOURCE_SUBDOMAIN,
    ROLE_ASSIGNMENT_NAME,
    ROLE_ASSIGNMENT_PRINCIPAL_ROLE_SCOPE,
    USER_UPN,
    duplicate_key,
)
from cielo.store.models import Tenant, User
from cielo.store.resources import Resource, ResourceRepo, StoredAssignment

READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
SUB = "/subscriptions/11111111-1111-4111-8111-111111111111"
PRINCIPAL = "22222222-2222-4222-8222-222222222222"


class Clock:
    def now(self) -> float:
        return 1_000.0


@pytest.fixture()
def engine(tmp_path: Path) -> Engine:
    engine, _ = open_database(tmp_path, tmp_path / "cielo.db")
    return engine


def _assignment(name: str, *, scope: str = SUB, role: str = READER, created: float = 1.0) -> StoredAssignment:
    return StoredAssignment(name, scope, "t", role, PRINCIPAL, "User", None, None, None, created, created, None, None)


def test_sqlite_violations_name_their_constraint(engine: Engine) -> None:
    repo = ResourceRepo(engine)
    repo.add_assignment(_assignment("33333333-3333-4333-8333-000000000001"))
    with pytest.raises(DuplicateKey) as same_name:
        repo.add_assignment(_assignment("33333333-3333-4333-8333-000000000001", role=CONTRIBUTOR))
    assert ROLE_ASSIGNMENT_NAME.matches(same_name.value)
    assert same_name.value.status == 409 and same_name.value.code == "Conflict"
    with pytest.raises(DuplicateKey) as same_triple:  # the scope differs in case only
        repo.add_assignment(_assignment("33333333-3333-4333-8333-000000000002", scope=SUB.upper().replace(
            "/SUBSCRIPTIONS/", "/subscriptions/")))
    assert ROLE_ASSIGNMENT_PRINCIPAL_ROLE_SCOPE.matches(same_triple.value)
    assert not ROLE_ASSIGNMENT_NAME.matches(same_triple.value)
    found = repo.find_assignment(PRINCIPAL.upper(), READER, SUB.upper())
    assert found is not None and found.name == "33333333-3333-4333-8333-000000000001"
    repo.add_assignment(_assignment("33333333-3333-4333-8333-000000000003", role=CONTRIBUTOR))


def test_other_integrity_errors_are_not_duplicates(engine: Engine) -> None:
    with pytest.raises(IntegrityError) as caught, engine.begin() as conn:
        conn.execute(insert(db.tenants).values(id="x", display_name=None, default_domain="d", created_at=0.0))
    assert duplicate_key(caught.value) is None


def test_users_are_unique_by_upn_case_insensitively(engine: Engine) -> None:
    repo = DirectoryRepo(engine)
    repo.create_tenant(Tenant("t", "T", "t.local", 0.0))
    repo.create_user(User("u1", "t", "Bob@t.local", "Bob", "h", False, True, 0.0))
    with pytest.raises(DuplicateKey) as caught:
        repo.create_user(User("u2", "t", "bob@T.LOCAL", "Bob", "h", False, True, 0.0))
    assert USER_UPN.matches(caught.value)


def _account(name: str, subdomain: str) -> Resource:
    rid = f"{SUB}/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/{name}"
    return Resource(rid, SUB.rsplit("/", 1)[1], "rg", None, "Microsoft.CognitiveServices/accounts", name, "local",
                    "OpenAI", None, None, {"customSubDomainName": subdomain}, None, None, "e")


def test_resource_put_creates_then_replaces_and_subdomains_are_unique(engine: Engine) -> None:
    repo = ResourceRepo(engine)
    assert repo.put(_account("a", "Shared")) is True
    assert repo.put(_account("a", "Shared")) is False
    with pytest.raises(DuplicateKey) as caught:
        repo.put(_account("b", "shared"))
    assert RESOURCE_SUBDOMAIN.matches(caught.value)
    assert repo.get(_account("b", "x").key) is None


def test_a_put_that_loses_the_insert_race_replaces_the_winner(engine: Engine, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """Two workers PUT the same new resource: both find no row to update and insert; the loser's insert fails on
    the primary key, and its retry updates the winner's row (200, not 500)."""
    import sqlalchemy

    from cielo.store import resources as module

    repo = ResourceRepo(engine)
    assert repo.put(_account("a", "one")) is True  # the winner, already stored
    calls: list[int] = []

    def update_that_misses_once(table: sqlalchemy.Table) -> sqlalchemy.Update:
        calls.append(1)
        statement = sqlalchemy.update(table)
        return statement.where(sqlalchemy.false()) if len(calls) == 1 else statement  # as if not yet there

    monkeypatch.setattr(module, "update", update_that_misses_once)
    assert repo.put(_account("a", "one")) is False
    assert len(calls) == 2 and len(repo.list_resources()) == 1


def test_the_rbac_index_loads_past_a_duplicate_an_old_release_stored(engine: Engine, tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    repo = ResourceRepo(engine)
    repo.add_assignment(_assignment("33333333-3333-4333-8333-000000000001", created=1.0))
    repo.add_assignment(_assignment("33333333-3333-4333-8333-000000000003", role=CONTRIBUTOR, created=3.0))
    engine.dispose()
    # What two workers of the previous release could store: the same principal, role and scope twice.
    connection = sqlite3.connect(tmp_path / "cielo.db")
    connection.execute("DROP INDEX uq_role_assignments_principal_role_scope")
    connection.execute("INSERT INTO role_assignments SELECT '33333333-3333-4333-8333-000000000002', scope, "
                       "scope_key, tenant_id, role_definition_name, principal_id, principal_type, description, "
                       "condition, condition_version, 2.0, 2.0, created_by, updated_by FROM role_assignments "
                       "WHERE name = '33333333-3333-4333-8333-000000000001'")
    connection.commit()
    connection.close()
    generation = Generation(tmp_path / "rbac.generation")
    directory = DirectoryRepo(engine)
    access = AccessService(repo, DirectoryView(directory, Generation(tmp_path / "generation")), generation,
                           Clock())  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="cielo.rbac"):
        index = access.index
    names = sorted(a.id for a in index.list_assignments())
    assert names == ["33333333-3333-4333-8333-000000000001", "33333333-3333-4333-8333-000000000003"]
    assert "33333333-3333-4333-8333-000000000002" in caplog.text and "left out" in caplog.text
    # Reported once per process, however often the index reloads.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cielo.rbac"):
        access.refresh()
    assert caplog.text == ""
    # Deleting the one that loaded lets the other in: what the database holds is what applies.
    access.remove_assignment("33333333-3333-4333-8333-000000000001")
    access.refresh()
    assert sorted(a.id for a in access.index.list_assignments()) == [
        "33333333-3333-4333-8333-000000000002", "33333333-3333-4333-8333-000000000003"]
