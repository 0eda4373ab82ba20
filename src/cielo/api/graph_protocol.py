"""The directory API's request bodies (`/v1.0/...`), one pydantic model per body, and the one place where a body
that does not fit its model becomes Graph's 400 `Request_BadRequest`.

Types are strict (a string is a string, `true` is not `"true"`, `1` is not `true`), as Graph's are. Bodies that
create an object (users, groups, applications, service principals, federated credentials) and the credential
objects inside other bodies take any further Graph property (`extra="allow"`): clients send Graph properties
Cielo does not model (az sends `accountEnabled`, `mailNickname`, `signInAudience`; certificates come back with
their `keyId`, `type` and `usage`), and refusing them would break those clients. Updates (`PATCH`) and actions
(`addPassword`, `removePassword`, `getByIds`, `members/$ref`) refuse any property they do not define, so a change
Cielo cannot make is never dropped without a word. `@odata.type`, which the msgraph SDKs add to every object
they send, is accepted everywhere.

Messages name the property with its path (`passwordCredential.endDateTime`, `ids[3]`) and say what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails, PydanticCustomError

from cielo.core.wire_paths import TYPE_REASONS, property_path
from cielo.errors import GraphBadRequest

# learn.microsoft.com/graph/api/directoryobject-getbyids: "up to 1000 ids".
MAX_IDS = 1000
# learn.microsoft.com/entra/identity-platform/reply-url: at most 256 redirect URIs per application.
MAX_REDIRECT_URIS = 256
# Cielo's own bounds on the other lists a body may carry (the body itself is bounded by max_graph_body_bytes).
MAX_LIST = 256
MAX_KEY_CREDENTIALS = 50

# A custom error of this type is shown as its message, whole; of `_REASON`, as the reason after the property.
_VERBATIM = "graph_refusal"
_REASON = "graph_value"


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError(_REASON, "it must not be blank")
    return value


def _end_date_time(value: Any) -> Any:
    """Graph's `endDateTime` (ISO 8601, `Z` or an offset) as a POSIX timestamp; None stays None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise PydanticCustomError(_REASON, "an ISO 8601 date and time is expected")
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise PydanticCustomError(_REASON, "an ISO 8601 date and time is expected") from None


def _certificate(value: Any) -> Any:
    """A key credential's `key`: base64 of the certificate (DER or PEM). Empty or null: no new certificate (az
    sends the application's existing certificates back that way)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PydanticCustomError(_REASON, "a base64 string is expected")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PydanticCustomError(_REASON, "a base64 string is expected") from None


def _refuse_forced_change(value: bool | None) -> bool | None:
    if value:
        raise PydanticCustomError(_VERBATIM, "Cielo does not make users change their password at sign-in: "
                                             "'forceChangePasswordNextSignIn' must be false.")
    return value


def _not_null(value: Any) -> Any:
    """For update properties that may be left out but not set to null."""
    if value is None:
        raise PydanticCustomError(_REASON, "null is not allowed")
    return value


NonBlank = Annotated[str, AfterValidator(_not_blank)]
Timestamp = Annotated[float | None, BeforeValidator(_end_date_time)]
Certificate = Annotated[bytes | None, BeforeValidator(_certificate)]
NoForcedChange = Annotated[bool | None, AfterValidator(_refuse_forced_change)]


class GraphBody(BaseModel):
    """A request body: strict types, camelCase names, unknown properties refused (see the module's docstring)."""

    model_config = ConfigDict(strict=True, extra="forbid", alias_generator=to_camel, frozen=True)
    # Names the resource in an update's messages ("Updating property 'x' of resource 'User' ..."), or the
    # action in an action's ("Property 'x' is not a parameter of 'addPassword' ...").
    resource: ClassVar[str | None] = None
    action: ClassVar[str | None] = None

    odata_type: str | None = Field(None, alias="@odata.type")


class GraphObject(GraphBody):
    """A body or object that takes any further Graph property (ignored by Cielo)."""

    model_config = ConfigDict(extra="allow")


# ----------------------------------------------------------------------------- users
class NewPasswordProfile(GraphObject):
    password: NonBlank
    force_change_password_next_sign_in: NoForcedChange = None


class NewUser(GraphObject):
    """`POST /users`, as az and `cielo ad user create` send it."""

    password_profile: NewPasswordProfile
    user_principal_name: NonBlank
    display_name: NonBlank
    account_enabled: bool | None = None

    @field_validator("account_enabled")
    @classmethod
    def _enabled(cls, value: bool | None) -> bool | None:
        if value is False:
            raise PydanticCustomError(_VERBATIM, "Cielo creates users enabled: 'accountEnabled' must be true (disable "
                                                 "the user with an update afterwards).")
        return value


class PasswordProfileUpdate(GraphBody):
    resource = "User"

    password: str | None = None  # empty or null: the password is not changed
    force_change_password_next_sign_in: NoForcedChange = None


class UserUpdate(GraphBody):
    """`PATCH /users/{id}` (az's `ad user update`): displayName, accountEnabled, passwordProfile.password."""

    resource = "User"

    display_name: Annotated[NonBlank | None, BeforeValidator(_not_null)] = None
    account_enabled: bool | None = None
    password_profile: PasswordProfileUpdate | None = None


# ----------------------------------------------------------------------------- groups
class NewGroup(GraphObject):
    """`POST /groups`: a security group."""

    display_name: NonBlank
    mail_nickname: NonBlank
    description: str | None = None


class MemberReference(GraphBody):
    """`POST /groups/{id}/members/$ref`: `{"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/{id}"}`."""

    action = "members/$ref"

    odata_id: NonBlank = Field(alias="@odata.id")

    @property
    def object_id(self) -> str:
        return self.odata_id.rstrip("/").rsplit("/", 1)[-1]


class ObjectsByIds(GraphBody):
    """`POST /directoryObjects/getByIds`: what az asks to learn a principal's type and name."""

    action = "getByIds"

    ids: list[str] = Field(max_length=MAX_IDS)
    types: list[str] | None = Field(None, max_length=MAX_LIST)

    @property
    def wanted_types(self) -> set[str] | None:
        """The types asked for, lower case; None (every type) when the list is missing or empty."""
        return {t.lower() for t in self.types} if self.types else None


# ----------------------------------------------------------------------------- applications
UriList = Annotated[list[str], Field(max_length=MAX_LIST)]


class RedirectUris(GraphObject):
    redirect_uris: list[str] | None = Field(None, max_length=MAX_REDIRECT_URIS)


class ApiSettings(GraphObject):
    requested_access_token_version: int | None = None  # 1 or 2, checked by the directory service


class NewApplication(GraphObject):
    """`POST /applications` (`az ad app create`, `cielo ad app create`, `create-for-rbac`)."""

    display_name: NonBlank
    is_fallback_public_client: bool | None = None
    identifier_uris: UriList | None = None
    public_client: RedirectUris | None = None
    web: RedirectUris | None = None
    api: ApiSettings | None = None

    @property
    def redirect_uris(self) -> list[str]:
        public = self.public_client.redirect_uris if self.public_client else None
        web = self.web.redirect_uris if self.web else None
        return [*(public or ()), *(web or ())]

    @property
    def access_token_version(self) -> int:
        version = self.api.requested_access_token_version if self.api else None
        return 1 if version is None else version


class KeyCredential(GraphObject):
    key: Certificate = None
    display_name: str | None = None


class RedirectUrisUpdate(GraphBody):
    """`web` or `publicClient` in an application's update: `redirectUris` only (az's `--web-redirect-uris`,
    `--public-client-redirect-uris`); anything else there (`homePageUrl`, `implicitGrantSettings`) is refused."""

    resource = "Application"

    redirect_uris: Annotated[list[str] | None, Field(max_length=MAX_REDIRECT_URIS), BeforeValidator(_not_null)] = None


class ApplicationUpdate(GraphBody):
    """`PATCH /applications/{id}` as az uses it: `keyCredentials` (certificates, base64 DER or PEM in `key`),
    `displayName`, `identifierUris` (null clears them), `isFallbackPublicClient` (null is false),
    `web.redirectUris` and `publicClient.redirectUris` (each replaces its list)."""

    resource = "Application"

    key_credentials: Annotated[list[KeyCredential] | None, Field(max_length=MAX_KEY_CREDENTIALS),
                               BeforeValidator(_not_null)] = None
    display_name: Annotated[NonBlank | None, BeforeValidator(_not_null)] = None
    identifier_uris: UriList | None = None
    is_fallback_public_client: bool | None = None
    web: Annotated[RedirectUrisUpdate | None, BeforeValidator(_not_null)] = None
    public_client: Annotated[RedirectUrisUpdate | None, BeforeValidator(_not_null)] = None

    @property
    def web_redirect_uris(self) -> list[str] | None:
        """The new web redirect URIs, or None where the body does not name them."""
        return self.web.redirect_uris if self.web else None

    @property
    def public_client_redirect_uris(self) -> list[str] | None:
        return self.public_client.redirect_uris if self.public_client else None

    @property
    def new_certificates(self) -> list[tuple[bytes, str | None]]:
        """(certificate, display name) of the credentials that carry a certificate; the others (az sends the
        existing ones back) are skipped."""
        return [(c.key, c.display_name) for c in self.key_credentials or () if c.key]

    def fields(self) -> dict[str, Any]:
        """The application's columns this update sets (only the properties the body names)."""
        out: dict[str, Any] = {}
        if "display_name" in self.model_fields_set and self.display_name is not None:
            out["display_name"] = self.display_name
        if "identifier_uris" in self.model_fields_set:
            out["identifier_uris"] = list(self.identifier_uris or ())
        if "is_fallback_public_client" in self.model_fields_set:
            out["is_public_client"] = bool(self.is_fallback_public_client)
        return out


class NewPasswordCredential(GraphObject):
    display_name: str | None = None
    end_date_time: Timestamp = None


class AddPassword(GraphBody):
    """`POST /applications/{id}/addPassword`; `replace` (Cielo's, for `cielo ad app credential reset` without
    `--append`) removes the application's other secrets."""

    action = "addPassword"

    password_credential: NewPasswordCredential | None = None
    replace: bool | None = None


class RemovePassword(GraphBody):
    action = "removePassword"

    key_id: NonBlank


class NewFederatedCredential(GraphObject):
    """`POST /applications/{id}/federatedIdentityCredentials` (workload identity federation)."""

    name: NonBlank
    issuer: NonBlank
    subject: NonBlank
    audiences: UriList | None = None
    description: str | None = None


# ----------------------------------------------------------------------------- service principals
class NewServicePrincipal(GraphObject):
    """`POST /servicePrincipals`: the application's service principal in the caller's tenant."""

    app_id: NonBlank


# ----------------------------------------------------------------------------- parsing
Body = TypeVar("Body", bound=GraphBody)



def parse(model: type[Body], body: Mapping[str, Any]) -> Body:
    """`body` (a JSON object) as `model`, or Graph's 400 Request_BadRequest naming the first property at fault."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise GraphBadRequest(message_for(model, exc.errors(include_url=False, include_input=False))) from None


def message_for(model: type[GraphBody], errors: list[ErrorDetails]) -> str:
    """The message for a body's validation errors: a property the model does not define first (the first by name),
    else the first error in the model's field order."""
    unknown = sorted((e for e in errors if e["type"] == "extra_forbidden"), key=lambda e: property_path(e["loc"]))
    if unknown:
        name = property_path(unknown[0]["loc"])
        if model.resource:
            return f"Updating property '{name}' of resource '{model.resource}' is not supported by Cielo."
        return f"Property '{name}' is not a parameter of '{model.action}'; Cielo does not support it."
    first = errors[0]
    if first["type"] == _VERBATIM:
        return first["msg"]
    if first["type"] == _REASON:
        reason = first["msg"]
    elif first["type"] == "too_long":
        reason = f"at most {(first.get('ctx') or {}).get('max_length')} items are allowed"
    else:
        reason = TYPE_REASONS.get(first["type"], first["msg"])
    of = f" of resource '{model.resource}'" if model.resource else ""
    return f"Invalid value specified for property '{property_path(first['loc'])}'{of}: {reason}."
