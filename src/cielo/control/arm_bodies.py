"""The resource manager's request bodies, one pydantic model per body, and the one place (`parse`) where a body that
does not fit its model becomes the ARM error the operation answers with.

Every model takes properties it does not define (`extra="allow"`): az, the azure-mgmt SDKs and Bicep/ARM templates
send ARM properties Cielo does not model (`id`, `etag`, `systemData`, `properties.networkAcls`, the `principalId`
of an identity block they read back), and ARM ignores what a resource provider does not use. Nothing in these
bodies is refused for being unknown.

Types are strict where Cielo has always refused a wrong type (`disableLocalAuth` is true or false, `sku.capacity` an
integer and never `true`), and lenient where it has always read a value leniently and clients rely on it: an
account's `kind` and `sku.name` are read as text and checked against what Cielo serves, a role's `roleName` or an
assignment's `description` that is not a string is ignored, an empty `permissions` may be `null`. Those lenient
readings are spelled out per field below, so that the wire stays as it was.

Each refusal has the ARM error class the operation always answered with for that property (`refusals`, by property
path; `InvalidRequestContent` unless a model says otherwise), and a message that names the property with its path
(`properties.permissions[0].actions[1]`) and says what was wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails, PydanticCustomError

from cielo.core.ids import is_guid
from cielo.core.wire_paths import TYPE_REASONS, property_path
from cielo.errors import (
    ArmError,
    ConditionsNotSupported,
    InvalidCapacity,
    InvalidIdentity,
    InvalidIdentityType,
    InvalidPrincipalId,
    InvalidRequestContent,
    InvalidRoleDefinitionContent,
    InvalidTag,
    LocationRequired,
    UnmatchedPrincipalType,
)

# A custom error of this type is shown as its message, whole; of `_REASON`, as the reason after the property.
_VERBATIM = "arm_refusal"
_REASON = "arm_value"


# ----------------------------------------------------------------------------- lenient readings
def _absent_if_falsy(value: Any) -> Any:
    """`null`, `""`, `0`, `false`, `[]`, `{}`: as if the property were left out (Cielo has always read these
    properties with `or`, falling back to the resource's current value)."""
    return value if value else None


def _text(value: Any) -> Any:
    """Any value, as its text; a falsy one as left out. For the properties Cielo checks against a list of what it
    serves (`kind`, `sku.name`), whose refusal then names the value sent."""
    if not value:
        return None
    return value if isinstance(value, str) else str(value)


def _string_or_absent(value: Any) -> Any:
    """A string, or left out: a value of another type has always been ignored here."""
    return value if isinstance(value, str) else None


def _string_or_empty(value: Any) -> Any:
    return value if isinstance(value, str) else ""


def _absent_if_empty(value: Any) -> Any:
    """`null` or `{}`: as if the object were left out (the resource's current one is used)."""
    return None if value is None or value == {} else value


def _empty_list_if_falsy(value: Any) -> Any:
    return value if value else []


def _truthiness(value: Any) -> bool:
    return bool(value)


def _object_id(value: str) -> str:
    if not is_guid(value.lower()):
        raise PydanticCustomError(_REASON, "an object id (GUID) is expected")
    return value


def _key_name(value: str) -> str:
    if value.lower() not in ("key1", "key2"):
        raise PydanticCustomError(_REASON, "Key1 or Key2 is expected")
    return value


def _no_assignment_condition(value: JsonValue) -> JsonValue:
    if value:
        raise PydanticCustomError(_VERBATIM, "Role assignment conditions (ABAC) are not supported by this Cielo; "
                                             "create the assignment without 'condition'.")
    return value


def _no_permission_condition(value: JsonValue) -> JsonValue:
    if value:
        raise PydanticCustomError(_VERBATIM, "Conditions in a custom role's permissions are not supported by this "
                                             "Cielo (built-in roles keep Azure's, which fail closed); remove "
                                             "'condition'.")
    return value


def _identity_type(value: str | None) -> str | None:
    """None, SystemAssigned, UserAssigned or both, comma-separated, in any case. A missing type is not "None": read
    so, an identity block without it would delete the system-assigned identity's principal and its role
    assignments."""
    if value is None:
        raise PydanticCustomError(_VERBATIM, "identity.type is required: None, SystemAssigned, UserAssigned or "
                                             "'SystemAssigned, UserAssigned'.")
    parts = {p.strip().lower() for p in value.split(",") if p.strip()}
    if not parts <= {"none", "systemassigned", "userassigned"} or ("none" in parts and len(parts) > 1):
        raise PydanticCustomError(_VERBATIM, f"The identity type '{value}' is invalid; use None, SystemAssigned, "
                                             "UserAssigned or 'SystemAssigned, UserAssigned'.")
    return value


Text = Annotated[str | None, BeforeValidator(_text)]
Location = Annotated[str | None, BeforeValidator(_absent_if_falsy)]  # checked by naming.normalize_location
Tags = dict[str, str] | None
NonEmpty = Annotated[str, Field(min_length=1)]
IgnoredUnlessString = Annotated[str | None, BeforeValidator(_string_or_absent)]
Condition = Annotated[JsonValue, AfterValidator(_no_assignment_condition)]
PermissionCondition = Annotated[JsonValue, AfterValidator(_no_permission_condition)]


class ArmBody(BaseModel):
    """A request body or an object in one: camelCase names, strict types, unknown properties taken (see the
    module's docstring)."""

    model_config = ConfigDict(strict=True, extra="allow", alias_generator=to_camel, frozen=True)
    # The error class of a refusal, by the path of the property at fault (list indices left out), the longest
    # matching path first; InvalidRequestContent where none matches.
    refusals: ClassVar[Mapping[str, type[ArmError]]] = {}

    def sent(self, field: str) -> bool:
        """Whether the body named this property (even as null)."""
        return field in self.model_fields_set


# ----------------------------------------------------------------------------- Microsoft.Authorization
class RoleAssignmentProperties(ArmBody):
    # Checked first, as Cielo always has: a body with a condition is refused whatever else it holds.
    condition: Condition = None
    condition_version: Condition = None
    role_definition_id: NonEmpty
    principal_id: Annotated[str, AfterValidator(_object_id)]
    # Compared with the principal's own type once the principal is found (UnmatchedPrincipalType).
    principal_type: str | None = None
    description: IgnoredUnlessString = None


class RoleAssignmentBody(ArmBody):
    """`PUT {scope}/providers/Microsoft.Authorization/roleAssignments/{name}` (2022-04-01)."""

    refusals = {"properties.condition": ConditionsNotSupported, "properties.conditionVersion": ConditionsNotSupported,
                "properties.principalId": InvalidPrincipalId, "properties.principalType": UnmatchedPrincipalType}

    properties: RoleAssignmentProperties


class RoleScopes(ArmBody):
    assignable_scopes: Annotated[list[str], BeforeValidator(_empty_list_if_falsy), Field(min_length=1)]


class RoleDefinitionScopes(ArmBody):
    """What a role definition's `PUT` reads first: its assignable scopes, where the caller's right to write the role
    is checked before anything else in the body is looked at."""

    refusals = {"properties.assignableScopes": InvalidRoleDefinitionContent}

    properties: RoleScopes


class Permission(ArmBody):
    condition: PermissionCondition = None
    condition_version: PermissionCondition = None
    actions: list[str] = []
    not_actions: list[str] = []
    data_actions: list[str] = []
    not_data_actions: list[str] = []

    def to_stored(self) -> dict[str, list[str]]:
        return {"actions": list(self.actions), "notActions": list(self.not_actions),
                "dataActions": list(self.data_actions), "notDataActions": list(self.not_data_actions)}


class RoleDefinitionProperties(RoleScopes):
    # null or empty: no permissions.
    permissions: Annotated[list[Permission], BeforeValidator(_empty_list_if_falsy)] = []
    role_name: Annotated[str, BeforeValidator(_string_or_empty)] = ""  # not a string: ""
    description: IgnoredUnlessString = None


class RoleDefinitionBody(ArmBody):
    """`PUT {scope}/providers/Microsoft.Authorization/roleDefinitions/{guid}`: a custom role."""

    refusals = {"properties.assignableScopes": InvalidRoleDefinitionContent,
                "properties.permissions": InvalidRoleDefinitionContent,
                "properties.permissions.condition": ConditionsNotSupported,
                "properties.permissions.conditionVersion": ConditionsNotSupported}

    properties: RoleDefinitionProperties


class CheckAccessSubject(ArmBody):
    """What `POST {scope}/providers/Microsoft.Authorization/checkAccess` reads first: whom the question is about
    (left out, empty or null: the caller), for the right to ask about someone else is checked before the rest."""

    principal_id: Annotated[str | None, BeforeValidator(_absent_if_falsy)] = None


class CheckAccessBody(CheckAccessSubject):
    """Cielo's checkAccess: `{"principalId"?, "action", "isDataAction"?}`."""

    action: NonEmpty
    is_data_action: Annotated[bool, BeforeValidator(_truthiness)] = False  # read by its truthiness, as always


# ----------------------------------------------------------------------------- resource groups
class ResourceGroupBody(ArmBody):
    """`PUT /subscriptions/{id}/resourceGroups/{name}` (Microsoft.Resources)."""

    refusals = {"location": LocationRequired, "tags": InvalidTag}

    location: Location = None
    tags: Tags = None


class ResourceGroupPatch(ArmBody):
    """`PATCH` of a resource group: its tags only (the location stays; anything else is ignored, as ARM does)."""

    refusals = {"tags": InvalidTag}

    tags: Tags = None


# ----------------------------------------------------------------------------- managed identities
class IdentityBlock(ArmBody):
    """A resource's `identity` (`{"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {id: {}}}`):
    a null value in `userAssignedIdentities` detaches that identity; any other value attaches it. `principalId`
    and `tenantId`, which az sends back as it read them, are taken and ignored."""

    refusals = {"": InvalidIdentity, "type": InvalidIdentityType, "userAssignedIdentities": InvalidIdentity}

    type: Annotated[str | None, AfterValidator(_identity_type)] = Field(None, validate_default=True)
    user_assigned_identities: dict[str, JsonValue] | None = None

    @property
    def system_assigned(self) -> bool:
        return "systemassigned" in self._parts

    @property
    def user_assigned(self) -> bool:
        return "userassigned" in self._parts

    @property
    def _parts(self) -> set[str]:
        return {p.strip().lower() for p in (self.type or "").split(",") if p.strip()}


# ----------------------------------------------------------------------------- Cognitive Services
class AccountSku(ArmBody):
    name: Text = None  # checked against the SKUs Cielo serves (InvalidSkuName naming it)


class AccountProperties(ArmBody):
    custom_sub_domain_name: Text = None
    disable_local_auth: bool = False  # left out: the account's current value
    public_network_access: Literal["Enabled", "Disabled"] = "Enabled"


class AccountBody(ArmBody):
    """`PUT` (and, merged onto the account, `PATCH`) of `Microsoft.CognitiveServices/accounts/{name}`."""

    refusals = {"location": LocationRequired, "tags": InvalidTag}

    kind: Text = None  # checked against the kinds Cielo serves (InvalidKind naming it, KindRequired if none)
    sku: AccountSku | None = None
    location: Location = None
    properties: AccountProperties | None = None
    tags: Tags = None
    # Read by IdentityService.identity_for (IdentityBlock) where the path serves identities, after the rest of the
    # body is accepted; refused where it does not.
    identity: JsonValue = None


class DeploymentModel(ArmBody):
    format: IgnoredUnlessString = None
    name: NonEmpty
    version: IgnoredUnlessString = None


class DeploymentSku(ArmBody):
    name: Annotated[str, BeforeValidator(str)] = "Standard"  # any value, as its text (null is "None")
    capacity: Annotated[int, Field(ge=1)] = 1  # thousands of tokens per minute


class DeploymentProperties(ArmBody):
    # Left out or empty: the deployment's current model (none: refused as a missing `properties.model.name`).
    model: Annotated[DeploymentModel | None, BeforeValidator(_absent_if_empty)] = None
    version_upgrade_option: JsonValue = "OnceCurrentVersionExpired"  # kept as sent
    rai_policy_name: JsonValue = "Microsoft.Default"  # kept as sent


class DeploymentBody(ArmBody):
    """`PUT` (and, merged onto the deployment, `PATCH`) of `Microsoft.CognitiveServices/accounts/{a}/deployments/
    {name}`."""

    refusals = {"sku.capacity": InvalidCapacity, "tags": InvalidTag}

    properties: DeploymentProperties | None = None
    sku: Annotated[DeploymentSku | None, BeforeValidator(_absent_if_empty)] = None  # left out or {}: the current
    tags: Tags = None


class RegenerateKeyBody(ArmBody):
    """`POST .../accounts/{name}/regenerateKey`: `{"keyName": "Key1" | "Key2"}` (any case)."""

    key_name: Annotated[str, AfterValidator(_key_name)]


# ----------------------------------------------------------------------------- parsing
Body = TypeVar("Body", bound=ArmBody)



def parse(model: type[Body], body: Any, *, at: str = "") -> Body:
    """`body` as `model`, or the ARM error of the first property at fault (in the model's field order). `at` is the
    path of `body` in the request (`identity` for an identity block read on its own), for the messages."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise refusal_for(model, exc.errors(include_url=False, include_input=False), at) from None


def refusal_for(model: type[ArmBody], errors: list[ErrorDetails], at: str = "") -> ArmError:
    first = errors[0]
    relative = property_path(first["loc"], indices=False)
    error_class = _refusal_class(model, relative)
    if first["type"] == _VERBATIM:
        return error_class(first["msg"])
    name = _join(at, property_path(first["loc"]))
    if first["type"] == "missing":
        return error_class(f"The property '{name}' is required.")
    ctx = first.get("ctx") or {}
    if first["type"] == _REASON:
        reason = first["msg"]
    elif first["type"] == "too_short":
        wanted = ctx.get("min_length")
        reason = "it must not be empty" if wanted == 1 else f"at least {wanted} items are required"
    elif first["type"] == "greater_than_equal":
        reason = f"a number of at least {ctx.get('ge')} is expected"
    elif first["type"] == "literal_error":
        reason = f"{ctx.get('expected')} is expected"
    else:
        reason = TYPE_REASONS.get(first["type"], first["msg"])
    return error_class(f"The property '{name}' is invalid: {reason}.")


def _refusal_class(model: type[ArmBody], path: str) -> type[ArmError]:
    parts = path.split(".") if path else []
    for size in range(len(parts), -1, -1):
        found = model.refusals.get(".".join(parts[:size]))
        if found is not None:
            return found
    return InvalidRequestContent


def _join(at: str, path: str) -> str:
    return f"{at}.{path}" if at and path else at or path
