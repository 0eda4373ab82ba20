"""Tokens for managed identities, asked for by host agents (`cielo agent`) with their host credential.

`POST /cielo/managed-identity/token` (a Cielo endpoint, not an Azure one) with
`Authorization: HostCredential <id>.<secret>` and the form fields of an IMDS request (`resource`,
optionally `client_id` | `object_id` | `msi_res_id`). The answer is IMDS's token response. The
agent turns it into whatever protocol its workload speaks (IMDS, App Service).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from cielo.control.identities import IdentityError, IdentityService
from cielo.core.resources import FIRST_PARTY_RESOURCES, normalize_resource
from cielo.errors import OAuthError
from cielo.http.forms import read_form
from cielo.identity.tokens import Subject

router = APIRouter()
# An IMDS request is a resource and one selector: a few hundred bytes.
MAX_FORM_BYTES = 16 * 1024


def _error(exc: IdentityError) -> JSONResponse:
    return JSONResponse({"error": exc.error, "error_description": exc.description}, status_code=exc.status)


@router.post("/cielo/managed-identity/check")
async def managed_identity_check(request: Request) -> JSONResponse:
    """Whether the host credential is valid and the identity still attached (no token minted): the agent asks
    this before serving a cached token, so a revocation or a removed identity applies at once."""
    return await _serve(request, check_only=True)


@router.post("/cielo/managed-identity/token")
async def managed_identity_token(request: Request) -> JSONResponse:
    return await _serve(request, check_only=False)


async def _serve(request: Request, *, check_only: bool) -> JSONResponse:
    identities: IdentityService = request.app.state.identity_service
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    try:
        if scheme.lower() != "hostcredential" or not presented:
            raise IdentityError(401, "unauthorized_client", "A host credential is required.")
        host = identities.host_for(presented.strip())
        # Read only once the host credential holds, and only up to MAX_FORM_BYTES (413 past it).
        try:
            form = await read_form(request, MAX_FORM_BYTES)
        except OAuthError as exc:
            raise IdentityError(exc.status, "invalid_request", exc.message) from exc
        resource = form.get("resource", "").strip()
        if not resource:
            raise IdentityError(400, "invalid_request", "Required query variable 'resource' is missing")
        selected = identities.select(host, client_id=form.get("client_id") or None,
                                     object_id=form.get("object_id") or None,
                                     resource_id=form.get("msi_res_id") or None)
    except IdentityError as exc:
        return _error(exc)
    if check_only:
        return JSONResponse({"valid": True, "client_id": selected.client_id, "object_id": selected.principal_id})
    services = request.app.state.services
    tenant_id = host_tenant(request, host.subscription_id)
    audience = resource.removesuffix("/.default")
    if normalize_resource(audience) not in FIRST_PARTY_RESOURCES:
        return _error(IdentityError(400, "invalid_resource", f"AADSTS500011: The resource principal named {audience} "
                                    f"was not found in the tenant named {tenant_id}."))
    extra: tuple[tuple[str, str], ...] = (("xms_mirid", selected.mirid),)
    if selected.user_assigned:
        extra += (("xms_az_rid", selected.host_id),)
    now = services.clock.now()
    minted = services.tokens.ctx.minter.access_token(
        Subject("app", selected.principal_id, tenant_id, extra_claims=extra), audience=audience, version=1,
        client_app_id=selected.client_id, client_auth="2", now=now,
        lifetime_s=request.app.state.settings.managed_identity_token_lifetime_s)
    body = {
        "access_token": minted.token, "refresh_token": "", "expires_in": str(minted.expires_in),
        "expires_on": str(minted.expires_at), "ext_expires_in": str(minted.expires_in),
        "not_before": str(minted.issued_at), "resource": audience, "token_type": "Bearer",
        "client_id": selected.client_id, "object_id": selected.principal_id,
    }
    if selected.user_assigned:
        body["msi_res_id"] = selected.mirid
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def host_tenant(request: Request, subscription_id: str) -> str:
    for sub in request.app.state.directory_service.repo.list_subscriptions():
        if sub.id == subscription_id.lower():
            return str(sub.tenant_id)
    return ""
