"""The resource manager: an ARM-compatible REST API with Azure RBAC on every operation.

Every ARM operation is one row of `TABLE` (`cielo.api.arm_routes` explains the pattern syntax): its method and
path pattern, the RBAC action checked at its scope, its handler, and the api-versions it serves. `dispatch`
reads the table for every request under `/subscriptions/…` and `/providers/…`; a handler parses, calls one
`ResourceManager` (or `AuthorizationService`) method and renders. Adding an operation is adding a row.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from cielo.api import arm_compute, arm_deployments, arm_provider_operations, arm_reads, arm_web, insights
from cielo.api.arm_context import (
    ArmCall,
    arm_context,
    authorization_failed,
    check_route_api_version,
    read_json_body,
    require_api_version,
    resource_manager,
)
from cielo.api.arm_routes import Route, RouteTable, Unserved
from cielo.api.arm_versions import COGNITIVE_SERVICES, RESOURCES
from cielo.api.errors import arm_response
from cielo.control import arm_bodies
from cielo.control import authorization as authz
from cielo.control.naming import check_case_unambiguous
from cielo.control.resources import resource_json
from cielo.core.arm_ids import ResourceId
from cielo.errors import ArmError, MethodNotAllowed, NotFound
from cielo.store.models import Subscription

router = APIRouter()

RG_READ = "Microsoft.Resources/subscriptions/resourceGroups/read"
RG_WRITE = "Microsoft.Resources/subscriptions/resourceGroups/write"
RG_DELETE = "Microsoft.Resources/subscriptions/resourceGroups/delete"
SUB_READ = "Microsoft.Resources/subscriptions/read"
ACCOUNT = "Microsoft.CognitiveServices/accounts"
DEPLOYMENTS = "Microsoft.CognitiveServices/accounts/deployments"
RA = "Microsoft.Authorization/roleAssignments"

SUB = "/subscriptions/{subscriptionId}"
RG = SUB + "/resourceGroups/{resourceGroupName}"
ACCOUNTS = "/providers/Microsoft.CognitiveServices/accounts"
AUTHZ = "{scope*}/providers/Microsoft.Authorization"


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


def _authz(call: ArmCall) -> authz.AuthorizationService:
    svc: authz.AuthorizationService = call.request.app.state.authorization_service
    return svc


def _ok(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def _put_answer(body: dict[str, Any], created: bool) -> JSONResponse:
    return _ok(body, 201 if created else 200)


def _method_not_allowed(call: ArmCall) -> ArmError:
    method = call.request.method
    return MethodNotAllowed(f"The HTTP method '{method}' is not supported at this path.")


# ----------------------------------------------------------------------------- what ARM checks first
def in_subscription(call: ArmCall) -> None:
    """The path's subscription must exist and be the caller's tenant's (404 / 401 before anything else)."""
    call.subscription = call.manager.subscription(call.params["subscriptionId"], call.ctx.principal.tenant_id)


def in_scope(call: ArmCall) -> None:
    """An extension resource's scope: its subscription (if it names one) is checked, then the `$filter`."""
    sub_id = authz.subscription_of(call.params["scope"])
    if sub_id is not None:
        call.subscription = call.manager.subscription(sub_id, call.ctx.principal.tenant_id)
    call.filter = authz.parse_filter(call.request.query_params.get("$filter"))


# ----------------------------------------------------------------------------- scopes
def subscription_scope(call: ArmCall) -> str:
    return f"/subscriptions/{call.sub.id}"


def group_scope(call: ArmCall) -> str:
    return ResourceId(call.sub.id, call.params["resourceGroupName"]).id


def account_id(call: ArmCall) -> ResourceId:
    return ResourceId(call.sub.id, call.params["resourceGroupName"], "Microsoft.CognitiveServices", ("accounts",),
                      (call.params["accountName"],))


def account_scope(call: ArmCall) -> str:
    return account_id(call).id


def deployment_id(call: ArmCall) -> ResourceId:
    return account_id(call).child("deployments", call.params["deploymentName"])


def deployment_scope(call: ArmCall) -> str:
    return deployment_id(call).id


def extension_scope(call: ArmCall) -> str:
    return call.params["scope"]


# ----------------------------------------------------------------------------- tenants and subscriptions
async def list_subscriptions_op(call: ArmCall) -> Response:
    subs = call.manager.visible_subscriptions(call.ctx.caller)
    return _ok({"value": [subscription_json(s) for s in subs], "count": {"type": "Total", "value": len(subs)}})


async def list_tenants_op(call: ArmCall) -> Response:
    tenant = call.manager.tenant(call.ctx.principal.tenant_id)
    items = []
    if tenant is not None:
        items.append({"id": f"/tenants/{tenant.id}", "tenantId": tenant.id, "countryCode": "US",
                      "displayName": tenant.display_name, "domains": [tenant.default_domain],
                      "tenantCategory": "Home", "defaultDomain": tenant.default_domain, "tenantType": "AAD"})
    return _ok({"value": items})


async def get_subscription(call: ArmCall) -> Response:
    # As in Azure, a caller with a role anywhere in the subscription may read it (GET /subscriptions lists it).
    sub, ctx = call.sub, call.ctx
    scope = subscription_scope(call)
    if not ctx.allowed(SUB_READ, scope) and sub.id not in {s.id for s in call.manager.visible_subscriptions(
            ctx.caller)}:
        ctx.require(SUB_READ, scope)
    return _ok(subscription_json(sub))


# ----------------------------------------------------------------------------- resource groups
async def list_groups(call: ArmCall) -> Response:
    visible = [g for g in call.manager.list_groups(call.sub.id) if call.ctx.allowed(RG_READ, g.id)]
    if not visible and not call.ctx.allowed(RG_READ, subscription_scope(call)):
        call.ctx.require(RG_READ, subscription_scope(call))
    return _ok({"value": [resource_json(g) for g in visible]})


async def get_group(call: ArmCall) -> Response:
    return _ok(resource_json(call.manager.group(call.sub.id, call.params["resourceGroupName"])))


async def head_group(call: ArmCall) -> Response:
    exists = call.manager.group_exists(call.sub.id, call.params["resourceGroupName"])
    return Response(status_code=204 if exists else 404)


async def put_group(call: ArmCall) -> Response:
    body = await read_json_body(call.request)
    group, created = call.manager.put_group(call.sub.id, call.params["resourceGroupName"], body, call.ctx.writer(),
                                            patch=call.request.method == "PATCH")
    return _put_answer(resource_json(group), created)


async def delete_group(call: ArmCall) -> Response:
    call.manager.delete_group(call.sub.id, call.params["resourceGroupName"])
    arm_deployments.forget_group(call.request, call.sub.id, call.params["resourceGroupName"])  # its deployments too
    return Response(status_code=200)


async def list_in_group(call: ArmCall) -> Response:
    """The group's top-level resources (an account's deployments are not listed, as in ARM)."""
    wanted = arm_reads.resource_filter(call)
    group, items = call.manager.resources_in_group(call.sub.id, call.params["resourceGroupName"])
    visible = [r for r in arm_reads.top_level(items, wanted) if call.ctx.allowed(f"{r.type}/read", r.id)]
    if not visible and not call.ctx.allowed(RG_READ, group.id):
        call.ctx.require(RG_READ, group.id)
    return _ok({"value": [arm_reads.listed_json(r) for r in visible]})


# ----------------------------------------------------------------------------- Cognitive Services
async def list_accounts(call: ArmCall) -> Response:
    rg = call.params.get("resourceGroupName")
    scope = group_scope(call) if rg else subscription_scope(call)
    accounts = call.manager.list_accounts(call.sub.id, rg)
    visible = [a for a in accounts if call.ctx.allowed(f"{ACCOUNT}/read", a.id)]
    if not visible and not call.ctx.allowed(f"{ACCOUNT}/read", scope):
        call.ctx.require(f"{ACCOUNT}/read", scope)
    return _ok({"value": [resource_json(a) for a in visible]})


async def get_account(call: ArmCall) -> Response:
    return _ok(resource_json(call.manager.account(account_id(call))))


async def put_account(call: ArmCall) -> Response:
    body = await read_json_body(call.request)
    account, created = call.manager.put_account(account_id(call), body, call.ctx.writer(), call.guard,
                                                patch=call.request.method == "PATCH")
    return _put_answer(resource_json(account), created)


async def delete_account(call: ArmCall) -> Response:
    return Response(status_code=200 if call.manager.delete_account(account_id(call)) else 204)


async def list_keys(call: ArmCall) -> Response:
    return _ok(call.manager.list_keys(account_id(call)))


async def regenerate_key(call: ArmCall) -> Response:
    account = call.manager.account(account_id(call))  # a missing account is named before the body is read
    body = await read_json_body(call.request)
    return _ok(call.manager.regenerate_key(account, body))


async def list_deployments(call: ArmCall) -> Response:
    return _ok({"value": [resource_json(d) for d in call.manager.list_deployments(account_id(call))]})


async def get_deployment(call: ArmCall) -> Response:
    return _ok(resource_json(call.manager.deployment(deployment_id(call))))


async def put_deployment(call: ArmCall) -> Response:
    body = await read_json_body(call.request)
    deployment, created = call.manager.put_deployment(deployment_id(call), body, call.ctx.writer(),
                                                      patch=call.request.method == "PATCH")
    return _put_answer(resource_json(deployment), created)


async def delete_deployment(call: ArmCall) -> Response:
    return Response(status_code=200 if call.manager.delete_deployment(deployment_id(call)) else 204)


# ----------------------------------------------------------------------------- Microsoft.Authorization
async def list_assignments(call: ArmCall) -> Response:
    found = _authz(call).list_assignments(call.params["scope"], call.filter, call.ctx.principal.tenant_id)
    return _ok({"value": [authz.assignment_json(a) for a in found]})


async def get_assignment(call: ArmCall) -> Response:
    return _ok(authz.assignment_json(_authz(call).get_assignment(call.params["scope"],
                                                                  call.params["roleAssignmentName"])))


async def put_assignment(call: ArmCall) -> Response:
    body = await read_json_body(call.request)
    assignment, created = _authz(call).create_assignment(call.ctx.caller, call.params["scope"],
                                                         call.params["roleAssignmentName"], body)
    return _put_answer(authz.assignment_json(assignment), created)


async def delete_assignment(call: ArmCall) -> Response:
    removed = _authz(call).delete_assignment(call.params["scope"], call.params["roleAssignmentName"])
    return _ok(authz.assignment_json(removed)) if removed else Response(status_code=204)


def _role_sub(call: ArmCall) -> str | None:
    return authz.subscription_of(call.params["scope"])


async def list_role_definitions(call: ArmCall) -> Response:
    roles = _authz(call).role_definitions(call.guard, call.params["scope"], call.filter, call.ctx.principal.tenant_id)
    return _ok({"value": [r.to_arm(_role_sub(call)) for r in roles]})


async def get_role_definition(call: ArmCall) -> Response:
    role = _authz(call).get_role_definition(call.guard, call.params["scope"], call.params["roleDefinitionId"],
                                            call.ctx.principal.tenant_id)
    return _ok(role.to_arm(_role_sub(call)))


async def put_role_definition(call: ArmCall) -> Response:
    body = await read_json_body(call.request)
    role, created = _authz(call).put_role_definition(call.guard, call.ctx.caller, call.params["scope"],
                                                     call.params["roleDefinitionId"], body)
    return _put_answer(role.to_arm(_role_sub(call)), created)


async def delete_role_definition(call: ArmCall) -> Response:
    deleted = _authz(call).delete_role_definition(call.guard, call.params["scope"], call.params["roleDefinitionId"],
                                                  call.ctx.principal.tenant_id)
    return _ok(deleted.to_arm(_role_sub(call))) if deleted else Response(status_code=204)


async def permissions(call: ArmCall) -> Response:
    return _ok({"value": _authz(call).permissions(call.ctx.caller, call.params["scope"])})


# A checkAccess body is a principal id, an action and a flag: a few hundred bytes.
CHECK_ACCESS_MAX_BODY = 16 * 1024


async def check_access(call: ArmCall) -> Response:
    """Cielo's "why was I denied?": `POST {scope}/providers/Microsoft.Authorization/checkAccess` with
    `{"principalId"?, "action", "isDataAction"?}`. Anyone may ask about themselves; asking about someone else
    needs roleAssignments/read at the scope. That right is decided before the body is read (the body only says
    whom the question is about), and the body is read bounded."""
    ctx, scope = call.ctx, call.params["scope"]
    may_ask_about_others = ctx.allowed(f"{RA}/read", scope)
    body = await read_json_body(call.request, CHECK_ACCESS_MAX_BODY)
    # Whom it is about first: asking about someone else is refused before the rest of the body is looked at.
    principal_id = arm_bodies.parse(arm_bodies.CheckAccessSubject, body).principal_id or ctx.caller.object_id
    if principal_id.lower() != ctx.caller.object_id.lower() and not may_ask_about_others:
        raise authorization_failed(ctx.caller, f"{RA}/read", scope,
                                   ctx.access.authorize(ctx.caller, f"{RA}/read", scope).reason)
    question = arm_bodies.parse(arm_bodies.CheckAccessBody, body)
    return _ok(_authz(call).check_access(principal_id, question.action, scope, question.is_data_action,
                                         ctx.principal.tenant_id))


# ----------------------------------------------------------------------------- the table
def _not_served(message: str, code: str = "InvalidResourceType") -> Callable[[ArmCall], Exception]:
    """A 404 naming what is not served; `message` is formatted with the call's path and captures."""
    return lambda call: NotFound(message.format(path=call.path, **call.params), code=code)


_SUB = (in_subscription,)
_SCOPE = (in_scope,)


def _versioned(versions: frozenset[str], routes: list[Route[ArmCall, Response]]) -> list[Route[ArmCall, Response]]:
    """The routes, serving these api-versions only (400 InvalidApiVersionParameter for another)."""
    return [dataclasses.replace(r, api_versions=versions) for r in routes]


ROUTES: list[Route[ArmCall, Response]] = [
    # Extension resources of Microsoft.Authorization hang off any scope, and are matched first (from the right).
    Route("GET", f"{AUTHZ}/roleAssignments", list_assignments, f"{RA}/read", extension_scope, prepare=_SCOPE),
    Route("GET", f"{AUTHZ}/roleAssignments/{{roleAssignmentName}}", get_assignment, f"{RA}/read", extension_scope,
          prepare=_SCOPE),
    Route("PUT", f"{AUTHZ}/roleAssignments/{{roleAssignmentName}}", put_assignment, f"{RA}/write", extension_scope,
          prepare=_SCOPE),
    Route("DELETE", f"{AUTHZ}/roleAssignments/{{roleAssignmentName}}", delete_assignment, f"{RA}/delete",
          extension_scope, prepare=_SCOPE),
    # Role definitions: built-ins are everyone's, custom roles need the right at every assignable scope, which
    # AuthorizationService decides with the caller's guard (docs/resource-manager.md, "Role definitions").
    Route("GET", f"{AUTHZ}/roleDefinitions", list_role_definitions, prepare=_SCOPE),
    Route("GET", f"{AUTHZ}/roleDefinitions/{{roleDefinitionId}}", get_role_definition, prepare=_SCOPE),
    Route("PUT", f"{AUTHZ}/roleDefinitions/{{roleDefinitionId}}", put_role_definition, prepare=_SCOPE),
    Route("DELETE", f"{AUTHZ}/roleDefinitions/{{roleDefinitionId}}", delete_role_definition, prepare=_SCOPE),
    # About the caller itself: no right needed. checkAccess about another principal needs roleAssignments/read.
    Route("GET", f"{AUTHZ}/permissions", permissions, prepare=_SCOPE, other_methods_unserved=True),
    Route("POST", f"{AUTHZ}/checkAccess", check_access, prepare=_SCOPE, other_methods_unserved=True),
    # What each served provider's operations are (any signed-in caller may read them, as in Azure).
    *arm_provider_operations.routes(),
    # Tenants, subscriptions and resource groups: Microsoft.Resources' api-versions (docs/resource-manager.md).
    *_versioned(RESOURCES, [
        Route("GET", "/tenants", list_tenants_op),
        Route("GET", "/subscriptions", list_subscriptions_op),
        Route("GET", SUB, get_subscription, prepare=_SUB),
    ]),
    # The activity log (Microsoft.Insights, docs/monitoring.md): Reader and above at the subscription.
    Route("GET", f"{SUB}{insights.VALUES_PATH}", insights.list_events, insights.READ_ACTION, subscription_scope,
          api_versions=insights.API_VERSIONS, prepare=_SUB),
    # Resource groups.
    *_versioned(RESOURCES, [
        Route("GET", f"{SUB}/resourceGroups", list_groups, prepare=_SUB),
        Route("GET", RG, get_group, RG_READ, group_scope, prepare=_SUB),
        Route("HEAD", RG, head_group, RG_READ, group_scope, prepare=_SUB),
        Route("PUT", RG, put_group, RG_WRITE, group_scope, prepare=_SUB),
        Route("PATCH", RG, put_group, RG_WRITE, group_scope, prepare=_SUB),
        Route("DELETE", RG, delete_group, RG_DELETE, group_scope, prepare=_SUB),
        Route("GET", f"{RG}/resources", list_in_group, prepare=_SUB),
    ]),
    # Locations, providers, subscription-wide listings, what an account offers.
    *arm_reads.routes(SUB, RG, _SUB, lambda: ROUTES),
    # Cognitive Services accounts, their keys and deployments (Microsoft.CognitiveServices' api-versions).
    *_versioned(COGNITIVE_SERVICES, [
        Route("GET", f"{SUB}{ACCOUNTS}", list_accounts, prepare=_SUB),
        Route("GET", f"{RG}{ACCOUNTS}", list_accounts, prepare=_SUB),
        Route("GET", f"{RG}{ACCOUNTS}/{{accountName}}", get_account, f"{ACCOUNT}/read", account_scope, prepare=_SUB),
        Route("PUT", f"{RG}{ACCOUNTS}/{{accountName}}", put_account, f"{ACCOUNT}/write", account_scope, prepare=_SUB),
        Route("PATCH", f"{RG}{ACCOUNTS}/{{accountName}}", put_account, f"{ACCOUNT}/write", account_scope, prepare=_SUB),
        Route("DELETE", f"{RG}{ACCOUNTS}/{{accountName}}", delete_account, f"{ACCOUNT}/delete", account_scope,
              prepare=_SUB),
        Route("POST", f"{RG}{ACCOUNTS}/{{accountName}}/listKeys", list_keys, f"{ACCOUNT}/listKeys/action",
              account_scope, prepare=_SUB),
        Route("POST", f"{RG}{ACCOUNTS}/{{accountName}}/regenerateKey", regenerate_key,
              f"{ACCOUNT}/regenerateKey/action", account_scope, prepare=_SUB),
        Route("GET", f"{RG}{ACCOUNTS}/{{accountName}}/deployments", list_deployments, f"{DEPLOYMENTS}/read",
              account_scope, prepare=_SUB),
        Route("GET", f"{RG}{ACCOUNTS}/{{accountName}}/deployments/{{deploymentName}}", get_deployment,
              f"{DEPLOYMENTS}/read", deployment_scope, prepare=_SUB),
        Route("PUT", f"{RG}{ACCOUNTS}/{{accountName}}/deployments/{{deploymentName}}", put_deployment,
              f"{DEPLOYMENTS}/write", deployment_scope, prepare=_SUB),
        Route("PATCH", f"{RG}{ACCOUNTS}/{{accountName}}/deployments/{{deploymentName}}", put_deployment,
              f"{DEPLOYMENTS}/write", deployment_scope, prepare=_SUB),
        Route("DELETE", f"{RG}{ACCOUNTS}/{{accountName}}/deployments/{{deploymentName}}", delete_deployment,
              f"{DEPLOYMENTS}/delete", deployment_scope, prepare=_SUB),
    ]),
    # VMs, scale sets, web apps and user-assigned identities (docs/managed-identities.md).
    *arm_compute.routes(RG, _SUB),
    *arm_deployments.routes(RG, _SUB),
    # App Service plans, storage accounts, and what az's `functionapp create` reads (docs/resource-manager.md).
    *arm_web.routes(SUB, RG, _SUB),
]

# The 404s, most specific first: what each part of the path space answers for a path no route serves.
UNSERVED: list[Unserved[ArmCall]] = [
    Unserved(f"{AUTHZ}/{{rest*}}", _not_served("The Microsoft.Authorization path '{rest}' is not served by this "
                                               "Cielo."), prepare=_SCOPE),
    Unserved("/providers/{rest*}", _not_served("No route for '{path}'.", "InvalidResourceNamespace")),
    Unserved(f"{RG}{ACCOUNTS}/{{accountName}}/{{rest*}}",
             _not_served("The resource path under account '{accountName}' is not served by this Cielo."),
             prepare=_SUB),
    Unserved(f"{RG}/providers/Microsoft.CognitiveServices/{{resourceType}}/{{rest*}}",
             _not_served("The resource type '{resourceType}' is not served by this Cielo."), prepare=_SUB),
    *arm_web.unserved(SUB, RG, _SUB),
    *arm_compute.unserved(RG, _SUB),
    Unserved(f"{SUB}/{{rest*}}", _not_served("The resource path '{path}' is not served by this Cielo."),
             prepare=_SUB),
    Unserved("{rest*}", _not_served("The resource path '{path}' is not served by this Cielo.")),
]

TABLE: RouteTable[ArmCall, Response] = RouteTable(ROUTES, UNSERVED, _method_not_allowed)


# ----------------------------------------------------------------------------- the dispatcher
_METHODS = ["GET", "PUT", "PATCH", "DELETE", "POST", "HEAD"]


async def serve(request: Request) -> Response:
    """api-version, caller, match, what ARM checks first, the route's api-versions, RBAC, the handler."""
    version = require_api_version(request)
    ctx = arm_context(request)
    path = request.url.path.rstrip("/")
    check_case_unambiguous(path)
    found = TABLE.resolve(request.method, [p for p in path.split("/") if p])
    call = ArmCall(request, ctx, resource_manager(request), path, found.params)
    for step in found.prepare:
        step(call)
    if found.route is None:
        assert found.refusal is not None
        raise found.refusal(call)
    route = found.route
    insights.note_call(request, call, route)  # what the activity log records of a write, after the answer
    check_route_api_version(version, route.api_versions)
    if route.action is not None and route.scope is not None:
        ctx.require(route.action, route.scope(call))
    return await route.handler(call)


def _echo(value: str | None) -> str | None:
    """A client's correlation id, echoed only when it is short printable ASCII (it goes into a header)."""
    if value and len(value) <= 100 and value.isascii() and value.isprintable():
        return value
    return None


def with_arm_headers(request: Request, response: Response) -> Response:
    """What every ARM answer carries, success or error: `x-ms-request-id` (new for each request, unless the error
    renderer already named the one it logged), `x-ms-correlation-request-id` (the client's, else new), and for a
    single resource whose body has an `etag` (accounts, deployments), the same value as the `ETag` header."""
    headers = response.headers
    if "x-ms-request-id" not in headers:
        headers["x-ms-request-id"] = str(uuid.uuid4())
    headers["x-ms-correlation-request-id"] = (_echo(request.headers.get("x-ms-correlation-request-id"))
                                              or str(uuid.uuid4()))
    if request.method in ("GET", "PUT", "PATCH") and response.status_code in (200, 201) \
            and isinstance(response, JSONResponse) and b'"etag"' in bytes(response.body):
        body = json.loads(bytes(response.body))
        if isinstance(body, dict) and isinstance(body.get("etag"), str) and "value" not in body:
            headers["ETag"] = body["etag"]
    return response


@router.get("/subscriptions")
@router.get("/tenants")
@router.get("/providers")
@router.api_route("/subscriptions/{rest:path}", methods=_METHODS)
@router.api_route("/providers/{rest:path}", methods=_METHODS)
async def dispatch(request: Request) -> Response:
    """The HTTP entry of the table (the template runner calls `serve` itself, and gets errors raised)."""
    try:
        response = await serve(request)
    except ArmError as exc:
        response = arm_response(exc, request)
    return insights.record_write(request, with_arm_headers(request, response))


@router.get("/metadata/endpoints")
async def metadata_endpoints(request: Request) -> JSONResponse:
    """What `az cloud register --endpoint-resource-manager` reads: `GET {arm}/metadata/endpoints?api-version=...`
    (observed with azure-cli 2.91, which fails without `suffixes`). No auth, like Azure."""
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
