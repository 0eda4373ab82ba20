from __future__ import annotations

import pytest

from cielo.core.resources import normalize_resource, parse_oauth_scope


def test_default_scope_keeps_resource_verbatim() -> None:
    scope = parse_oauth_scope("https://cognitiveservices.azure.com/.default")
    assert scope.resource == "https://cognitiveservices.azure.com"
    assert scope.is_default and scope.resource_scopes == ()


def test_arm_double_slash_keeps_trailing_slash() -> None:
    # az asks for `https://management.core.windows.net//.default` (observed with azure-cli 2.91).
    scope = parse_oauth_scope("https://management.core.windows.net//.default offline_access openid profile")
    assert scope.resource == "https://management.core.windows.net/"
    assert scope.oidc == {"offline_access", "openid", "profile"}
    assert scope.wants_refresh_token and scope.wants_id_token


def test_named_scope_and_bare_graph_scope() -> None:
    named = parse_oauth_scope("https://cognitiveservices.azure.com/user_impersonation")
    assert named.resource == "https://cognitiveservices.azure.com"
    assert named.resource_scopes == ("user_impersonation",)
    bare = parse_oauth_scope("User.Read openid")
    assert bare.resource == "https://graph.microsoft.com"
    assert bare.resource_scopes == ("User.Read",)


def test_oidc_only_names_no_resource() -> None:
    scope = parse_oauth_scope("openid profile offline_access")
    assert scope.resource is None and not scope.is_default


def test_two_resources_are_refused() -> None:
    with pytest.raises(ValueError):
        parse_oauth_scope("https://cognitiveservices.azure.com/.default https://graph.microsoft.com/.default")


def test_same_resource_twice_with_and_without_slash_is_one_resource() -> None:
    scope = parse_oauth_scope("https://graph.microsoft.com/User.Read https://graph.microsoft.com//.default")
    assert normalize_resource(scope.resource or "") == "https://graph.microsoft.com"


def test_normalize() -> None:
    assert normalize_resource(" HTTPS://Management.Azure.com/ ") == "https://management.azure.com"
