"""`Microsoft.Resources/deployments` at resource-group and subscription scope: ARM template deployments.

A PUT checks the template (400 InvalidTemplate), answers 201 `Accepted` with an `Azure-AsyncOperation` header, and
runs in the background: every resource of the template is PUT through the same route table as a direct request,
as the deploying caller (with that caller's bearer token, so each resource's RBAC check is the one a direct call
gets), in dependsOn order. `validate` and `whatIf` answer synchronously (200), which az's pollers accept.

Deployment records are kept in the database (store/template_deployments.py), so any worker answers GET, list,
`operationStatuses` and `operations`, and a record outlives a restart. The worker that accepted a deployment runs it
in a background task and refreshes the record's heartbeat; a record left Accepted or Running by a process that is
gone reads as Failed (`_interrupted` says how that is told; docs/templates.md, Records).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cielo.api import arm_reads, arm_versions, insights
from cielo.api.arm_context import ArmCall, read_json_body
from cielo.api.arm_routes import Route
from cielo.control.templates import jsonc, runner
from cielo.control.templates.expressions import TemplateError
from cielo.control.templates.records import (
    DEPLOYMENT_TYPE,
    DeploymentRecordRepo,
    Record,
    StoredDeployment,
    delta,
    execute,
    open_store,
    operation_json,
    record_json,
    template_hash,
)
from cielo.control.templates.template import Deployment, ResourceFailure, Target
from cielo.errors import (
    ArmError,
    CieloError,
    Conflict,
    DeploymentActive,
    DeploymentOperationNotFound,
    InvalidDeploymentMode,
    InvalidDeploymentProperties,
    InvalidTemplate,
    InvalidTemplateDeployment,
    LocationRequired,
    TemplateDeploymentNotFound,
)

ACTION = DEPLOYMENT_TYPE
# What a deployment body may hold; anything else is refused by name (templateLink, parametersLink, debugSetting…).
PROPERTY_KEYS = {"template", "parameters", "mode"}
_NOT_SERVED_CODES = {"InvalidResourceType", "InvalidResourceNamespace"}
# The first wait between two reads of a nested deployment that runs (doubling up to a second).
NESTED_POLL_S = 0.02


# How often the running worker refreshes a record's heartbeat, and how old a heartbeat must be before another
# host's deployment counts as interrupted (its process gone). Same-host owners are checked by process id at once.
HEARTBEAT_S = 5.0
STALE_S = 60.0
_HOST = socket.gethostname()
log = logging.getLogger("cielo.templates")


@dataclass
class Records:
    """This app's view of the deployment records: the store, its owner name, and the deployments it runs."""

    repo: DeploymentRecordRepo
    boot: str = field(default_factory=lambda: uuid.uuid4().hex)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    @property
    def owner(self) -> str:
        return f"{_HOST}:{os.getpid()}:{self.boot}"


def _records(request: Request) -> Records:
    state = request.app.state
    if not hasattr(state, "template_deployments"):
        state.template_deployments = Records(open_store(state.settings.database))
    records: Records = state.template_deployments
    return records


def _alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) is not a probe on Windows: rely on the heartbeat there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _interrupted(records: Records, stored: StoredDeployment, now: float) -> bool:
    """Whether an Accepted or Running record's process is gone. Its owner is `host:pid:boot`: this app's own
    record is interrupted when no task of this app runs it; another app of this host when its process is gone
    (or is this process, whose one app is this one: the process restarted with the same id, as pid 1 of a
    container does); any other when its heartbeat is older than STALE_S."""
    host, _, rest = stored.owner.partition(":")
    pid_text, _, boot = rest.partition(":")
    if boot == records.boot:
        task = records.tasks.get(stored.key)
        return task is None or task.done()
    if host == _HOST and pid_text.isdigit() and (int(pid_text) == os.getpid() or not _alive(int(pid_text))):
        return True
    return now - stored.heartbeat > STALE_S


def _failed_as_interrupted(stored: StoredDeployment) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    message = (f"The Cielo process that ran this deployment ({stored.owner}) stopped before the deployment "
               "finished (a restart or a crash). Resources it had created are kept; deploy again to finish.")
    record = json.loads(json.dumps(stored.record))
    props = record["properties"]
    props["provisioningState"] = "Failed"
    props["duration"] = runner.iso_duration(max(0.0, stored.heartbeat - stored.created_at))
    props["error"] = {"code": "DeploymentFailed", "target": record["id"], "message": "The deployment was "
                      "interrupted.", "details": [{"code": "DeploymentInterrupted", "message": message}]}
    operations = json.loads(json.dumps(stored.operations))
    for op in operations:
        if op["properties"]["provisioningState"] == "Running":
            op["properties"]["provisioningState"] = "Failed"
            op["properties"]["statusMessage"] = {"status": "Failed", "error": {"code": "DeploymentInterrupted",
                                                                                "message": message}}
    return record, operations


def _settled(records: Records, stored: StoredDeployment) -> StoredDeployment:
    """The record as it stands: one whose process is gone is written Failed (once; a live owner's write wins)."""
    now = time.time()
    if not stored.active or not _interrupted(records, stored, now):
        return stored
    record, operations = _failed_as_interrupted(stored)
    log.warning("template deployment %s was left %s by %s, which is gone: it reads as Failed", stored.key,
                stored.state, stored.owner)
    if not records.repo.mark_interrupted(stored, record, operations, now):
        again = records.repo.find(stored.key)
        return stored if again is None else again
    return StoredDeployment(stored.key, stored.name, "Failed", stored.operation_id, record, operations,
                            stored.owner, stored.created_at, now)


def _fields(records: Records, rec: Record, created_at: float) -> dict[str, Any]:
    return {"deployment_id": rec.id, "group_id": rec.id.split("/providers/", 1)[0], "name": rec.name,
            "state": rec.state, "operation_id": rec.operation_id, "record": record_json(rec),
            "operations": [operation_json(rec, op) for op in rec.operations], "owner": records.owner,
            "created_at": created_at, "now": time.time()}


def _save(records: Records, rec: Record, created_at: float) -> None:
    records.repo.save(**_fields(records, rec, created_at))


async def _run(records: Records, rec: Record, writer: RouteClient, created_at: float) -> None:
    """Runs the deployment, writing each change, with the heartbeat refreshed meanwhile."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                records.repo.beat(rec.id, records.owner, time.time())
            except Exception:  # a missed beat is retried; only STALE_S of them reads as interrupted elsewhere
                log.exception("template deployment %s: the heartbeat could not be written", rec.id)

    beating = asyncio.create_task(beat())
    try:
        await execute(rec, writer, lambda r: _save(records, r, created_at))
    finally:
        beating.cancel()


# ----------------------------------------------------------------------------- the resource manager, as the caller
class RouteClient:
    """Reads and writes resources through `cielo.api.arm.serve` with the deploying caller's own token."""

    def __init__(self, request: Request, scope: str = "") -> None:
        self.scope = scope  # the deployment's resource group (what a Complete deployment cleans), or subscription
        self.nested_outputs: set[str] = set()  # what its nested deployments made (a Complete deployment keeps it)
        self.app = request.app
        self.authorization = request.headers.get("authorization", "")
        self.host = request.headers.get("host", "localhost")
        self.correlation = insights.correlation_of(request)  # each write it makes is in the activity log with it

    async def _call(self, method: str, path: str, api_version: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        from cielo.api import arm  # the table's module imports this one for its rows

        raw = b"" if body is None else json.dumps(body).encode()
        scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "root_path": "",
                 "query_string": f"api-version={api_version}".encode(), "scheme": "https", "app": self.app,
                 "server": (self.host, 443), "client": ("127.0.0.1", 0), "http_version": "1.1",
                 "headers": [(b"authorization", self.authorization.encode()), (b"host", self.host.encode()),
                             (b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()),
                             (b"x-ms-correlation-request-id", self.correlation.encode())]}
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        request = Request(scope, receive)
        try:
            answer = await arm.serve(request)
            insights.record_deployment_write(request, answer)
        except ArmError as exc:
            insights.record_deployment_write(request, exc)
            raise ResourceFailure(exc.code, exc.message, exc.status) from exc
        except CieloError as exc:
            insights.record_deployment_write(request, exc)
            raise ResourceFailure("InternalServerError" if exc.status >= 500 else "BadRequest", exc.message,
                                  exc.status) from exc
        content = bytes(answer.body) if answer.body else b""
        parsed = json.loads(content) if content else {}
        return answer.status_code, parsed if isinstance(parsed, dict) else {"value": parsed}

    async def get(self, resource_id: str, api_version: str) -> dict[str, Any]:
        return (await self._call("GET", resource_id, api_version))[1]

    async def post(self, path: str, api_version: str) -> dict[str, Any]:
        return (await self._call("POST", path, api_version))[1]

    async def leftovers(self, keep: set[str]) -> list[tuple[str, str]]:
        """Every top-level resource of the group (as `GET …/resources` lists them, but all of them, whatever the
        caller may read: each deletion is then checked as the caller, so a hidden one fails closed)."""
        parts = self.scope.split("/")
        if len(parts) != 5 or parts[3].lower() != "resourcegroups":
            return []
        service = self.app.state.resource_service
        items = arm_reads.top_level(service.list_resources(subscription_id=parts[2], resource_group=parts[4]), {})
        kept = keep | self.nested_outputs
        return [(r.id, r.type) for r in items if r.id.lower() not in kept]

    async def delete(self, resource_id: str, type_: str) -> int:
        return (await self._call("DELETE", resource_id, _delete_version(type_)))[0]

    async def what_if(self, resource_id: str, api_version: str, body: dict[str, Any]) -> dict[str, Any]:
        return (await self._call("POST", resource_id + "/whatIf", api_version, body))[1]

    async def _nested(self, resource_id: str, api_version: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A nested deployment: PUT as any resource (a deployment of its own, in its group), then followed to its
        end, as ARM does before the resources that depend on it start; its failure is this resource's."""
        status, started = await self._call("PUT", resource_id, api_version, body)
        answer, wait = started, NESTED_POLL_S
        while answer.get("properties", {}).get("provisioningState") in ("Accepted", "Running"):
            await asyncio.sleep(wait)
            wait = min(wait * 2, 1.0)
            answer = await self.get(resource_id, api_version)
        props = answer.get("properties", {})
        if props.get("provisioningState") != "Succeeded":
            error = props.get("error") or {}
            details = "; ".join(f"{d.get('code')}: {d.get('message')}" for d in error.get("details") or [])
            raise ResourceFailure(str(error.get("code") or "DeploymentFailed"), f"The nested deployment "
                                  f"'{resource_id.rsplit('/', 1)[-1]}' failed: {error.get('message')}"
                                  + (f" ({details})" if details else ""), 400)
        self.nested_outputs |= {str(r.get("id", "")).lower() for r in props.get("outputResources") or []}
        return status, answer

    async def put(self, resource_id: str, api_version: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        type_ = _type_of(resource_id)
        if type_.lower() == DEPLOYMENT_TYPE.lower():
            return await self._nested(resource_id, api_version, body)
        try:
            return await self._call("PUT", resource_id, api_version, body)
        except ResourceFailure as exc:
            if exc.code in _NOT_SERVED_CODES or (exc.status == 404 and "not served" in exc.message):
                raise ResourceFailure(exc.code, f"The resource type '{type_}' is not served by this Cielo "
                                      f"({exc.message})", exc.status) from exc
            raise


def _delete_version(type_: str) -> str:
    """An api-version the resource's DELETE route serves: its provider's newest stable one Cielo advertises."""
    return _newest_stable(arm_reads.api_versions_of(type_.split("/", 1)[0]))


def _newest_stable(versions: frozenset[str]) -> str:
    stable = [v for v in arm_versions.newest_first(versions) if "preview" not in v]
    return stable[0] if stable else "2023-01-01"


def _type_of(resource_id: str) -> str:
    """`Namespace/type/child` of an id, read from its last `providers` segment."""
    parts = [p for p in resource_id.split("/") if p]
    at = max(i for i, p in enumerate(parts) if p.lower() == "providers") if any(
        p.lower() == "providers" for p in parts) else -1
    rest = parts[at + 1:]
    return "/".join([rest[0], *rest[1::2]]) if rest else ""


# ----------------------------------------------------------------------------- the request
def scope_id(call: ArmCall) -> str:
    """The deployment's scope: its resource group, or (a subscription deployment) the subscription."""
    group = call.params.get("resourceGroupName")
    return f"/subscriptions/{call.sub.id}" + (f"/resourceGroups/{group}" if group is not None else "")


def deployment_id(call: ArmCall) -> str:
    return f"{scope_id(call)}/providers/{DEPLOYMENT_TYPE}/{call.params['deploymentName']}"


def in_group(call: ArmCall) -> None:
    call.group = call.manager.group(call.sub.id, call.params["resourceGroupName"])


def group_scope(call: ArmCall) -> str:
    return call.group.id if call.group is not None else scope_id(call)


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
    at_subscription = call.group is None
    unknown = sorted(set(body) - {"properties", "tags", "location"} | (
        set(body.get("properties") or {}) - allowed if isinstance(body.get("properties"), dict) else set()))
    if body.get("location") is not None and not at_subscription:
        unknown.append("location")
    shown = [k for k in unknown if not (k in (body.get("properties") or {}) and body["properties"][k] is None)]
    if "templateLink" in shown:
        raise InvalidDeploymentProperties(
            "The deployment property templateLink is not served by this Cielo: it cannot fetch a template from a URL, "
            "and serves no template specs (so a templateLink's relativePath cannot be resolved either). Send the "
            "template inline as 'properties.template' (az's --template-file does).")
    if shown:
        raise InvalidDeploymentProperties(
            f"The deployment properties {', '.join(shown)} are not served by this Cielo (templateLink, "
            "parametersLink, debugSetting and onErrorDeployment are refused rather than ignored).")
    props = body.get("properties")
    if not isinstance(props, dict) or not isinstance(props.get("template"), dict):
        raise InvalidTemplate("The deployment needs 'properties.template', a JSON object.")
    mode = {"incremental": "Incremental", "complete": "Complete"}.get(str(props.get("mode") or "Incremental").lower(),
                                                                     str(props.get("mode")))
    if mode not in ("Incremental", "Complete"):
        raise InvalidDeploymentMode(f"The deployment mode '{mode}' is not valid: it must be Incremental or Complete.")
    if mode == "Complete" and at_subscription:
        raise InvalidDeploymentMode("The deployment mode 'Complete' is not supported at subscription scope; only "
                                    "'Incremental' is (as in Azure).")
    parameters = props.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidTemplate("'properties.parameters' must be a JSON object.")
    if at_subscription:
        location = body.get("location")
        if not isinstance(location, str) or not location.strip():
            raise LocationRequired("The 'location' property must be specified for a deployment at subscription "
                                   f"scope ('{call.params['deploymentName']}'): it is where its record is kept.")
        location = location.replace(" ", "").lower()
        target = Target(call.sub.id, call.sub.display_name, call.sub.tenant_id, None, location, {},
                        call.params["deploymentName"], location)
    else:
        assert call.group is not None
        target = Target(call.sub.id, call.sub.display_name, call.sub.tenant_id, call.group.name,
                        call.group.location or "", dict(call.group.tags or {}), call.params["deploymentName"])
    deployment = Deployment(props["template"], parameters, target, RouteClient(call.request, scope_id(call)), mode)
    try:
        await deployment.prepare()
    except TemplateError as exc:
        where = ""
        if exc.where:
            text = getattr(call.request.state, "deployment_text", "")
            at = jsonc.positions(text).get(f"properties.template.{exc.where}") if text else None
            where = f" (at '{exc.where}', line '{at[0]}' and column '{at[1]}')" if at else f" (at '{exc.where}')"
        raise InvalidTemplate(f"Deployment template validation failed: '{exc.message}'{where}.",
                       target=exc.where) from exc
    return deployment, template_hash(props["template"]), body


def _status_url(call: ArmCall, deployment: str, operation_id: str) -> str:
    base = call.request.app.state.settings.base_url
    version = call.request.query_params.get("api-version", "")
    return f"{base}{deployment}/operationStatuses/{operation_id}?api-version={version}"


def _find(call: ArmCall) -> StoredDeployment | None:
    records = _records(call.request)
    stored = records.repo.find(deployment_id(call))
    return None if stored is None else _settled(records, stored)


def _active(stored: StoredDeployment, doing: str) -> Conflict:
    return DeploymentActive(f"Unable to {doing} deployment '{stored.name}': previous deployment from "
                            f"'{stored.record['properties'].get('timestamp')}' is still active.")


async def put_deployment(call: ArmCall) -> Response:
    records = _records(call.request)
    existing = _find(call)
    if existing is not None and existing.active:
        raise _active(existing, "edit or replace")
    deployment, hashed, body = await _deployment_of(call)
    rec = Record(deployment_id(call), call.params["deploymentName"], deployment, deployment.mode, body.get("tags"),
                 hashed, location=deployment.target.location, correlation_id=insights.correlation_of(call.request))
    created_at = time.time()
    if not records.repo.start(**_fields(records, rec, created_at)):  # another worker accepted it meanwhile
        raced = _find(call)
        raise _active(raced, "edit or replace") if raced is not None else DeploymentActive(
            f"The deployment '{rec.name}' is being replaced by another request.")
    task = asyncio.create_task(_run(records, rec, RouteClient(call.request, scope_id(call)), created_at))
    key = rec.id.lower()
    records.tasks[key] = task
    task.add_done_callback(lambda done: records.tasks.pop(key) if records.tasks.get(key) is done else None)
    return JSONResponse(record_json(rec), status_code=200 if existing else 201,
                        headers={"Azure-AsyncOperation": _status_url(call, rec.id, rec.operation_id)})


def _record(call: ArmCall) -> StoredDeployment:
    stored = _find(call)
    if stored is None:
        raise TemplateDeploymentNotFound(f"Deployment '{call.params['deploymentName']}' could not be found.")
    return stored


async def get_deployment(call: ArmCall) -> Response:
    return JSONResponse(_record(call).record)


async def list_deployments(call: ArmCall) -> Response:
    records = _records(call.request)
    return JSONResponse({"value": [_settled(records, r).record for r in records.repo.in_group(scope_id(call))]})


async def delete_deployment(call: ArmCall) -> Response:
    """Deletes the deployment's record (never its resources, as in ARM); 204 either way, which az's poller ends on."""
    stored = _find(call)
    if stored is not None and stored.active:
        raise DeploymentActive(f"The deployment '{stored.name}' is still active and cannot be deleted.")
    _records(call.request).repo.delete(deployment_id(call))
    return Response(status_code=204)


def forget_group(request: Request, subscription_id: str, group: str) -> int:
    """Deletes the deployment records of a resource group: for the group's DELETE, once the group is gone."""
    return _records(request).repo.delete_group(f"/subscriptions/{subscription_id}/resourceGroups/{group}")


async def operation_status(call: ArmCall) -> Response:
    stored = _record(call)
    if stored.operation_id != call.params["operationId"]:
        raise DeploymentOperationNotFound(f"The operation '{call.params['operationId']}' could not be found.")
    body: dict[str, Any] = {"status": {"Accepted": "Running"}.get(stored.state, stored.state)}
    error = stored.record["properties"].get("error")
    if error is not None:
        body["error"] = error
    return JSONResponse(body)


async def list_operations(call: ArmCall) -> Response:
    return JSONResponse({"value": _record(call).operations})


async def validate(call: ArmCall) -> Response:
    """The template and parameters, then ARM's preflight: the caller's write right on every resource."""
    deployment, hashed, _ = await _deployment_of(call)
    for p in deployment.plan:
        action = f"{p.type}/write"
        if not call.ctx.allowed(action, p.id):
            caller = call.ctx.caller
            raise InvalidTemplateDeployment(
                "The template deployment failed with error: 'Authorization failed for template resource "
                f"'{p.name}' of type '{p.type}'. The client '{caller.display}' with object id "
                f"'{caller.object_id}' does not have permission to perform action '{action}' at scope "
                f"'{p.id}'.'.")
    rec = Record(deployment_id(call), call.params["deploymentName"], deployment, deployment.mode, None, hashed,
                 state="Succeeded", location=deployment.target.location)
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
        raise InvalidDeploymentProperties(
            "'whatIfSettings' may only name a resultFormat, FullResourcePayloads or ResourceIdOnly.")
    client = RouteClient(call.request, scope_id(call))
    changes: list[dict[str, Any]] = []
    for p in deployment.plan:
        if p.type.lower() == DEPLOYMENT_TYPE.lower():
            changes += await _nested_what_if(deployment, client, p)
            continue
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
    if deployment.mode == "Complete":
        changes += await _complete_deletions(client, deployment)
    if result_format.lower() == "resourceidonly":
        changes = [{k: v for k, v in c.items() if k not in ("before", "after", "delta")} for c in changes]
    return JSONResponse({"status": "Succeeded", "properties": {"changes": changes}})


async def _complete_deletions(client: RouteClient, deployment: Deployment) -> list[dict[str, Any]]:
    """What a Complete deployment would delete: the group's top-level resources (those the caller may read, as
    `GET …/resources` answers it) that the template does not name."""
    keep = {p.id.lower() for p in deployment.plan}
    listed = await client.get(f"{client.scope}/resources", _newest_stable(arm_versions.RESOURCES))
    return [{"resourceId": r["id"], "changeType": "Delete", "before": r} for r in listed.get("value") or []
            if isinstance(r, dict) and str(r.get("id", "")).lower() not in keep]


async def _nested_what_if(deployment: Deployment, client: RouteClient, p: Any) -> list[dict[str, Any]]:
    """A nested deployment's changes are its resources' (as ARM's what-if shows them): its own whatIf, as the
    caller; when that cannot be asked (its group is made by this deployment), one Unsupported entry says why."""
    try:
        body = await deployment.body(p)
        answer = await client.what_if(p.id, p.api_version, body)
    except TemplateError as exc:
        return [{"resourceId": p.id, "changeType": "Unsupported", "unsupportedReason": "The nested deployment's "
                 f"body depends on a value known only at deployment: {exc.message}"}]
    except ResourceFailure as exc:
        return [{"resourceId": p.id, "changeType": "Unsupported",
                 "unsupportedReason": f"The nested deployment's changes cannot be computed: {exc.code}: {exc.message}"}]
    nested: list[dict[str, Any]] = answer.get("properties", {}).get("changes") or []
    return nested


def routes(rg: str, in_subscription: tuple[Any, ...]) -> list[Route[ArmCall, Response]]:
    return [*_routes(rg, (*in_subscription, in_group)),
            *_routes(rg.rsplit("/resourceGroups/", 1)[0], in_subscription)]


def _routes(scope: str, prepare: tuple[Any, ...]) -> list[Route[ArmCall, Response]]:
    """The rows at one scope: a resource group (`rg` pattern, the group checked first) or the subscription."""
    rg = scope
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
        Route("GET", f"{item}/operationStatuses/{{operationId}}", operation_status,
              f"{ACTION}/operationstatuses/read", deployment_scope, prepare=prepare, other_methods_unserved=True),
        # Azure's spec lists a group deployment's operations without `providers/Microsoft.Resources` (az uses it).
        *([Route("GET", f"{rg}/deployments/{{deploymentName}}/operations", list_operations,
                 f"{ACTION}/operations/read", deployment_scope, prepare=prepare)] if in_group in prepare else []),
    ]
