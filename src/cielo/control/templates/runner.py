"""Runs a planned deployment: each resource's PUT once its dependencies succeeded, independent ones
concurrently, and a record per resource (ARM's deployment operations)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cielo.control.templates.expressions import TemplateError
from cielo.control.templates.template import Deployment, Planned, ResourceFailure

log = logging.getLogger("cielo.templates")

# How many resource PUTs of one deployment run at once.
CONCURRENCY = 8


class Writer(Protocol):
    async def put(self, resource_id: str, api_version: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]: ...

    async def leftovers(self, keep: set[str]) -> list[tuple[str, str]]:
        """(id, type) of every top-level resource of the deployment's group whose id (lower-case) is not kept."""
        ...

    async def delete(self, resource_id: str, type_: str) -> int: ...


@dataclass
class Operation:
    """One resource's operation in a deployment (`…/deployments/{name}/operations/{id}`)."""

    target: Planned
    provisioning: str = "Create"  # Create, or Delete (a Complete deployment's removal of what it does not name)
    operation_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16].upper())
    state: str = "Running"
    status_code: str | None = None
    error: dict[str, Any] | None = None
    timestamp: str = ""
    duration_s: float = 0.0


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def iso_duration(seconds: float) -> str:
    return f"PT{seconds:.7f}".rstrip("0").rstrip(".") + "S"


_STATUS_NAMES = {200: "OK", 201: "Created", 202: "Accepted", 204: "NoContent", 400: "BadRequest",
                 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 500: "InternalServerError"}


async def run(deployment: Deployment, writer: Writer, operations: list[Operation],
              on_change: Callable[[], None] = lambda: None) -> list[Operation]:
    """PUTs every planned resource in dependsOn order; returns the failed operations (empty: all succeeded).

    A resource whose dependency failed is not attempted (ARM does the same: it is neither created nor reported)."""
    done: dict[str, asyncio.Future[bool]] = {p.id: asyncio.get_running_loop().create_future()
                                             for p in deployment.plan}
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(p: Planned) -> None:
        try:
            await attempt(p)
        finally:  # whatever happened, its dependents must not wait forever
            if not done[p.id].done():
                done[p.id].set_result(False)

    async def attempt(p: Planned) -> None:
        ok = all([await done[d] for d in p.depends_on])
        if not ok:
            done[p.id].set_result(False)
            return
        op = Operation(p, timestamp=now_iso())
        operations.append(op)
        on_change()
        started = time.monotonic()
        async with limit:
            try:
                body = await deployment.body(p)
                status, _ = await writer.put(p.id, p.api_version, body)
                op.state, op.status_code = "Succeeded", _STATUS_NAMES.get(status, str(status))
            except ResourceFailure as exc:
                op.state, op.status_code = "Failed", _STATUS_NAMES.get(exc.status, str(exc.status))
                op.error = {"code": exc.code, "message": exc.message}
            except TemplateError as exc:
                op.state, op.status_code = "Failed", "BadRequest"
                op.error = {"code": "InvalidTemplate", "message": exc.message}
            except Exception:  # a fault of Cielo's: this resource fails, the others go on
                log.exception("template deployment: the operation on %s failed unexpectedly", p.id)
                op.state, op.status_code = "Failed", "InternalServerError"
                op.error = {"code": "InternalServerError", "message": "The operation failed unexpectedly; the "
                            "server's log has the details."}
        op.duration_s = time.monotonic() - started
        op.timestamp = now_iso()
        on_change()
        done[p.id].set_result(op.state == "Succeeded")

    await asyncio.gather(*(one(p) for p in deployment.plan))
    return [op for op in operations if op.state == "Failed"]


async def complete(deployment: Deployment, writer: Writer, operations: list[Operation],
                   on_change: Callable[[], None] = lambda: None) -> list[Operation]:
    """A Complete deployment's last step, once its resources succeeded: every top-level resource of the group the
    template does not name is deleted, as the deploying caller (each DELETE checks `{type}/delete`; a refusal fails
    that operation and the deployment). Returns the failed operations."""
    keep = {p.id.lower() for p in deployment.plan}
    failed: list[Operation] = []
    for resource_id, type_ in await writer.leftovers(keep):
        target = Planned(resource_id, type_, resource_id.rsplit("/", 1)[-1], "", {}, None, None)
        op = Operation(target, provisioning="Delete", timestamp=now_iso())
        operations.append(op)
        on_change()
        started = time.monotonic()
        try:
            status = await writer.delete(resource_id, type_)
            op.state, op.status_code = "Succeeded", _STATUS_NAMES.get(status, str(status))
        except ResourceFailure as exc:
            op.state, op.status_code = "Failed", _STATUS_NAMES.get(exc.status, str(exc.status))
            op.error = {"code": exc.code, "message": exc.message}
            failed.append(op)
        except Exception:  # a fault of Cielo's: this deletion fails, the others go on
            log.exception("template deployment: deleting %s failed unexpectedly", resource_id)
            op.state, op.status_code = "Failed", "InternalServerError"
            op.error = {"code": "InternalServerError", "message": "The deletion failed unexpectedly; the server's "
                        "log has the details."}
            failed.append(op)
        op.duration_s = time.monotonic() - started
        op.timestamp = now_iso()
        on_change()
    return failed
