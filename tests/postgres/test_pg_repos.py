"""The repositories on PostgreSQL: unique violations become `DuplicateKey` naming their constraint; single-use
codes and refresh tokens are redeemed once however many callers race (conditional UPDATEs under READ COMMITTED);
concurrent failure counts lose nothing; upserts survive a concurrent insert; booleans, bytes, floats and JSON
text round-trip; prefixes with LIKE's own characters match literally; name look-ups ignore case as on SQLite."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError

from cielo.errors import DuplicateKey
from cielo.store import db
from cielo.store.datadir import open_server_database
from cielo.store.directory import DirectoryRepo
from cielo.store.grants import GrantRepo
from cielo.store.integrity import (
    RESOURCE_SUBDOMAIN,
    ROLE_ASSIGNMENT_NAME,
    ROLE_ASSIGNMENT_PRINCIPAL_ROLE_SCOPE,
    USER_UPN,
    duplicate_key,
)
from cielo.store.models import (
    Application,
    AuthCode,
    DeviceCode,
    Group,
    KeyCredential,
    RefreshToken,
    Tenant,
    User,
)
from cielo.store.resources import Resource, ResourceRepo, StoredAssignment
from cielo.store.signin import SignInFailureRepo
from cielo.store.template_deployments import DeploymentRecordRepo
from postgres.database import temporary_database

READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
SUB = "/subscriptions/11111111-1111-4111-8111-111111111111"
PRINCIPAL = "22222222-2222-4222-8222-222222222222"
RACERS = 8


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with temporary_database("cielo_repos") as url:
        engine, _ = open_server_database(url)
        yield engine
        engine.dispose()


def _race(action: Callable[[], Any], n: int = RACERS) -> list[Any]:
    """`action` in n threads at once (each on its own pooled connection); their results."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        results[i] = action()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _assignment(name: str, *, scope: str = SUB, role: str = READER) -> StoredAssignment:
    return StoredAssignment(name, scope, "t", role, PRINCIPAL, "User", None, None, None, 1.5, 1.5, None, None)


def test_unique_violations_name_their_constraint(engine: Engine) -> None:
    repo = ResourceRepo(engine)
    repo.add_assignment(_assignment("33333333-3333-4333-8333-000000000001"))
    with pytest.raises(DuplicateKey) as same_name:
        repo.add_assignment(_assignment("33333333-3333-4333-8333-000000000001", role=CONTRIBUTOR))
    assert ROLE_ASSIGNMENT_NAME.matches(same_name.value)
    with pytest.raises(DuplicateKey) as same_triple:  # the scope differs in case only
        repo.add_assignment(_assignment("33333333-3333-4333-8333-000000000002", scope=SUB.upper().replace(
            "/SUBSCRIPTIONS/", "/subscriptions/")))
    assert ROLE_ASSIGNMENT_PRINCIPAL_ROLE_SCOPE.matches(same_triple.value)
    found = repo.find_assignment(PRINCIPAL.upper(), READER, SUB.upper())
    assert found is not None and found.created_on == 1.5
    with pytest.raises(IntegrityError) as not_null, engine.begin() as conn:
        conn.execute(insert(db.tenants).values(id="x", display_name=None, default_domain="d", created_at=0.0))
    assert duplicate_key(not_null.value) is None


def test_users_groups_and_tenants_are_found_whatever_the_case(engine: Engine) -> None:
    repo = DirectoryRepo(engine)
    repo.create_tenant(Tenant("t-case", "T", "Case.Local", 0.25))
    assert repo.find_tenant("case.LOCAL") == Tenant("t-case", "T", "Case.Local", 0.25)
    repo.create_user(User("u1", "t-case", "Bob@case.local", "Bob", "h", True, False, 0.0))
    with pytest.raises(DuplicateKey) as caught:
        repo.create_user(User("u2", "t-case", "bob@CASE.local", "Bob", "h", False, True, 0.0))
    assert USER_UPN.matches(caught.value)
    bob = repo.find_user("BOB@case.local")
    assert bob is not None and bob.is_admin is True and bob.account_enabled is False
    repo.update_user("u1", account_enabled=True)
    assert repo.find_user("u1") is not None and repo.find_user("u1").account_enabled is True  # type: ignore[union-attr]
    repo.create_group(Group("g1", "t-case", "Readers Ünicode", "readers", None, 0.0))
    assert repo.find_group("t-case", "readers ünicode") is not None and repo.find_group("t-case", "READERS") is None


def test_applications_round_trip_json_and_bytes(engine: Engine) -> None:
    repo = DirectoryRepo(engine)
    repo.create_tenant(Tenant("t-app", "T", "app.local", 0.0))
    app = Application("o1", "t-app", "a1", "App", True, 2, ("api://x", "ü"), ("http://localhost",), 123.456789)
    repo.create_application(app)
    cert = bytes(range(256))
    repo.add_key("o1", KeyCredential("k1", None, cert, 1.0, 2.0), replace=False)
    found = repo.find_application("A1")
    assert found is not None and found.identifier_uris == ("api://x", "ü") and found.is_public_client is True
    assert found.keys[0].cert_der == cert and found.created_at == 123.456789


def _account(name: str, subdomain: str, group: str = "rg") -> Resource:
    rid = f"{SUB}/resourceGroups/{group}/providers/Microsoft.CognitiveServices/accounts/{name}"
    return Resource(rid, SUB.rsplit("/", 1)[1], group, None, "Microsoft.CognitiveServices/accounts", name, "local",
                    "OpenAI", {"name": "S0"}, {"k": "v"}, {"customSubDomainName": subdomain}, None, None, "e")


def test_resource_upserts_race_and_subdomains_are_unique(engine: Engine) -> None:
    repo = ResourceRepo(engine)
    created = _race(lambda: repo.put(_account("raced", "raced-sub")))
    assert created.count(True) == 1 and created.count(False) == RACERS - 1
    with pytest.raises(DuplicateKey) as caught:
        repo.put(_account("other", "RACED-sub"))
    assert RESOURCE_SUBDOMAIN.matches(caught.value)


def test_a_tree_delete_matches_its_prefix_literally(engine: Engine) -> None:
    repo = ResourceRepo(engine)
    for group in ("pre_x", "prefx", "pre%x", "PRE_X2"):
        repo.put(_account(f"acct-{group.lower()}", f"sub-{group.lower()}", group))
    gone = repo.delete_tree(f"{SUB}/resourceGroups/pre_x")
    assert gone == [_account("acct-pre_x", "s", "pre_x").key]
    left = {r.resource_group for r in repo.list_resources(subscription_id=SUB.rsplit("/", 1)[1])}
    assert {"prefx", "pre%x", "pre_x2"} <= left and "pre_x" not in left


def test_single_use_codes_and_tokens_are_redeemed_once_under_races(engine: Engine) -> None:
    grants = GrantRepo(engine)
    grants.add_auth_code(AuthCode("code-1", "t", "c", "u", "http://localhost", "openid", None, None, None, 9e9,
                                  False, None))
    results = _race(lambda: grants.redeem_auth_code("code-1"))
    assert [first for _, first in results].count(True) == 1
    grants.add_refresh_token(RefreshToken("rt-1", "fam", "t", "c", "u", 9e9, False, False))
    results = _race(lambda: grants.redeem_refresh_token("rt-1"))
    assert [first for _, first in results].count(True) == 1
    grants.add_device_code(DeviceCode("dc-1", "ABCD-EFGH", "t", "c", "openid", 9e9, "pending", None, None))
    decided = _race(lambda: grants.decide_device_code("ABCD-EFGH", "approved", "u"))
    assert decided.count(True) == 1
    consumed = _race(lambda: grants.consume_device_code("dc-1"))
    assert consumed.count(True) == 1
    grants.revoke_family("fam")
    token, first = grants.redeem_refresh_token("rt-1")
    assert token is not None and token.revoked is True and first is False


def test_concurrent_failed_sign_ins_are_all_counted(engine: Engine) -> None:
    repo = SignInFailureRepo(engine)
    _race(lambda: repo.record_failure("k-race", 100.0, 60.0))
    count = repo.get("k-race")
    assert count is not None and count.failures == RACERS and count.window_start == 100.0
    assert repo.record_failure("k-race", 500.0, 60.0).failures == 1  # a new window starts again


def test_only_one_of_two_workers_starts_a_template_deployment(engine: Engine) -> None:
    repo = DeploymentRecordRepo(engine)
    fields = {"deployment_id": "/subscriptions/s/resourcegroups/g/providers/microsoft.resources/deployments/d",
              "group_id": "/subscriptions/s/resourcegroups/g", "name": "d", "state": "Running", "operation_id": "op",
              "record": {"a": [1, 2.5, None]}, "operations": [], "created_at": 0.1, "now": 0.1}
    started = _race(lambda: repo.start(owner=f"host:{threading.get_ident()}:b", **fields))
    assert started.count(True) == 1
    seen = repo.find(fields["deployment_id"])  # type: ignore[arg-type]
    assert seen is not None and seen.record == {"a": [1, 2.5, None]}
    assert repo.mark_interrupted(seen, {"failed": True}, [], 0.2) is True  # float heartbeat compared exactly


def test_text_with_a_nul_character_is_stored_marked_and_found_again(engine: Engine) -> None:
    """PostgreSQL's text cannot hold NUL (SQLite's can): such a value is written, and looked up, with U+FFFD in its
    place, instead of failing the statement (a 500)."""
    repo = DirectoryRepo(engine)
    repo.create_tenant(Tenant("t-nul", "T", "nul.local", 0.0))
    repo.create_group(Group("g-nul", "t-nul", "a\x00b", "n\x00", "d\x00", 0.0))
    group = repo.find_group("t-nul", "g-nul")
    assert group is not None and (group.display_name, group.mail_nickname) == ("a\ufffdb", "n\ufffd")
    assert repo.find_user("x\x00@nul.local") is None and repo.find_group("t-nul", "a\x00b") == group
    grants = GrantRepo(engine)
    assert grants.find_user_code("AB\x00C") is None
