"""Action pattern matching: `*` spans whole segments, case-insensitive, NotActions per block."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cielo.rbac import InvalidAction, PatternSet, RolePermissions, action_matches, normalize_action
from cielo.rbac import actions as actions_module

OPENAI = "Microsoft.CognitiveServices/accounts/OpenAI"


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("*/read", "Microsoft.CognitiveServices/accounts/read", True),
        ("*/read", "Microsoft.Resources/subscriptions/resourceGroups/read", True),
        ("*/read", "Microsoft.CognitiveServices/accounts/write", False),
        ("*/read", "Microsoft.CognitiveServices/accounts/readx", False),
        ("*/read", "Microsoft.CognitiveServices/accounts/unread", False),
        ("Microsoft.Authorization/*/Delete", "Microsoft.Authorization/roleAssignments/delete", True),
        ("Microsoft.Authorization/*/Delete", "microsoft.authorization/ROLEASSIGNMENTS/DELETE", True),
        ("Microsoft.Authorization/*/Delete", "Microsoft.Authorization/locks/nested/delete", True),
        ("Microsoft.Authorization/*/Delete", "Microsoft.Authorization/delete", False),
        ("Microsoft.Authorization/*/Delete", "Microsoft.AuthorizationX/roleAssignments/delete", False),
        (f"{OPENAI}/*/read", f"{OPENAI}/deployments/read", True),
        (f"{OPENAI}/*/read", f"{OPENAI}/assistants/threads/messages/files/read", True),
        (f"{OPENAI}/*/read", f"{OPENAI}/read", False),
        (f"{OPENAI}/*/read", f"{OPENAI}/deployments/chat/completions/action", False),
        ("Microsoft.CognitiveServices/*", f"{OPENAI}/deployments/chat/completions/action", True),
        ("Microsoft.CognitiveServices/*", "Microsoft.CognitiveServicesX/accounts/read", False),
        ("Microsoft.Support/*", "Microsoft.Support", False),
        ("*", "Microsoft.Anything/at/all/action", True),
        ("*", "single", True),
        ("*/*", "single", False),
        ("*/*", "a/b", True),
        ("a/*/b/*/c", "a/x/b/y/z/c", True),
        ("a/*/b/*/c", "a/b/c", False),
        ("a/*/b/*/c", "a/x/y/b/c", False),
        ("Microsoft.CognitiveServices/accounts/listkeys/action", "Microsoft.CognitiveServices/accounts/listKeys/action",
         True),
    ],
)
def test_pattern_matching(pattern: str, action: str, expected: bool) -> None:
    assert action_matches(pattern, action) is expected


@pytest.mark.parametrize(
    "pattern", ["", "Microsoft.Sto*/read", "a//b", "/a/b", "a/b/", "a b/read", "a/é/read", "a/%2F/read", "a/b?/c"]
)
def test_malformed_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(InvalidAction):
        PatternSet([pattern])


@pytest.mark.parametrize("action", ["", "*", "a/*/read", "a//b", "a/b/", "x" * 600, "a/\u00e9", "a b"])
def test_malformed_actions_are_refused(action: str) -> None:
    with pytest.raises(InvalidAction) as info:
        normalize_action(action)
    assert info.value.code == "InvalidActionOrNotAction"
    assert isinstance(info.value, ValueError)


def test_not_actions_subtract_only_within_their_block() -> None:
    perms = RolePermissions(
        [
            (["*"], ["Microsoft.Authorization/*/Write"], [], []),
            (["Microsoft.Authorization/roleAssignments/write"], [], [], []),
        ]
    )
    assert perms.allows("microsoft.authorization/roleassignments/write", False)
    assert not perms.allows("microsoft.authorization/roledefinitions/write", False)


def test_control_plane_star_never_grants_data_actions() -> None:
    perms = RolePermissions([(["*"], [], [], [])])
    action = normalize_action(f"{OPENAI}/deployments/chat/completions/action")
    assert perms.allows(action, False)
    assert not perms.allows(action, True)


def test_memo_is_bounded_and_stays_correct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(actions_module, "_MEMO_LIMIT", 8)
    perms = RolePermissions([(["*/read"], ["secret/*"], [], [])])
    for i in range(50):
        assert perms.allows(f"p/r{i}/read", False)
        assert not perms.allows(f"secret/r{i}/read", False)
    assert len(perms._control_memo) <= 8


# ------------------------------------------------------------------------- property: agree with a regex
def _reference(pattern: str, action: str) -> bool:
    """The documented meaning, written independently: `*` = one or more whole segments, ignoring case."""
    parts = [r"[^/]+(?:/[^/]+)*" if seg == "*" else re.escape(seg) for seg in pattern.split("/")]
    return re.fullmatch("/".join(parts), action, re.IGNORECASE) is not None


_SEGS = st.sampled_from(["a", "B", "read", "Write", "x.y"])
_actions = st.lists(_SEGS, min_size=1, max_size=7).map("/".join)
_patterns = st.lists(st.one_of(_SEGS, st.just("*")), min_size=1, max_size=6).map("/".join)


@settings(max_examples=400, deadline=None)
@given(pattern=_patterns, action=_actions)
def test_single_pattern_agrees_with_reference(pattern: str, action: str) -> None:
    assert action_matches(pattern, action) is _reference(pattern, action)


@settings(max_examples=200, deadline=None)
@given(patterns=st.lists(_patterns, max_size=5), action=_actions)
def test_pattern_set_is_the_union(patterns: list[str], action: str) -> None:
    expected = any(_reference(p, action) for p in patterns)
    assert PatternSet(patterns).matches(normalize_action(action)) is expected


def test_many_wildcards_do_not_blow_up() -> None:
    pattern = "/".join(["*"] * 20) + "/never"
    action = normalize_action("/".join(["seg"] * 60))
    assert not PatternSet([pattern]).matches(action)
