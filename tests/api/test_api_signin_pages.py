"""The sign-in pages in-process (web/pages.py): the authorize page a browser sees and what it hands back to the
redirect URI (query, fragment, form_post; errors shown or redirected as Entra does), and the device-code pages
(enter the code, see who asks, sign in or deny). The form's double-submit CSRF pair is read from the page."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from inproc import ADMIN, CLI_CLIENT_ID, COG_RESOURCE, PASSWORD, World, oauth_error

LOOPBACK = "http://localhost:8400/callback"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
AUTHORIZE = {"client_id": CLI_CLIENT_ID, "redirect_uri": LOOPBACK, "response_type": "code",
             "scope": f"{COG_RESOURCE}/.default openid offline_access", "state": "st-1"}


def _fields(page: str) -> dict[str, str]:
    """The form's input fields, as the browser would post them."""
    return {html.unescape(name): html.unescape(value)
            for name, value in re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page)}


async def _sign_in_form(client: httpx.AsyncClient, world: World, params: dict[str, str],
                        path: str = "oauth2/v2.0/authorize") -> dict[str, str]:
    page = await client.get(f"/{world.tenant}/{path}", params=params)
    assert page.status_code == 200, page.text
    assert (page.headers["x-frame-options"], page.headers["content-security-policy"]) == (
        "DENY", "frame-ancestors 'none'")  # never inside another site's frame (clickjacking)
    fields = _fields(page.text)
    assert client.cookies.get("cielo_csrf") == fields["csrf_token"]
    return fields


async def test_the_sign_in_page_carries_the_request_and_hands_back_a_code(client: httpx.AsyncClient,
                                                                          world: World) -> None:
    fields = await _sign_in_form(client, world, {**AUTHORIZE, "login_hint": ADMIN, "unknown_param": "dropped"})
    assert {k: fields[k] for k in AUTHORIZE} == AUTHORIZE
    assert fields["username"] == ADMIN and "unknown_param" not in fields and "login_hint" not in fields
    answer = await client.post(f"/{world.tenant}/oauth2/v2.0/authorize", data={**fields, "password": PASSWORD})
    assert answer.status_code == 302, answer.text
    location = urlparse(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == LOOPBACK
    query = parse_qs(location.query)
    assert query["state"] == ["st-1"] and query["code"][0] and query["session_state"][0] != world.admin_id
    token = await client.post(world.token_url(), data={
        "grant_type": "authorization_code", "client_id": CLI_CLIENT_ID, "code": query["code"][0],
        "redirect_uri": LOOPBACK})
    assert token.status_code == 200, token.text


@pytest.mark.parametrize("mode", ["fragment", "form_post"])
async def test_response_modes(client: httpx.AsyncClient, world: World, mode: str) -> None:
    fields = await _sign_in_form(client, world, {**AUTHORIZE, "response_mode": mode})
    answer = await client.post(f"/{world.tenant}/oauth2/v2.0/authorize",
                               data={**fields, "username": ADMIN, "password": PASSWORD})
    if mode == "fragment":
        assert answer.status_code == 302
        values = parse_qs(urlparse(answer.headers["location"]).fragment)
    else:  # a page that posts the result to the redirect URI
        assert answer.status_code == 200 and f'action="{LOOPBACK}"' in answer.text
        values = {k: [v] for k, v in _fields(answer.text).items()}
    assert values["state"] == ["st-1"] and values["code"][0]


async def test_v1_authorize_takes_a_resource(client: httpx.AsyncClient, world: World) -> None:
    params = {k: v for k, v in AUTHORIZE.items() if k != "scope"}
    fields = await _sign_in_form(client, world, {**params, "resource": COG_RESOURCE}, "oauth2/authorize")
    assert fields["resource"] == COG_RESOURCE
    answer = await client.post(f"/{world.tenant}/oauth2/authorize",
                               data={**fields, "username": ADMIN, "password": PASSWORD})
    code = parse_qs(urlparse(answer.headers["location"]).query)["code"][0]
    token = await client.post(world.token_url(v1=True), data={
        "grant_type": "authorization_code", "client_id": CLI_CLIENT_ID, "code": code, "redirect_uri": LOOPBACK,
        "resource": COG_RESOURCE})
    assert token.status_code == 200 and token.json()["resource"] == COG_RESOURCE, token.text


@pytest.mark.parametrize(("tenant", "params", "code", "says"), [
    ("no-such-tenant.example", AUTHORIZE, 90002, "no-such-tenant.example"),
    (None, {**AUTHORIZE, "client_id": "00000000-0000-0000-0000-0000000000aa"}, 700016,
     "Application with identifier &#39;00000000-0000-0000-0000-0000000000aa&#39; was not found"),
    (None, {**AUTHORIZE, "redirect_uri": "https://evil.example/cb"}, 50011,
     "The redirect URI specified in the request does not match"),
])
async def test_a_bad_client_or_redirect_is_shown_never_redirected(client: httpx.AsyncClient, world: World,
                                                                  tenant: str | None, params: dict[str, str],
                                                                  code: int, says: str) -> None:
    for method in ("GET", "POST"):
        if method == "GET":
            page = await client.get(f"/{tenant or world.tenant}/oauth2/v2.0/authorize", params=params)
        else:
            page = await client.post(f"/{tenant or world.tenant}/oauth2/v2.0/authorize", data=params)
        assert page.status_code == 400 and "location" not in page.headers
        assert f"AADSTS{code}" in page.text and says in page.text, page.text


@pytest.mark.parametrize(("params", "error", "aadsts"), [
    ({"response_type": "token"}, "unsupported_response_type", "AADSTS700054"),
    ({"code_challenge_method": "S512"}, "invalid_request", "AADSTS501491"),
    ({"prompt": "none"}, "login_required", "AADSTS50058"),
])
async def test_a_bad_request_from_a_good_client_goes_back_to_it(client: httpx.AsyncClient, world: World,
                                                                params: dict[str, str], error: str,
                                                                aadsts: str) -> None:
    page = await client.get(f"/{world.tenant}/oauth2/v2.0/authorize", params={**AUTHORIZE, **params})
    assert page.status_code == 302
    query = parse_qs(urlparse(page.headers["location"]).query)
    assert query["error"] == [error] and query["error_description"][0].startswith(aadsts)
    assert query["state"] == ["st-1"]


async def test_a_wrong_password_or_a_stale_form_shows_the_page_again(client: httpx.AsyncClient,
                                                                     world: World) -> None:
    fields = await _sign_in_form(client, world, AUTHORIZE)
    wrong = await client.post(f"/{world.tenant}/oauth2/v2.0/authorize",
                              data={**fields, "username": ADMIN, "password": "Wrong-Passw0rd!"})
    assert wrong.status_code == 400 and "location" not in wrong.headers
    assert _fields(wrong.text)["username"] == ADMIN  # kept for the next try
    stale = await client.post(f"/{world.tenant}/oauth2/v2.0/authorize",
                              data={**fields, "csrf_token": "x" * 43, "username": ADMIN, "password": PASSWORD})
    assert stale.status_code == 400 and "location" not in stale.headers


# ----------------------------------------------------------------------------- device code
async def _device(client: httpx.AsyncClient, world: World) -> dict[str, str]:
    answer = await client.post(f"/{world.tenant}/oauth2/v2.0/devicecode", data={
        "client_id": CLI_CLIENT_ID, "scope": f"{COG_RESOURCE}/.default offline_access"})
    assert answer.status_code == 200, answer.text
    body: dict[str, str] = answer.json()
    return body


def _poll(code: str) -> dict[str, str]:
    return {"grant_type": DEVICE_GRANT, "client_id": CLI_CLIENT_ID, "device_code": code}


async def test_device_code_entered_then_signed_in(client: httpx.AsyncClient, world: World) -> None:
    device = await _device(client, world)
    enter = await client.get("/devicelogin")
    assert enter.status_code == 200
    fields = _fields(enter.text)
    # The code as a person types it: lower case, with a dash.
    typed = device["user_code"].lower()[:4] + "-" + device["user_code"].lower()[4:]
    consent = await client.post("/devicelogin", data={**fields, "user_code": typed})
    assert consent.status_code == 200, consent.text
    assert "Microsoft Azure CLI" in consent.text and f"{COG_RESOURCE}/.default" in consent.text
    fields = _fields(consent.text)
    wrong = await client.post("/devicelogin", data={**fields, "username": ADMIN, "password": "Wrong-Passw0rd!"})
    assert wrong.status_code == 400
    oauth_error(await client.post(world.token_url(), data=_poll(device["device_code"])),
                400, "authorization_pending", 70016)
    done = await client.post("/devicelogin", data={**fields, "username": ADMIN, "password": PASSWORD})
    assert done.status_code == 200 and "You&#39;re signed in" in done.text, done.text
    token = await client.post(world.token_url(), data=_poll(device["device_code"]))
    assert token.status_code == 200, token.text
    assert {"access_token", "refresh_token"} <= set(token.json())
    # The code is used up: entering it again is refused.
    again = await client.post("/devicelogin", data={**fields, "user_code": device["user_code"]})
    assert again.status_code == 400


@pytest.mark.parametrize("user_code", ["", "NOTACODE"])
async def test_an_unknown_device_code_is_refused(client: httpx.AsyncClient, user_code: str) -> None:
    fields = _fields((await client.get("/devicelogin")).text)
    page = await client.post("/devicelogin", data={**fields, "user_code": user_code})
    assert page.status_code == 400 and _fields(page.text).get("user_code", "") == user_code
