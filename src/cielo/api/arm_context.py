"""Who is calling the resource manager, and the RBAC check every ARM operation goes through."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from cielo.api.auth import ARM_AUDIENCES, bearer_principal
from cielo.api.bodies import MAX_JSON_DEPTH, describe_size, nested_deeper_than, read_limited
from cielo.control.access import AccessService, Caller
from cielo.control.resources import Caller as WriteCaller
from cielo.errors import ArmError, AuthorizationFailed, BadRequest, RequestContentTooLarge
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


async def read_json_body(request: Request, limit: int | None = None) -> dict[str, Any]:
    """An ARM request body: a JSON object (empty means `{}`), else 400 `InvalidRequestContent`.

    Over `settings.max_arm_body_bytes` it is refused while it streams in, with ARM's 413
    `RequestContentTooLarge` ("The request content size exceeds the maximum size of 4 MB." is Azure's
    wording for its own 4 MB limit); nested deeper than 64 levels, or carrying a lone surrogate, with 400
    `InvalidRequestContent`. A route with a smaller body passes its own `limit`.
    """
    if limit is None:
        limit = int(request.app.state.settings.max_arm_body_bytes)
    raw = await read_limited(request, limit, lambda: RequestContentTooLarge(
        f"The request content size exceeds the maximum size of {describe_size(limit)}."))
    if not raw.strip():
        return {}
    if nested_deeper_than(raw):
        raise BadRequest("The request content was invalid and could not be deserialized: arrays and objects are "
                         f"nested deeper than {MAX_JSON_DEPTH} levels.", code="InvalidRequestContent")
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
