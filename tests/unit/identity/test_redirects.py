from __future__ import annotations

import pytest

from cielo.identity.redirects import NATIVE_CLIENT, allowed_redirect, parse_redirect_uri

CLI = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
APP = "11111111-2222-3333-4444-555555555555"


@pytest.mark.parametrize("uri", [
    "http://localhost", "http://localhost:8400", "http://localhost:8400/", "http://127.0.0.1:1/cb?x=1&y=%20",
    "http://[::1]:65535/a/b", "https://app.example.com/signin-oidc", "https://app.example.com:8443/cb",
])
def test_plain_uris_parse_and_rebuild_to_themselves(uri: str) -> None:
    parsed = parse_redirect_uri(uri)
    assert parsed is not None and parsed.url() == uri


@pytest.mark.parametrize("uri", [
    "http://evil.example:10450\\@localhost/", "http://localhost@evil.example/", "http://u:p@localhost/",
    "http://localhost%2eevil.example/", "http://127.0.0.1.evil.example/", "http://localhost:8400#frag",
    "http://localhost/a\\b", "http://localhost/ a", "http://localhost/%zz", "http://LOCALHOST/",
    "http://localhost:0/", "http://localhost:080/", "http://localhost:65536/", "http://evil.example/",
    "ftp://localhost/", "//localhost/", "http:/localhost/", "http://localhost./", "http://[::2]/",
    "http://localhost\x00.evil/", "https://app.example.com/cb\n", "",
])
def test_odd_uris_are_refused(uri: str) -> None:
    assert parse_redirect_uri(uri) is None


def test_first_party_clients_get_any_loopback_port_and_the_native_client() -> None:
    assert allowed_redirect(CLI, None, "http://localhost:51234") is not None
    assert allowed_redirect(CLI, None, "http://[::1]:4000/") is not None
    assert allowed_redirect(CLI, None, NATIVE_CLIENT) is not None
    assert allowed_redirect(CLI, None, "https://app.example.com/cb") is None


def test_registered_uris_match_exactly_except_the_loopback_port() -> None:
    registered = ("https://app.example.com/cb", "http://localhost:3000/auth")
    assert allowed_redirect(APP, registered, "https://app.example.com/cb") is not None
    assert allowed_redirect(APP, registered, "https://app.example.com/cb/") is None
    assert allowed_redirect(APP, registered, "https://app.example.com/cb?x=1") is None
    assert allowed_redirect(APP, registered, "http://localhost:4999/auth") is not None
    assert allowed_redirect(APP, registered, "http://localhost:4999/other") is None
    assert allowed_redirect(APP, registered, "http://127.0.0.1:3000/auth") is None
    assert allowed_redirect(APP, None, "https://app.example.com/cb") is None
