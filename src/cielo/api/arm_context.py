"""Who is calling the resource manager, the RBAC check every ARM operation goes through, and `ArmCall`: one
request as the route table's handlers see it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from cielo.api.arm_versions import newest_first
from cielo.api.auth import ARM_AUDIENCES, bearer_principal
from cielo.control.access import AccessService, ArmCaller
from cielo.control.manager import ResourceManager, writer_of
from cielo.control.resources import ResourceWriter
from cielo.errors import (
    AuthorizationFailed,
    InvalidApiVersionParameter,
    InvalidRequestContent,
    MissingApiVersionParameter,
    RequestContentTooLarge,
)
from cielo.http.bodies import MAX_JSON_DEPTH, describe_size, nested_deeper_than, read_limited
from cielo.identity.validation import TokenPrincipal
from cielo.store.models import Subscription
from cielo.store.resources import Resource

_API_VERSION_CHARS = set("0123456789-abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class ArmContext:
    principal: TokenPrincipal
    caller: ArmCaller
    access: AccessService

    def require(self, action: str, scope: str) -> None:
        """403 AuthorizationFailed with ARM's message unless RBAC allows `action` at `scope`."""
        decision = self.access.authorize(self.caller, action, scope)
        if not decision.allowed:
            raise authorization_failed(self.caller, action, scope, decision.reason)

    def allowed(self, action: str, scope: str) -> bool:
        return self.access.authorize(self.caller, action, scope).allowed

    def writer(self) -> ResourceWriter:
        """Who writes, for a resource's systemData."""
        return writer_of(self.caller)


@dataclass(frozen=True)
class ArmGuard:
    """The caller's RBAC as the Microsoft.Authorization service and the resource manager ask it (`Guard`)."""

    ctx: ArmContext

    def allowed(self, action: str, scope: str) -> bool:
        return self.ctx.allowed(action, scope)

    def denied(self, action: str, scope: str) -> Exception:
        # The decision is asked again for its reason (logged, not sent): a denial is rare, and Guard's
        # callers only ask `allowed` first.
        decision = self.ctx.access.authorize(self.ctx.caller, action, scope)
        return authorization_failed(self.ctx.caller, action, scope, decision.reason)


@dataclass
class ArmCall:
    """One ARM request as a route's handler sees it: the caller, the path's captures, and what the route's
    `prepare` steps resolved (the subscription, a compute resource's group, the `$filter`)."""

    request: Request
    ctx: ArmContext
    manager: ResourceManager
    path: str
    params: dict[str, str] = field(default_factory=dict)
    subscription: Subscription | None = None
    group: Resource | None = None
    filter: tuple[str, str] | None = None

    @property
    def sub(self) -> Subscription:
        assert self.subscription is not None, "the route's prepare resolves the subscription"
        return self.subscription

    @property
    def guard(self) -> ArmGuard:
        return ArmGuard(self.ctx)


async def read_json_body(request: Request, limit: int | None = None,
                         parse: Callable[[bytes], Any] = json.loads) -> dict[str, Any]:
    """An ARM request body: a JSON object (empty means `{}`), else 400 `InvalidRequestContent`.

    Over `settings.max_arm_body_bytes` it is refused while it streams in, with ARM's 413
    `RequestContentTooLarge` ("The request content size exceeds the maximum size of 4 MB." is Azure's
    wording for its own 4 MB limit); nested deeper than 64 levels, or carrying a lone surrogate, with 400
    `InvalidRequestContent`. A route with a smaller body passes its own `limit`; one that reads more than
    JSON (template deployments: comments and bare keys) passes its own `parse`, which raises ValueError.
    """
    if limit is None:
        limit = int(request.app.state.settings.max_arm_body_bytes)
    raw = await read_limited(request, limit, lambda: RequestContentTooLarge(
        f"The request content size exceeds the maximum size of {describe_size(limit)}."))
    if not raw.strip():
        return {}
    if nested_deeper_than(raw):
        raise InvalidRequestContent(
            "The request content was invalid and could not be deserialized: arrays and objects are "
            f"nested deeper than {MAX_JSON_DEPTH} levels.")
    try:
        body = parse(raw)
    except ValueError as exc:
        raise InvalidRequestContent(f"The request content was invalid and could not be deserialized: {exc}.") from exc
    if not isinstance(body, dict):
        raise InvalidRequestContent("The request content must be a JSON object.")
    return body


def authorization_failed(caller: ArmCaller, action: str, scope: str, reason: str | None = None) -> AuthorizationFailed:
    """ARM's 403; `reason` (RBAC's `Decision.reason`) is logged with the request id, never sent."""
    return AuthorizationFailed(
        f"The client '{caller.display}' with object id '{caller.object_id}' does not have authorization to "
        f"perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently "
        "granted, please refresh your credentials.",
        reason=reason,
    )


def require_api_version(request: Request) -> str:
    version = request.query_params.get("api-version")
    if not version:
        raise MissingApiVersionParameter(
            "The api-version query parameter (?api-version=) is required for all requests.")
    if len(version) > 32 or not set(version.lower()) <= _API_VERSION_CHARS or not version[:4].isdigit():
        raise InvalidApiVersionParameter(
            f"The api-version '{version[:32]}' is invalid. The supported versions are dates such as "
            "'2022-12-01'.")
    return version


def check_route_api_version(version: str, served: frozenset[str] | None) -> None:
    """400 InvalidApiVersionParameter when a route serves named api-versions only and this is not one of them, with
    ARM's wording: "The api-version '2023-02-01' is invalid. The supported versions are '2023-07-01,…'." (newest
    first, as in Azure/azure-cli#28038 and Azure/azure-sdk-for-python#975). Versions compare case-insensitively."""
    if served is not None and version.lower() not in served:
        raise InvalidApiVersionParameter(f"The api-version '{version}' is invalid. The supported versions are "
                                         f"'{','.join(newest_first(served))}'.")


def resource_manager(request: Request) -> ResourceManager:
    """The resource manager's operations over the services the app factory wired (it holds no state of its own)."""
    state = request.app.state
    return ResourceManager(state.resource_service, state.identity_service, state.access, state.directory_service,
                           state.settings.base_url)


def arm_context(request: Request) -> ArmContext:
    principal = bearer_principal(request, ARM_AUDIENCES)
    access: AccessService = request.app.state.access
    caller = access.caller(principal)
    return ArmContext(principal, caller, access)
