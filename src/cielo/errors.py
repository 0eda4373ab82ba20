"""One exception tree for Cielo. Each class carries its wire code as class attributes, and its docstring says
when it happens and cites the Azure page or RFC that defines the code.

Three envelopes exist on the wire: OAuth (token service), ARM (resource manager, Graph-like directory API) and
Azure OpenAI (data plane). Call sites raise these typed errors; the API layer renders them, so no call site builds
error JSON by hand. docs/errors.md lists every class per surface (code, status, when); it is generated from this
module by `python -m cielo.errors_doc`, and a unit test fails when it is stale.
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


class InvalidOAuthScope(OAuthError):
    """RFC 6749 §5.2 invalid_scope: a requested scope or resource the token service will not grant (AADSTS70011,
    AADSTS1002012). Not RBAC's malformed ARM scope, which is `cielo.rbac.InvalidScope`."""

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


class SignInStateUnavailable(OAuthError):
    """503 temporarily_unavailable (RFC 6749 §4.1.2.1), with Entra's AADSTS50000 ("There's an issue with the
    sign-in service"): the state replicas share (Redis, `--redis-url`) cannot be reached, so a sign-in's
    lockout count, a quota or a cache's freshness cannot be checked; Cielo refuses rather than guess."""

    status = 503
    error = "temporarily_unavailable"
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


class AuthenticationFailed(InvalidAuthenticationToken):
    """401 AuthenticationFailed: an ARM request whose Authorization header is missing or not a Bearer token
    (ARM answers AuthenticationFailed before it looks at a token, and InvalidAuthenticationToken for a bad
    one; learn.microsoft.com/rest/api/azure/#authorization-code-grant-interactive-clients)."""

    code = "AuthenticationFailed"


class ExpiredAuthenticationToken(InvalidAuthenticationToken):
    """401 ExpiredAuthenticationToken: a bearer token past its expiry, with ARM's message "The access token
    expiry UTC time is earlier than current UTC time." (learn.microsoft.com/azure/azure-resource-manager/
    troubleshooting/common-deployment-errors)."""

    code = "ExpiredAuthenticationToken"


class InvalidAuthenticationTokenTenant(InvalidAuthenticationToken):
    """401: a token issued by another tenant than the subscription's, with ARM's message naming the authority to
    use (ARM's InvalidAuthenticationTokenTenant, learn.microsoft.com/azure/azure-resource-manager/management/
    manage-resources-rest)."""

    code = "InvalidAuthenticationTokenTenant"


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
    Graph's 413 is `GraphRequestTooLarge`.
    """

    status = 413
    code = "RequestContentTooLarge"


# ARM codes with a class of their own. ARM's codes are listed in learn.microsoft.com/azure/azure-resource-manager/
# troubleshooting/common-deployment-errors; those of the resource providers appear in their error bodies.
class InvalidRequestContent(BadRequest):
    """A body that is not a JSON object, or a field of the wrong type or value (ARM's InvalidRequestContent,
    learn.microsoft.com/azure/azure-resource-manager/troubleshooting/common-deployment-errors)."""

    code = "InvalidRequestContent"


class MissingApiVersionParameter(BadRequest):
    """An ARM request without `?api-version=` (ARM's MissingApiVersionParameter: every ARM request names one,
    learn.microsoft.com/rest/api/azure/#uri-parameters)."""

    code = "MissingApiVersionParameter"


class InvalidApiVersionParameter(BadRequest):
    """An api-version that is malformed or that the route does not serve (ARM's InvalidApiVersionParameter,
    learn.microsoft.com/rest/api/azure/#uri-parameters)."""

    code = "InvalidApiVersionParameter"


class SubscriptionNotFound(NotFound):
    """404: the subscription in the path or scope does not exist in the caller's tenant (ARM's
    SubscriptionNotFound, learn.microsoft.com/azure/azure-resource-manager/troubleshooting/common-deployment-errors)."""

    code = "SubscriptionNotFound"


class ResourceGroupNotFound(NotFound):
    """404: the resource group in the path or scope does not exist (ARM's ResourceGroupNotFound,
    learn.microsoft.com/azure/azure-resource-manager/troubleshooting/common-deployment-errors)."""

    code = "ResourceGroupNotFound"


class InvalidResourceName(BadRequest):
    """A resource name outside the resource type's rules: length, characters, ending (ARM's
    InvalidResourceName, learn.microsoft.com/azure/azure-resource-manager/troubleshooting/error-reserved-resource-name
    and learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules)."""

    code = "InvalidResourceName"


class InvalidTag(BadRequest):
    """Tags that are not an object of string values (ARM's InvalidTag,
    learn.microsoft.com/azure/azure-resource-manager/management/tag-resources#limitations)."""

    code = "InvalidTag"


class StorageAccountAlreadyTaken(Conflict):
    """409: a storage account name another account holds; the name is its endpoints' host name, one per Cielo as one
    per Azure (Storage's StorageAccountAlreadyTaken, learn.microsoft.com/azure/storage/common/storage-account-create
    and the storage REST spec's checkNameAvailability reasons)."""

    code = "StorageAccountAlreadyTaken"


class InvalidSkuName(BadRequest):
    """A SKU the resource type does not offer (Cognitive Services' InvalidSkuName, as its error bodies show;
    learn.microsoft.com/azure/ai-services/openai/how-to/create-resource)."""

    code = "InvalidSkuName"


class CustomDomainInUse(Conflict):
    """409: the account's custom subdomain is taken by another account (Cognitive Services' CustomDomainInUse,
    learn.microsoft.com/azure/ai-services/cognitive-services-custom-subdomains)."""

    code = "CustomDomainInUse"


class InvalidIdentity(BadRequest):
    """A resource's `identity` block that is malformed: not an object, bad user-assigned ids or values
    (ARM's InvalidIdentity, learn.microsoft.com/azure/templates/microsoft.cognitiveservices/accounts#identity)."""

    code = "InvalidIdentity"


class InvalidIdentityType(BadRequest):
    """An `identity.type` that is missing, not a string, or not None, SystemAssigned, UserAssigned or both (ARM's
    InvalidIdentityType,
    learn.microsoft.com/entra/identity/managed-identities-azure-resources/overview)."""

    code = "InvalidIdentityType"


class InvalidRoleDefinitionContent(BadRequest):
    """A custom role definition body with bad permissions or assignable scopes (Azure's InvalidRoleDefinition,
    learn.microsoft.com/azure/role-based-access-control/troubleshoot-limits). `cielo.rbac.InvalidRoleDefinition`
    is the engine's own refusal, with the generic BadRequest code."""

    code = "InvalidRoleDefinition"


class InvalidFilterInQueryString(BadRequest):
    """A `$filter` that the list operation does not support (ARM's InvalidFilterInQueryString, e.g.
    learn.microsoft.com/rest/api/authorization/role-assignments/list-for-scope)."""

    code = "InvalidFilterInQueryString"


# Role-based access control codes (learn.microsoft.com/azure/role-based-access-control/troubleshooting lists
# those Azure answers for role assignments and definitions). `cielo.rbac.errors` holds the engine's own.
class InvalidAssignmentScope(BadRequest):
    """A role assignment or definition scope that is not a well-formed ARM id (Azure's InvalidScope,
    learn.microsoft.com/azure/role-based-access-control/scope-overview). Not `cielo.rbac.InvalidScope`, the
    engine's refusal with the generic BadRequest code."""

    code = "InvalidScope"


class PrincipalNotFound(BadRequest):
    """The principalId of a role assignment names no user, group or service principal of the caller's tenant
    (Azure's PrincipalNotFound, learn.microsoft.com/azure/role-based-access-control/troubleshooting)."""

    code = "PrincipalNotFound"


class InvalidRoleAssignmentId(BadRequest):
    """A role assignment name that is not a GUID (Azure's InvalidRoleAssignmentId,
    learn.microsoft.com/rest/api/authorization/role-assignments/create)."""

    code = "InvalidRoleAssignmentId"


class InvalidPrincipalId(BadRequest):
    """A role assignment whose properties.principalId is not an object id (a GUID) (Azure's InvalidPrincipalId,
    learn.microsoft.com/rest/api/authorization/role-assignments/create)."""

    code = "InvalidPrincipalId"


class ConditionsNotSupported(BadRequest):
    """A role assignment or custom role permission with an ABAC `condition`, which Cielo does not evaluate and
    so refuses rather than ignores (Azure evaluates them: learn.microsoft.com/azure/role-based-access-control/
    conditions-overview)."""

    code = "ConditionsNotSupported"


class UnmatchedPrincipalType(BadRequest):
    """A role assignment whose principalType is not the type of the principal it names (Azure's
    UnmatchedPrincipalType, learn.microsoft.com/azure/role-based-access-control/troubleshooting)."""

    code = "UnmatchedPrincipalType"


class RoleDefinitionDoesNotExist(NotFound):
    """404: a GET of a role definition that does not exist or that the caller may not read at the scope (Azure's
    RoleDefinitionDoesNotExist, learn.microsoft.com/rest/api/authorization/role-definitions/get). An assignment
    naming a missing role is `cielo.rbac.RoleDefinitionNotFound`, a 400 with the same code."""

    code = "RoleDefinitionDoesNotExist"


class RoleAssignmentNotFound(NotFound):
    """404: the role assignment does not exist at the scope (Azure's RoleAssignmentNotFound,
    learn.microsoft.com/rest/api/authorization/role-assignments/get)."""

    code = "RoleAssignmentNotFound"


class InvalidRoleDefinitionId(BadRequest):
    """A custom role definition name that is not a GUID (Azure's InvalidRoleDefinitionId,
    learn.microsoft.com/rest/api/authorization/role-definitions/create-or-update)."""

    code = "InvalidRoleDefinitionId"


# Resource groups, accounts and deployments.
class InvalidResourceGroupName(BadRequest):
    """A resource group name outside ARM's rules: alphanumerics, underscore, parentheses, hyphen, period (not
    at the end), up to 90 characters (ARM's InvalidResourceGroupName,
    learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules)."""

    code = "InvalidResourceGroupName"


class LocationRequired(BadRequest):
    """A resource group or resource without a location (ARM's LocationRequired,
    learn.microsoft.com/azure/azure-resource-manager/troubleshooting/common-deployment-errors)."""

    code = "LocationRequired"


class LocationNotAvailableForResourceGroup(BadRequest):
    """A location that is not a region name (ARM's LocationNotAvailableForResourceGroup,
    learn.microsoft.com/azure/azure-resource-manager/troubleshooting/common-deployment-errors)."""

    code = "LocationNotAvailableForResourceGroup"


class InvalidResourceGroupLocation(BadRequest):
    """A PUT of an existing resource group with another location: a group's location cannot change (ARM's
    InvalidResourceGroupLocation,
    learn.microsoft.com/azure/azure-resource-manager/troubleshooting/common-deployment-errors)."""

    code = "InvalidResourceGroupLocation"


class InvalidResourceLocation(Conflict):
    """409: a PUT of an existing resource with another location (ARM's InvalidResourceLocation,
    learn.microsoft.com/azure/azure-resource-manager/troubleshooting/common-deployment-errors)."""

    code = "InvalidResourceLocation"


class InvalidKind(BadRequest):
    """A Cognitive Services account kind this Cielo does not serve: it serves OpenAI, AIServices and
    CognitiveServices (Cognitive Services' InvalidKind, learn.microsoft.com/rest/api/aiservices/accountmanagement/
    accounts/create)."""

    code = "InvalidKind"


class KindRequired(BadRequest):
    """A Cognitive Services account without a kind (Cognitive Services' KindRequired,
    learn.microsoft.com/rest/api/aiservices/accountmanagement/accounts/create: `kind` is required)."""

    code = "KindRequired"


class CustomSubDomainNameCannotBeChanged(BadRequest):
    """An account update that changes customSubDomainName, which is set once (Cognitive Services'
    CustomSubDomainNameCannotBeChanged, learn.microsoft.com/azure/ai-services/cognitive-services-custom-subdomains)."""

    code = "CustomSubDomainNameCannotBeChanged"


class DeploymentModelNotSupported(BadRequest):
    """A deployment of a model that the catalogue does not hold (Cognitive Services' DeploymentModelNotSupported,
    learn.microsoft.com/azure/ai-services/openai/how-to/create-resource)."""

    code = "DeploymentModelNotSupported"


class InvalidCapacity(BadRequest):
    """A deployment whose sku.capacity is not a positive integer of thousands of tokens per minute (Cognitive
    Services' InvalidCapacity, learn.microsoft.com/azure/ai-services/openai/how-to/quota)."""

    code = "InvalidCapacity"


class InsufficientQuota(BadRequest):
    """A deployment whose capacity would take the subscription's per-model, per-region quota over its limit,
    in Azure's words (Cognitive Services' InsufficientQuota, learn.microsoft.com/azure/ai-services/openai/how-to/
    quota)."""

    code = "InsufficientQuota"


# Providers and routes.
class InvalidQueryParameterValue(BadRequest):
    """A query parameter value the operation does not support, e.g. an `$expand` other than resourceTypes on a
    provider operations listing (ARM's InvalidQueryParameterValue, learn.microsoft.com/rest/api/azure/)."""

    code = "InvalidQueryParameterValue"


class InvalidResourceNamespace(NotFound):
    """404: a resource provider namespace this Cielo does not serve (ARM's InvalidResourceNamespace,
    learn.microsoft.com/azure/azure-resource-manager/troubleshooting/error-register-resource-provider)."""

    code = "InvalidResourceNamespace"


class InvalidResourceType(NotFound):
    """404: a resource type or a path under a resource that this Cielo does not serve (ARM's InvalidResourceType,
    learn.microsoft.com/azure/azure-resource-manager/troubleshooting/error-invalid-resource-type)."""

    code = "InvalidResourceType"


# Template deployments (Microsoft.Resources/deployments): codes of learn.microsoft.com/azure/azure-resource-manager/
# troubleshooting/common-deployment-errors.
class InvalidTemplate(BadRequest):
    """A deployment whose template or parameters are missing, not JSON objects, or fail validation (an unknown
    function, parameter or resource reference); `target` names where (ARM's InvalidTemplate)."""

    code = "InvalidTemplate"


class InvalidDeploymentProperties(BadRequest):
    """Deployment properties this Cielo does not serve (templateLink, parametersLink, debugSetting,
    onErrorDeployment, what-if settings other than resultFormat), refused rather than ignored (ARM's
    InvalidDeploymentProperties, learn.microsoft.com/rest/api/resources/deployments/create-or-update-at-scope)."""

    code = "InvalidDeploymentProperties"


class InvalidDeploymentMode(BadRequest):
    """A deployment mode other than Incremental: a Complete deployment would delete what the template does not
    name (learn.microsoft.com/azure/azure-resource-manager/templates/deployment-modes)."""

    code = "InvalidDeploymentMode"


class InvalidTemplateDeployment(BadRequest):
    """A deployment that validation refuses as a whole, e.g. the caller may not write one of its resources (ARM's
    InvalidTemplateDeployment, learn.microsoft.com/azure/azure-resource-manager/troubleshooting/
    common-deployment-errors)."""

    code = "InvalidTemplateDeployment"


class DeploymentActive(Conflict):
    """409: a deployment of that name is still running, so it cannot be replaced, cancelled twice or deleted
    (ARM's DeploymentActive, learn.microsoft.com/azure/azure-resource-manager/troubleshooting/
    common-deployment-errors)."""

    code = "DeploymentActive"


class AnotherOperationInProgress(Conflict):
    """409: another request is changing what this one needs (the deployments' capacity quota in a location, held by
    another replica for longer than Cielo waits); retrying later succeeds (ARM's AnotherOperationInProgress,
    learn.microsoft.com/azure/azure-resource-manager/troubleshooting/common-deployment-errors)."""

    code = "AnotherOperationInProgress"


class TemplateDeploymentNotFound(NotFound):
    """404 DeploymentNotFound: no template deployment of that name in the resource group (ARM's DeploymentNotFound,
    learn.microsoft.com/rest/api/resources/deployments/get). Not the data plane's `DeploymentNotFound`."""

    code = "DeploymentNotFound"


class DeploymentOperationNotFound(NotFound):
    """404 OperationNotFound: a template deployment has no operation of that id
    (learn.microsoft.com/rest/api/resources/deployment-operations/get)."""

    code = "OperationNotFound"


class MethodNotAllowed(BadRequest):
    """An HTTP method a served ARM path does not take; ARM answers 400 with code MethodNotAllowed
    (not RFC 9110's 405) for such requests."""

    code = "MethodNotAllowed"


# Managed identities.
class InvalidUserAssignedIdentity(BadRequest):
    """A userAssignedIdentities key that is not a user-assigned identity's resource id
    (learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-manage-user-assigned-managed-identities)."""

    code = "InvalidUserAssignedIdentity"


class FailedIdentityOperation(BadRequest):
    """A userAssignedIdentities key naming an identity that does not exist in the caller's tenant (ARM's
    FailedIdentityOperation, learn.microsoft.com/entra/identity/managed-identities-azure-resources/
    known-issues)."""

    code = "FailedIdentityOperation"


class ResourceTypeMismatch(BadRequest):
    """400 InvalidResourceType: a PUT at an id where a resource of another type already exists. The 404 for a
    type Cielo does not serve is `InvalidResourceType`."""

    code = "InvalidResourceType"


# --------------------------------------------------------------------------- Microsoft Graph (directory API)
# Graph's codes: learn.microsoft.com/graph/errors; the directory's `Request_*` and `Authorization_*` codes are
# those Microsoft Graph answers for directory objects.
class GraphBadRequest(BadRequest):
    """400 Request_BadRequest: a directory request with an invalid property, value or reference
    (learn.microsoft.com/graph/errors)."""

    code = "Request_BadRequest"


class GraphResourceNotFound(NotFound):
    """404 Request_ResourceNotFound: the directory object (user, group, application, service principal) does not
    exist (learn.microsoft.com/graph/errors)."""

    code = "Request_ResourceNotFound"


class UnsupportedQuery(BadRequest):
    """400 Request_UnsupportedQuery: a `$filter`, `$search` or other query option the directory does not support
    (learn.microsoft.com/graph/aad-advanced-queries)."""

    code = "Request_UnsupportedQuery"


class GraphAuthorizationDenied(AuthorizationFailed):
    """403 Authorization_RequestDenied: "Insufficient privileges to complete the operation."
    (learn.microsoft.com/graph/resolve-auth-errors)."""

    code = "Authorization_RequestDenied"


class FederatedCredentialExists(Conflict):
    """409 Request_BadRequest: an application already holds a federated identity credential of that name (Graph
    answers Request_BadRequest for the duplicate name; names are unique per application,
    learn.microsoft.com/graph/api/application-post-federatedidentitycredentials)."""

    code = "Request_BadRequest"


class GraphObjectExists(Conflict):
    """409 Request_MultipleObjectsWithSameKeyValue: the application has a service principal already (Graph's code
    for a second object with the same key, learn.microsoft.com/graph/api/serviceprincipal-post-serviceprincipals)."""

    code = "Request_MultipleObjectsWithSameKeyValue"


class GraphRequestTooLarge(RequestContentTooLarge):
    """413 Request_EntityTooLarge: a directory body over the limit. Graph documents 413 "The request size exceeds
    the maximum limit." without a code (learn.microsoft.com/graph/errors); this one is in its `Request_*` family."""

    code = "Request_EntityTooLarge"


class ArmServiceUnavailable(ArmError):
    """503 ServiceUnavailable: the state replicas share (Redis, `--redis-url`) cannot be reached, so whether a role
    change has reached this replica cannot be known; the request is refused rather than decided on a stale view."""

    status = 503
    code = "ServiceUnavailable"


class GraphServiceNotAvailable(ArmError):
    """503 serviceNotAvailable, Graph's code for "The service is temporarily unavailable"
    (learn.microsoft.com/graph/errors): as ArmServiceUnavailable, on the directory API."""

    status = 503
    code = "serviceNotAvailable"


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


class ApiVersionRequired(DataPlaneError):
    """A data-plane request on a classic route (openai/deployments/..., openai/responses) without
    `?api-version=`: Azure OpenAI answers 400 MissingApiVersionParameter (the inference spec makes api-version a
    required query parameter, Azure/azure-rest-api-specs specification/cognitiveservices/data-plane/AzureOpenAI/
    inference). The v1 routes need none."""

    code = "MissingApiVersionParameter"


class UnsupportedApiVersion(DataPlaneError):
    """404: an api-version the route does not serve (a date that is no GA version nor a preview, or a Responses
    API version before its first preview). Azure OpenAI answers 404 for an unknown api-version
    (learn.microsoft.com/azure/ai-services/openai/api-version-lifecycle)."""

    status = 404
    code = "UnsupportedApiVersion"


class AccountNotFound(DataPlaneError):
    """404 `{"error": {"code": "404", "message": "Resource not found"}}`: the host or path names no account, as
    Azure OpenAI answers for an endpoint whose resource does not exist."""

    status = 404
    code = "404"


class OperationNotSupported(DataPlaneError):
    """A completions, chat or embeddings call on a deployment whose model cannot do it, with Azure OpenAI's
    message "The ... operation does not work with the specified model, ... Please choose different model and try
    again." (learn.microsoft.com/azure/ai-services/openai/concepts/models lists each model's capabilities)."""

    code = "OperationNotSupported"


class RequestBodyTooLarge(DataPlaneError):
    """413 RequestTooLarge: a body over the data plane's byte limit, refused while it streams in, before it is
    held or parsed (RFC 9110 §15.5.14)."""

    status = 413
    code = "RequestTooLarge"


class InvalidRequestError(DataPlaneError):
    """400 BadRequest with `"type": "invalid_request_error"` and the offending `param`: a body field that is
    missing, unknown or of the wrong type (OpenAI's error object, platform.openai.com/docs/guides/error-codes,
    which Azure OpenAI's inference errors share)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message, param=param, error_type="invalid_request_error")


class UnsupportedParameter(InvalidRequestError):
    """A request field this deployment or route does not honour, refused rather than ignored (OpenAI's
    `unsupported_parameter`, as its API answers e.g. for `temperature` on reasoning models)."""

    code = "unsupported_parameter"


class UnsupportedValue(InvalidRequestError):
    """A known field with a value this deployment or route does not honour (OpenAI's `unsupported_value`)."""

    code = "unsupported_value"


class InvalidValue(InvalidRequestError):
    """A number outside its field's range, e.g. temperature above 2 (OpenAI's `invalid_value`, with the range in
    the message as platform.openai.com/docs/api-reference/chat/create gives it)."""

    code = "invalid_value"


class IntegerBelowMinValue(InvalidRequestError):
    """A Responses API `max_output_tokens` below its minimum (OpenAI's `integer_below_min_value`,
    platform.openai.com/docs/api-reference/responses/create)."""

    code = "integer_below_min_value"


class ResponseNotFound(InvalidRequestError):
    """404: a stored response that does not exist, has expired, or belongs to another caller (Azure OpenAI
    Responses API, learn.microsoft.com/azure/ai-services/openai/how-to/responses)."""

    status = 404
    code = "NotFound"


class PreviousResponseNotFound(InvalidRequestError):
    """404: `previous_response_id` names no stored response of the caller (OpenAI's
    `previous_response_not_found`, platform.openai.com/docs/api-reference/responses/create)."""

    status = 404
    code = "previous_response_not_found"


class DataPlaneServiceUnavailable(DataPlaneError):
    """503 ServiceUnavailable: the state replicas share (Redis, `--redis-url`) cannot be reached, so the
    deployment's quota or the caller's current role assignments cannot be checked; refused, never admitted
    unchecked."""

    status = 503
    code = "ServiceUnavailable"


class SharedStateUnavailable(CieloError):
    """Raised where Redis (`--redis-url`) cannot be reached; never on the wire itself: the API layer answers it in
    the request's surface's envelope (SignInStateUnavailable, ArmServiceUnavailable, GraphServiceNotAvailable,
    DataPlaneServiceUnavailable), status 503."""

    status = 503


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
