"""The token endpoint's refusals of user grants in-process, each with Entra's error and AADSTS code: an
authorization code (missing, expired, for another client, PKCE without or with the wrong verifier, plain PKCE), a
refresh token (missing, expired), a password grant without its fields, and a user disabled since. Codes are issued
straight from the grant module (the sign-in page is tests/api/test_api_signin_pages.py): the token endpoint is
what is under test."""

from __future__ import annotations

import httpx
import pytest
from inproc import ADMIN, CLI_CLIENT_ID, COG_RESOURCE, World, oauth_error

from cielo.core.clock import FrozenClock
from cielo.core.ids import pkce_s256
from cielo.identity.grants.authorization_code import issue_code

LOOPBACK = "http://localhost:8400/callback"


def _code(world: World, *, challenge: str | None = None, method: str | None = None,
          user_id: str | None = None) -> str:
    return issue_code(world.services.tokens.ctx, tenant_id=world.tenant, client_id=CLI_CLIENT_ID,
                      user_id=user_id or world.admin_id, redirect_uri=LOOPBACK,
                      scope=f"{COG_RESOURCE}/.default offline_access", code_challenge=challenge,
                      code_challenge_method=method, nonce=None)


def _redeem(code: str, **extra: str) -> dict[str, str]:
    return {"grant_type": "authorization_code", "client_id": CLI_CLIENT_ID, "code": code,
            "redirect_uri": LOOPBACK, **extra}


async def test_a_code_is_missing_expired_or_for_another_client(client: httpx.AsyncClient, world: World,
                                                              moved_clock: FrozenClock) -> None:
    oauth_error(await client.post(world.token_url(), data=_redeem("")), 400, "invalid_request", 900144)
    other_client = await client.post(world.token_url(), data={
        **_redeem(_code(world)), "client_id": "872cd9fa-d31f-45e0-9eab-6e460a02d1f1"})  # Visual Studio
    oauth_error(other_client, 400, "invalid_grant", 70000)
    old = _code(world)
    moved_clock.advance(601)
    oauth_error(await client.post(world.token_url(), data=_redeem(old)), 400, "invalid_grant", 70008)


@pytest.mark.parametrize(("method", "verifier", "status"), [
    ("S256", None, 501481),  # a challenge was made: the verifier is required
    ("S256", "w" * 43, 501481),
    ("plain", "v" * 43, None),  # plain PKCE: the verifier is the challenge
    ("plain", "w" * 43, 501481),
])
async def test_pkce(client: httpx.AsyncClient, world: World, method: str, verifier: str | None,
                    status: int | None) -> None:
    challenge = pkce_s256("v" * 43) if method == "S256" else "v" * 43
    code = _code(world, challenge=challenge, method=method)
    answer = await client.post(world.token_url(), data=_redeem(code, **(
        {"code_verifier": verifier} if verifier else {})))
    if status is None:
        assert answer.status_code == 200, answer.text
    else:
        oauth_error(answer, 400, "invalid_grant", status)


async def test_a_refresh_token_missing_or_expired(client: httpx.AsyncClient, world: World,
                                                  moved_clock: FrozenClock) -> None:
    refresh = {"grant_type": "refresh_token", "client_id": CLI_CLIENT_ID, "scope": f"{COG_RESOURCE}/.default"}
    oauth_error(await client.post(world.token_url(), data=refresh), 400, "invalid_request", 900144)
    tokens = await client.post(world.token_url(), data=_redeem(_code(world)))
    assert tokens.status_code == 200, tokens.text
    moved_clock.advance(90 * 24 * 3600 + 1)
    expired = await client.post(world.token_url(), data={**refresh, "refresh_token": tokens.json()["refresh_token"]})
    oauth_error(expired, 400, "invalid_grant", 700082)


@pytest.mark.parametrize("form", [{"username": ADMIN}, {"password": "x"}, {"username": " ", "password": "x"}])
async def test_a_password_grant_without_its_fields(client: httpx.AsyncClient, world: World,
                                                   form: dict[str, str]) -> None:
    answer = await client.post(world.token_url(), data={
        "grant_type": "password", "client_id": CLI_CLIENT_ID, "scope": f"{COG_RESOURCE}/.default", **form})
    oauth_error(answer, 400, "invalid_request", 900144)


async def test_a_user_disabled_after_sign_in_gets_no_more_tokens(client: httpx.AsyncClient, world: World) -> None:
    created = await client.post("/v1.0/users", headers=world.graph, json={
        "accountEnabled": True, "displayName": "Soon disabled", "mailNickname": "soon",
        "userPrincipalName": f"soon-{world.clock.now():.0f}@cielo.local",
        "passwordProfile": {"password": "Soon-Passw0rd!x", "forceChangePasswordNextSignIn": False}})
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    code = _code(world, user_id=user_id)
    first = await client.post(world.token_url(), data=_redeem(code))
    assert first.status_code == 200, first.text
    disabled = await client.patch(f"/v1.0/users/{user_id}", headers=world.graph, json={"accountEnabled": False})
    assert disabled.status_code == 204, disabled.text
    oauth_error(await client.post(world.token_url(), data=_redeem(_code(world, user_id=user_id))),
                400, "invalid_grant", 50057)
    refresh = await client.post(world.token_url(), data={
        "grant_type": "refresh_token", "client_id": CLI_CLIENT_ID, "refresh_token": first.json()["refresh_token"],
        "scope": f"{COG_RESOURCE}/.default"})
    oauth_error(refresh, 400, "invalid_grant", 50173)  # disabling the user revoked its refresh tokens
    await client.delete(f"/v1.0/users/{user_id}", headers=world.graph)
    oauth_error(await client.post(world.token_url(), data=_redeem(_code(world, user_id=user_id))),
                400, "invalid_grant", 50034)
