"""RFC 8628 device authorization grant: issuing codes, the user's decision, and polling."""

from __future__ import annotations

from typing import Any

from cielo.core.ids import new_opaque_token, new_user_code, sha256_hex
from cielo.errors import (
    AuthorizationDeclined,
    AuthorizationPending,
    BadVerificationCode,
    ExpiredToken,
    InvalidGrant,
    InvalidRequest,
)
from cielo.identity.context import GrantContext, TokenRequest
from cielo.identity.grants.common import active_user, authenticate_client, tenant_for_user
from cielo.identity.issuance import requested_scope, user_token_response
from cielo.store.models import DeviceCode


def start(ctx: GrantContext, request: TokenRequest, verification_uri: str) -> dict[str, Any]:
    """The device authorization endpoint (RFC 8628 §3.2)."""
    scope = requested_scope(request, user_flow=True)
    tenant = request.tenant
    if tenant is not None:
        authenticate_client(ctx, request, tenant)
    elif not request.form.get("client_id"):
        raise InvalidRequest(
            "The request body must contain the following parameter: 'client_id'.", aadsts=900144
        )
    device_code = new_opaque_token(32)
    user_code = new_user_code()
    lifetime = ctx.settings.device_code_lifetime_s
    scope_text = " ".join(
        ([f"{scope.resource}/.default"] if scope.resource else []) + sorted(scope.oidc)
    )
    ctx.grants.add_device_code(
        DeviceCode(
            device_code_hash=sha256_hex(device_code),
            user_code=user_code,
            tenant_id=tenant.id if tenant else None,
            client_id=request.form.get("client_id", "").lower(),
            scope=scope_text,
            expires_at=ctx.clock.now() + lifetime,
            status="pending",
            user_id=None,
            last_poll=None,
        )
    )
    body: dict[str, Any] = {
        "user_code": user_code,
        "device_code": device_code,
        "verification_uri": verification_uri,
        "expires_in": lifetime,
        "interval": ctx.settings.device_code_interval_s,
        "message": f"To sign in, use a web browser to open the page {verification_uri} and enter the code "
        f"{user_code} to authenticate.",
    }
    if request.version == 1:
        body = {k: str(v) if isinstance(v, int) else v for k, v in body.items()}
        body["verification_url"] = verification_uri
    return body


def handle(ctx: GrantContext, request: TokenRequest) -> dict[str, Any]:
    """Polling the token endpoint (RFC 8628 §3.4-3.5). Entra's v1 endpoint names the code `code`."""
    presented = request.form.get("device_code") or request.form.get("code") or ""
    record = ctx.grants.get_device_code(sha256_hex(presented)) if presented else None
    if record is None or record.client_id != request.form.get("client_id", "").lower():
        raise BadVerificationCode("The device code is not valid.", aadsts=70019)
    now = ctx.clock.now()
    if record.status == "redeemed":
        raise already_redeemed()
    if record.expires_at < now:
        raise ExpiredToken("The device code has expired.", aadsts=70019)
    if record.status == "declined":
        raise AuthorizationDeclined("The end user denied the authorization request.", aadsts=70000)
    if record.status != "approved" or record.user_id is None:
        ctx.grants.touch_device_poll(record.device_code_hash, now)
        raise AuthorizationPending(
            "The user has not yet completed the authorization (authorization_pending).", aadsts=70016
        )
    if not ctx.grants.consume_device_code(record.device_code_hash):
        raise already_redeemed()
    user = active_user(ctx, record.user_id)
    tenant = tenant_for_user(ctx, request, user)
    client = authenticate_client(ctx, request, tenant, now=now)
    scope = requested_scope(
        TokenRequest(request.tenant, request.tenant_segment, 2, {"scope": record.scope}, None, ()),
        user_flow=True,
    )
    return user_token_response(ctx, request, tenant, client, user, scope)


def already_redeemed() -> Exception:
    return InvalidGrant("The device code has already been redeemed.", aadsts=54005)
