"""RFC 6749 §4.4 client credentials, with a secret, a certificate or a federated assertion."""

from __future__ import annotations

from typing import Any

from cielo.errors import UnauthorizedClient
from cielo.identity.context import GrantContext, TokenRequest
from cielo.identity.grants.common import authenticate_client, require_tenant
from cielo.identity.issuance import app_token_response


def handle(ctx: GrantContext, request: TokenRequest) -> dict[str, Any]:
    tenant = require_tenant(request)
    client = authenticate_client(ctx, request, tenant, confidential=True)
    sp = ctx.directory.service_principal(tenant.id, client.app_id)
    if sp is None:
        raise UnauthorizedClient(
            f"The client application {client.app_id} is missing service principal in the tenant "
            f"{tenant.id}.",
            aadsts=7000229,
        )
    return app_token_response(ctx, request, tenant, client, sp.object_id)
