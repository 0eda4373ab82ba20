"""Bearer authentication for Cielo's own APIs (Graph-compatible directory, resource manager)."""

from __future__ import annotations

from collections.abc import Collection

from starlette.requests import Request

from cielo.errors import AuthenticationFailed, ExpiredAuthenticationToken, InvalidAuthenticationToken
from cielo.identity.validation import TokenInvalid, TokenPrincipal, TokenValidator

GRAPH_AUDIENCES = ("https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000")
ARM_AUDIENCES = ("https://management.azure.com", "https://management.core.windows.net")


def bearer_principal(request: Request, audiences: Collection[str]) -> TokenPrincipal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed(
            "Authentication failed. The 'Authorization' header is missing or not a Bearer token.",
        )
    validator: TokenValidator = request.app.state.validator
    try:
        return validator.validate(token.strip(), audiences)
    except TokenInvalid as exc:
        message = {
            "expired": "The access token expiry UTC time is earlier than current UTC time.",
            "audience": f"The access token has been obtained for wrong audience or resource. {exc}",
            "issuer": "The access token is from the wrong issuer. It must match the tenant.",
        }.get(exc.reason, f"The access token is invalid. {exc}")
        refusal = ExpiredAuthenticationToken if exc.reason == "expired" else InvalidAuthenticationToken
        raise refusal(message) from exc
