"""Data-plane authentication exactly as Azure OpenAI does it: the headers openai-python's lib/azure.py
sends, and Azure's answers as docs/data-plane.md gives them.

`api-key` is authoritative when present (openai 1.x sends it together with `Authorization: Bearer
<key>`), except when it holds the very JWT the `Authorization: Bearer` header carries: llama-index's documented
Entra setup (`use_azure_ad=True`), which works against Azure, hands its token to openai-python as the api key,
and openai>=2.34 then sends it in both headers; such a token is validated as a bearer token like any other.
Otherwise a bearer JWT is validated every time (signature, exp/nbf with skew, audience
`https://cognitiveservices.azure.com` with or without slash, an issuer of a known tenant, and the token's tenant
equal to the account's), then RBAC decides on the operation's data action at the account's scope.
On `/openai/v1/` a bearer that is not a JWT is an API key.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from cielo.dataplane.index import Account
from cielo.errors import AccessDeniedKey, AuthenticationTypeDisabled, BearerRejected, PermissionDenied
from cielo.identity.validation import TokenInvalid, TokenPrincipal, TokenValidator
from cielo.rbac.decision import Decision

AUDIENCES = ("https://cognitiveservices.azure.com", "https://ai.azure.com")
KEY_DENIED = ("Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
              "for an active subscription and use a correct regional API endpoint for your resource.")
BEARER_DENIED = ("Unauthorized. Access token is missing, invalid, audience is incorrect "
                 "(https://cognitiveservices.azure.com), or have expired.")
MISSING = ("Access denied due to missing subscription key. Make sure to include subscription key when making "
           "requests to an API.")


class Caller(Protocol):
    """Who RBAC decides for: the principal behind a validated token, as the directory knows it now."""

    @property
    def object_id(self) -> str: ...

    @property
    def display(self) -> str: ...  # UPN for users, app id for service principals

    @property
    def kind(self) -> str: ...  # "User" | "ServicePrincipal"


C = TypeVar("C", bound=Caller)


class DataAccess(Protocol[C]):
    """The narrow view of RBAC the data plane needs (control.access.AccessService provides it, wired by the app
    factory): the caller behind a token, and a decision on one data action at one scope."""

    def caller(self, token: TokenPrincipal) -> C: ...

    def authorize(self, caller: C, action: str, scope: str, *, data_action: bool = False) -> Decision: ...


@dataclass(frozen=True)
class Authenticated:
    method: str  # "key" | "aad"
    principal_id: str | None


def _check_key(account: Account, key: str) -> Authenticated:
    if account.disable_local_auth:
        raise AuthenticationTypeDisabled("Key based authentication is disabled for this resource.")
    if hashlib.sha256(key.encode()).hexdigest() not in account.key_hashes:
        raise AccessDeniedKey(KEY_DENIED)
    return Authenticated("key", None)


def authenticate(account: Account, headers: Mapping[str, str], *, v1: bool, validator: TokenValidator,
                 access: DataAccess[Any], data_action: str, route: str,
                 grants: GrantCache | None = None) -> Authenticated:
    api_key = headers.get("api-key") or headers.get("ocp-apim-subscription-key")
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip()
    if api_key is not None and not (api_key.strip() == token and token.count(".") == 2):
        return _check_key(account, api_key.strip())
    if scheme.lower() != "bearer" or not token:
        raise BearerRejected(MISSING)
    if v1 and token.count(".") != 2:
        return _check_key(account, token)
    try:
        principal = validator.validate(token, AUDIENCES)
    except TokenInvalid as exc:
        raise BearerRejected(BEARER_DENIED) from exc
    if principal.tenant_id != account.tenant_id:
        raise BearerRejected(BEARER_DENIED)
    if grants is not None and grants.allowed(principal, data_action, account.id):
        return Authenticated("aad", principal.object_id)
    caller = access.caller(principal)
    decision = access.authorize(caller, data_action, account.id, data_action=True)
    if not decision.allowed:
        raise PermissionDenied(
            f"The principal `{caller.display if caller.kind == 'User' else caller.object_id}` lacks the required "
            f"data action `{data_action}` to perform `{route}` operation.", reason=decision.reason)
    if grants is not None:
        grants.remember(principal, data_action, account.id)
    return Authenticated("aad", caller.object_id)


class GrantCache:
    """Data actions RBAC allowed, per principal (as its token names it), action and scope, kept while nothing
    they depend on has changed: `version()` covers the role assignments and the directory (a disabled user, a
    deleted service principal, a group membership), in this worker and the others. Only grants are kept: a
    denial is decided afresh every time, so an assignment that becomes effective after RBAC's propagation
    delay applies as soon as it would without the cache. Removals take effect at once in RBAC, and they change
    `version()`, which empties the cache."""

    def __init__(self, version: Callable[[], Hashable], size: int = 100_000) -> None:
        self._version = version
        self._size = size
        self._seen: Hashable = object()
        self._allowed: set[tuple[str, str, str, str, str, str]] = set()
        self._lock = threading.Lock()

    @staticmethod
    def _key(principal: TokenPrincipal, action: str, scope: str) -> tuple[str, str, str, str, str, str]:
        # Everything access.caller reads from the token: who, where, and as what kind.
        return (principal.object_id, principal.tenant_id, principal.kind, principal.app_id, action, scope)

    def allowed(self, principal: TokenPrincipal, action: str, scope: str) -> bool:
        version = self._version()
        if version != self._seen:
            with self._lock:
                self._allowed = set()
                self._seen = version
            return False
        return self._key(principal, action, scope) in self._allowed

    def remember(self, principal: TokenPrincipal, action: str, scope: str) -> None:
        with self._lock:
            if len(self._allowed) >= self._size:
                self._allowed = set()
            self._allowed.add(self._key(principal, action, scope))
