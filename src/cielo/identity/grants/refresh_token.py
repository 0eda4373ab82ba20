"""RFC 6749 §6 refresh, with rotation (OAuth 2.0 Security BCP §4.14.2).

Each refresh token is redeemed once and replaced. Presenting a redeemed one again means it leaked:
the whole family (every token descended from the same sign-in) is revoked.
"""

from __future__ import annotations

from typing import Any

from cielo.core.ids import sha256_hex
from cielo.errors import InvalidGrant, InvalidRequest
from cielo.identity.context import GrantContext, TokenRequest
from cielo.identity.grants.common import active_user, authenticate_client, tenant_for_user
from cielo.identity.issuance import requested_scope, resolve_resource, user_token_response


def handle(ctx: GrantContext, request: TokenRequest) -> dict[str, Any]:
    presented = request.form.get("refresh_token", "")
    if not presented:
        raise InvalidRequest(
            "The request body must contain the following parameter: 'refresh_token'.", aadsts=900144
        )
    scope = requested_scope(request, user_flow=True)
    now = ctx.clock.now()
    if request.tenant is not None:
        # Whatever the request alone decides (client credentials, resource) is checked before the
        # token is spent: MSAL keeps its refresh token after an error and presents it again, which
        # must not look like a replay.
        authenticate_client(ctx, request, request.tenant, now=now)
        resolve_resource(ctx, request.tenant, scope)
    record, first_time = ctx.grants.redeem_refresh_token(sha256_hex(presented))
    if record is None:
        raise InvalidGrant("The refresh token is malformed or not valid.", aadsts=9002313)
    if record.revoked:
        raise InvalidGrant("The provided grant has been revoked.", aadsts=50173)
    if not first_time:
        ctx.grants.revoke_family(record.family_id)
        raise InvalidGrant(
            "The refresh token has already been redeemed; its family has been revoked.", aadsts=50173
        )
    if record.expires_at < now:
        raise InvalidGrant("The refresh token has expired.", aadsts=700082)
    user = active_user(ctx, record.user_id)
    tenant = tenant_for_user(ctx, request, user)
    if record.tenant_id != tenant.id:
        raise InvalidGrant("The refresh token was issued for another tenant.", aadsts=50173)
    client = authenticate_client(ctx, request, tenant, now=now)
    if client.app_id != record.client_id:
        raise InvalidGrant("The refresh token was issued to a different client.", aadsts=70000)
    return user_token_response(ctx, request, tenant, client, user, scope, family_id=record.family_id)
