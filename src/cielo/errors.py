"""One exception tree for Cielo. Each class carries its wire code as class attributes.

Three envelopes exist on the wire (docs/token-service.md, docs/resource-manager.md, docs/data-plane.md):
OAuth (token service), ARM (resource manager, Graph-like directory API) and Azure OpenAI (data plane).
Call sites raise these typed
errors; the API layer renders them, so no call site builds error JSON by hand.
"""

from __future__ import annotations


class CieloError(Exception):
    """Base class. `status` is the HTTP status the error maps to."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --------------------------------------------------------------------------- OAuth (RFC 6749 §5.2)
class OAuthError(CieloError):
    """An error of the token service, rendered as Entra's OAuth envelope.

    `error` is the RFC 6749 §5.2 error code, `aadsts` the Entra AADSTS number that Entra puts in
    `error_codes` and at the start of `error_description`.
    """

    status = 400
    error = "invalid_request"
    aadsts = 900144

    def __init__(self, message: str, *, aadsts: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        if aadsts is not None:
            self.aadsts = aadsts
        if status is not None:
            self.status = status


class InvalidRequest(OAuthError):
    """RFC 6749 §5.2 invalid_request: a missing or malformed parameter (AADSTS900144, 9002313)."""


class InvalidClient(OAuthError):
    """RFC 6749 §5.2 invalid_client: client authentication failed. Entra answers 401 (AADSTS7000215)."""

    status = 401
    error = "invalid_client"
    aadsts = 7000215


class UnauthorizedClient(OAuthError):
    """RFC 6749 §5.2 unauthorized_client: unknown application in the tenant (AADSTS700016)."""

    error = "unauthorized_client"
    aadsts = 700016


class InvalidGrant(OAuthError):
    """RFC 6749 §5.2 invalid_grant: bad password, redeemed code, PKCE mismatch, revoked token."""

    error = "invalid_grant"
    aadsts = 70000


class InvalidScope(OAuthError):
    """RFC 6749 §5.2 invalid_scope (AADSTS70011, AADSTS1002012)."""

    error = "invalid_scope"
    aadsts = 70011


class InvalidResource(OAuthError):
    """Entra's invalid_resource: the resource principal is not known in the tenant (AADSTS500011)."""

    error = "invalid_resource"
    aadsts = 500011


class UnsupportedGrantType(OAuthError):
    """RFC 6749 §5.2 unsupported_grant_type (AADSTS70003)."""

    error = "unsupported_grant_type"
    aadsts = 70003


class TenantNotFound(OAuthError):
    """Entra AADSTS90002: the tenant in the path does not exist."""

    error = "invalid_request"
    aadsts = 90002


class AuthorizationPending(OAuthError):
    """RFC 8628 §3.5 authorization_pending (AADSTS70016)."""

    error = "authorization_pending"
    aadsts = 70016


class AuthorizationDeclined(OAuthError):
    """RFC 8628 §3.5 access_denied; Entra names it authorization_declined (AADSTS70000)."""

    error = "authorization_declined"
    aadsts = 70000


class ExpiredToken(OAuthError):
    """RFC 8628 §3.5 expired_token (AADSTS70019)."""

    error = "expired_token"
    aadsts = 70019


class BadVerificationCode(OAuthError):
    """Entra bad_verification_code: the device_code is unknown."""

    error = "bad_verification_code"
    aadsts = 70019


class AccountLocked(InvalidGrant):
    """Entra AADSTS50053 (IdsLocked): smart lockout, or too many failed sign-ins from one address.

    `retry_after` (seconds) is sent as the `Retry-After` header.
    """

    aadsts = 50053

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLarge(OAuthError):
    """The form body exceeds the token endpoint's limit."""

    status = 413
    aadsts = 9002313


class ServerError(OAuthError):
    """An unexpected failure inside the token service: RFC 6749 §4.1.2.1 `server_error`, with Entra's AADSTS50000
    (TokenIssuanceError, "There's an issue with the sign-in service", Entra's error-code reference). Status 500."""

    status = 500
    error = "server_error"
    aadsts = 50000


# --------------------------------------------------------------------------- ARM-style errors
class ArmError(CieloError):
    """An error of the resource manager or directory API: `{"error": {"code", "message"}}`."""

    status = 400
    code = "BadRequest"

    def __init__(self, message: str, *, code: str | None = None, target: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.target = target


class InvalidAuthenticationToken(ArmError):
    """ARM's 401 for a missing, malformed, expired or foreign bearer token."""

    status = 401
    code = "InvalidAuthenticationToken"


class AuthorizationFailed(ArmError):
    """403: the principal lacks the permission (ARM AuthorizationFailed, Graph Authorization_RequestDenied).

    `reason` is RBAC's `Decision.reason` for the denial: never on the wire, logged at debug level with the
    response's request id (api/errors.py), so an operator can answer "why was this denied?".
    """

    status = 403
    code = "AuthorizationFailed"

    def __init__(self, message: str, *, code: str | None = None, target: str | None = None,
                 reason: str | None = None) -> None:
        super().__init__(message, code=code, target=target)
        self.reason = reason


class NotFound(ArmError):
    """404 for a resource that does not exist (Graph Request_ResourceNotFound, ARM ResourceNotFound)."""

    status = 404
    code = "ResourceNotFound"


class Conflict(ArmError):
    """409: the object exists already."""

    status = 409
    code = "Conflict"


class BadRequest(ArmError):
    """400 with an ARM/Graph code for invalid bodies or names."""

    status = 400
    code = "BadRequest"


class RequestContentTooLarge(ArmError):
    """413: a body over the surface's limit, refused while it streams in (RFC 9110 §15.5.14).

    ARM answers 413 `RequestContentTooLarge`, "The request content size exceeds the maximum size of 4 MB."
    Graph documents 413 ("The request size exceeds the maximum limit.") without a code; the directory API
    passes `code="Request_EntityTooLarge"`, in the `Request_*` family of its other codes.
    """

    status = 413
    code = "RequestContentTooLarge"


# --------------------------------------------------------------------------- Azure OpenAI data plane
class DataPlaneError(CieloError):
    """An Azure OpenAI data-plane error: `{"error": {"code", "message", "param"?, "type"?}}`, the
    ErrorResponse of Azure/azure-rest-api-specs specification/cognitiveservices/data-plane/AzureOpenAI/inference.

    `headers` are added to the response (retry-after on 429, x-ms-error-code always)."""

    status = 400
    code = "BadRequest"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 param: str | None = None, error_type: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.param = param
        self.error_type = error_type
        self.headers = headers or {}


class AccessDeniedKey(DataPlaneError):
    """401 for a wrong api-key, with Azure's exact message."""

    status = 401
    code = "401"


class BearerRejected(DataPlaneError):
    """401 for a missing, invalid, expired or foreign bearer token: Azure answers `{"statusCode", "message"}`
    with no `error` wrapper."""

    status = 401
    code = "401"


class PermissionDenied(DataPlaneError):
    """401 PermissionDenied: a valid token whose principal lacks the data action.

    `reason` is RBAC's `Decision.reason`: never on the wire, logged at debug level with the response's
    apim-request-id (api/openai.py)."""

    status = 401
    code = "PermissionDenied"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class AuthenticationTypeDisabled(DataPlaneError):
    status = 403
    code = "AuthenticationTypeDisabled"


class DeploymentNotFound(DataPlaneError):
    status = 404
    code = "DeploymentNotFound"


class RateLimited(DataPlaneError):
    status = 429
    code = "429"


# --------------------------------------------------------------------------- configuration
class ConfigError(CieloError):
    """Refused configuration (for example an insecure default outside local mode)."""


# --------------------------------------------------------------------------- data plane quotas
class EstimateExceedsTokenLimit(DataPlaneError):
    """400 `RequestTooLarge`: a request whose token estimate (prompt + max_tokens for every choice of every
    prompt, as learn.microsoft.com/azure/ai-services/openai/how-to/quota describes Azure's estimate) exceeds the
    deployment's whole per-minute token limit. Waiting would never let it through, so it is not a 429 (which
    clients retry): the client must ask for less or the deployment needs more capacity. OpenAI's own API
    words the same case "Request too large for ... on tokens per min"."""

    status = 400
    code = "RequestTooLarge"


class PortInUse(CieloError):
    """`cielo up` refuses an address something already listens on (an earlier server's orphaned workers,
    another program): with SO_REUSEPORT a second server could otherwise bind beside the first and the
    kernel would split connections between them. The message names the holder when it can be found."""


# --------------------------------------------------------------------------- store integrity and data directory
class DuplicateKey(Conflict):
    """409: a write stored a value that a unique constraint of the database holds already (in practice, another
    worker or replica stored it first: the database, not a process's memory, decides who wins).

    `table` and `columns` name the constraint. Services turn it into their surface's error (ARM's
    `RoleAssignmentExists`, Graph's `Request_BadRequest`, ...); one that is not mapped still answers 409 in the
    ARM envelope, never a 500."""

    code = "Conflict"

    def __init__(self, table: str, columns: tuple[str, ...]) -> None:
        super().__init__("The object exists already: another request stored the same value first.")
        self.table = table
        self.columns = columns


class DataDirectoryError(ConfigError):
    """A data directory Cielo refuses to start from: `path` (a database, key or key metadata file) is damaged,
    unreadable, or missing beside the data that needs it. The message is one line naming the file."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
