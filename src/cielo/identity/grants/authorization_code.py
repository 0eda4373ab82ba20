"""RFC 6749 §4.1 authorization code with RFC 7636 PKCE: issuing codes and redeeming them."""

from __future__ import annotations

import hmac
from typing import Any

from cielo.core.ids import new_opaque_token, pkce_s256, sha256_hex
from cielo.errors import InvalidGrant, InvalidRequest
from cielo.identity.context import GrantContext, TokenRequest
from cielo.identity.grants.common import active_user, authenticate_client, tenant_for_user
from cielo.identity.issuance import requested_scope, user_token_response
from cielo.store.models import AuthCode


def issue_code(
    ctx: GrantContext,
    *,
    tenant_id: str,
    client_id: str,
    user_id: str,
    redirect_uri: str,
    scope: str,
    code_challenge: str | None,
    code_challenge_method: str | None,
    nonce: str | None,
) -> str:
    code = "1.A" + new_opaque_token(40)
    ctx.grants.add_auth_code(
        AuthCode(
            code_hash=sha256_hex(code),
            tenant_id=tenant_id,
            client_id=client_id,
            user_id=user_id,
            redirect_uri=redirect_uri,
            scope=scope,
            code_challenge=code_challenge,
            code_challenge_method=(code_challenge_method or "plain") if code_challenge else None,
            nonce=nonce,
            expires_at=ctx.clock.now() + ctx.settings.auth_code_lifetime_s,
            redeemed=False,
            family_id=None,
        )
    )
    return code


def _pkce_ok(record: AuthCode, verifier: str) -> bool:
    if record.code_challenge is None:
        return True
    if not verifier:
        return False
    computed = pkce_s256(verifier) if record.code_challenge_method == "S256" else verifier
    return hmac.compare_digest(computed, record.code_challenge)


def handle(ctx: GrantContext, request: TokenRequest) -> dict[str, Any]:
    form = request.form
    code = form.get("code", "")
    if not code:
        raise InvalidRequest("The request body must contain the following parameter: 'code'.", aadsts=900144)
    record, first_time = ctx.grants.redeem_auth_code(sha256_hex(code))
    if record is None:
        raise InvalidGrant("The provided authorization code is malformed or not valid.", aadsts=9002313)
    if not first_time:
        # RFC 6749 §4.1.2: a replayed code should revoke what was issued with it.
        if record.family_id:
            ctx.grants.revoke_family(record.family_id)
        raise InvalidGrant(
            "The provided authorization code or refresh token has expired due to it being already "
            "redeemed, please discard it and request a new one.",
            aadsts=54005,
        )
    if record.expires_at < ctx.clock.now():
        raise InvalidGrant("The provided authorization code has expired.", aadsts=70008)
    if record.client_id != form.get("client_id", "").lower():
        raise InvalidGrant("The authorization code was issued to a different client.", aadsts=70000)
    if form.get("redirect_uri", "") != record.redirect_uri:
        raise InvalidGrant(
            "The reply URL does not match the one used to obtain the authorization code.", aadsts=50148
        )
    if not _pkce_ok(record, form.get("code_verifier", "")):
        raise InvalidGrant("The code_verifier does not match the code_challenge supplied in the "
                           "authorization request for PKCE.", aadsts=501481)
    user = active_user(ctx, record.user_id)
    tenant = tenant_for_user(ctx, request, user)
    client = authenticate_client(ctx, request, tenant)
    wanted = form.get("scope") or record.scope
    scope = requested_scope(
        TokenRequest(request.tenant, request.tenant_segment, 2, {"scope": wanted}, None, ()), user_flow=True
    )
    family = sha256_hex(code)[:36]
    ctx.grants.set_auth_code_family(record.code_hash, family)
    return user_token_response(ctx, request, tenant, client, user, scope, nonce=record.nonce, family_id=family)
