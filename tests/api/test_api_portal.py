"""The portal in-process: signing in (authorization code + PKCE, form_post), the sealed session cookie, pages
rendered with the signed-in user's own rights, anti-CSRF on every form, and refusals shown as the API put them."""

from __future__ import annotations

import re
import uuid
from html import unescape

import httpx
import pytest
from inproc import ADMIN, BASE_URL, PASSWORD, World, unique

from cielo.core.resources import PORTAL_CLIENT_ID

_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def hidden_fields(page: httpx.Response) -> dict[str, str]:
    return {name: unescape(value) for name, value in _INPUT.findall(page.text)}


def csrf_of(page: httpx.Response) -> str:
    return hidden_fields(page)["csrf_token"]


async def sign_in(client: httpx.AsyncClient, username: str = ADMIN, password: str = PASSWORD,
                  start: str = "/") -> httpx.Response:
    """A person at a browser: open the portal, be sent to sign in, sign in, come back. Returns the last page."""
    first = await client.get(start)
    assert first.status_code == 303 and first.headers["location"].startswith("/portal/signin"), first.text
    go = await client.get(first.headers["location"])
    assert go.status_code == 303, go.text
    authorize = await client.get(go.headers["location"])
    assert authorize.status_code == 200, authorize.text
    form = {**hidden_fields(authorize), "username": username, "password": password}
    posted = await client.post(go.headers["location"].split("?")[0], data=form)
    assert posted.status_code == 200, posted.text  # the auto-submitting form_post page
    assert "code=" not in str(posted.url)
    fields = hidden_fields(posted)
    back = await client.post("/portal/signin-oidc", data=fields)
    assert back.status_code == 303, back.text
    landed = await client.get(back.headers["location"])
    return landed


def portal_client(world: World) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=world.app), base_url=BASE_URL)


async def test_sign_in_with_pkce_lands_on_home_with_a_sealed_session(world: World) -> None:
    async with portal_client(world) as browser:
        home = await sign_in(browser)
        assert home.status_code == 200, home.text
        assert "Subscriptions" in home.text and world.sub in home.text
        names = set(browser.cookies.keys())
        assert "cielo_portal0" in names
        sealed = "".join(v for k, v in browser.cookies.items() if k.startswith("cielo_portal") and k[-1].isdigit())
        assert "eyJ" not in sealed  # no readable JWT in the cookie: it is encrypted
        assert home.headers["cache-control"] == "no-store"
        assert "script-src 'self'" in home.headers["content-security-policy"]


async def test_a_session_cookie_from_another_key_is_no_session(world: World) -> None:
    async with portal_client(world) as browser:
        browser.cookies.set("cielo_portal0", "gAAAAABforged", domain="127.0.0.1")
        answer = await browser.get("/portal/resources")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/portal/signin?next=%2Fportal%2Fresources"


async def test_the_portal_client_gets_codes_only_at_its_own_page(client: httpx.AsyncClient, world: World) -> None:
    for uri in ("https://evil.example/portal/signin-oidc", "http://localhost:9999/", BASE_URL + "/portal/other"):
        page = await client.get(f"/{world.tenant}/oauth2/v2.0/authorize", params={
            "client_id": PORTAL_CLIENT_ID, "response_type": "code", "redirect_uri": uri, "scope": "openid"})
        assert page.status_code == 400 and "AADSTS50011" in page.text, uri


async def test_a_callback_without_the_pending_sign_in_is_refused(world: World) -> None:
    async with portal_client(world) as browser:
        answer = await browser.post("/portal/signin-oidc", data={"code": "x", "state": "y"})
        assert answer.status_code == 400 and "Sign in again" in answer.text
        assert "cielo_portal0" not in browser.cookies


async def test_forms_need_the_anti_csrf_token(world: World) -> None:
    async with portal_client(world) as browser:
        await sign_in(browser)
        name = unique("portal-rg")
        refused = await browser.post(f"/portal/resource{world.sub_path}/overview", data={"name": name})
        assert refused.status_code == 400 and "expired" in refused.text
        assert world.services.resources is not None
        page = await browser.get(f"/portal/resource{world.sub_path}/overview")
        made = await browser.post(f"/portal/resource{world.sub_path}/overview",
                                  data={"name": name, "location": "eastus", "csrf_token": csrf_of(page)})
        assert made.status_code == 303, made.text
        group = await browser.get(made.headers["location"])
        assert group.status_code == 200 and f"Resource group &#39;{name}&#39; created." in group.text


async def test_sign_out_clears_the_session(world: World) -> None:
    async with portal_client(world) as browser:
        home = await sign_in(browser)
        out = await browser.post("/portal/signout", data={"csrf_token": csrf_of(home)})
        assert out.status_code == 303 and out.headers["location"] == "/portal/signedout"
        assert not any(k.startswith("cielo_portal") and k[-1].isdigit() for k in browser.cookies)
        again = await browser.get("/")
        assert again.status_code == 303


async def test_sign_out_drops_the_workers_copy_of_the_refreshed_tokens(world: World,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from cielo.web.portal import client

    async with portal_client(world) as browser:
        await sign_in(browser)
        before = set(client._redeemed)
        monkeypatch.setattr(client, "_EARLY_S", 10**9)  # every access token due: the page refreshes them
        entra = await browser.get("/portal/entra")  # a Graph token: the refresh token redeemed, rotated
        assert entra.status_code == 200
        mine = set(client._redeemed) - before
        assert mine
        out = await browser.post("/portal/signout", data={"csrf_token": csrf_of(entra)})
        assert out.status_code == 303
        assert not mine & set(client._redeemed)


@pytest.mark.parametrize("path", ["/portal/resource/subscriptions/x/overview/extra/bits", "/portal/resource/x"])
async def test_unknown_portal_pages_are_404_pages(world: World, path: str) -> None:
    async with portal_client(world) as browser:
        await sign_in(browser)
        answer = await browser.get(path)
        assert answer.status_code in (404, 403), answer.text
        assert "<html" in answer.text


def _uid() -> str:
    return str(uuid.uuid4())


async def test_error_uri_resolves_to_a_page_explaining_the_code(client: httpx.AsyncClient, world: World) -> None:
    refused = await client.post(world.token_url(), data={"client_id": PORTAL_CLIENT_ID, "grant_type": "password",
                                                         "username": ADMIN, "password": "wrong",
                                                         "scope": "https://management.azure.com/.default"})
    assert refused.status_code == 400
    error_uri = refused.json()["error_uri"]
    assert error_uri.startswith(BASE_URL + "/error?code=")
    page = await client.get(error_uri.removeprefix(BASE_URL))
    assert page.status_code == 200, page.text
    code = error_uri.rsplit("=", 1)[1]
    assert f"AADSTS{code}" in page.text and "<h1>AADSTS" in page.text
    unknown = await client.get("/error?code=AADSTS1")
    assert unknown.status_code == 404 and "Unknown error code" in unknown.text
    junk = await client.get("/error?code=<script>")
    assert junk.status_code == 400 and "<script>" not in junk.text
