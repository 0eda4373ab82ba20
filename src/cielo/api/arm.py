"""The resource manager: an ARM-compatible REST API with Azure RBAC on every operation.

ARM paths are hierarchical and case-insensitive (`resourceGroups` / `resourcegroups`), and role
assignments and definitions hang off any scope, so one dispatcher parses the path and routes it.
Every operation names its ARM action and is authorized at its scope before it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from cielo.api import arm_compute
from cielo.api.arm_context import (
    ArmContext,
    arm_context,
    authorization_failed,
    read_json_body,
    require_api_version,
)
from cielo.control import authorization as authz
from cielo.control.naming import check_case_unambiguous
from cielo.control.resources import ACCOUNT_TYPE, DEPLOYMENT_TYPE, ResourceService, resource_json
from cielo.core.arm_ids import RG_TYPE, ResourceId
from cielo.errors import ArmError, BadRequest, InvalidAuthenticationToken, NotFound
from cielo.store.directory import DirectoryRepo
from cielo.store.models import Subscription

router = APIRouter()

RG_READ = "Microsoft.Resources/subscriptions/resourceGroups/read"
RG_WRITE = "Microsoft.Resources/subscriptions/resourceGroups/write"
RG_DELETE = "Microsoft.Resources/subscriptions/resourceGroups/delete"
SUB_READ = "Microsoft.Resources/subscriptions/read"
ACCOUNT = "Microsoft.CognitiveServices/accounts"
DEPLOYMENTS = "Microsoft.CognitiveServices/accounts/deployments"
RA = "Microsoft.Authorization/roleAssignments"


def subscription_json(sub: Subscription) -> dict[str, Any]:
    return {
        "id": f"/subscriptions/{sub.id}",
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": sub.id,
        "tenantId": sub.tenant_id,
        "displayName": sub.display_name,
        "state": sub.state,
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01",
                                 "spendingLimit": "Off"},
    }


def _directory(request: Request) -> DirectoryRepo:
    repo: DirectoryRepo = request.app.state.directory_service.repo
    return repo


def _resources(request: Request) -> ResourceService:
    svc: ResourceService = request.app.state.resource_service
    return svc


def _authz(request: Request) -> authz.AuthorizationService:
    svc: authz.AuthorizationService = request.app.state.authorization_service
    return svc


@dataclass(frozen=True)
class _Guard:
    """The caller's RBAC as the Microsoft.Authorization service asks it (`authz.Guard`)."""

    ctx: ArmContext

    def allowed(self, action: str, scope: str) -> bool:
        return self.ctx.allowed(action, scope)

    def denied(self, action: str, scope: str) -> Exception:
        return authorization_failed(self.ctx.caller, action, scope)


def _ok(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def _subscription(request: Request, ctx: ArmContext, subscription_id: str) -> Subscription:
    """The subscription, which must exist and belong to the caller's tenant (ARM answers 401 otherwise)."""
    for sub in _directory(request).list_subscriptions():
        if sub.id == subscription_id.lower():
            if sub.tenant_id != ctx.principal.tenant_id:
                raise InvalidAuthenticationToken(
                    f"The access token is from the wrong issuer. It must match the tenant '{sub.tenant_id}' "
                    f"associated with this subscription. Please use the authority (URL) "
                    f"'{request.app.state.settings.base_url}/{sub.tenant_id}' to get the token.",
                    code="InvalidAuthenticationTokenTenant")
            return sub
    raise NotFound(f"The subscription '{subscription_id}' could not be found.", code="SubscriptionNotFound")


def _visible_subscriptions(request: Request, ctx: ArmContext) -> list[Subscription]:
    """Subscriptions in which the caller holds any role assignment (at, above or below the subscription)."""
    subs = _directory(request).list_subscriptions(ctx.principal.tenant_id)
    if not ctx.caller.exists:
        return []
    ids = ctx.caller.rbac.lookup_set
    mine = [a for a in ctx.access.index.list_assignments() if a.principal_id in ids]
    if any(a.scope == "/" for a in mine):
        return subs
    held = {authz.subscription_of(a.scope) for a in mine}
    return [s for s in subs if s.id in {h.lower() for h in held if h}]



# ----------------------------------------------------------------------------- fixed routes
@router.get("/subscriptions")
async def list_subscriptions(request: Request) -> JSONResponse:
    require_api_version(request)
    ctx = arm_context(request)
    subs = _visible_subscriptions(request, ctx)
    return _ok({"value": [subscription_json(s) for s in subs], "count": {"type": "Total", "value": len(subs)}})


@router.get("/tenants")
async def list_tenants(request: Request) -> JSONResponse:
    require_api_version(request)
    ctx = arm_context(request)
    tenant = _directory(request).find_tenant(ctx.principal.tenant_id)
    items = []
    if tenant is not None:
        items.append({"id": f"/tenants/{tenant.id}", "tenantId": tenant.id, "countryCode": "US",
                      "displayName": tenant.display_name, "domains": [tenant.default_domain],
                      "tenantCategory": "Home", "defaultDomain": tenant.default_domain, "tenantType": "AAD"})
    return _ok({"value": items})


@router.get("/metadata/endpoints")
async def metadata_endpoints(request: Request) -> JSONResponse:
    """What `az cloud register --endpoint-resource-manager` reads (client-compat.md §5). No auth, like Azure."""
    base = request.app.state.settings.base_url
    return _ok({
        "galleryEndpoint": "", "graphEndpoint": "https://graph.microsoft.com/",
        "portalEndpoint": base + "/", "graph": "https://graph.microsoft.com/", "name": "Cielo",
        # az sends its Graph calls (principal look-ups) to this URL, with a token for it as the resource.
        "microsoftGraphResourceId": base + "/",
        "resourceManager": base + "/",
        "authentication": {"loginEndpoint": base, "audiences": ["https://management.core.windows.net/",
                                                                "https://management.azure.com/"],
                           "tenant": "common", "identityProvider": "AAD"},
        "suffixes": {"acrLoginServer": "", "keyVaultDns": "", "storage": "", "storageSyncEndpointSuffix": ""},
    })


# ----------------------------------------------------------------------------- the dispatcher
_METHODS = ["GET", "PUT", "PATCH", "DELETE", "POST", "HEAD"]


@router.api_route("/subscriptions/{rest:path}", methods=_METHODS)
@router.api_route("/providers/{rest:path}", methods=_METHODS)
async def dispatch(request: Request, rest: str) -> Response:
    require_api_version(request)
    ctx = arm_context(request)
    path = request.url.path.rstrip("/")
    parts = [p for p in path.split("/") if p]
    check_case_unambiguous(path)
    lower = [p.lower() for p in parts]
    method = request.method
    # Extension resources of Microsoft.Authorization hang off any scope.
    for i in range(len(lower) - 1, -1, -1):
        if lower[i] == "providers" and i + 2 < len(lower) + 1 and lower[i + 1:i + 2] == ["microsoft.authorization"]:
            scope = "/" + "/".join(parts[:i]) if i else "/"
            return await _authorization(request, ctx, method, scope, parts[i + 2:])
    if lower[0] == "providers":
        raise NotFound(f"No route for '{path}'.", code="InvalidResourceNamespace")
    subscription_id = parts[1]
    sub = _subscription(request, ctx, subscription_id)
    tail, tail_lower = parts[2:], lower[2:]
    if not tail:
        if method != "GET":
            raise _method_not_allowed(method)
        # As in Azure, a caller with a role anywhere in the subscription may read it (GET /subscriptions lists it).
        scope = f"/subscriptions/{sub.id}"
        if not ctx.allowed(SUB_READ, scope) and sub.id not in {s.id for s in _visible_subscriptions(request, ctx)}:
            ctx.require(SUB_READ, scope)
        return _ok(subscription_json(sub))
    if tail_lower[0] == "resourcegroups":
        if len(tail) == 1:
            return _list_groups(request, ctx, sub)
        rg = tail[1]
        if len(tail) == 2:
            return await _group(request, ctx, sub, rg, method)
        if tail_lower[2] == "resources" and len(tail) == 3:
            return _list_in_group(request, ctx, sub, rg)
        if tail_lower[2] == "providers" and len(tail) >= 5 and tail_lower[3] == "microsoft.cognitiveservices":
            return await _cognitive(request, ctx, sub, rg, tail[4:], method)
        if tail_lower[2] == "providers" and len(tail) >= 5 and tail_lower[3] in arm_compute.NAMESPACES:
            return await arm_compute.handle(request, ctx, sub.id, rg, tail[3:], method)
    if tail_lower[0] == "providers" and len(tail) == 3 and tail_lower[1] == "microsoft.cognitiveservices" \
            and tail_lower[2] == "accounts":
        return _list_accounts(request, ctx, sub, None)
    raise NotFound(f"The resource path '{path}' is not served by this Cielo.", code="InvalidResourceType")


def _method_not_allowed(method: str) -> ArmError:
    return ArmError(f"The HTTP method '{method}' is not supported at this path.", code="MethodNotAllowed")


# ----------------------------------------------------------------------------- resource groups
def _list_groups(request: Request, ctx: ArmContext, sub: Subscription) -> JSONResponse:
    if request.method != "GET":
        raise _method_not_allowed(request.method)
    groups = _resources(request).repo.list_resources(subscription_id=sub.id, type_=RG_TYPE)
    visible = [g for g in groups if ctx.allowed(RG_READ, g.id)]
    if not visible and not ctx.allowed(RG_READ, f"/subscriptions/{sub.id}"):
        ctx.require(RG_READ, f"/subscriptions/{sub.id}")
    return _ok({"value": [resource_json(g) for g in visible]})


async def _group(request: Request, ctx: ArmContext, sub: Subscription, rg: str, method: str) -> Response:
    svc = _resources(request)
    scope = ResourceId(sub.id, rg).id
    if method in ("GET", "HEAD"):
        ctx.require(RG_READ, scope)
        if method == "HEAD":
            exists = svc.repo.get(ResourceId(sub.id, rg).key) is not None
            return Response(status_code=204 if exists else 404)
        return _ok(resource_json(svc.get_group(sub.id, rg)))
    if method in ("PUT", "PATCH"):
        ctx.require(RG_WRITE, scope)
        body = await read_json_body(request)
        if method == "PATCH":
            current = svc.get_group(sub.id, rg)
            body = {"location": current.location, "tags": body.get("tags", current.tags)}
        group, created = svc.put_group(sub.id, rg, body, ctx.writer())
        return _ok(resource_json(group), 201 if created else 200)
    if method == "DELETE":
        ctx.require(RG_DELETE, scope)
        # Managed identities die with their resources: their principals and role assignments elsewhere too.
        request.app.state.identity_service.delete_in_group(sub.id, rg)
        if not svc.delete_group(sub.id, rg):
            raise NotFound(f"Resource group '{rg}' could not be found.", code="ResourceGroupNotFound")
        ctx.access.scopes_deleted()
        return Response(status_code=200)
    raise _method_not_allowed(method)


def _list_in_group(request: Request, ctx: ArmContext, sub: Subscription, rg: str) -> JSONResponse:
    if request.method != "GET":
        raise _method_not_allowed(request.method)
    svc = _resources(request)
    group = svc.get_group(sub.id, rg)
    items = [r for r in svc.repo.list_resources(subscription_id=sub.id, resource_group=rg) if r.type != RG_TYPE]
    visible = [r for r in items if ctx.allowed(f"{r.type}/read", r.id)]
    if not visible and not ctx.allowed(RG_READ, group.id):
        ctx.require(RG_READ, group.id)
    return _ok({"value": [{"id": r.id, "name": r.name, "type": r.type, "location": r.location, "kind": r.kind,
                           "sku": r.sku, "tags": r.tags} for r in visible]})


# ----------------------------------------------------------------------------- Cognitive Services
def _list_accounts(request: Request, ctx: ArmContext, sub: Subscription, rg: str | None) -> JSONResponse:
    if request.method != "GET":
        raise _method_not_allowed(request.method)
    svc = _resources(request)
    scope = ResourceId(sub.id, rg).id if rg else f"/subscriptions/{sub.id}"
    if rg:
        svc.get_group(sub.id, rg)
    accounts = svc.repo.list_resources(subscription_id=sub.id, resource_group=rg, type_=ACCOUNT_TYPE)
    visible = [a for a in accounts if ctx.allowed(f"{ACCOUNT}/read", a.id)]
    if not visible and not ctx.allowed(f"{ACCOUNT}/read", scope):
        ctx.require(f"{ACCOUNT}/read", scope)
    return _ok({"value": [resource_json(a) for a in visible]})


async def _cognitive(request: Request, ctx: ArmContext, sub: Subscription, rg: str, tail: list[str],
                     method: str) -> Response:
    lower = [t.lower() for t in tail]
    if lower[0] != "accounts":
        raise NotFound(f"The resource type '{tail[0]}' is not served by this Cielo.", code="InvalidResourceType")
    if len(tail) == 1:
        return _list_accounts(request, ctx, sub, rg)
    svc = _resources(request)
    rid = ResourceId(sub.id, rg, "Microsoft.CognitiveServices", ("accounts",), (tail[1],))
    if len(tail) == 2:
        return await _account(request, ctx, svc, rid, method)
    if len(tail) == 3 and lower[2] in ("listkeys", "regeneratekey"):
        if method != "POST":
            raise _method_not_allowed(method)
        action = "listKeys" if lower[2] == "listkeys" else "regenerateKey"
        ctx.require(f"{ACCOUNT}/{action}/action", rid.id)
        account = svc.get_account(rid)
        if action == "listKeys":
            return _ok(svc.list_keys(account))
        body = await read_json_body(request)
        return _ok(svc.regenerate_key(account, body.get("keyName")))
    if lower[2] == "deployments":
        if len(tail) == 3:
            if method != "GET":
                raise _method_not_allowed(method)
            ctx.require(f"{DEPLOYMENTS}/read", rid.id)
            account = svc.get_account(rid)
            items = svc.repo.list_resources(parent_key=account.key, type_=DEPLOYMENT_TYPE)
            return _ok({"value": [resource_json(d) for d in items]})
        if len(tail) == 4:
            return await _deployment(request, ctx, svc, rid.child("deployments", tail[3]), method)
    raise NotFound(f"The resource path under account '{tail[1]}' is not served by this Cielo.",
                   code="InvalidResourceType")


async def _account(request: Request, ctx: ArmContext, svc: ResourceService, rid: ResourceId, method: str) -> Response:
    if method == "GET":
        ctx.require(f"{ACCOUNT}/read", rid.id)
        return _ok(resource_json(svc.get_account(rid)))
    if method in ("PUT", "PATCH"):
        ctx.require(f"{ACCOUNT}/write", rid.id)
        body = await read_json_body(request)
        if method == "PATCH":
            current = resource_json(svc.get_account(rid))
            merged_props = {**current["properties"], **(body.get("properties") or {})}
            body = {**current, **body, "properties": merged_props}
        account, created = svc.put_account(rid, body, ctx.writer())
        return _ok(resource_json(account), 201 if created else 200)
    if method == "DELETE":
        ctx.require(f"{ACCOUNT}/delete", rid.id)
        if not svc.delete_account(rid):
            return Response(status_code=204)
        ctx.access.scopes_deleted()
        return Response(status_code=200)
    raise _method_not_allowed(method)


async def _deployment(request: Request, ctx: ArmContext, svc: ResourceService, rid: ResourceId,
                      method: str) -> Response:
    if method == "GET":
        ctx.require(f"{DEPLOYMENTS}/read", rid.id)
        return _ok(resource_json(svc.get_deployment(rid)))
    if method in ("PUT", "PATCH"):
        ctx.require(f"{DEPLOYMENTS}/write", rid.id)
        body = await read_json_body(request)
        if method == "PATCH":
            current = resource_json(svc.get_deployment(rid))
            body = {**current, **body}
        deployment, created = svc.put_deployment(rid, body, ctx.writer())
        return _ok(resource_json(deployment), 201 if created else 200)
    if method == "DELETE":
        ctx.require(f"{DEPLOYMENTS}/delete", rid.id)
        if not svc.delete_deployment(rid):
            return Response(status_code=204)
        ctx.access.scopes_deleted()  # the store dropped the role assignments at the deployment: so must RBAC
        return Response(status_code=200)
    raise _method_not_allowed(method)


# ----------------------------------------------------------------------------- Microsoft.Authorization
async def _authorization(request: Request, ctx: ArmContext, method: str, scope: str, tail: list[str]) -> Response:
    svc = _authz(request)
    sub_id = authz.subscription_of(scope)
    if sub_id is not None:
        _subscription(request, ctx, sub_id)
    kind = tail[0].lower() if tail else ""
    if len(tail) > 2:
        # `roleAssignments/{name}/anything` names nothing: never act on `{name}` at the scope.
        kind = ""
    flt = authz.parse_filter(request.query_params.get("$filter"))
    if kind == "roleassignments":
        if len(tail) == 1:
            if method != "GET":
                raise _method_not_allowed(method)
            ctx.require(f"{RA}/read", scope)
            found = svc.list_assignments(scope, flt, ctx.principal.tenant_id)
            return _ok({"value": [authz.assignment_json(a) for a in found]})
        name = tail[1]
        if method == "GET":
            ctx.require(f"{RA}/read", scope)
            return _ok(authz.assignment_json(svc.get_assignment(scope, name)))
        if method == "PUT":
            ctx.require(f"{RA}/write", scope)
            assignment, created = svc.create_assignment(ctx.caller, scope, name, await read_json_body(request))
            return _ok(authz.assignment_json(assignment), 201 if created else 200)
        if method == "DELETE":
            ctx.require(f"{RA}/delete", scope)
            removed = svc.delete_assignment(scope, name)
            return _ok(authz.assignment_json(removed)) if removed else Response(status_code=204)
        raise _method_not_allowed(method)
    if kind == "roledefinitions":
        guard = _Guard(ctx)
        if len(tail) == 1:
            if method != "GET":
                raise _method_not_allowed(method)
            roles = svc.role_definitions(guard, scope, flt, ctx.principal.tenant_id)
            return _ok({"value": [r.to_arm(sub_id) for r in roles]})
        guid = tail[1]
        if method == "GET":
            return _ok(svc.get_role_definition(guard, scope, guid, ctx.principal.tenant_id).to_arm(sub_id))
        if method == "PUT":
            body = await read_json_body(request)
            role, created = svc.put_role_definition(guard, ctx.caller, scope, guid, body)
            return _ok(role.to_arm(sub_id), 201 if created else 200)
        if method == "DELETE":
            deleted_role = svc.delete_role_definition(guard, scope, guid, ctx.principal.tenant_id)
            return _ok(deleted_role.to_arm(sub_id)) if deleted_role else Response(status_code=204)
        raise _method_not_allowed(method)
    if kind == "permissions" and len(tail) == 1 and method == "GET":
        return _ok({"value": _permissions(ctx, scope)})
    if kind == "checkaccess" and len(tail) == 1 and method == "POST":
        return _ok(await _check_access(request, ctx, scope))
    raise NotFound(f"The Microsoft.Authorization path '{'/'.join(tail)}' is not served by this Cielo.",
                   code="InvalidResourceType")


def _permissions(ctx: ArmContext, scope: str) -> list[dict[str, list[str]]]:
    """Azure's `GET {scope}/providers/Microsoft.Authorization/permissions`: the caller's own permissions."""
    index = ctx.access.index
    found = index.list_assignments(scope, include_inherited=True)
    mine = [a for a in found if a.principal_id in ctx.caller.rbac.lookup_set] if ctx.caller.exists else []
    out: list[dict[str, list[str]]] = []
    for assignment in mine:
        role = index.get_role_definition(assignment.role_definition_id)
        if role is not None:
            out.extend(p.to_arm() for p in role.permissions)
    return out


# A checkAccess body is a principal id, an action and a flag: a few hundred bytes.
CHECK_ACCESS_MAX_BODY = 16 * 1024


async def _check_access(request: Request, ctx: ArmContext, scope: str) -> dict[str, Any]:
    """Cielo's "why was I denied?": `POST {scope}/providers/Microsoft.Authorization/checkAccess` with
    `{"principalId"?, "action", "isDataAction"?}`. Anyone may ask about themselves; asking about someone else
    needs roleAssignments/read at the scope. That right is decided before the body is read (the body only says
    whom the question is about), and the body is read bounded."""
    may_ask_about_others = ctx.allowed(f"{RA}/read", scope)
    body = await read_json_body(request, CHECK_ACCESS_MAX_BODY)
    principal_id = body.get("principalId") or ctx.caller.object_id
    if not isinstance(principal_id, str):
        raise BadRequest("'principalId' must be a string.", code="InvalidRequestContent")
    if principal_id.lower() != ctx.caller.object_id.lower() and not may_ask_about_others:
        raise authorization_failed(ctx.caller, f"{RA}/read", scope)
    action = body.get("action")
    if not isinstance(action, str) or not action:
        raise BadRequest("'action' is required.", code="InvalidRequestContent")
    from cielo.rbac.model import Principal

    target = Principal(principal_id, ctx.principal.tenant_id, ctx.access.groups_of(principal_id.lower()))
    data_action = bool(body.get("isDataAction", False))
    try:
        _authz(request).principal_type(principal_id.lower(), ctx.principal.tenant_id)
    except BadRequest:
        # Unknown here, or of another tenant: the answer must not tell which.
        return {"allowed": False, "principalId": principal_id, "action": action, "scope": scope,
                "isDataAction": data_action, "reason": "The principal does not exist in the directory.",
                "matchedAssignments": []}
    decision = ctx.access.index.authorize(target, action, scope, data_action=data_action)
    return {"allowed": decision.allowed, "principalId": principal_id.lower(), "action": action, "scope": scope,
            "isDataAction": data_action, "reason": decision.reason,
            "matchedAssignments": [authz.assignment_json(a) for a in decision.matched]}
