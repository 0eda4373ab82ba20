"""RFC 6749 §4.3 resource owner password credentials (ROPC), as Entra still offers it.

One path and one cost for every failure, so the answer tells nothing about which accounts exist: the
password is always checked with argon2 (against a dummy hash for unknown names), the client is always
authenticated, and only then is the outcome decided. A bad client answers as it would for any user
name (AADSTS700016 / 7000215); an unknown user and a wrong password both answer AADSTS50126.
Smart lockout and per-address throttling (signin_guard) come first and answer AADSTS50053.
"""

from __future__ import annotations

from typing import Any

from cielo.errors import InvalidGrant, InvalidRequest
from cielo.identity.context import GrantContext, TokenRequest
from cielo.identity.grants.common import authenticate_client, tenant_for_user
from cielo.identity.issuance import requested_scope, user_token_response
from cielo.identity.signin import find_and_verify
from cielo.store.models import Tenant, User

BAD_CREDENTIALS = "Error validating credentials due to invalid username or password."


def _client_tenant(ctx: GrantContext, request: TokenRequest, user: User | None) -> Tenant | None:
    """The tenant the client is authenticated in: the path's, else the user's, else the app's own
    (for `common` and an unknown user; an unknown app fails in any tenant)."""
    if request.tenant is not None:
        return request.tenant
    if user is not None:
        return ctx.directory.tenant(user.tenant_id)
    app = ctx.directory.application(request.form.get("client_id", "").strip().lower())
    return ctx.directory.tenant(app.tenant_id) if app is not None else None


def handle(ctx: GrantContext, request: TokenRequest) -> dict[str, Any]:
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    if not username or not password:
        raise InvalidRequest(
            "The request body must contain the following parameter: 'username' and 'password'.",
            aadsts=900144,
        )
    scope = requested_scope(request, user_flow=True)
    ctx.signin.check(username, request.client_address)
    user, password_ok = find_and_verify(ctx.directory, username, password)
    # Authenticated whether or not the user exists: a bad client answers the same for every user name.
    tenant = _client_tenant(ctx, request, user) or ctx.directory.repo.list_tenants()[0]
    client = authenticate_client(ctx, request, tenant)
    if user is None or not password_ok:
        ctx.signin.failed(username, request.client_address)
        raise InvalidGrant(BAD_CREDENTIALS, aadsts=50126)
    tenant = tenant_for_user(ctx, request, user)
    if not user.account_enabled:
        raise InvalidGrant("The user account is disabled.", aadsts=50057)
    ctx.signin.succeeded(username)
    return user_token_response(ctx, request, tenant, client, user, scope)
