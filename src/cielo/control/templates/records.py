"""A template deployment's record (what GET shows), its JSON shapes (Azure's `DeploymentExtended`,
`DeploymentOperation`), running it to its end, and what-if's property delta. No I/O of its own: the API keeps
the records (in the database, store/template_deployments.py) and gives the writer and the `save` each change
calls."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cielo.control.templates import runner
from cielo.control.templates.expressions import TemplateError
from cielo.control.templates.template import Deployment, Planned
from cielo.store.template_deployments import DeploymentRecordRepo, StoredDeployment

log = logging.getLogger("cielo.templates")

DEPLOYMENT_TYPE = "Microsoft.Resources/deployments"


@dataclass
class Record:
    """One deployment of a resource group, as GET shows it."""

    id: str
    name: str
    deployment: Deployment
    mode: str
    tags: dict[str, Any] | None
    template_hash: str
    correlation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    operation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: str = "Accepted"
    timestamp: str = field(default_factory=runner.now_iso)
    started: float = field(default_factory=time.monotonic)
    duration_s: float = 0.0
    outputs: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    operations: list[runner.Operation] = field(default_factory=list)
    location: str | None = None  # a subscription deployment's own location

    @property
    def active(self) -> bool:
        return self.state in ("Accepted", "Running")


def open_store(db_path: Path | str) -> DeploymentRecordRepo:
    """The records' store on the server's database (made by its migrations), shared by every worker."""
    return DeploymentRecordRepo.at(db_path)


__all__ = ["DEPLOYMENT_TYPE", "DeploymentRecordRepo", "Record", "StoredDeployment", "delta", "execute",
           "open_store", "operation_json", "record_json", "template_hash"]


def template_hash(template: Any) -> str:
    return str(int.from_bytes(hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()[:8], "big"))


def _providers(plan: list[Planned]) -> list[dict[str, Any]]:
    by_ns: dict[str, list[str]] = {}
    for p in plan:
        namespace, _, rest = p.type.partition("/")
        if rest not in by_ns.setdefault(namespace, []):
            by_ns[namespace].append(rest)
    return [{"namespace": ns, "resourceTypes": [{"resourceType": t} for t in types]} for ns, types in by_ns.items()]


def _ref(p: Planned) -> dict[str, str]:
    return {"id": p.id, "resourceType": p.type, "resourceName": p.name}


def _dependencies(plan: list[Planned]) -> list[dict[str, Any]]:
    by_id = {p.id: p for p in plan}
    return [{**_ref(p), "dependsOn": [_ref(by_id[d]) for d in p.depends_on]} for p in plan if p.depends_on]


def record_json(rec: Record) -> dict[str, Any]:
    d = rec.deployment
    props: dict[str, Any] = {
        "templateHash": rec.template_hash, "parameters": d.shown_parameters(), "mode": rec.mode,
        "provisioningState": rec.state, "timestamp": rec.timestamp, "duration": runner.iso_duration(rec.duration_s),
        "correlationId": rec.correlation_id, "providers": _providers(d.plan), "dependencies": _dependencies(d.plan),
        "outputResources": [{"id": op.target.id} for op in rec.operations
                            if op.state == "Succeeded" and op.provisioning == "Create"],
    }
    if rec.outputs is not None:
        props["outputs"] = rec.outputs
    if rec.error is not None:
        props["error"] = rec.error
    out: dict[str, Any] = {"id": rec.id, "name": rec.name, "type": DEPLOYMENT_TYPE,
                           **({"location": rec.location} if rec.location else {}), "properties": props}
    if rec.tags:
        out["tags"] = rec.tags
    return out


def operation_json(rec: Record, op: runner.Operation) -> dict[str, Any]:
    props: dict[str, Any] = {
        "provisioningOperation": op.provisioning, "provisioningState": op.state, "timestamp": op.timestamp,
        "duration": runner.iso_duration(op.duration_s), "trackingId": rec.correlation_id,
        "targetResource": _ref(op.target),
    }
    if op.status_code is not None:
        props["statusCode"] = op.status_code
    if op.error is not None:
        props["statusMessage"] = {"status": "Failed", "error": op.error}
    return {"id": f"{rec.id}/operations/{op.operation_id}", "operationId": op.operation_id, "properties": props}


async def execute(rec: Record, writer: runner.Writer, save: Callable[[Record], None] = lambda _: None) -> None:
    """Runs the deployment to its end: Succeeded with its outputs, or Failed with an error per failed resource.

    `save` is called as it starts running, whenever an operation starts or ends, and at its end."""
    rec.state = "Running"
    try:
        save(rec)
        failed = await runner.run(rec.deployment, writer, rec.operations, lambda: save(rec))
        if not failed and rec.mode.lower() == "complete":
            failed = await runner.complete(rec.deployment, writer, rec.operations, lambda: save(rec))
        if failed:
            rec.error = {"code": "DeploymentFailed", "target": rec.id,
                         "message": "At least one resource deployment operation failed. Please list deployment "
                                    "operations for details.",
                         "details": [{**(op.error or {}), "target": op.target.id} for op in failed]}
            rec.state = "Failed"
        else:
            try:
                rec.outputs = await rec.deployment.outputs()
                rec.state = "Succeeded"
            except TemplateError as exc:
                rec.error = {"code": "DeploymentFailed", "target": rec.id, "message": "The template outputs could "
                             "not be evaluated.", "details": [{"code": "InvalidTemplate", "message": exc.message}]}
                rec.state = "Failed"
    except Exception:  # the deployment must end in a state, whatever went wrong
        log.exception("template deployment %s failed unexpectedly", rec.id)
        rec.error = {"code": "InternalServerError", "message": f"The deployment failed unexpectedly (correlation id "
                     f"{rec.correlation_id}).", "target": rec.id}
        rec.state = "Failed"
    rec.duration_s = time.monotonic() - rec.started
    save(rec)


def delta(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """What would change: the properties the template sets, compared with the resource as it is."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[dict[str, Any]] = []
        for key, value in after.items():
            sub = f"{path}.{key}" if path else key
            if key not in before:
                out.append({"path": sub, "propertyChangeType": "Create", "after": value})
            else:
                out += delta(before[key], value, sub)
        return out
    if before == after:
        return []
    return [{"path": path, "propertyChangeType": "Modify", "before": before, "after": after}]
