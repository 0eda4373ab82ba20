"""dataplane/auth.py's GrantCache: data actions RBAC allowed are remembered per principal (as its token names it),
action and scope, and forgotten all at once when what they depend on changes or the cache is full."""

from __future__ import annotations

import dataclasses

import pytest

from cielo.dataplane.auth import GrantCache
from cielo.identity.validation import TokenPrincipal

ACTION = "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action"
SCOPE = "/subscriptions/s/resourcegroups/rg/providers/microsoft.cognitiveservices/accounts/a/deployments/d"
ALICE = TokenPrincipal("oid-1", "tenant-1", "app-1", "user", "alice@x", "aud", (), {}, 0)


class Version:
    def __init__(self) -> None:
        self.value = 1

    def __call__(self) -> int:
        return self.value


def test_a_remembered_grant_holds_while_nothing_changes() -> None:
    version = Version()
    cache = GrantCache(version)
    assert cache.allowed(ALICE, ACTION, SCOPE) is False  # first look: nothing known yet
    cache.remember(ALICE, ACTION, SCOPE)
    assert cache.allowed(ALICE, ACTION, SCOPE) is True
    version.value = 2  # an assignment or the directory changed: every grant is decided afresh
    assert cache.allowed(ALICE, ACTION, SCOPE) is False
    assert cache.allowed(ALICE, ACTION, SCOPE) is False  # forgotten, not just skipped once


@pytest.mark.parametrize("other", [
    dataclasses.replace(ALICE, object_id="oid-2"),
    dataclasses.replace(ALICE, tenant_id="tenant-2"),
    dataclasses.replace(ALICE, kind="app"),
    dataclasses.replace(ALICE, app_id="app-2"),
])
def test_a_grant_is_for_that_principal_only(other: TokenPrincipal) -> None:
    cache = GrantCache(Version())
    cache.allowed(ALICE, ACTION, SCOPE)
    cache.remember(ALICE, ACTION, SCOPE)
    assert cache.allowed(other, ACTION, SCOPE) is False
    assert cache.allowed(ALICE, ACTION + "x", SCOPE) is False
    assert cache.allowed(ALICE, ACTION, SCOPE + "x") is False
    # The other principal's token changes nothing about Alice's grant.
    assert cache.allowed(dataclasses.replace(ALICE, upn="renamed@x", expires_at=99), ACTION, SCOPE) is True


def test_a_full_cache_starts_over() -> None:
    cache = GrantCache(Version(), size=2)
    cache.allowed(ALICE, ACTION, SCOPE)
    for scope in ("s1", "s2"):
        cache.remember(ALICE, ACTION, scope)
    assert cache.allowed(ALICE, ACTION, "s1") and cache.allowed(ALICE, ACTION, "s2")
    cache.remember(ALICE, ACTION, "s3")  # past the size: emptied, then this one kept
    assert [cache.allowed(ALICE, ACTION, s) for s in ("s1", "s2", "s3")] == [False, False, True]
