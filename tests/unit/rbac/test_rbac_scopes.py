"""Scope parsing: canonical form, whole-segment ancestry, and refusal of anything that could escape."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cielo.rbac import InvalidScope, ScopeKind, ancestors, is_within, normalize_scope, parse_scope

RG = "/subscriptions/sub1/resourceGroups/rg1"
ACCOUNT = f"{RG}/providers/Microsoft.CognitiveServices/accounts/acct1"


@pytest.mark.parametrize(
    ("scope", "kind"),
    [
        ("/", ScopeKind.ROOT),
        ("/subscriptions/sub1", ScopeKind.SUBSCRIPTION),
        (RG, ScopeKind.RESOURCE_GROUP),
        (ACCOUNT, ScopeKind.RESOURCE),
        (f"{ACCOUNT}/deployments/gpt", ScopeKind.RESOURCE),
        ("/subscriptions/sub1/providers/Microsoft.Authorization/roleDefinitions/x", ScopeKind.RESOURCE),
        ("/providers/Microsoft.Management/managementGroups/mg1", ScopeKind.MANAGEMENT_GROUP),
        ("/providers/Microsoft.Authorization/roleDefinitions/x", ScopeKind.RESOURCE),
        (f"{ACCOUNT}/providers/Microsoft.Authorization/roleAssignments/ra1", ScopeKind.RESOURCE),
    ],
)
def test_valid_scopes(scope: str, kind: ScopeKind) -> None:
    parsed = parse_scope(scope)
    assert parsed.kind is kind
    assert parsed.path == scope
    assert parsed.chain[-1] == scope


def test_canonical_form_keeps_names_and_fixes_keywords() -> None:
    parsed = parse_scope("/SUBSCRIPTIONS/Sub1/resourcegroups/MyRG/PROVIDERS/microsoft.cognitiveservices/Accounts/A/")
    assert parsed.path == "/subscriptions/Sub1/resourceGroups/MyRG/providers/microsoft.cognitiveservices/Accounts/A"
    assert parsed.key == parsed.path.lower()
    assert parsed.subscription_id == "Sub1"
    assert parsed.resource_group == "MyRG"
    assert normalize_scope("/subscriptions/a/") == "/subscriptions/a"


def test_ancestors_from_root_down() -> None:
    assert ancestors(f"{ACCOUNT}/deployments/gpt") == (
        "/",
        "/subscriptions/sub1",
        RG,
        ACCOUNT,
        f"{ACCOUNT}/deployments/gpt",
    )
    assert ancestors("/") == ("/",)
    extension = f"{ACCOUNT}/providers/Microsoft.Authorization/roleAssignments/ra1"
    assert ancestors(extension)[-2:] == (ACCOUNT, extension)
    assert parse_scope(ACCOUNT).parent == parse_scope(RG)
    assert parse_scope("/").parent is None


@pytest.mark.parametrize(
    ("child", "ancestor", "expected"),
    [
        ("/subscriptions/a", "/subscriptions/a", True),
        ("/subscriptions/ab", "/subscriptions/a", False),
        ("/subscriptions/a", "/subscriptions/ab", False),
        ("/subscriptions/a/resourceGroups/rg", "/subscriptions/a", True),
        ("/subscriptions/a", "/subscriptions/a/resourceGroups/rg", False),
        ("/subscriptions/A/RESOURCEGROUPS/Rg", "/subscriptions/a/resourceGroups/rG/", True),
        ("/subscriptions/a/resourceGroups/rg2", "/subscriptions/a/resourceGroups/rg", False),
        (f"{ACCOUNT}/deployments/d", ACCOUNT, True),
        (f"{ACCOUNT}2", ACCOUNT, False),
        ("/subscriptions/x", "/", True),
        ("/", "/subscriptions/x", False),
        ("/subscriptions/\u212a", "/subscriptions/k", False),  # Kelvin sign is not the letter k
        ("/subscriptions/\u00c9t\u00e9", "/subscriptions/\u00c9t\u00e9", True),
    ],
)
def test_is_within_on_whole_segments(child: str, ancestor: str, expected: bool) -> None:
    assert is_within(child, ancestor) is expected


@pytest.mark.parametrize(
    "scope",
    [
        "",
        "subscriptions/a",
        "//",
        "/subscriptions",
        "/subscriptions/",
        "/subscriptions//",
        "/subscriptions/a//",
        "/subscriptions//resourceGroups/rg",
        "/subscriptions/a/resourceGroups",
        "/subscriptions/a/resourceGroups/",
        "/subscriptions/a/resourceGroups/rg/providers",
        "/subscriptions/a/resourceGroups/rg/providers/Microsoft.Web",
        "/subscriptions/a/resourceGroups/rg/providers/Microsoft.Web/sites",
        "/subscriptions/a/resourceGroups/rg/providers/Microsoft.Web/sites/s/slots",
        "/subscriptions/a/resourceGroups/rg/providers/Microsoft.Web/sites/s/providers",
        "/subscriptions/a/resourceGroups/rg/resourceGroups/rg2",
        "/subscriptions/a/foo/bar",
        "/resourceGroups/rg",
        "/tenants/t",
        "/subscriptions/a/../b",
        "/subscriptions/a/resourceGroups/..",
        "/subscriptions/./a",
        "/subscriptions/a%2Fb",
        "/subscriptions/a%2fresourceGroups%2frg",
        "/subscriptions/a%20",
        "/subscriptions/a\\..\\b",
        "/subscriptions/a\x00",
        "/subscriptions/a\n",
        "/subscriptions/a b",
        " /subscriptions/a",
        "/subscriptions/a?x=1",
        "/subscriptions/a#frag",
        "/subscriptions/\u200ba",  # zero-width space
        "/subscriptions/a\u202e",  # right-to-left override
        "/subscriptions/a\u00a0",  # no-break space
        "/subscriptions/" + "x" * 3000,
    ],
)
def test_invalid_scopes_are_refused(scope: str) -> None:
    with pytest.raises(InvalidScope) as info:
        parse_scope(scope)
    assert isinstance(info.value, ValueError)
    assert info.value.status == 400


# ------------------------------------------------------------------------------ properties
_names = st.text(alphabet="abcXYZ019-_.()", min_size=1, max_size=6).filter(lambda s: s not in (".", ".."))


@st.composite
def scopes(draw: st.DrawFn) -> str:
    depth = draw(st.integers(0, 5))
    parts = ["", "subscriptions", draw(_names)] if depth else [""]
    if depth >= 2:
        parts += ["resourceGroups", draw(_names)]
    if depth >= 3:
        parts += ["providers", "Microsoft.CognitiveServices", "accounts", draw(_names)]
    if depth >= 4:
        parts += ["deployments", draw(_names)]
    if depth >= 5:
        parts += ["providers", "Microsoft.Authorization", "roleAssignments", draw(_names)]
    return "/".join(parts) or "/"


def _swapcase_some(text: str, data: st.DataObject) -> str:
    flips = data.draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.swapcase() if flip else c for c, flip in zip(text, flips, strict=True))


@settings(max_examples=200, deadline=None)
@given(scope=scopes(), data=st.data())
def test_case_changes_never_change_identity(scope: str, data: st.DataObject) -> None:
    mangled = _swapcase_some(scope, data)
    assert parse_scope(mangled).key == parse_scope(scope).key
    assert is_within(mangled, scope) and is_within(scope, mangled)


@settings(max_examples=200, deadline=None)
@given(child=scopes(), ancestor=scopes())
def test_is_within_is_a_whole_segment_prefix(child: str, ancestor: str) -> None:
    c, a = parse_scope(child).key, parse_scope(ancestor).key
    expected = a == "/" or c == a or c.startswith(a + "/")
    assert is_within(child, ancestor) is expected
    if is_within(child, ancestor) and is_within(ancestor, child):
        assert c == a


@settings(max_examples=200, deadline=None)
@given(scope=scopes())
def test_every_ancestor_contains_the_scope(scope: str) -> None:
    chain = ancestors(scope)
    assert chain[0] == "/" and chain[-1] == parse_scope(scope).path
    assert all(is_within(scope, a) for a in chain)
    assert all(is_within(chain[i + 1], chain[i]) for i in range(len(chain) - 1))


# The cached parser reuses a parent's parse for nested resources; it must agree with the full grammar
# on everything, malformed input included.
_pieces = st.sampled_from(
    ["subscriptions", "SUBSCRIPTIONS", "resourceGroups", "resourcegroups", "providers", "Providers", "Microsoft.X",
     "accounts", "deployments", "a", "Bb", "", ".", "..", "%2F", "x y", "\u00e9", "\u200b", "\\"]
)


_odd = st.sampled_from(["", ".", "..", "providers", "%2F", "\u00e9", "\u200b"])
_fine = st.sampled_from(["a", "deployments", "Bb"])


@st.composite
def scope_like(draw: st.DrawFn) -> str:
    shape = draw(st.integers(0, 2))
    if shape == 0:  # anything made of keywords, names and odd pieces
        text = "/" + "/".join(draw(st.lists(st.one_of(_pieces, _odd), min_size=1, max_size=12)))
    else:  # a valid scope, then maybe an odd joint, then a type/name pair: the fast path's territory
        base = draw(scopes()).rstrip("/")
        joint = [draw(_odd)] if draw(st.booleans()) else []
        pair = [draw(st.one_of(_fine, _odd)), draw(st.one_of(_fine, _odd))]
        text = "/".join([base, *joint, *pair]) if shape == 1 else "/".join([base, *pair, *joint])
    return text + ("/" if draw(st.booleans()) else "")


def _outcome(parse: object, text: str) -> object:
    try:
        return parse(text)  # type: ignore[operator]
    except InvalidScope:
        return "invalid"


@settings(max_examples=1000, deadline=None)
@given(text=scope_like(), warm=st.booleans())
def test_cached_parser_agrees_with_the_full_grammar(text: str, warm: bool) -> None:
    from cielo.rbac.scopes import _parse_full

    if not warm:
        parse_scope.cache_clear()
    assert _outcome(parse_scope, text) == _outcome(_parse_full, text)


@pytest.mark.parametrize(
    "scope",
    [
        f"{ACCOUNT}//deployments/d",
        f"{ACCOUNT}/./deployments/d",
        f"{ACCOUNT}/../deployments/d",
        f"{ACCOUNT}/deployments//",
        f"{ACCOUNT}/deployments/d%2F..",
        f"{ACCOUNT}/providers/deployments",
    ],
)
def test_nested_fast_path_refuses_what_the_grammar_refuses(scope: str) -> None:
    parse_scope(ACCOUNT)  # the parent is cached
    with pytest.raises(InvalidScope):
        parse_scope(scope)
