"""`Microsoft.Resources/deployments` at resource-group scope: ARM template deployments.

A PUT checks the template (400 InvalidTemplate), answers 201 `Accepted` with an `Azure-AsyncOperation` header, and
runs in the background: every resource of the template is PUT through the same route table as a direct request,
as the deploying caller (with that caller's bearer token, so each resource's RBAC check is the one a direct call
gets), in dependsOn order. `validate` and `whatIf` answer synchronously (200), which az's pollers accept.

Deployment records are kept in the serving process's memory (docs/templates.md says what that means).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cielo.api.arm_context import ArmCall, read_json_body
from cielo.api.arm_routes import Route
from cielo.control.templates import jsonc
from cielo.control.templates.expressions import TemplateError
from cielo.control.templates.records import (
    DEPLOYMENT_TYPE,
    Record,
    delta,
    execute,
    operation_json,
    record_json,
    template_hash,
)
from cielo.control.templates.template import Deployment, ResourceFailure, Target
from cielo.errors import ArmError, CieloError, Conflict, NotFound

ACTION = DEPLOYMENT_TYPE
# What a deployment body may hold; anything else is refused by name (templateLink, parametersLink, debugSetting…).
PROPERTY_KEYS = {"template", "parameters", "mode"}
_NOT_SERVED_CODES = {"InvalidResourceType", "InvalidResourceNamespace"}


def _records(request: Request) -> dict[str, Record]:
    state = request.app.state
    if not hasattr(state, "template_deployments"):
        state.template_deployments = {}
        state.template_deployment_tasks = set()
    records: dict[str, Record] = state.template_deployments
    return records


# ----------------------------------------------------------------------------- the resource manager, as the caller
class RouteClient:
    """Reads and writes resources through `cielo.api.arm.serve` with the deploying caller's own token."""

    def __init__(self, request: Request) -> None:
        self.app = request.app
        self.authorization = request.headers.get("authorization", "")
        self.host = request.headers.get("host", "localhost")

    async def _call(self, method: str, path: str, api_version: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        from cielo.api import arm  # the table's module imports this one for its rows

        raw = b"" if body is None else json.dumps(body).encode()
        scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "root_path": "",
                 "query_string": f"api-version={api_version}".encode(), "scheme": "https", "app": self.app,
                 "server": (self.host, 443), "client": ("127.0.0.1", 0), "http_version": "1.1",
                 "headers": [(b"authorization", self.authorization.encode()), (b"host", self.host.encode()),
                             (b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]}
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        try:
            answer = await arm.serve(Request(scope, receive))
        except ArmError as exc:
            raise ResourceFailure(exc.code, exc.message, exc.status) from exc
        except CieloError as exc:
            raise ResourceFailure("InternalServerError" if exc.status >= 500 else "BadRequest", exc.message,
                                  exc.status) from exc
        content = bytes(answer.body) if answer.body else b""
        parsed = json.loads(content) if content else {}
        return answer.status_code, parsed if isinstance(parsed, dict) else {"value": parsed}

    async def get(self, resource_id: str, api_version: str) -> dict[str, Any]:
        return (await self._call("GET", resource_id, api_version))[1]

    async def post(self, path: str, api_version: str) -> dict[str, Any]:
        return (await self._call("POST", path, api_version))[1]

    async def put(self, resource_id: str, api_version: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        type_ = _type_of(resource_id)
        if type_.lower() == DEPLOYMENT_TYPE.lower():
            raise ResourceFailure("InvalidResourceType", f"The resource type '{DEPLOYMENT_TYPE}' (a nested "
                                  "deployment) is not served inside a template by this Cielo.")
        try:
            return await self._call("PUT", resource_id, api_version, body)
        except ResourceFailure as exc:
            if exc.code in _NOT_SERVED_CODES or (exc.status == 404 and "not served" in exc.message):
                raise ResourceFailure(exc.code, f"The resource type '{type_}' is not served by this Cielo "
                                      f"({exc.message})", exc.status) from exc
            raise


def _type_of(resource_id: str) -> str:
    """`Namespace/type/child` of an id, read from its last `providers` segment."""
    parts = [p for p in resource_id.split("/") if p]
    at = max(i for i, p in enumerate(parts) if p.lower() == "providers") if any(
        p.lower() == "providers" for p in parts) else -1
    rest = parts[at + 1:]
    return "/".join([rest[0], *rest[1::2]]) if rest else ""


# ----------------------------------------------------------------------------- the request
def deployment_id(call: ArmCall) -> str:
    return (f"/subscriptions/{call.sub.id}/resourceGroups/{call.params['resourceGroupName']}/providers/"
            f"{DEPLOYMENT_TYPE}/{call.params['deploymentName']}")


def in_group(call: ArmCall) -> None:
    call.group = call.manager.group(call.sub.id, call.params["resourceGroupName"])


def group_scope(call: ArmCall) -> str:
    assert call.group is not None
    return call.group.id


def deployment_scope(call: ArmCall) -> str:
    return deployment_id(call)


async def read_body(request: Request) -> dict[str, Any]:
    """A deployment body: as `read_json_body`, but read as ARM reads it, with comments and bare keys allowed
    (az 2.91 sends `{"properties": {…}, template:{the file's own text}}}`)."""

    def parse(raw: bytes) -> Any:
        text = raw.decode("utf-8-sig")
        request.state.deployment_text = text  # for the line and column of a template error
        return jsonc.loads(text)

    return await read_json_body(request, parse=parse)


async def _deployment_of(call: ArmCall, extra: frozenset[str] = frozenset()) -> tuple[Deployment, str, dict[str, Any]]:
    """Reads the body, checks the template and expands it (400 InvalidTemplate on any fault)."""
    body = await read_body(call.request)
    allowed = PROPERTY_KEYS | extra
    unknown = sorted(set(body) - {"properties", "tags", "location"} | (
        set(body.get("properties") or {}) - allowed if isinstance(body.get("properties"), dict) else set()))
    if body.get("location") is not None:
        unknown.append("location")
    shown = [k for k in unknown if not (k in (body.get("properties") or {}) and body["properties"][k] is None)]
    if shown:
        raise ArmError(f"The deployment properties {', '.join(shown)} are not served by this Cielo (templateLink, "
                       "parametersLink, debugSetting and onErrorDeployment are refused rather than ignored).",
                       code="InvalidDeploymentProperties")
    props = body.get("properties")
    if not isinstance(props, dict) or not isinstance(props.get("template"), dict):
        raise ArmError("The deployment needs 'properties.template', a JSON object.", code="InvalidTemplate")
    mode = str(props.get("mode") or "Incremental")
    if mode.lower() != "incremental":
        raise ArmError(f"The deployment mode '{mode}' is not served by this Cielo; only 'Incremental' is (a Complete "
                       "deployment would delete resources the template does not name).", code="InvalidDeploymentMode")
    parameters = props.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ArmError("'properties.parameters' must be a JSON object.", code="InvalidTemplate")
    assert call.group is not None
    target = Target(call.sub.id, call.sub.display_name, call.sub.tenant_id, call.group.name,
                    call.group.location or "", dict(call.group.tags or {}), call.params["deploymentName"])
    deployment = Deployment(props["template"], parameters, target, RouteClient(call.request), "Incremental")
    try:
        await deployment.prepare()
    except TemplateError as exc:
        where = ""
        if exc.where:
            text = getattr(call.request.state, "deployment_text", "")
            at = jsonc.positions(text).get(f"properties.template.{exc.where}") if text else None
            where = f" (at '{exc.where}', line '{at[0]}' and column '{at[1]}')" if at else f" (at '{exc.where}')"
        raise ArmError(f"Deployment template validation failed: '{exc.message}'{where}.", code="InvalidTemplate",
                       target=exc.where) from exc
    return deployment, template_hash(props["template"]), body


def _status_url(call: ArmCall, rec: Record) -> str:
    base = call.request.app.state.settings.base_url
    version = call.request.query_params.get("api-version", "")
    return f"{base}{rec.id}/operationStatuses/{rec.operation_id}?api-version={version}"


async def put_deployment(call: ArmCall) -> Response:
    records = _records(call.request)
    key = deployment_id(call).lower()
    existing = records.get(key)
    if existing is not None and existing.active:
        raise Conflict(f"Unable to edit or replace deployment '{existing.name}': previous deployment from "
                       f"'{existing.timestamp}' is still active.", code="DeploymentActive")
    deployment, hashed, body = await _deployment_of(call)
    rec = Record(deployment_id(call), call.params["deploymentName"], deployment, "Incremental", body.get("tags"),
                 hashed)
    records[key] = rec
    task = asyncio.create_task(execute(rec, RouteClient(call.request)))
    tasks: set[asyncio.Task[None]] = call.request.app.state.template_deployment_tasks
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return JSONResponse(record_json(rec), status_code=200 if existing else 201,
                        headers={"Azure-AsyncOperation": _status_url(call, rec)})


def _record(call: ArmCall) -> Record:
    rec = _records(call.request).get(deployment_id(call).lower())
    if rec is None:
        raise NotFound(f"Deployment '{call.params['deploymentName']}' could not be found.", code="DeploymentNotFound")
    return rec


async def get_deployment(call: ArmCall) -> Response:
    return JSONResponse(record_json(_record(call)))


async def list_deployments(call: ArmCall) -> Response:
    prefix = (f"/subscriptions/{call.sub.id}/resourcegroups/{call.params['resourceGroupName']}/providers/"
              f"{DEPLOYMENT_TYPE}/").lower()
    found = [record_json(r) for k, r in _records(call.request).items() if k.startswith(prefix)]
    return JSONResponse({"value": found})


async def delete_deployment(call: ArmCall) -> Response:
    """Deletes the deployment's record (never its resources, as in ARM); 204 either way, which az's poller ends on."""
    records = _records(call.request)
    rec = records.get(deployment_id(call).lower())
    if rec is not None and rec.active:
        raise Conflict(f"The deployment '{rec.name}' is still active and cannot be deleted.", code="DeploymentActive")
    records.pop(deployment_id(call).lower(), None)
    return Response(status_code=204)


async def operation_status(call: ArmCall) -> Response:
    rec = _record(call)
    if rec.operation_id != call.params["operationId"]:
        raise NotFound(f"The operation '{call.params['operationId']}' could not be found.", code="OperationNotFound")
    status = {"Accepted": "Running"}.get(rec.state, rec.state)
    body: dict[str, Any] = {"status": status}
    if rec.error is not None:
        body["error"] = rec.error
    return JSONResponse(body)


async def list_operations(call: ArmCall) -> Response:
    rec = _record(call)
    return JSONResponse({"value": [operation_json(rec, op) for op in rec.operations]})


async def validate(call: ArmCall) -> Response:
    """The template and parameters, then ARM's preflight: the caller's write right on every resource."""
    deployment, hashed, _ = await _deployment_of(call)
    for p in deployment.plan:
        action = f"{p.type}/write"
        if not call.ctx.allowed(action, p.id):
            caller = call.ctx.caller
            raise ArmError(f"The template deployment failed with error: 'Authorization failed for template resource "
                           f"'{p.name}' of type '{p.type}'. The client '{caller.display}' with object id "
                           f"'{caller.object_id}' does not have permission to perform action '{action}' at scope "
                           f"'{p.id}'.'.", code="InvalidTemplateDeployment")
    rec = Record(deployment_id(call), call.params["deploymentName"], deployment, "Incremental", None, hashed,
                 state="Succeeded")
    out = record_json(rec)
    out["properties"].pop("outputResources")
    out["properties"]["validatedResources"] = [{"id": p.id} for p in deployment.plan]
    return JSONResponse(out)


async def what_if(call: ArmCall) -> Response:
    deployment, _, body = await _deployment_of(call, frozenset({"whatIfSettings"}))
    settings = body["properties"].get("whatIfSettings") or {}
    result_format = str(settings.get("resultFormat") or "FullResourcePayloads") if isinstance(settings, dict) else ""
    if result_format.lower() not in ("fullresourcepayloads", "resourceidonly") or (
            isinstance(settings, dict) and set(settings) - {"resultFormat"}):
        raise ArmError("'whatIfSettings' may only name a resultFormat, FullResourcePayloads or ResourceIdOnly.",
                       code="InvalidDeploymentProperties")
    client = RouteClient(call.request)
    changes: list[dict[str, Any]] = []
    for p in deployment.plan:
        try:
            before: dict[str, Any] | None = await client.get(p.id, p.api_version)
        except ResourceFailure as exc:
            if exc.status != 404:
                changes.append({"resourceId": p.id, "changeType": "Unsupported",
                                "unsupportedReason": f"{exc.code}: {exc.message}"})
                continue
            before = None
        try:
            after = {"apiVersion": p.api_version, "id": p.id, "name": p.name.split("/")[-1], "type": p.type,
                     **await deployment.body(p)}
        except TemplateError as exc:
            changes.append({"resourceId": p.id, "changeType": "Create" if before is None else "Unsupported",
                            "unsupportedReason": f"The body depends on a value known only at deployment: "
                                                 f"{exc.message}"})
            continue
        if before is None:
            changes.append({"resourceId": p.id, "changeType": "Create", "after": after})
            continue
        before = {"apiVersion": p.api_version, **before}
        changed = delta(before, {k: v for k, v in after.items() if k not in ("apiVersion", "id", "name", "type")})
        changes.append({"resourceId": p.id, "changeType": "Modify" if changed else "NoChange", "before": before,
                        "after": after, **({"delta": changed} if changed else {})})
    if result_format.lower() == "resourceidonly":
        changes = [{k: v for k, v in c.items() if k not in ("before", "after", "delta")} for c in changes]
    return JSONResponse({"status": "Succeeded", "properties": {"changes": changes}})


def routes(rg: str, in_subscription: tuple[Any, ...]) -> list[Route[ArmCall, Response]]:
    prepare = (*in_subscription, in_group)
    base = f"{rg}/providers/Microsoft.Resources/deployments"
    item = f"{base}/{{deploymentName}}"
    return [
        Route("GET", base, list_deployments, f"{ACTION}/read", group_scope, prepare=prepare),
        Route("GET", item, get_deployment, f"{ACTION}/read", deployment_scope, prepare=prepare),
        Route("PUT", item, put_deployment, f"{ACTION}/write", deployment_scope, prepare=prepare),
        Route("DELETE", item, delete_deployment, f"{ACTION}/delete", deployment_scope, prepare=prepare),
        Route("POST", f"{item}/validate", validate, f"{ACTION}/validate/action", deployment_scope, prepare=prepare,
              other_methods_unserved=True),
        Route("POST", f"{item}/whatIf", what_if, f"{ACTION}/whatIf/action", deployment_scope, prepare=prepare,
              other_methods_unserved=True),
        Route("GET", f"{item}/operations", list_operations, f"{ACTION}/operations/read", deployment_scope,
              prepare=prepare),
        # Azure's spec lists a deployment's operations without `providers/Microsoft.Resources` (az uses this path).
        Route("GET", f"{rg}/deployments/{{deploymentName}}/operations", list_operations, f"{ACTION}/operations/read",
              deployment_scope, prepare=prepare),
        Route("GET", f"{item}/operationStatuses/{{operationId}}", operation_status,
              f"{ACTION}/operationstatuses/read", deployment_scope, prepare=prepare, other_methods_unserved=True),
    ]
