"""Authorization code + PKCE, driven like a browser, redeemed with msal and by hand; replay and
PKCE failures; and refresh by MSAL's silent path afterwards."""

from __future__ import annotations

import base64
import hashlib
import secrets
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import msal
import pytest
from identity_support import (
    COGNITIVE,
    COGNITIVE_SCOPE,
    GRAPH,
    LOOPBACK_REDIRECT,
    Metadata,
    UserAccount,
    auto_post_form,
    check_oauth_error,
    check_user_token,
    graph,
    query_of,
    sign_in_via_browser,
    submit_sign_in,
    token_post,
)

from support.server import CLI_CLIENT_ID, CieloServer


@pytest.fixture()
def public_app(client_env: dict[str, str], cielo_server: CieloServer) -> Iterator[msal.PublicClientApplication]:
    app = msal.PublicClientApplication(CLI_CLIENT_ID, authority=f"{cielo_server.base_url}/{cielo_server.tenant_id}",
                                       instance_discovery=False)
    yield app
    app.http_client.close()


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _authorize_url(server: CieloServer, challenge: str, *, scope: str = f"{GRAPH}/.default openid offline_access",
                   state: str = "st4te", redirect_uri: str = LOOPBACK_REDIRECT) -> str:
    query = {"client_id": CLI_CLIENT_ID, "response_type": "code", "redirect_uri": redirect_uri, "scope": scope,
             "state": state, "code_challenge": challenge, "code_challenge_method": "S256",
             "nonce": secrets.token_hex(8)}
    return f"{server.base_url}/{server.tenant_id}/oauth2/v2.0/authorize?{urlencode(query)}"


def _browser_code(server: CieloServer, user: UserAccount, challenge: str, **kwargs: Any) -> str:
    location = sign_in_via_browser(server, _authorize_url(server, challenge, **kwargs), user.upn, user.password)
    assert location.startswith(LOOPBACK_REDIRECT + "?"), location
    answer = query_of(location)
    assert answer["state"] == kwargs.get("state", "st4te")
    return answer["code"]


def _redeem(server: CieloServer, code: str, verifier: str, *, redirect_uri: str = LOOPBACK_REDIRECT) -> Any:
    return token_post(server, {"client_id": CLI_CLIENT_ID, "grant_type": "authorization_code", "code": code,
                               "redirect_uri": redirect_uri, "code_verifier": verifier,
                               "scope": f"{GRAPH}/.default openid offline_access"})


def test_auth_code_flow_with_msal(public_app: msal.PublicClientApplication, cielo_server: CieloServer,
                                  metadata: Metadata, member_user: UserAccount) -> None:
    flow = public_app.initiate_auth_code_flow([f"{GRAPH}/.default"], redirect_uri=LOOPBACK_REDIRECT)
    auth_uri = flow["auth_uri"]
    assert auth_uri.startswith(f"{cielo_server.base_url}/{cielo_server.tenant_id}/oauth2/v2.0/authorize?")
    sent = query_of(auth_uri)
    assert sent["code_challenge_method"] == "S256" and sent["code_challenge"]
    location = sign_in_via_browser(cielo_server, auth_uri, member_user.upn, member_user.password)
    assert urlsplit(location)._replace(query="").geturl() == LOOPBACK_REDIRECT
    result = public_app.acquire_token_by_auth_code_flow(flow, query_of(location))
    assert "access_token" in result, result
    check_user_token(result["access_token"], metadata, audience=GRAPH, app_id=CLI_CLIENT_ID, user=member_user,
                     scp="User.Read")
    id_claims = result["id_token_claims"]
    # MSAL sends SHA-256(nonce) in the request and checks the id_token's nonce against it.
    assert id_claims["nonce"] == sent["nonce"] == hashlib.sha256(flow["nonce"].encode()).hexdigest()
    assert id_claims["oid"] == member_user.object_id
    # The refresh token from the code works through MSAL's silent path for another resource.
    account = public_app.get_accounts(username=member_user.upn)[0]
    silent = public_app.acquire_token_silent([COGNITIVE_SCOPE], account=account)
    assert silent and "access_token" in silent, silent
    check_user_token(silent["access_token"], metadata, audience=COGNITIVE, app_id=CLI_CLIENT_ID,
                     user=member_user, scp="user_impersonation")


def test_auth_code_flow_confidential_web_app(client_env: dict[str, str], cielo_server: CieloServer,
                                            metadata: Metadata, member_user: UserAccount) -> None:
    """A registered web app with a secret: the redirect URI must be registered, and the user token
    names the app with appidacr "1"."""
    redirect = "https://localhost:8443/signin-oidc"
    registered = graph(cielo_server, "POST", "/applications", {
        "displayName": f"e2e-web-{secrets.token_hex(3)}", "web": {"redirectUris": [redirect]}})
    secret = graph(cielo_server, "POST", f"/applications/{registered['id']}/addPassword",
                                {"passwordCredential": {"displayName": "web"}})["secretText"]
    app = msal.ConfidentialClientApplication(
        registered["appId"], client_credential=secret,
        authority=f"{cielo_server.base_url}/{cielo_server.tenant_id}", instance_discovery=False)
    try:
        flow = app.initiate_auth_code_flow([COGNITIVE_SCOPE], redirect_uri=redirect)
        location = sign_in_via_browser(cielo_server, flow["auth_uri"], member_user.upn, member_user.password)
        assert location.startswith(redirect + "?")
        result = app.acquire_token_by_auth_code_flow(flow, query_of(location))
    finally:
        app.http_client.close()
    assert "access_token" in result, result
    check_user_token(result["access_token"], metadata, audience=COGNITIVE, app_id=registered["appId"],
                     user=member_user, scp="user_impersonation", acr="1")


def test_auth_code_flow_form_post(client_env: dict[str, str], cielo_server: CieloServer, metadata: Metadata,
                                  member_user: UserAccount) -> None:
    """response_mode=form_post, which MSAL recommends for web apps: the code comes back in an
    auto-submitting form that POSTs to the redirect URI, never in a URL."""
    redirect = "https://localhost:8443/signin-oidc"
    registered = graph(cielo_server, "POST", "/applications", {
        "displayName": f"e2e-formpost-{secrets.token_hex(3)}", "web": {"redirectUris": [redirect]}})
    secret = graph(cielo_server, "POST", f"/applications/{registered['id']}/addPassword",
                                {"passwordCredential": {"displayName": "web"}})["secretText"]
    app = msal.ConfidentialClientApplication(
        registered["appId"], client_credential=secret,
        authority=f"{cielo_server.base_url}/{cielo_server.tenant_id}", instance_discovery=False)
    try:
        flow = app.initiate_auth_code_flow([COGNITIVE_SCOPE], redirect_uri=redirect, response_mode="form_post")
        answer = submit_sign_in(cielo_server, flow["auth_uri"], member_user.upn, member_user.password)
        assert answer.status_code == 200, answer.text
        assert "location" not in answer.headers
        action, fields = auto_post_form(answer.text)
        assert action == redirect
        assert set(fields) >= {"code", "state"} and fields["state"] == flow["state"]
        result = app.acquire_token_by_auth_code_flow(flow, fields)
    finally:
        app.http_client.close()
    assert "access_token" in result, result
    check_user_token(result["access_token"], metadata, audience=COGNITIVE, app_id=registered["appId"],
                     user=member_user, scp="user_impersonation", acr="1")


def test_error_in_fragment(cielo_server: CieloServer) -> None:
    """Errors go back the way the client asked, here in the fragment (prompt=none with no session)."""
    import httpx

    _, challenge = _pkce()
    url = _authorize_url(cielo_server, challenge) + "&prompt=none&response_mode=fragment"
    with httpx.Client(verify=ssl.create_default_context(cafile=cielo_server.bundle)) as browser:
        answer = browser.get(url)
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(LOOPBACK_REDIRECT + "#")
    fragment = dict(pair.split("=", 1) for pair in location.split("#", 1)[1].split("&"))
    assert fragment["error"] == "login_required" and fragment["state"] == "st4te"


def test_v1_authorize_with_resource(cielo_server: CieloServer, metadata: Metadata,
                                    member_user: UserAccount) -> None:
    """The v1 endpoints name a `resource`; the code must carry it through the sign-in form."""
    query = {"client_id": CLI_CLIENT_ID, "response_type": "code", "redirect_uri": LOOPBACK_REDIRECT,
             "resource": "https://management.core.windows.net/", "state": "v1"}
    url = f"{cielo_server.base_url}/{cielo_server.tenant_id}/oauth2/authorize?{urlencode(query)}"
    code = query_of(sign_in_via_browser(cielo_server, url, member_user.upn, member_user.password))["code"]
    response = token_post(cielo_server, {"client_id": CLI_CLIENT_ID, "grant_type": "authorization_code",
                                         "code": code, "redirect_uri": LOOPBACK_REDIRECT,
                                         "resource": "https://management.core.windows.net/"},
                          path="oauth2/token")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resource"] == "https://management.core.windows.net/"
    assert isinstance(body["expires_in"], str)  # v1 answers with strings
    check_user_token(body["access_token"], metadata, audience="https://management.core.windows.net/",
                     app_id=CLI_CLIENT_ID, user=member_user, scp="user_impersonation")


def test_interactive_browser_credential(client_env: dict[str, str], cielo_server: CieloServer,
                                        metadata: Metadata, member_user: UserAccount,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """azure-identity's InteractiveBrowserCredential asks for response_mode=form_post and listens on
    http://localhost:PORT. The "browser" here is scripted: it signs in, then does what the page's
    script does, posting the hidden form to the credential's local server."""
    import threading
    import webbrowser

    import httpx
    from azure.identity import InteractiveBrowserCredential

    opened: list[str] = []
    failures: list[BaseException] = []

    def browse(url: str) -> None:
        try:
            answer = submit_sign_in(cielo_server, url, member_user.upn, member_user.password)
            assert answer.status_code == 200, answer.text
            action, fields = auto_post_form(answer.text)
            assert action.startswith("http://localhost:")
            httpx.post(action, data=fields, timeout=30).raise_for_status()
        except BaseException as exc:  # reported by the test thread below
            failures.append(exc)

    def open_browser(url: str, *args: Any, **kwargs: Any) -> bool:
        opened.append(url)
        threading.Thread(target=browse, args=(url,), daemon=True).start()
        return True

    monkeypatch.setattr(webbrowser, "open", open_browser)
    with InteractiveBrowserCredential(tenant_id=cielo_server.tenant_id, authority=cielo_server.base_url,
                                      disable_instance_discovery=True, timeout=30) as credential:
        token = credential.get_token(COGNITIVE_SCOPE)
    assert not failures, failures
    assert query_of(opened[0])["response_mode"] == "form_post"
    check_user_token(token.token, metadata, audience=COGNITIVE, app_id=CLI_CLIENT_ID, user=member_user,
                     scp="user_impersonation")


def test_replayed_code_revokes_its_refresh_token(cielo_server: CieloServer, member_user: UserAccount,
                                                 metadata: Metadata) -> None:
    verifier, challenge = _pkce()
    code = _browser_code(cielo_server, member_user, challenge)
    first = _redeem(cielo_server, code, verifier)
    assert first.status_code == 200, first.text
    tokens = first.json()
    check_user_token(tokens["access_token"], metadata, audience=GRAPH, app_id=CLI_CLIENT_ID, user=member_user,
                     scp="User.Read")
    assert tokens["id_token"] and tokens["refresh_token"]

    check_oauth_error(_redeem(cielo_server, code, verifier), 400, "invalid_grant", 54005)
    # RFC 6749 §4.1.2: what the code gave out is revoked once it is replayed.
    refreshed = token_post(cielo_server, {"client_id": CLI_CLIENT_ID, "grant_type": "refresh_token",
                                          "refresh_token": tokens["refresh_token"],
                                          "scope": f"{GRAPH}/.default offline_access"})
    check_oauth_error(refreshed, 400, "invalid_grant", 50173)


def test_pkce_mismatch(cielo_server: CieloServer, member_user: UserAccount) -> None:
    verifier, challenge = _pkce()
    code = _browser_code(cielo_server, member_user, challenge)
    check_oauth_error(_redeem(cielo_server, code, verifier + "x"), 400, "invalid_grant", 501481)
    # The code is spent by the failed attempt; the right verifier cannot use it afterwards.
    assert _redeem(cielo_server, code, verifier).status_code == 400


def test_pkce_verifier_missing(cielo_server: CieloServer, member_user: UserAccount) -> None:
    _, challenge = _pkce()
    code = _browser_code(cielo_server, member_user, challenge)
    check_oauth_error(_redeem(cielo_server, code, ""), 400, "invalid_grant", 501481)


def test_redirect_uri_must_match(cielo_server: CieloServer, member_user: UserAccount) -> None:
    verifier, challenge = _pkce()
    code = _browser_code(cielo_server, member_user, challenge)
    response = _redeem(cielo_server, code, verifier, redirect_uri="http://localhost:8401")
    check_oauth_error(response, 400, "invalid_grant", 50148)


def test_unknown_code(cielo_server: CieloServer) -> None:
    verifier, _ = _pkce()
    assert _redeem(cielo_server, "1.A" + secrets.token_urlsafe(40), verifier).json()["error"] == "invalid_grant"


def test_sign_in_page_refuses_bad_password(cielo_server: CieloServer, member_user: UserAccount) -> None:
    import httpx

    _, challenge = _pkce()
    url = _authorize_url(cielo_server, challenge)
    with httpx.Client(verify=ssl.create_default_context(cafile=cielo_server.bundle), follow_redirects=False) as browser:
        page = browser.get(url)
        from identity_support import _FormParser

        parser = _FormParser()
        parser.feed(page.text)
        answer = browser.post(f"{cielo_server.base_url}{parser.action}",
                              data={**parser.fields, "username": member_user.upn, "password": "wrong"})
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert "incorrect" in answer.text


def test_foreign_redirect_uri_is_not_followed(cielo_server: CieloServer) -> None:
    """An unregistered redirect URI is shown as an error page, never redirected to (open redirect)."""
    import httpx

    _, challenge = _pkce()
    url = _authorize_url(cielo_server, challenge, redirect_uri="https://evil.example/callback")
    with httpx.Client(verify=ssl.create_default_context(cafile=cielo_server.bundle), follow_redirects=False) as browser:
        answer = browser.get(url)
    assert answer.status_code == 400
    assert "location" not in answer.headers
