"""Who is calling the resource manager, and the RBAC check every ARM operation goes through."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from cielo.api.auth import ARM_AUDIENCES, bearer_principal
from cielo.control.access import AccessService, Caller
from cielo.control.resources import Caller as WriteCaller
from cielo.errors import ArmError, AuthorizationFailed, BadRequest
from cielo.identity.validation import Principal

_API_VERSION_CHARS = set("0123456789-abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class ArmContext:
    principal: Principal
    caller: Caller
    access: AccessService

    def require(self, action: str, scope: str) -> None:
        """403 AuthorizationFailed with ARM's message unless RBAC allows `action` at `scope`."""
        decision = self.access.authorize(self.caller, action, scope)
        if not decision.allowed:
            raise authorization_failed(self.caller, action, scope)

    def allowed(self, action: str, scope: str) -> bool:
        return self.access.authorize(self.caller, action, scope).allowed

    def writer(self) -> WriteCaller:
        """Who writes, for a resource's systemData."""
        return WriteCaller(self.caller.display, "User" if self.caller.kind == "User" else "Application")


MAX_BODY = 1024 * 1024


async def read_json_body(request: Request) -> dict[str, Any]:
    """An ARM request body: a JSON object of at most 1 MiB (empty means `{}`), else 400 with ARM's codes."""
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise BadRequest("The request content is too large.", code="RequestContentTooLarge")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"The request content was invalid and could not be deserialized: {exc}.",
                         code="InvalidRequestContent") from exc
    if not isinstance(body, dict):
        raise BadRequest("The request content must be a JSON object.", code="InvalidRequestContent")
    return body


def authorization_failed(caller: Caller, action: str, scope: str) -> AuthorizationFailed:
    return AuthorizationFailed(
        f"The client '{caller.display}' with object id '{caller.object_id}' does not have authorization to "
        f"perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently "
        "granted, please refresh your credentials.",
        code="AuthorizationFailed",
    )


def require_api_version(request: Request) -> str:
    version = request.query_params.get("api-version")
    if not version:
        raise BadRequest("The api-version query parameter (?api-version=) is required for all requests.",
                         code="MissingApiVersionParameter")
    if len(version) > 32 or not set(version.lower()) <= _API_VERSION_CHARS or not version[:4].isdigit():
        raise BadRequest(f"The api-version '{version[:32]}' is invalid. The supported versions are dates such as "
                         "'2022-12-01'.", code="InvalidApiVersionParameter")
    return version


def arm_context(request: Request) -> ArmContext:
    principal = bearer_principal(request, ARM_AUDIENCES)
    access: AccessService = request.app.state.access
    caller = access.caller(principal)
    return ArmContext(principal, caller, access)


class SubscriptionNotFound(ArmError):
    status = 404
    code = "SubscriptionNotFound"
