"""A Microsoft Graph-compatible directory API (`/v1.0/...`), the part `cielo ad` and az use.

Authorization follows Entra's defaults: members of a tenant may read its directory; writes need
the Global Administrator directory role. Service principals get no directory access (Entra would
need an app role such as Directory.ReadWrite.All, which Cielo does not grant yet).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from cielo.api.auth import GRAPH_AUDIENCES, bearer_principal
from cielo.errors import (
    BadRequest,
    GraphAuthorizationDenied,
    GraphBadRequest,
    GraphRequestTooLarge,
)
from cielo.http.bodies import MAX_JSON_DEPTH, nested_deeper_than, read_limited
from cielo.identity.directory import DirectoryService, PrincipalCleanup, iso
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


def _svc(request: Request) -> DirectoryService:
    svc: DirectoryService = request.app.state.directory_service
    return svc


def _cleanup(request: Request) -> PrincipalCleanup:
    """What a principal's deletion also removes (grants, role assignments): the services that hold them."""
    return PrincipalCleanup(request.app.state.grants, request.app.state.access)


def _caller(request: Request, *, write: bool) -> DirectoryCaller:
    base = request.app.state.settings.base_url
    principal = bearer_principal(request, (*GRAPH_AUDIENCES, base))
    svc = _svc(request)
    tenant = svc.find_tenant(principal.tenant_id)
    user = svc.user_by_id(principal.object_id) if principal.kind == "user" else None
    if tenant is None or user is None or not user.account_enabled or user.tenant_id != tenant.id:
        raise GraphAuthorizationDenied("Insufficient privileges to complete the operation.")
    if write and not user.is_admin:
        raise GraphAuthorizationDenied("Insufficient privileges to complete the operation.")
    return DirectoryCaller(tenant, user.is_admin, user.object_id)


async def _body(request: Request) -> dict[str, Any]:
    """A JSON object, read only after the caller is authenticated (every route calls `_caller` first).

    Over `settings.max_graph_body_bytes` it is refused while it streams in: Graph's 413 "The request size
    exceeds the maximum limit." (learn.microsoft.com/graph/errors lists the status, not a code).
    """
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


def _text(body: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise GraphBadRequest(f"Invalid value specified for property '{name}'.")
    return value


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
        "publicClient": {"redirectUris": [u for u in app.redirect_uris if not u.startswith("https://")]},
        "web": {"redirectUris": [u for u in app.redirect_uris if u.startswith("https://")]},
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
async def me(request: Request) -> JSONResponse:
    caller = _caller(request, write=False)
    return JSONResponse(user_json(_svc(request).get_user(caller.tenant, caller.object_id)))


@router.get("/users")
async def list_users(request: Request) -> JSONResponse:
    caller = _caller(request, write=False)
    users = _filtered(request, _svc(request).list_users(caller.tenant), user_json, USERS)
    return _collection("users", [user_json(u) for u in users])


@router.post("/users", status_code=201)
async def create_user(request: Request) -> JSONResponse:
    caller = _caller(request, write=True)
    body = await _body(request)
    profile = body.get("passwordProfile")
    if not isinstance(profile, dict):
        raise GraphBadRequest("Property passwordProfile is required.")
    _refuse_forced_change(profile)
    user = _svc(request).create_user(
        caller.tenant, _text(body, "userPrincipalName"), _text(body, "displayName"), _text(profile, "password")
    )
    return JSONResponse(user_json(user), status_code=201)


@router.get("/users/{user_id}")
async def get_user(user_id: str, request: Request) -> JSONResponse:
    caller = _caller(request, write=False)
    return JSONResponse(user_json(_svc(request).get_user(caller.tenant, user_id)))


def _refuse_forced_change(profile: dict[str, Any]) -> None:
    if profile.get("forceChangePasswordNextSignIn"):
        raise GraphBadRequest("Cielo does not make users change their password at sign-in: "
                              "'forceChangePasswordNextSignIn' must be false.")


_USER_PATCH = {"displayName", "accountEnabled", "passwordProfile"}


@router.patch("/users/{user_id}", status_code=204)
async def update_user(user_id: str, request: Request) -> Response:
    """Graph's update user (az's `ad user update`): displayName, accountEnabled, passwordProfile.password.
    Cielo does not make users change their password at sign-in, so `forceChangePasswordNextSignIn: true` is
    refused, as is any other property; Graph answers 204 without a body."""
    caller = _caller(request, write=True)
    body = await _body(request)
    unknown = sorted(set(body) - _USER_PATCH)
    if unknown:
        raise GraphBadRequest(f"Updating property '{unknown[0]}' of resource 'User' is not supported by Cielo.")
    enabled = body.get("accountEnabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise GraphBadRequest("Invalid value specified for property 'accountEnabled' of resource 'User'.")
    password: str | None = None
    profile = body.get("passwordProfile")
    if profile is not None:
        if not isinstance(profile, dict) or set(profile) - {"password", "forceChangePasswordNextSignIn"}:
            raise GraphBadRequest("Invalid value specified for property 'passwordProfile' of resource 'User'.")
        _refuse_forced_change(profile)
        password = _text(profile, "password", required=False) or None
    display_name = _text(body, "displayName") if "displayName" in body else None
    _svc(request).update_user(caller.tenant, user_id, acting_user_id=caller.object_id,
                              grants=request.app.state.grants, display_name=display_name, password=password,
                              account_enabled=enabled)
    return Response(status_code=204)


@router.delete("/users/{user_id}", status_code=204)
async def delete_user(user_id: str, request: Request) -> Response:
    caller = _caller(request, write=True)
    _svc(request).delete_user(caller.tenant, user_id, acting_user_id=caller.object_id, cleanup=_cleanup(request))
    return Response(status_code=204)


# ----------------------------------------------------------------------------- groups
@router.get("/groups")
async def list_groups(request: Request) -> JSONResponse:
    caller = _caller(request, write=False)
    groups = _filtered(request, _svc(request).list_groups(caller.tenant), group_json, GROUPS)
    return _collection("groups", [group_json(g) for g in groups])


@router.post("/groups", status_code=201)
async def create_group(request: Request) -> JSONResponse:
    caller = _caller(request, write=True)
    body = await _body(request)
    description = body.get("description")
    group = _svc(request).create_group(
        caller.tenant, _text(body, "displayName"), _text(body, "mailNickname"),
        description if isinstance(description, str) else None,
    )
    return JSONResponse(group_json(group), status_code=201)


@router.get("/groups/{group_id}")
async def get_group(group_id: str, request: Request) -> JSONResponse:
    caller = _caller(request, write=False)
    return JSONResponse(group_json(_svc(request).get_group(caller.tenant, group_id)))


@router.delete("/groups/{group_id}", status_code=204)
async def delete_group(group_id: str, request: Request) -> Response:
    caller = _caller(request, write=True)
    _svc(request).delete_group(caller.tenant, group_id, cleanup=_cleanup(request))
    return Response(status_code=204)


@router.post("/groups/{group_id}/members/$ref", status_code=204)
async def add_member(group_id: str, request: Request) -> Response:
    caller = _caller(request, write=True)
    body = await _body(request)
    ref = _text(body, "@odata.id")
    member_id = ref.rstrip("/").rsplit("/", 1)[-1]
    svc = _svc(request)
    svc.add_member(caller.tenant, svc.get_group(caller.tenant, group_id), member_id)
    return Response(status_code=204)


@router.delete("/groups/{group_id}/members/{member_id}/$ref", status_code=204)
async def remove_member(group_id: str, member_id: str, request: Request) -> Response:
    caller = _caller(request, write=True)
    _svc(request).remove_member(caller.tenant, group_id, member_id)
    return Response(status_code=204)


@router.get("/groups/{group_id}/members")
async def list_members(group_id: str, request: Request) -> JSONResponse:
    caller = _caller(request, write=False)
    svc = _svc(request)
    group = svc.get_group(caller.tenant, group_id)
    members = (_directory_object(request, caller, m) for m in svc.member_ids(group))
    return _collection("directoryObjects", [m for m in members if m is not None])


def _directory_object(request: Request, caller: DirectoryCaller, object_id: str) -> dict[str, Any] | None:
    """A user, group or service principal of the caller's tenant, with its `@odata.type`, as Graph lists them."""
    found = _svc(request).directory_object(caller.tenant, object_id)
    if isinstance(found, User):
        return {"@odata.type": "#microsoft.graph.user", **user_json(found)}
    if isinstance(found, Group):
        return {"@odata.type": "#microsoft.graph.group", **group_json(found)}
    if isinstance(found, ServicePrincipal):
        return {"@odata.type": "#microsoft.graph.servicePrincipal", **sp_json(found)}
    return None


@router.post("/directoryObjects/getByIds")
async def get_by_ids(request: Request) -> JSONResponse:
    """What az asks to learn a principal's type and name (`{"ids": [...], "types": [...]}`)."""
    caller = _caller(request, write=False)
    body = await _body(request)
    ids, types = body.get("ids"), body.get("types")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(ids) > 1000:
        raise GraphBadRequest("'ids' must be a list of at most 1000 object ids.")
    wanted = {str(t).lower() for t in types} if isinstance(types, list) and types else None
    found = []
    for object_id in ids:
        item = _directory_object(request, caller, object_id.lower())
        if item is not None and (wanted is None or item["@odata.type"].rsplit(".", 1)[-1].lower() in wanted):
            found.append(item)
    return _collection("directoryObjects", found)


# ----------------------------------------------------------------------------- applications
def _app(request: Request, caller: DirectoryCaller, app_ref: str) -> Application:
    match = re.fullmatch(r"\(appId='([^']+)'\)", app_ref) or re.fullmatch(r"\(appId=([^)]+)\)", app_ref)
    return _svc(request).get_application(caller.tenant, match.group(1) if match else app_ref)


@router.get("/applications")
async def list_applications(request: Request) -> JSONResponse:
    caller = _caller(request, write=False)
    apps = _filtered(request, _svc(request).list_applications(caller.tenant), app_json, APPLICATIONS)
    return _collection("applications", [app_json(a) for a in apps])


def _uris(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GraphBadRequest(f"Invalid value specified for property '{name}'.")
    return list(value)


@router.post("/applications", status_code=201)
async def create_application(request: Request) -> JSONResponse:
    caller = _caller(request, write=True)
    body = await _body(request)
    public = body.get("publicClient") or {}
    web = body.get("web") or {}
    api = body.get("api") or {}
    if not isinstance(public, dict) or not isinstance(web, dict) or not isinstance(api, dict):
        raise GraphBadRequest("publicClient, web and api must be objects.")
    version = api.get("requestedAccessTokenVersion") or 1
    app = _svc(request).create_application(
        caller.tenant,
        _text(body, "displayName"),
        public_client=bool(body.get("isFallbackPublicClient", False)),
        redirect_uris=_uris(public.get("redirectUris"), "publicClient.redirectUris")
        + _uris(web.get("redirectUris"), "web.redirectUris"),
        identifier_uris=_uris(body.get("identifierUris"), "identifierUris"),
        access_token_version=version if isinstance(version, int) else 0,
    )
    return JSONResponse(app_json(app), status_code=201)


@router.get("/applications{app_ref:path}")
async def get_application(app_ref: str, request: Request) -> JSONResponse:
    caller = _caller(request, write=False)
    if app_ref.endswith("/federatedIdentityCredentials"):
        app = _app(request, caller, app_ref.removesuffix("/federatedIdentityCredentials").lstrip("/"))
        return _collection("federatedIdentityCredentials", [_fic_json(f) for f in app.federated])
    return JSONResponse(app_json(_app(request, caller, app_ref.lstrip("/"))))


@router.delete("/applications/{app_id}", status_code=204)
async def delete_application(app_id: str, request: Request) -> Response:
    caller = _caller(request, write=True)
    app = _app(request, caller, app_id)
    _svc(request).delete_application(caller.tenant, app, cleanup=_cleanup(request))
    return Response(status_code=204)


def _end(value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise GraphBadRequest("endDateTime must be an ISO 8601 string.")
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise GraphBadRequest("endDateTime must be an ISO 8601 string.") from exc


@router.post("/applications/{app_id}/addPassword")
async def add_password(app_id: str, request: Request) -> JSONResponse:
    caller = _caller(request, write=True)
    body = await _body(request)
    cred = body.get("passwordCredential") or {}
    if not isinstance(cred, dict):
        raise GraphBadRequest("passwordCredential must be an object.")
    name = cred.get("displayName")
    new = _svc(request).add_password(
        _app(request, caller, app_id), name if isinstance(name, str) else None, _end(cred.get("endDateTime")),
        replace=bool(body.get("replace", False)),
    )
    c = new.credential
    return JSONResponse({
        "customKeyIdentifier": None, "displayName": c.display_name, "endDateTime": iso(c.end), "hint": c.hint,
        "keyId": c.key_id, "secretText": new.secret_text, "startDateTime": iso(c.start),
    })


@router.post("/applications/{app_id}/removePassword", status_code=204)
async def remove_password(app_id: str, request: Request) -> Response:
    caller = _caller(request, write=True)
    body = await _body(request)
    app = _app(request, caller, app_id)
    _svc(request).remove_password(app, _text(body, "keyId"))
    return Response(status_code=204)


@router.patch("/applications/{app_id}", status_code=204)
async def update_application(app_id: str, request: Request) -> Response:
    """PATCH as az uses it: `keyCredentials` (certificates, base64 DER in `key`), names and URIs."""
    caller = _caller(request, write=True)
    body = await _body(request)
    svc = _svc(request)
    app = _app(request, caller, app_id)
    if "keyCredentials" in body:
        creds = body["keyCredentials"]
        if not isinstance(creds, list):
            raise GraphBadRequest("keyCredentials must be a list.")
        new_keys = [c for c in creds if isinstance(c, dict) and c.get("key")]
        for index, cred in enumerate(new_keys):
            try:
                der = base64.b64decode(str(cred["key"]), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise GraphBadRequest("keyCredentials.key must be base64.") from exc
            name = cred.get("displayName")
            svc.add_certificate(app, der, name if isinstance(name, str) else None, replace=index == 0)
    fields: dict[str, Any] = {}
    if "displayName" in body:
        fields["display_name"] = _text(body, "displayName")
    if "identifierUris" in body:
        fields["identifier_uris"] = _uris(body["identifierUris"], "identifierUris")
    if "isFallbackPublicClient" in body:
        fields["is_public_client"] = bool(body["isFallbackPublicClient"])
    svc.update_application(app, **fields)
    return Response(status_code=204)


def _fic_json(fic: Any) -> dict[str, Any]:
    return {"id": fic.id, "name": fic.name, "issuer": fic.issuer, "subject": fic.subject,
            "audiences": list(fic.audiences), "description": fic.description}


@router.post("/applications/{app_id}/federatedIdentityCredentials", status_code=201)
async def add_federated(app_id: str, request: Request) -> JSONResponse:
    caller = _caller(request, write=True)
    body = await _body(request)
    audiences = _uris(body.get("audiences"), "audiences")
    description = body.get("description")
    fic = _svc(request).add_federated(
        _app(request, caller, app_id), _text(body, "name"), _text(body, "issuer"), _text(body, "subject"),
        audiences, description if isinstance(description, str) else None,
    )
    return JSONResponse(_fic_json(fic), status_code=201)


@router.delete("/applications/{app_id}/federatedIdentityCredentials/{fic_id}", status_code=204)
async def delete_federated(app_id: str, fic_id: str, request: Request) -> Response:
    caller = _caller(request, write=True)
    app = _app(request, caller, app_id)
    _svc(request).remove_federated(app, fic_id)
    return Response(status_code=204)


# ----------------------------------------------------------------------------- service principals
@router.get("/servicePrincipals")
async def list_sps(request: Request) -> JSONResponse:
    caller = _caller(request, write=False)
    sps = _filtered(request, _svc(request).list_service_principals(caller.tenant), sp_json, SERVICE_PRINCIPALS)
    return _collection("servicePrincipals", [sp_json(s) for s in sps])


@router.post("/servicePrincipals", status_code=201)
async def create_sp(request: Request) -> JSONResponse:
    caller = _caller(request, write=True)
    body = await _body(request)
    svc = _svc(request)
    app = svc.get_application(caller.tenant, _text(body, "appId"))
    return JSONResponse(sp_json(svc.create_service_principal(caller.tenant, app)), status_code=201)


def _sp(request: Request, caller: DirectoryCaller, ref: str) -> ServicePrincipal:
    match = re.fullmatch(r"\(appId='([^']+)'\)", ref)
    return _svc(request).get_service_principal(caller.tenant, match.group(1) if match else ref, as_asked=ref)


@router.get("/servicePrincipals{sp_ref:path}")
async def get_sp(sp_ref: str, request: Request) -> JSONResponse:
    caller = _caller(request, write=False)
    return JSONResponse(sp_json(_sp(request, caller, sp_ref.lstrip("/"))))


@router.delete("/servicePrincipals/{sp_id}", status_code=204)
async def delete_sp(sp_id: str, request: Request) -> Response:
    caller = _caller(request, write=True)
    _svc(request).delete_service_principal(_sp(request, caller, sp_id), cleanup=_cleanup(request))
    return Response(status_code=204)
