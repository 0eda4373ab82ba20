"""Token service routes: discovery, keys, instance discovery, user realm, token and device code."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from cielo.api import insights
from cielo.api.errors import NO_STORE
from cielo.errors import OAuthError, TenantNotFound
from cielo.http.forms import basic_credentials, client_address, read_form, request_base
from cielo.identity.context import TokenRequest
from cielo.identity.service import TokenService
from cielo.identity.tokens import issuer_v1, issuer_v2
from cielo.intercept.hosts import LOGIN_HOSTS, host_name

router = APIRouter()

_DISCOVERY_HEADERS = {"Cache-Control": "max-age=86400, private", "Access-Control-Allow-Origin": "*"}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _service(request: Request) -> TokenService:
    service: TokenService = request.app.state.token_service
    return service


def _metadata_tenant_id(request: Request, segment: str) -> str:
    """The tenant id of a metadata request, `{tenantid}` for `common`/`organizations`. Entra's metadata
    endpoints call an unknown tenant `invalid_tenant` (MSAL and az print that body); its token endpoint
    calls it `invalid_request`."""
    try:
        tenant = _service(request).resolve_tenant(segment)
    except TenantNotFound as exc:
        exc.error = "invalid_tenant"
        raise
    return tenant.id if tenant else "{tenantid}"


def _discovery(request: Request, segment: str, version: int) -> dict[str, Any]:
    tid = _metadata_tenant_id(request, segment)
    base = request_base(request)
    issuer_base = request.app.state.settings.base_url
    prefix = f"{base}/{segment}"
    if version == 2:
        return {
            "token_endpoint": f"{prefix}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{prefix}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": issuer_v2(issuer_base, tid),
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base}/oidc/userinfo",
            "authorization_endpoint": f"{prefix}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{prefix}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{prefix}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "name", "nonce", "oid",
                                 "preferred_username", "tid", "ver", "upn"],
            "code_challenge_methods_supported": ["S256", "plain"],
            "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token", "password",
                                      "urn:ietf:params:oauth:grant-type:device_code"],
            "kerberos_endpoint": f"{prefix}/kerberos",
            "tenant_region_scope": None,
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }
    return {
        "token_endpoint": f"{prefix}/oauth2/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{prefix}/discovery/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
        "scopes_supported": ["openid"],
        "issuer": issuer_v1(issuer_base, tid),
        "microsoft_multi_refresh_token": True,
        "authorization_endpoint": f"{prefix}/oauth2/authorize",
        "device_authorization_endpoint": f"{prefix}/oauth2/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{prefix}/oauth2/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "oid", "tid", "upn", "unique_name"],
        "check_session_iframe": f"{prefix}/oauth2/checksession",
        "userinfo_endpoint": f"{prefix}/openid/userinfo",
        "kerberos_endpoint": f"{prefix}/kerberos",
        "tenant_region_scope": None,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }


@router.get("/{tenant}/v2.0/.well-known/openid-configuration")
async def discovery_v2(tenant: str, request: Request) -> Response:
    return _json(_discovery(request, tenant, 2), headers=_DISCOVERY_HEADERS)


@router.get("/{tenant}/.well-known/openid-configuration")
async def discovery_v1(tenant: str, request: Request) -> Response:
    return _json(_discovery(request, tenant, 1), headers=_DISCOVERY_HEADERS)


@router.get("/{tenant}/discovery/v2.0/keys")
@router.get("/{tenant}/discovery/keys")
async def jwks(tenant: str, request: Request) -> Response:
    _metadata_tenant_id(request, tenant)
    return _json(request.app.state.keys.jwks(), headers=_DISCOVERY_HEADERS)


@router.get("/common/discovery/instance")
async def instance_discovery(request: Request) -> Response:
    """MSAL's instance discovery (msal/authority.py asks it about any authority host Microsoft
    does not know): tell it where the tenant's metadata is.

    MSAL drops the port from `authorization_endpoint`, so the answer is built from the host the
    request came in on, which keeps the port."""
    endpoint = request.query_params.get("authorization_endpoint", "")
    segments = [s for s in urlsplit(endpoint).path.split("/") if s]
    tenant = segments[0] if segments else "common"
    asked = host_name(request.headers.get("host", ""))
    if asked in LOGIN_HOSTS:
        # Asked under Entra's own host (intercept mode): Entra's answer, with the public cloud's alias group, so
        # MSAL shares cached tokens between these hosts as it does with Entra. The metadata it points to is
        # Cielo's (fetched through the same host).
        return _json({
            "tenant_discovery_endpoint": f"https://{asked}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": "login.microsoftonline.com", "preferred_cache": "login.windows.net",
                          "aliases": ["login.microsoftonline.com", "login.windows.net", "login.microsoft.com",
                                      "sts.windows.net"]}],
        })
    base = request_base(request)
    host = urlsplit(base).netloc
    return _json(
        {
            "tenant_discovery_endpoint": f"{base}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        }
    )


@router.get("/common/userrealm/{upn}")
async def user_realm(upn: str, request: Request) -> Response:
    """Home realm discovery, as MSAL calls it before ROPC: every Cielo account is `Managed`."""
    domain = upn.rpartition("@")[2]
    tenant = _service(request).ctx.directory.tenant(domain) if domain else None
    known = tenant is not None or _service(request).ctx.directory.repo.find_user(upn) is not None
    return _json(
        {
            "ver": "1.0",
            "account_type": "Managed" if known else "Unknown",
            "domain_name": domain,
            "cloud_instance_name": "microsoftonline.com",
            "cloud_audience_urn": "urn:federation:MicrosoftOnline",
        }
    )


async def _token_request(request: Request, segment: str, version: int) -> TokenRequest:
    settings = request.app.state.settings
    service = _service(request)
    tenant = service.resolve_tenant(segment)
    form = await read_form(request, settings.max_form_bytes)
    audiences: set[str] = set()
    # Only client assertions are checked against these; building them costs time on the hot path.
    bases = {request_base(request), settings.base_url} if "client_assertion" in form else set()
    for base in bases:
        for seg in {segment, tenant.id if tenant else segment}:
            audiences.update(
                {f"{base}/{seg}/oauth2/v2.0/token", f"{base}/{seg}/oauth2/token", f"{base}/{seg}/v2.0",
                 f"{base}/{seg}/"}
            )
    return TokenRequest(tenant, segment, version, form, basic_credentials(request), tuple(sorted(audiences)),
                        client_address(request))


async def _grant(request: Request, token_request: TokenRequest) -> dict[str, Any]:
    """Run the grant. A password check costs ~0.2 s of argon2, and a client assertion may need a federated
    issuer's keys fetched (up to 5 s a request): either runs on a worker thread (argon2 releases the GIL, the
    fetch waits on a socket), never on the event loop, where it would stall every other request of this worker."""
    service = _service(request)
    try:
        if token_request.form.get("grant_type") == "password" or "client_assertion" in token_request.form:
            result = await run_in_threadpool(service.token, token_request)
        else:
            result = service.token(token_request)
    except OAuthError as exc:
        insights.token_failed(request, token_request, exc)  # the activity log: a failed sign-in or token request
        raise
    insights.token_issued(request, token_request, result)
    return result


@router.post("/{tenant}/oauth2/v2.0/token")
async def token_v2(tenant: str, request: Request) -> Response:
    token_request = await _token_request(request, tenant, 2)
    return _json(await _grant(request, token_request), headers=NO_STORE)


@router.post("/{tenant}/oauth2/token")
async def token_v1(tenant: str, request: Request) -> Response:
    token_request = await _token_request(request, tenant, 1)
    return _json(await _grant(request, token_request), headers=NO_STORE)


async def _start_device_flow(request: Request, token_request: TokenRequest, uri: str) -> dict[str, Any]:
    """A client assertion is checked on a worker thread, as in `_grant`."""
    if "client_assertion" in token_request.form:
        return await run_in_threadpool(_service(request).start_device_flow, token_request, uri)
    return _service(request).start_device_flow(token_request, uri)


@router.post("/{tenant}/oauth2/v2.0/devicecode")
async def devicecode_v2(tenant: str, request: Request) -> Response:
    token_request = await _token_request(request, tenant, 2)
    uri = f"{request_base(request)}/devicelogin"
    return _json(await _start_device_flow(request, token_request, uri), headers=NO_STORE)


@router.post("/{tenant}/oauth2/devicecode")
async def devicecode_v1(tenant: str, request: Request) -> Response:
    token_request = await _token_request(request, tenant, 1)
    uri = f"{request_base(request)}/devicelogin"
    return _json(await _start_device_flow(request, token_request, uri), headers=NO_STORE)
