"""The token endpoint: resolve the tenant, pick the grant, return Entra's response."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from cielo.errors import TenantNotFound, UnsupportedGrantType
from cielo.identity.context import GrantContext, TokenRequest
from cielo.identity.grants import (
    authorization_code,
    client_credentials,
    device_code,
    password,
    refresh_token,
)
from cielo.store.models import Tenant

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

GRANTS: dict[str, Callable[[GrantContext, TokenRequest], dict[str, Any]]] = {
    "client_credentials": client_credentials.handle,
    "password": password.handle,
    "refresh_token": refresh_token.handle,
    "authorization_code": authorization_code.handle,
    DEVICE_CODE_GRANT: device_code.handle,
    "device_code": device_code.handle,  # Entra's v1 endpoint accepts the short name
}

MULTI_TENANT_SEGMENTS = ("common", "organizations")
# Spent and expired codes and refresh tokens are deleted at most this often (per worker), from the token
# endpoint's path: nothing else needs them, and without it they would pile up for ever.
PURGE_INTERVAL_S = 600.0

log = logging.getLogger("cielo.identity")


class TokenService:
    def __init__(self, ctx: GrantContext) -> None:
        self.ctx = ctx
        self._next_purge = 0.0
        self._purge_lock = threading.Lock()

    def purge_if_due(self) -> None:
        """Delete expired grant state and stale sign-in failure counts when PURGE_INTERVAL_S has passed since the
        last purge. One request pays for it (four DELETEs); concurrent requests skip it. A failure is logged,
        never the request's: the next interval tries again."""
        now = self.ctx.clock.now()
        if now < self._next_purge or not self._purge_lock.acquire(blocking=False):
            return
        try:
            if now < self._next_purge:
                return
            self._next_purge = now + PURGE_INTERVAL_S
            deleted = self.ctx.grants.purge_expired(now)
            self.ctx.signin.forget_stale()
            if deleted:
                log.info("Deleted %d expired authorization codes, device codes and refresh tokens", deleted)
        except Exception:
            log.warning("Could not delete expired grants; will try again in %.0f s", PURGE_INTERVAL_S,
                        exc_info=True)
        finally:
            self._purge_lock.release()

    def resolve_tenant(self, segment: str) -> Tenant | None:
        """None for `common`/`organizations`; raises AADSTS90002 for a tenant that does not exist."""
        if segment.lower() in MULTI_TENANT_SEGMENTS:
            return None
        tenant = self.ctx.directory.tenant(segment)
        if tenant is None:
            raise TenantNotFound(
                f"Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are "
                "signing into the correct cloud. Check with your subscription administrator, this may "
                "happen if there are no active subscriptions for the tenant.",
                aadsts=90002,
            )
        return tenant

    def token(self, request: TokenRequest) -> dict[str, Any]:
        self.purge_if_due()
        grant_type = request.form.get("grant_type", "")
        handler = GRANTS.get(grant_type)
        if handler is None:
            if not grant_type:
                from cielo.errors import InvalidRequest

                raise InvalidRequest(
                    "The request body must contain the following parameter: 'grant_type'.", aadsts=900144
                )
            raise UnsupportedGrantType(
                f"The provided value for the input parameter 'grant_type' is not valid: {grant_type[:64]}.",
                aadsts=70003,
            )
        return handler(self.ctx, request)

    def start_device_flow(self, request: TokenRequest, verification_uri: str) -> dict[str, Any]:
        return device_code.start(self.ctx, request, verification_uri)
