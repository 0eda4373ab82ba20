"""A Microsoft Graph-compatible directory API (`/v1.0/...`), the part `cielo ad` and az use.

Authorization follows Entra's defaults: members of a tenant may read its directory; writes need
the Global Administrator directory role. Service principals get no directory access (Entra would
need an app role such as Directory.ReadWrite.All, which Cielo does not grant yet).

Each route parses its body into its model (api/graph_protocol.py), authorizes the caller (`Reader`, `Writer`),
calls the directory service and renders Graph's JSON. A body is read only after its caller is authorized: the body
dependencies depend on the caller.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse, Response

from cielo.api import insights
from cielo.api.auth import GRAPH_AUDIENCES, bearer_principal
from cielo.api.graph_protocol import (
    AddPassword,
    ApplicationUpdate,
    Body,
    MemberReference,
    NewApplication,
    NewFederatedCredential,
    NewGroup,
    NewServicePrincipal,
    NewUser,
    ObjectsByIds,
    RemovePassword,
    UserUpdate,
    parse,
)
from cielo.errors import BadRequest, GraphAuthorizationDenied, GraphRequestTooLarge
from cielo.http.bodies import MAX_JSON_DEPTH, nested_deeper_than, read_limited
from cielo.identity.directory import DirectoryService, PrincipalCleanup, iso, redirect_kind
from cielo.identity.directory_filter import (
    APPLICATIONS,
    GROUPS,
    SERVICE_PRINCIPALS,
    USERS,
    Filterable,
    parse_filter,
    select,
)
from cielo.store.models import Application, Group, ServicePrincipal, Tenant, User

router = APIRouter(prefix="/v1.0")
GRAPH = "https://graph.microsoft.com/v1.0"


class DirectoryCaller:
    """The signed-in user of a directory API call, with its tenant and whether it is a Global Administrator."""

    def __init__(self, tenant: Tenant, is_admin: bool, object_id: str) -> None:
        self.tenant = tenant
        self.is_admin = is_admin
        self.object_id = object_id


# ----------------------------------------------------------------------------- dependencies
async def _directory(request: Request) -> DirectoryService:
    svc: DirectoryService = request.app.state.directory_service
    return svc


async def _cleanup(request: Request) -> PrincipalCleanup:
    """What a principal's deletion also removes (grants, role assignments): the services that hold them."""
    return PrincipalCleanup(request.app.state.grants, request.app.state.access)


def _caller(request: Request, svc: DirectoryService, *, write: bool) -> DirectoryCaller:
    base = request.app.state.settings.base_url
    principal = bearer_principal(request, (*GRAPH_AUDIENCES, base))
    tenant = svc.find_tenant(principal.tenant_id)
    user = svc.user_by_id(principal.object_id) if principal.kind == "user" else None
    if tenant is None or user is None or not user.account_enabled or user.tenant_id != tenant.id:
        raise GraphAuthorizationDenied("Insufficient privileges to complete the operation.")
    if write and not user.is_admin:
        raise GraphAuthorizationDenied("Insufficient privileges to complete the operation.")
    return DirectoryCaller(tenant, user.is_admin, user.object_id)


Directory = Annotated[DirectoryService, Depends(_directory)]
Cleanup = Annotated[PrincipalCleanup, Depends(_cleanup)]


async def _reader(request: Request) -> DirectoryCaller:
    """A member of the tenant (a signed-in, enabled user): may read the directory."""
    return _caller(request, request.app.state.directory_service, write=False)


async def _writer(request: Request) -> DirectoryCaller:
    """A Global Administrator of the tenant: may change the directory."""
    caller = _caller(request, request.app.state.directory_service, write=True)
    insights.note_directory_write(request, caller.tenant.id, caller.object_id)  # the activity log, after the answer
    return caller


Reader = Annotated[DirectoryCaller, Depends(_reader)]
Writer = Annotated[DirectoryCaller, Depends(_writer)]


async def _json(request: Request) -> dict[str, Any]:
    """A JSON object. Over `settings.max_graph_body_bytes` it is refused while it streams in: Graph's 413 "The
    request size exceeds the maximum limit." (learn.microsoft.com/graph/errors lists the status, not a code)."""
    limit: int = request.app.state.settings.max_graph_body_bytes
    raw = await read_limited(request, limit, lambda: GraphRequestTooLarge(
        "The request size exceeds the maximum limit."))
    if nested_deeper_than(raw):
        raise BadRequest(f"Unable to read JSON request payload: it nests deeper than {MAX_JSON_DEPTH} levels.")
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise BadRequest("Unable to read JSON request payload.") from exc
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def _write(model: type[Body]) -> Any:
    """The dependency that parses a write's body into `model`, read once its caller is known to be an
    administrator (it depends on `Writer`, which FastAPI resolves once per request)."""
    async def parsed(request: Request, caller: Writer) -> Body:
        return parse(model, await _json(request))
    return Depends(parsed)


def _read(model: type[Body]) -> Any:
    """As `_write`, for a read that takes a body (getByIds): read once its caller is known to be a member."""
    async def parsed(request: Request, caller: Reader) -> Body:
        return parse(model, await _json(request))
    return Depends(parsed)


def _filtered(request: Request, items: list[Any], shape: Any, allowed: Filterable) -> list[Any]:
    """The items that satisfy the request's `$filter` (see identity/directory_filter.py for what is served)."""
    return select(items, shape, parse_filter(request.query_params.get("$filter"), allowed))


def _collection(kind: str, items: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"@odata.context": f"{GRAPH}/$metadata#{kind}", "value": items})


# ----------------------------------------------------------------------------- shapes
def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.object_id,
        "businessPhones": [],
        "displayName": user.display_name,
        "givenName": None,
        "jobTitle": None,
        "mail": None,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": None,
        "surname": None,
        "userPrincipalName": user.upn,
        "accountEnabled": user.account_enabled,
    }


def group_json(group: Group) -> dict[str, Any]:
    return {
        "id": group.object_id,
        "displayName": group.display_name,
        "mailNickname": group.mail_nickname,
        "description": group.description,
        "mailEnabled": False,
        "securityEnabled": True,
        "groupTypes": [],
        "createdDateTime": iso(group.created_at),
    }


def app_json(app: Application) -> dict[str, Any]:
    return {
        "id": app.object_id,
        "appId": app.app_id,
        "displayName": app.display_name,
        "createdDateTime": iso(app.created_at),
        "identifierUris": list(app.identifier_uris),
        "isFallbackPublicClient": app.is_public_client,
        "publicClient": {"redirectUris": [u for u in app.redirect_uris if redirect_kind(u) == "publicClient"]},
        "web": {"redirectUris": [u for u in app.redirect_uris if redirect_kind(u) == "web"]},
        "api": {"requestedAccessTokenVersion": app.access_token_version},
        "signInAudience": "AzureADMyOrg",
        "passwordCredentials": [
            {"customKeyIdentifier": None, "displayName": p.display_name, "endDateTime": iso(p.end),
             "hint": p.hint, "keyId": p.key_id, "secretText": None, "startDateTime": iso(p.start)}
            for p in app.passwords
        ],
        "keyCredentials": [
            {"customKeyIdentifier": None, "displayName": k.display_name, "endDateTime": iso(k.end),
             "keyId": k.key_id, "startDateTime": iso(k.start), "type": "AsymmetricX509Cert", "usage": "Verify",
             "key": None}
            for k in app.keys
        ],
    }


def sp_json(sp: ServicePrincipal) -> dict[str, Any]:
    return {
        "id": sp.object_id,
        "appId": sp.app_id,
        "displayName": sp.display_name,
        "accountEnabled": True,
        "appOwnerOrganizationId": sp.tenant_id,
        "servicePrincipalNames": [sp.app_id],
        "servicePrincipalType": sp.sp_type,
    }


# ----------------------------------------------------------------------------- users
@router.get("/me")
async def me(caller: Reader, svc: Directory) -> JSONResponse:
    return JSONResponse(user_json(svc.get_user(caller.tenant, caller.object_id)))


@router.get("/users")
async def list_users(request: Request, caller: Reader, svc: Directory) -> JSONResponse:
    users = _filtered(request, svc.list_users(caller.tenant), user_json, USERS)
    return _collection("users", [user_json(u) for u in users])


@router.post("/users", status_code=201)
async def create_user(caller: Writer, body: Annotated[NewUser, _write(NewUser)], svc: Directory) -> JSONResponse:
    user = svc.create_user(caller.tenant, body.user_principal_name, body.display_name, body.password_profile.password)
    return JSONResponse(user_json(user), status_code=201)


@router.get("/users/{user_id}")
async def get_user(user_id: str, caller: Reader, svc: Directory) -> JSONResponse:
    return JSONResponse(user_json(svc.get_user(caller.tenant, user_id)))


@router.patch("/users/{user_id}", status_code=204)
async def update_user(user_id: str, request: Request, caller: Writer, body: Annotated[UserUpdate, _write(UserUpdate)],
                      svc: Directory) -> Response:
    """Graph's update user (az's `ad user update`): displayName, accountEnabled, passwordProfile.password.
    Cielo does not make users change their password at sign-in, so `forceChangePasswordNextSignIn: true` is
    refused, as is any other property; Graph answers 204 without a body."""
    password = (body.password_profile.password or None) if body.password_profile else None
    svc.update_user(caller.tenant, user_id, acting_user_id=caller.object_id, grants=request.app.state.grants,
                    display_name=body.display_name, password=password, account_enabled=body.account_enabled)
    return Response(status_code=204)


@router.delete("/users/{user_id}", status_code=204)
async def delete_user(user_id: str, caller: Writer, svc: Directory, cleanup: Cleanup) -> Response:
    svc.delete_user(caller.tenant, user_id, acting_user_id=caller.object_id, cleanup=cleanup)
    return Response(status_code=204)


# ----------------------------------------------------------------------------- groups
@router.get("/groups")
async def list_groups(request: Request, caller: Reader, svc: Directory) -> JSONResponse:
    groups = _filtered(request, svc.list_groups(caller.tenant), group_json, GROUPS)
    return _collection("groups", [group_json(g) for g in groups])


@router.post("/groups", status_code=201)
async def create_group(caller: Writer, body: Annotated[NewGroup, _write(NewGroup)], svc: Directory) -> JSONResponse:
    group = svc.create_group(caller.tenant, body.display_name, body.mail_nickname, body.description)
    return JSONResponse(group_json(group), status_code=201)


@router.get("/groups/{group_id}")
async def get_group(group_id: str, caller: Reader, svc: Directory) -> JSONResponse:
    return JSONResponse(group_json(svc.get_group(caller.tenant, group_id)))


@router.delete("/groups/{group_id}", status_code=204)
async def delete_group(group_id: str, caller: Writer, svc: Directory, cleanup: Cleanup) -> Response:
    svc.delete_group(caller.tenant, group_id, cleanup=cleanup)
    return Response(status_code=204)


@router.post("/groups/{group_id}/members/$ref", status_code=204)
async def add_member(group_id: str, caller: Writer, body: Annotated[MemberReference, _write(MemberReference)],
                     svc: Directory) -> Response:
    svc.add_member(caller.tenant, svc.get_group(caller.tenant, group_id), body.object_id)
    return Response(status_code=204)


@router.delete("/groups/{group_id}/members/{member_id}/$ref", status_code=204)
async def remove_member(group_id: str, member_id: str, caller: Writer, svc: Directory) -> Response:
    svc.remove_member(caller.tenant, group_id, member_id)
    return Response(status_code=204)


@router.get("/groups/{group_id}/members")
async def list_members(group_id: str, caller: Reader, svc: Directory) -> JSONResponse:
    group = svc.get_group(caller.tenant, group_id)
    members = (_directory_object(svc, caller, m) for m in svc.member_ids(group))
    return _collection("directoryObjects", [m for m in members if m is not None])


def _directory_object(svc: DirectoryService, caller: DirectoryCaller, object_id: str) -> dict[str, Any] | None:
    """A user, group or service principal of the caller's tenant, with its `@odata.type`, as Graph lists them."""
    found = svc.directory_object(caller.tenant, object_id)
    if isinstance(found, User):
        return {"@odata.type": "#microsoft.graph.user", **user_json(found)}
    if isinstance(found, Group):
        return {"@odata.type": "#microsoft.graph.group", **group_json(found)}
    if isinstance(found, ServicePrincipal):
        return {"@odata.type": "#microsoft.graph.servicePrincipal", **sp_json(found)}
    return None


@router.post("/directoryObjects/getByIds")
async def get_by_ids(caller: Reader, body: Annotated[ObjectsByIds, _read(ObjectsByIds)],
                     svc: Directory) -> JSONResponse:
    """What az asks to learn a principal's type and name (`{"ids": [...], "types": [...]}`)."""
    wanted = body.wanted_types
    found = []
    for object_id in body.ids:
        item = _directory_object(svc, caller, object_id.lower())
        if item is not None and (wanted is None or item["@odata.type"].rsplit(".", 1)[-1].lower() in wanted):
            found.append(item)
    return _collection("directoryObjects", found)


# ----------------------------------------------------------------------------- applications
def _app(svc: DirectoryService, caller: DirectoryCaller, app_ref: str) -> Application:
    match = re.fullmatch(r"\(appId='([^']+)'\)", app_ref) or re.fullmatch(r"\(appId=([^)]+)\)", app_ref)
    return svc.get_application(caller.tenant, match.group(1) if match else app_ref)


@router.get("/applications")
async def list_applications(request: Request, caller: Reader, svc: Directory) -> JSONResponse:
    apps = _filtered(request, svc.list_applications(caller.tenant), app_json, APPLICATIONS)
    return _collection("applications", [app_json(a) for a in apps])


@router.post("/applications", status_code=201)
async def create_application(caller: Writer, body: Annotated[NewApplication, _write(NewApplication)],
                             svc: Directory) -> JSONResponse:
    app = svc.create_application(
        caller.tenant, body.display_name, public_client=bool(body.is_fallback_public_client),
        redirect_uris=body.redirect_uris, identifier_uris=body.identifier_uris or (),
        access_token_version=body.access_token_version,
    )
    return JSONResponse(app_json(app), status_code=201)


@router.get("/applications{app_ref:path}")
async def get_application(app_ref: str, caller: Reader, svc: Directory) -> JSONResponse:
    if app_ref.endswith("/federatedIdentityCredentials"):
        app = _app(svc, caller, app_ref.removesuffix("/federatedIdentityCredentials").lstrip("/"))
        return _collection("federatedIdentityCredentials", [_fic_json(f) for f in app.federated])
    return JSONResponse(app_json(_app(svc, caller, app_ref.lstrip("/"))))


@router.delete("/applications/{app_id}", status_code=204)
async def delete_application(app_id: str, caller: Writer, svc: Directory, cleanup: Cleanup) -> Response:
    svc.delete_application(caller.tenant, _app(svc, caller, app_id), cleanup=cleanup)
    return Response(status_code=204)


@router.post("/applications/{app_id}/addPassword")
async def add_password(app_id: str, caller: Writer, body: Annotated[AddPassword, _write(AddPassword)],
                       svc: Directory) -> JSONResponse:
    cred = body.password_credential
    new = svc.add_password(_app(svc, caller, app_id), cred.display_name if cred else None,
                           cred.end_date_time if cred else None, replace=bool(body.replace))
    c = new.credential
    return JSONResponse({
        "customKeyIdentifier": None, "displayName": c.display_name, "endDateTime": iso(c.end), "hint": c.hint,
        "keyId": c.key_id, "secretText": new.secret_text, "startDateTime": iso(c.start),
    })


@router.post("/applications/{app_id}/removePassword", status_code=204)
async def remove_password(app_id: str, caller: Writer, body: Annotated[RemovePassword, _write(RemovePassword)],
                          svc: Directory) -> Response:
    svc.remove_password(_app(svc, caller, app_id), body.key_id)
    return Response(status_code=204)


@router.patch("/applications/{app_id}", status_code=204)
async def update_application(app_id: str, caller: Writer,
                             body: Annotated[ApplicationUpdate, _write(ApplicationUpdate)], svc: Directory,
                             request: Request) -> Response:
    """PATCH as az uses it: `keyCredentials` (certificates, base64 DER in `key`), names, URIs and redirect URIs.
    The first new certificate replaces the application's certificates, the others are added to it."""
    if body.new_certificates:
        insights.credentials_operation(request)
    svc.update_application(_app(svc, caller, app_id), certificates=body.new_certificates,
                           web_redirect_uris=body.web_redirect_uris,
                           public_client_redirect_uris=body.public_client_redirect_uris, **body.fields())
    return Response(status_code=204)


def _fic_json(fic: Any) -> dict[str, Any]:
    return {"id": fic.id, "name": fic.name, "issuer": fic.issuer, "subject": fic.subject,
            "audiences": list(fic.audiences), "description": fic.description}


@router.post("/applications/{app_id}/federatedIdentityCredentials", status_code=201)
async def add_federated(app_id: str, caller: Writer,
                        body: Annotated[NewFederatedCredential, _write(NewFederatedCredential)],
                        svc: Directory) -> JSONResponse:
    fic = svc.add_federated(_app(svc, caller, app_id), body.name, body.issuer, body.subject, body.audiences or (),
                            body.description)
    return JSONResponse(_fic_json(fic), status_code=201)


@router.delete("/applications/{app_id}/federatedIdentityCredentials/{fic_id}", status_code=204)
async def delete_federated(app_id: str, fic_id: str, caller: Writer, svc: Directory) -> Response:
    svc.remove_federated(_app(svc, caller, app_id), fic_id)
    return Response(status_code=204)


# ----------------------------------------------------------------------------- service principals
@router.get("/servicePrincipals")
async def list_sps(request: Request, caller: Reader, svc: Directory) -> JSONResponse:
    sps = _filtered(request, svc.list_service_principals(caller.tenant), sp_json, SERVICE_PRINCIPALS)
    return _collection("servicePrincipals", [sp_json(s) for s in sps])


@router.post("/servicePrincipals", status_code=201)
async def create_sp(caller: Writer, body: Annotated[NewServicePrincipal, _write(NewServicePrincipal)],
                    svc: Directory) -> JSONResponse:
    app = svc.get_application(caller.tenant, body.app_id)
    return JSONResponse(sp_json(svc.create_service_principal(caller.tenant, app)), status_code=201)


def _sp(svc: DirectoryService, caller: DirectoryCaller, ref: str) -> ServicePrincipal:
    match = re.fullmatch(r"\(appId='([^']+)'\)", ref)
    return svc.get_service_principal(caller.tenant, match.group(1) if match else ref, as_asked=ref)


@router.get("/servicePrincipals{sp_ref:path}")
async def get_sp(sp_ref: str, caller: Reader, svc: Directory) -> JSONResponse:
    return JSONResponse(sp_json(_sp(svc, caller, sp_ref.lstrip("/"))))


@router.delete("/servicePrincipals/{sp_id}", status_code=204)
async def delete_sp(sp_id: str, caller: Writer, svc: Directory, cleanup: Cleanup) -> Response:
    svc.delete_service_principal(_sp(svc, caller, sp_id), cleanup=cleanup)
    return Response(status_code=204)
