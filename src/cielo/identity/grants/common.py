"""Helpers the grants share: client authentication, tenant requirement and user lookups."""

from __future__ import annotations

from cielo.errors import InvalidGrant, InvalidRequest
from cielo.identity.clients import Client
from cielo.identity.context import GrantContext, TokenRequest
from cielo.store.models import Tenant, User


def authenticate_client(ctx: GrantContext, request: TokenRequest, tenant: Tenant, *,
                        confidential: bool = False, now: float | None = None) -> Client:
    """The client of a token request, authenticated in `tenant` (RFC 6749 §2.3, §3.2.1): client_secret_post or
    _basic, a client assertion (RFC 7523) whose `aud` names this token endpoint, or, unless `confidential`,
    a public client by its id alone. `now` defaults to the context's clock."""
    return ctx.clients.authenticate(
        tenant,
        request.form,
        basic=request.basic,
        audiences=request.assertion_audiences,
        now=ctx.clock.now() if now is None else now,
        confidential_required=confidential,
    )


def require_tenant(request: TokenRequest) -> Tenant:
    if request.tenant is None:
        raise InvalidRequest(
            "No tenant-identifying information found in either the request or implied by any provided "
            "credentials.",
            aadsts=50059,
        )
    return request.tenant


def tenant_for_user(ctx: GrantContext, request: TokenRequest, user: User) -> Tenant:
    """On `common`/`organizations` the user's home tenant is used; elsewhere it must match."""
    if request.tenant is not None:
        if request.tenant.id != user.tenant_id:
            raise InvalidGrant(
                f"User account '{user.upn}' from identity provider does not exist in tenant "
                f"'{request.tenant.display_name}'.",
                aadsts=50020,
            )
        return request.tenant
    tenant = ctx.directory.tenant(user.tenant_id)
    assert tenant is not None
    return tenant


def active_user(ctx: GrantContext, user_id: str) -> User:
    user = ctx.directory.repo.get_user(user_id)
    if user is None:
        raise InvalidGrant("The user account does not exist in the directory.", aadsts=50034)
    if not user.account_enabled:
        raise InvalidGrant("The user account is disabled.", aadsts=50057)
    return user
