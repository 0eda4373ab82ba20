"""Microsoft.Insights: the activity log's API route (a row of the ARM route table, api/arm.py) and the hooks
that record events from the resource manager, the token endpoint and the data plane (docs/monitoring.md).

Every hook builds plain rows and hands them to `ActivityLog.record` (a list append; a writer thread stores
them), so no request waits on the database for its own audit trail. Entries never hold a token, a secret, a
password or a request body: who (UPN or app id, object id), what (operation, scope, status), from where (client
address), and the token claims on an allow-list (`SAFE_CLAIMS`).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cielo.control.activity import (
    ActivityLog,
    ActivityRow,
    event_json,
    parse_filter,
    parse_select,
    read_skip_token,
    selected,
    skip_token,
    sub_status,
)
from cielo.core import arm_ids
from cielo.errors import AccountLocked, ArmError, CieloError, OAuthError
from cielo.observability import metrics as observability

if TYPE_CHECKING:
    from cielo.api.arm_context import ArmCall
    from cielo.api.arm_routes import Route
    from cielo.identity.context import TokenRequest

READ_ACTION = "Microsoft.Insights/eventtypes/values/read"
API_VERSIONS = frozenset({"2015-04-01"})
VALUES_PATH = "/providers/Microsoft.Insights/eventtypes/management/values"
# Claims shown in `claims` (Azure shows the caller's token claims there): identifiers and times, never the token.
SAFE_CLAIMS = ("aud", "iss", "iat", "nbf", "exp", "appid", "azp", "appidacr", "azpacr", "idtyp", "name", "oid",
               "tid", "upn", "unique_name", "ver", "scp")
_NOT_RECORDED = ("authorization_pending", "slow_down")  # device-code polling: not failures
_WRITES = ("PUT", "PATCH", "DELETE")


def activity_of(request: Request) -> ActivityLog | None:
    log: ActivityLog | None = getattr(request.app.state, "activity", None)
    return log


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def _claims(claims: dict[str, Any]) -> dict[str, str]:
    out = {}
    for name in SAFE_CLAIMS:
        value = claims.get(name)
        if value is not None:
            out[name] = " ".join(map(str, value)) if isinstance(value, list) else str(value)
    return out


# ----------------------------------------------------------------------------- the API
async def list_events(call: ArmCall) -> Response:
    """`GET /subscriptions/{id}/providers/Microsoft.Insights/eventtypes/management/values` (the route checks
    `Microsoft.Insights/eventtypes/values/read` at the subscription). Tenant-wide events (sign-ins, token
    issuances) are listed to directory administrators only, as Entra's sign-in logs are."""
    request = call.request
    activity = activity_of(request)
    assert activity is not None, "create_app wires the activity log"
    query = request.query_params
    flt = parse_filter(query.get("$filter"), activity.clock.now())
    select = parse_select(query.get("$select"))
    token = query.get("$skipToken") or query.get("$skiptoken")
    after = read_skip_token(token) if token else None
    user = request.app.state.services.view.user(call.ctx.caller.object_id)
    tenant_events = user is not None and user.is_admin and call.ctx.caller.exists
    page = await run_in_threadpool(activity.page, call.sub.id, call.sub.tenant_id, flt, tenant_events=tenant_events,
                                   after=after)
    body: dict[str, Any] = {"value": [selected(event_json(row), select) for row in page.events]}
    if page.next_after is not None:
        params = [(k, v) for k, v in query.multi_items() if k.lower() != "$skiptoken"]
        params.append(("$skipToken", skip_token(page.next_after)))
        body["nextLink"] = f"{request.app.state.settings.base_url}{call.path}?{urlencode(params)}"
    return JSONResponse(body)


# ----------------------------------------------------------------------------- the resource manager
def note_call(request: Request, call: ArmCall, route: Route[Any, Any]) -> None:
    """The ARM dispatcher's hook, once the route is known (before RBAC): what `record_write` needs."""
    request.state.arm_route = route.pattern  # the route template of metrics and the access log
    request.state.caller_oid = call.ctx.caller.object_id
    activity = activity_of(request)
    if activity is not None and (request.method in _WRITES or (request.method == "POST" and route.action)):
        request.state.activity_call = (call, route, activity.clock.now())


def operation_name(method: str, path: str, action: str | None) -> str:
    """The route's action, else the one ARM would name from the path: `{namespace}/{types}/write|delete`."""
    if action:
        return action
    parts = [p for p in path.split("/") if p]
    lower = [p.lower() for p in parts]
    if "providers" not in lower:
        return "Microsoft.Resources/subscriptions/write"
    at = len(lower) - 1 - lower[::-1].index("providers")
    namespace, rest = (parts[at + 1] if at + 1 < len(parts) else ""), parts[at + 2:]
    types = "/".join(rest[0::2])
    verb = "delete" if method == "DELETE" else "write"
    return "/".join(p for p in (namespace, types, verb) if p)


def record_write(request: Request, response: Response) -> Response:
    """After an ARM write (PUT, PATCH, DELETE, or a POST action): its Started and Succeeded/Failed events."""
    noted = getattr(request.state, "activity_call", None)
    activity = activity_of(request)
    if noted is None or activity is None:
        return response
    call, route, started = noted
    try:
        scope = route.scope(call) if route.scope is not None else call.path
    except Exception:  # a scope that cannot be computed (the subscription was refused): the path is the scope
        scope = call.path
    resource_id = call.path.rstrip("/") or "/"
    operation = operation_name(request.method, resource_id, route.action)
    status = response.status_code
    correlation = (getattr(request.state, "activity_correlation", None)
                   or response.headers.get("x-ms-correlation-request-id") or correlation_of(request))
    group, provider, resource_type = _describe(resource_id, operation)
    caller = call.ctx.caller
    common: dict[str, Any] = {
        "authorization": {"action": operation, "scope": scope},
        "claims": _claims(call.ctx.principal.claims),
        "httpRequest": {"clientRequestId": (request.headers.get("x-ms-client-request-id") or "")[:100],
                        "clientIpAddress": _client_ip(request), "method": request.method},
        "operationId": correlation, "resourceGroupName": group, "resourceProviderName": provider,
        "resourceType": resource_type, "callerObjectId": caller.object_id,
    }
    sub_id = call.subscription.id if call.subscription is not None else _subscription_of(resource_id)
    ok = status < 400
    end_properties: dict[str, Any] = {"statusCode": sub_status(status)[0]}
    if not ok and isinstance(response, JSONResponse):
        end_properties["statusMessage"] = bytes(response.body).decode(errors="replace")[:2000]
    now = max(activity.clock.now(), started + 1e-6)  # the end sorts after the start, even on a frozen clock

    def row(ts: float, state: str, event: list[str], level: str, detail: dict[str, Any]) -> ActivityRow:
        return ActivityRow(str(uuid.uuid4()), caller.tenant_id, sub_id, ts, "Administrative", level, operation,
                           state, caller.display, correlation, resource_id, group, provider,
                           {**common, "eventName": event, "submitted": now, **detail})

    activity.record([
        row(started, "Started", ["BeginRequest", "Begin request"], "Informational",
            {"subStatus": ["", ""], "properties": {}}),
        row(now, "Succeeded" if ok else "Failed", ["EndRequest", "End request"], "Informational" if ok else "Error",
            {"subStatus": sub_status(status), "properties": end_properties}),
    ])
    return response


def _describe(resource_id: str, operation: str) -> tuple[str, str, str]:
    """(resource group, provider namespace, resource type) of a path; an extension resource (a role assignment
    on an account) is described by its own provider, from the operation."""
    try:
        rid = arm_ids.parse(resource_id)
    except Exception:
        found = re.search(r"/resourceGroups/([^/]+)", resource_id, re.IGNORECASE)
        return (found.group(1) if found else ""), operation.split("/", 1)[0], operation.rsplit("/", 1)[0]
    return rid.resource_group or "", rid.namespace or "Microsoft.Resources", rid.type


def _subscription_of(path: str) -> str | None:
    parts = path.split("/")
    return parts[2] if len(parts) > 2 and parts[1].lower() == "subscriptions" else None


# ----------------------------------------------------------------------------- template deployments
def correlation_of(request: Request) -> str:
    """The correlation id of a request and of everything it does: the client's `x-ms-correlation-request-id` (short
    printable ASCII), else a new one, kept for the request (a template deployment's own PUT and every resource write
    it makes share it, as Azure's activity log shows them)."""
    found: str | None = getattr(request.state, "activity_correlation", None)
    if found is None:
        given = request.headers.get("x-ms-correlation-request-id") or ""
        found = given if 0 < len(given) <= 100 and given.isascii() and given.isprintable() else str(uuid.uuid4())
        request.state.activity_correlation = found
    return found


def record_deployment_write(request: Request, outcome: Response | CieloError) -> None:
    """A template deployment's resource write (or deletion), made through the route table as the deploying caller
    (api/arm_deployments.py `RouteClient`): recorded as a write of its own, Started and Succeeded/Failed, as if the
    caller had sent it, with the deployment's correlation id. A refusal raised by the route is recorded too."""
    if isinstance(outcome, Response):
        response = outcome
    elif isinstance(outcome, ArmError):
        from cielo.api.errors import arm_response

        response = arm_response(outcome, request)
    else:
        response = JSONResponse({"error": {"code": "InternalServerError" if outcome.status >= 500 else "BadRequest",
                                           "message": outcome.message}}, status_code=outcome.status)
    record_write(request, response)


# ----------------------------------------------------------------------------- the directory (Graph)
# Graph writes by (method, route template): Entra's audit-log activity name, the object type, and Entra's audit
# category (learn.microsoft.com/entra/identity/monitoring-health/reference-audit-activities).
_CREDENTIALS = "Update application \u2013 Certificates and secrets management"  # an en dash, as Entra writes it
DIRECTORY_OPERATIONS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("POST", "/v1.0/users"): ("Add user", "users", "UserManagement"),
    ("PATCH", "/v1.0/users/{user_id}"): ("Update user", "users", "UserManagement"),
    ("DELETE", "/v1.0/users/{user_id}"): ("Delete user", "users", "UserManagement"),
    ("POST", "/v1.0/groups"): ("Add group", "groups", "GroupManagement"),
    ("DELETE", "/v1.0/groups/{group_id}"): ("Delete group", "groups", "GroupManagement"),
    ("POST", "/v1.0/groups/{group_id}/members/$ref"): ("Add member to group", "groups", "GroupManagement"),
    ("DELETE", "/v1.0/groups/{group_id}/members/{member_id}/$ref"): ("Remove member from group", "groups",
                                                                      "GroupManagement"),
    ("POST", "/v1.0/applications"): ("Add application", "applications", "ApplicationManagement"),
    ("PATCH", "/v1.0/applications/{app_id}"): ("Update application", "applications", "ApplicationManagement"),
    ("DELETE", "/v1.0/applications/{app_id}"): ("Delete application", "applications", "ApplicationManagement"),
    ("POST", "/v1.0/applications/{app_id}/addPassword"): (_CREDENTIALS, "applications", "ApplicationManagement"),
    ("POST", "/v1.0/applications/{app_id}/removePassword"): (_CREDENTIALS, "applications", "ApplicationManagement"),
    ("POST", "/v1.0/applications/{app_id}/federatedIdentityCredentials"): (_CREDENTIALS, "applications",
                                                                          "ApplicationManagement"),
    ("DELETE", "/v1.0/applications/{app_id}/federatedIdentityCredentials/{fic_id}"): (_CREDENTIALS, "applications",
                                                                                     "ApplicationManagement"),
    ("POST", "/v1.0/servicePrincipals"): ("Add service principal", "servicePrincipals", "ApplicationManagement"),
    ("DELETE", "/v1.0/servicePrincipals/{sp_id}"): ("Delete service principal", "servicePrincipals",
                                                    "ApplicationManagement"),
}
# What an answer's body may contribute to an entry (the new object's identity): never a secret (`secretText`).
_TARGET_FIELDS = ("id", "appId", "displayName", "userPrincipalName", "keyId", "name")
_MAX_BODY = 64 * 1024


def note_directory_write(request: Request, tenant_id: str, object_id: str) -> None:
    """The Graph `Writer` dependency's hook, once the caller is known to be an administrator: the answer's status
    (and, for a creation, the new object's id and name) are recorded after the answer, by `Observe`."""
    activity = activity_of(request)
    if activity is None:
        return
    request.state.caller_oid = object_id
    started = activity.clock.now()

    def after(status: int, headers: Any, body: bytes) -> None:
        _directory_event(request, activity, tenant_id, object_id, started, status, body)

    request.state.after_response = after


def _graph_claims(request: Request) -> dict[str, Any]:
    """The caller's token claims, read again from the bearer token (the validator's cache answers)."""
    from cielo.api.auth import GRAPH_AUDIENCES

    header = request.headers.get("authorization", "")
    try:
        principal = request.app.state.validator.validate(
            header[7:].strip(), (*GRAPH_AUDIENCES, request.app.state.settings.base_url))
    except Exception:
        return {}
    claims: dict[str, Any] = principal.claims
    return claims


def credentials_operation(request: Request) -> None:
    """An application update that changes its certificates is Entra's credentials activity, not a plain update."""
    request.state.directory_operation = _CREDENTIALS


def _directory_event(request: Request, activity: ActivityLog, tenant_id: str, object_id: str, started: float,
                     status: int, body: bytes) -> None:
    route = request.scope.get("route")
    template = str(getattr(route, "path", ""))
    known = DIRECTORY_OPERATIONS.get((request.method, template))
    if known is None:  # a write route not listed here is still recorded, under its method and template
        known = (f"{request.method} {template or request.url.path}", "directoryObjects", "Other")
    operation, kind, category = known
    operation = getattr(request.state, "directory_operation", None) or operation
    params = request.path_params
    target_id = str(params.get("user_id") or params.get("group_id") or params.get("app_id") or params.get("sp_id")
                    or "")
    target: dict[str, str] = {}
    if status < 400 and body and len(body) <= _MAX_BODY:
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if isinstance(answer, dict):
            target = {k: str(answer[k])[:256] for k in _TARGET_FIELDS if isinstance(answer.get(k), str | bool)}
    if not target_id and request.method == "POST" and "id" in target and template.count("/") == 2:
        target_id = target["id"]  # a creation: the new object
    for name in ("member_id", "fic_id"):
        if params.get(name):
            target[name.replace("_id", "Id")] = str(params[name])[:64]
    resource_id = f"/tenants/{tenant_id}/{kind}" + (f"/{target_id}" if target_id else "")
    ok = status < 400
    now = max(activity.clock.now(), started)
    correlation = (request.headers.get("client-request-id") or "")[:100] or str(uuid.uuid4())
    all_claims = _graph_claims(request)
    claims = _claims(all_claims)
    upn = str(all_claims.get("upn") or all_claims.get("unique_name") or object_id)
    detail = {"authorization": {"action": operation, "scope": f"/tenants/{tenant_id}"}, "claims": claims,
              "httpRequest": {"clientRequestId": correlation, "clientIpAddress": _client_ip(request),
                              "method": request.method},
              "eventName": ["EndRequest", "End request"], "operationId": correlation, "submitted": now,
              "resourceProviderName": "Microsoft.Graph", "resourceType": f"Microsoft.Graph/{kind}",
              "callerObjectId": object_id, "subStatus": sub_status(status),
              "properties": {"statusCode": sub_status(status)[0], "loggedByService": "Core Directory",
                             "auditCategory": category, "targetResource": target_id, **target}}
    activity.record([ActivityRow(str(uuid.uuid4()), tenant_id, None, now, "Administrative",
                                 "Informational" if ok else "Error", operation, "Succeeded" if ok else "Failed",
                                 upn[:256], correlation, resource_id, "", "Microsoft.Graph", detail)])


# ----------------------------------------------------------------------------- the token endpoint
def _token_claims(access_token: str) -> dict[str, Any]:
    """The claims of a token this server has just signed (read, not verified: it never left the process)."""
    try:
        payload = access_token.split(".")[1]
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return claims
    except (IndexError, ValueError):
        return {}


def _token_event(request: Request, token_request: TokenRequest, tenant_id: str, caller: str, object_id: str,
                 ok: bool, sub: list[str], properties: dict[str, Any], claims: dict[str, str]) -> None:
    activity = activity_of(request)
    if activity is None or not tenant_id:
        return
    grant = token_request.form.get("grant_type", "")
    # A password grant is a sign-in; every other grant is a token issuance (docs/monitoring.md).
    operation = "Microsoft.AAD/signIns/action" if grant == "password" else "Microsoft.AAD/tokens/action"
    correlation = (request.headers.get("client-request-id") or "")[:100] or str(uuid.uuid4())
    now = activity.clock.now()
    detail = {"authorization": {"action": operation, "scope": f"/tenants/{tenant_id}"}, "claims": claims,
              "httpRequest": {"clientRequestId": correlation, "clientIpAddress": _client_ip(request),
                              "method": request.method},
              "eventName": ["EndRequest", "End request"], "operationId": correlation, "submitted": now,
              "resourceProviderName": "Microsoft.AAD", "resourceType": "Microsoft.AAD/tenants",
              "callerObjectId": object_id, "subStatus": sub,
              "properties": {"grantType": grant, "clientId": token_request.form.get("client_id", "")[:64],
                             **properties}}
    activity.record([ActivityRow(str(uuid.uuid4()), tenant_id, None, now, "Security",
                                 "Informational" if ok else "Warning", operation, "Succeeded" if ok else "Failed",
                                 caller[:256], correlation, f"/tenants/{tenant_id}", "", "Microsoft.AAD", detail)])


def token_issued(request: Request, token_request: TokenRequest, result: dict[str, Any]) -> None:
    metrics = observability.current()
    if metrics is not None:
        metrics.tokens_issued.labels(token_request.form.get("grant_type", "")[:64]).inc()
    claims = _token_claims(str(result.get("access_token", "")))
    request.state.caller_oid = claims.get("oid")
    tenant = str(claims.get("tid") or (token_request.tenant.id if token_request.tenant else ""))
    caller = str(claims.get("upn") or claims.get("unique_name") or claims.get("appid") or claims.get("azp") or "")
    _token_event(request, token_request, tenant, caller, str(claims.get("oid", "")), True, ["OK", "OK"],
                 {"resource": str(claims.get("aud", ""))}, _claims(claims))


def token_failed(request: Request, token_request: TokenRequest, exc: OAuthError) -> None:
    if exc.error in _NOT_RECORDED:
        return
    metrics = observability.current()
    if metrics is not None:
        metrics.signin_failures.labels(str(exc.aadsts)).inc()
        if isinstance(exc, AccountLocked):
            metrics.lockouts.inc()
    if token_request.tenant is None:
        return
    form = token_request.form
    caller = form.get("username") or form.get("client_id") or ""
    _token_event(request, token_request, token_request.tenant.id, caller, "", False,
                 [f"AADSTS{exc.aadsts}", f"AADSTS{exc.aadsts}: {exc.error}"],
                 {"error": exc.error, "errorCode": str(exc.aadsts)}, {})


# ----------------------------------------------------------------------------- the data plane
def data_refused(status: int, code: str, path: str) -> None:
    """Metrics of a data-plane refusal: a quota's 429, a model backend's failure (408, 5xx)."""
    metrics = observability.current()
    if metrics is None:
        return
    if status == 429:
        parts = path.split("/")
        metrics.quota_rejections.labels(parts[5] if len(parts) > 5 and parts[4] == "deployments" else "").inc()
    elif status == 408 or status >= 500:
        metrics.upstream_errors.labels(code[:64]).inc()


_DATA_ACTION = re.compile(r"data action `([^`]+)`")
_DATA_AUDIENCES = ("https://cognitiveservices.azure.com", "https://ai.azure.com")


def data_denied(request: Request, message: str, request_id: str) -> None:
    """A data-plane 401 PermissionDenied (rare: recorded inline, still only queued). The caller is read again from
    the bearer token (the validator's cache answers); the action from the refusal's message."""
    activity = activity_of(request)
    if activity is None:
        return
    parts = request.scope.get("path", "").split("/")
    account = request.app.state.dataplane.index.account(parts[2]) if len(parts) > 2 else None
    header = request.headers.get("authorization", "")
    if account is None or not header.lower().startswith("bearer "):
        return
    try:
        principal = request.app.state.validator.validate(header[7:].strip(), _DATA_AUDIENCES)
    except Exception:
        return
    found = _DATA_ACTION.search(message)
    operation = found.group(1) if found else "Microsoft.CognitiveServices/accounts/OpenAI/*"
    rid = arm_ids.parse(account.id)
    now = activity.clock.now()
    caller = principal.upn or principal.app_id or principal.object_id
    detail = {"authorization": {"action": operation, "scope": account.id}, "claims": _claims(principal.claims),
              "httpRequest": {"clientRequestId": (request.headers.get("x-ms-client-request-id") or "")[:100],
                              "clientIpAddress": _client_ip(request), "method": request.method},
              "eventName": ["EndRequest", "End request"], "operationId": request_id, "submitted": now,
              "resourceGroupName": rid.resource_group or "", "resourceProviderName": "Microsoft.CognitiveServices",
              "resourceType": "Microsoft.CognitiveServices/accounts", "callerObjectId": principal.object_id,
              "subStatus": ["PermissionDenied", "PermissionDenied (HTTP Status Code: 401)"],
              "properties": {"statusCode": "Unauthorized", "requestId": request_id}}
    activity.record([ActivityRow(str(uuid.uuid4()), principal.tenant_id, rid.subscription, now, "Security",
                                 "Warning", operation, "Failed", caller, request_id, account.id,
                                 rid.resource_group or "", "Microsoft.CognitiveServices", detail)])
