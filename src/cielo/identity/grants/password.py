"""RFC 6749 §4.3 resource owner password credentials (ROPC), as Entra still offers it."""

from __future__ import annotations

from typing import Any

from cielo.errors import InvalidGrant, InvalidRequest
from cielo.identity.context import GrantContext, TokenRequest
from cielo.identity.grants.common import tenant_for_user
from cielo.identity.issuance import requested_scope, user_token_response
from cielo.identity.secrets import burn_password_time, verify_password

BAD_CREDENTIALS = "Error validating credentials due to invalid username or password."


def handle(ctx: GrantContext, request: TokenRequest) -> dict[str, Any]:
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    if not username or not password:
        raise InvalidRequest(
            "The request body must contain the following parameter: 'username' and 'password'.",
            aadsts=900144,
        )
    scope = requested_scope(request, user_flow=True)
    user = ctx.directory.repo.find_user(username)
    if user is None:
        burn_password_time(password)
        raise InvalidGrant(BAD_CREDENTIALS, aadsts=50126)
    tenant = tenant_for_user(ctx, request, user)
    client = ctx.clients.authenticate(
        tenant,
        request.form,
        basic=request.basic,
        audiences=request.assertion_audiences,
        now=ctx.clock.now(),
        confidential_required=False,
    )
    if not verify_password(user.password_hash, password):
        raise InvalidGrant(BAD_CREDENTIALS, aadsts=50126)
    if not user.account_enabled:
        raise InvalidGrant("The user account is disabled.", aadsts=50057)
    return user_token_response(ctx, request, tenant, client, user, scope)
