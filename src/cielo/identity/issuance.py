"""Turning an authenticated request into Entra's token response (v1 strings, v2 integers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cielo.core.ids import new_guid, new_opaque_token, sha256_hex
from cielo.core.resources import (
    FIRST_PARTY_RESOURCES,
    GRAPH_RESOURCE,
    ScopeRequest,
    normalize_resource,
    parse_oauth_scope,
)
from cielo.errors import InvalidOAuthScope, InvalidRequest, InvalidResource
from cielo.identity.clients import Client
from cielo.identity.context import GrantContext, TokenRequest
from cielo.identity.tokens import Subject, client_info
from cielo.store.models import RefreshToken, Tenant, User


@dataclass(frozen=True)
class Resource:
    """The resource a token is for: its audience string, the token version and its default scope."""

    audience: str
    version: int
    default_scope: str


def requested_scope(request: TokenRequest, *, user_flow: bool) -> ScopeRequest:
    """The scope of a v2 request, or the v1 `resource` parameter turned into one."""
    form = request.form
    if request.version == 1:
        resource = form.get("resource", "").strip()
        if not resource:
            if user_flow:
                resource = GRAPH_RESOURCE
            else:
                raise missing_parameter("resource")
        extra = " openid offline_access" if user_flow else ""
        return parse_oauth_scope(f"{resource}/.default{extra}")
    scope = form.get("scope", "").strip()
    if not scope:
        raise missing_parameter("scope")
    try:
        return parse_oauth_scope(scope)
    except ValueError as exc:
        raise InvalidOAuthScope(
            f"The provided value for the input parameter 'scope' is not valid. The scope {scope} "
            "names more than one resource.",
            aadsts=70011,
        ) from exc


def missing_parameter(name: str) -> Exception:
    return InvalidRequest(f"The request body must contain the following parameter: '{name}'.", aadsts=900144)


def resolve_resource(ctx: GrantContext, tenant: Tenant, scope: ScopeRequest) -> Resource:
    """Find the resource application, first-party or registered in the tenant (AADSTS500011 if none)."""
    if scope.resource is None:
        scope = ScopeRequest(GRAPH_RESOURCE, ("User.Read",), scope.oidc, False)
    assert scope.resource is not None
    key = normalize_resource(scope.resource)
    if key in FIRST_PARTY_RESOURCES:
        return Resource(scope.resource, 1, FIRST_PARTY_RESOURCES[key][1])
    if key == normalize_resource(ctx.settings.base_url):
        # Cielo's own base URL names its Graph-compatible API: az asks for a token for the cloud's
        # microsoftGraphResourceId, which /metadata/endpoints sets to it (a cloud registered against Cielo).
        return Resource(scope.resource, 1, "User.Read")
    candidate = key.removeprefix("api://")
    app = ctx.directory.application(candidate) if len(candidate) == 36 else None
    if app is None:
        for registered in ctx.directory.repo.list_applications(tenant.id):
            if any(normalize_resource(u) == key for u in registered.identifier_uris):
                app = registered
                break
    if app is None or app.tenant_id != tenant.id:
        raise InvalidResource(
            f"The resource principal named {scope.resource} was not found in the tenant named "
            f"{tenant.display_name}. This can happen if the application has not been installed by the "
            "administrator of the tenant or consented to by any user in the tenant.",
            aadsts=500011,
        )
    audience = app.app_id if app.access_token_version == 2 else scope.resource
    return Resource(audience, app.access_token_version, "user_impersonation")


def _scope_field(scope: ScopeRequest, delegated: tuple[str, ...]) -> str:
    resource = scope.resource or GRAPH_RESOURCE
    prefix = resource if resource.endswith("/") else resource + "/"
    granted = [prefix + s for s in delegated]
    if scope.is_default:
        granted.append(prefix + ".default")
    return " ".join(granted)


def app_token_response(
    ctx: GrantContext, request: TokenRequest, tenant: Tenant, client: Client, object_id: str
) -> dict[str, Any]:
    scope = requested_scope(request, user_flow=False)
    if not scope.is_default or scope.resource_scopes:
        raise InvalidOAuthScope(
            f"The provided value for scope {request.form.get('scope', '')} is not valid. Client credential "
            "flows must have a scope value with /.default suffixed to the resource identifier "
            "(application ID URI).",
            aadsts=1002012,
        )
    resource = resolve_resource(ctx, tenant, scope)
    now = ctx.clock.now()
    minted = ctx.minter.access_token(
        Subject("app", object_id, tenant.id),
        audience=resource.audience,
        version=resource.version,
        client_app_id=client.app_id,
        client_auth=client.acr,
        now=now,
    )
    return _response(request, minted.token, minted.expires_in, minted.expires_at, minted.issued_at, resource)


def _response(
    request: TokenRequest, token: str, expires_in: int, expires_on: int, not_before: int, resource: Resource
) -> dict[str, Any]:
    if request.version == 1:
        return {
            "token_type": "Bearer",
            "expires_in": str(expires_in),
            "ext_expires_in": str(expires_in),
            "expires_on": str(expires_on),
            "not_before": str(not_before),
            "resource": resource.audience,
            "access_token": token,
        }
    return {"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": token}


def user_subject(user: User) -> Subject:
    return Subject("user", user.object_id, user.tenant_id, upn=user.upn, name=user.display_name,
                   is_admin=user.is_admin)


def user_token_response(
    ctx: GrantContext,
    request: TokenRequest,
    tenant: Tenant,
    client: Client,
    user: User,
    scope: ScopeRequest,
    *,
    nonce: str | None = None,
    family_id: str | None = None,
) -> dict[str, Any]:
    """Access token, plus id_token and refresh_token as Entra adds them for user flows."""
    resource = resolve_resource(ctx, tenant, scope)
    delegated = scope.resource_scopes or (resource.default_scope,)
    now = ctx.clock.now()
    subject = user_subject(user)
    minted = ctx.minter.access_token(
        subject,
        audience=resource.audience,
        version=resource.version,
        client_app_id=client.app_id,
        client_auth=client.acr,
        scopes=delegated,
        now=now,
    )
    body = _response(request, minted.token, minted.expires_in, minted.expires_at, minted.issued_at, resource)
    if request.version == 2:
        body["scope"] = _scope_field(scope, delegated)
    else:
        body["scope"] = " ".join(delegated)
    # Entra issues refresh tokens on v1 always, on v2 when offline_access is asked for.
    if request.version == 1 or scope.wants_refresh_token:
        body["refresh_token"] = issue_refresh_token(ctx, tenant, client, user, family_id)
    if scope.wants_id_token:
        body["id_token"] = ctx.minter.id_token(
            subject, client_app_id=client.app_id, version=request.version, nonce=nonce, now=now
        )
    body["client_info"] = client_info(user.object_id, tenant.id)
    return body


def issue_refresh_token(
    ctx: GrantContext, tenant: Tenant, client: Client, user: User, family_id: str | None
) -> str:
    token = "1.A" + new_opaque_token(48)
    ctx.grants.add_refresh_token(
        RefreshToken(
            token_hash=sha256_hex(token),
            family_id=family_id or new_guid(),
            tenant_id=tenant.id,
            client_id=client.app_id,
            user_id=user.object_id,
            expires_at=ctx.clock.now() + ctx.settings.refresh_token_lifetime_s,
            redeemed=False,
            revoked=False,
        )
    )
    return token
