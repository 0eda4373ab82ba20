"""`Observe`: a pure ASGI middleware (no BaseHTTPMiddleware: it costs far more) that counts and times every
request by surface and route template, and writes the access log line (docs/monitoring.md).

The route is a template, never the raw path (so names and ids do not multiply the series): FastAPI's route path,
the ARM route table's pattern (the dispatcher notes it in the request state), or for the data plane, whose routes
are matched ahead of FastAPI, the path with its account, deployment and response ids replaced. The access log
names the path without its query string (codes and tokens travel there) and never a header's value except the
request id the answer carries.

A request whose handler left `after_response` in its state (a directory write, api/insights.py) has it called with
the answer's status, headers and body once the answer is sent: what the activity log records of it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cielo.http.surfaces import surface_of
from cielo.observability.metrics import Metrics

access_log = logging.getLogger("cielo.access")
_LINE = "%s %s %s %d %.1fms route=%s request_id=%s caller=%s"
_REQUEST_ID_HEADERS = (b"x-ms-request-id", b"apim-request-id", b"request-id", b"x-request-id")


def dataplane_template(path: str) -> str:
    """`/accounts/a/openai/deployments/d/chat/completions` → `/accounts/{account}/openai/deployments/{deployment}/
    chat/completions`; response ids of the Responses API become `{response_id}`."""
    parts = path.split("/")
    if len(parts) > 1:
        parts[2] = "{account}"
    if len(parts) > 5 and parts[4] == "deployments":
        parts[5] = "{deployment}"
    if "responses" in parts:
        at = parts.index("responses")
        if len(parts) > at + 1 and parts[at + 1]:
            parts[at + 1] = "{response_id}"
    return "/".join(parts)


class Observe:
    def __init__(self, app: ASGIApp, metrics: Metrics, access: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        state = scope.setdefault("state", {})  # shared with the request (Request.state) even if a copy goes on
        answer: list[Any] = [500, None, None]

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer[0] = message["status"]
                answer[1] = message.get("headers")
            elif "after_response" in state:  # a write the activity log records from its answer (rare)
                answer[2] = (answer[2] or b"") + message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            seconds = time.perf_counter() - start
            path: str = scope.get("path", "")
            surface = surface_of(path)
            route = state.get("arm_route")
            if route is None:
                found = scope.get("route")
                if found is not None:
                    route = getattr(found, "path", None)
                elif surface.name == "DATA_PLANE":
                    route = dataplane_template(path)
            method: str = scope.get("method", "")
            status: int = answer[0]
            self.metrics.observe_request(surface.value, route or "unmatched", method, status, seconds)
            after = state.get("after_response")
            if after is not None:  # the activity log's hook (api/insights.py): a list append, never a failure
                try:
                    after(status, answer[1], answer[2] or b"")
                except Exception:
                    logging.getLogger("cielo.activity").exception("activity log: an event could not be recorded")
            if self.access and access_log.isEnabledFor(logging.INFO):
                request_id = ""
                for name, value in answer[1] or ():
                    if name.lower() in _REQUEST_ID_HEADERS:
                        request_id = value.decode("latin-1")
                        break
                client = scope.get("client")
                # makeRecord + handle: what `info` does, less the caller lookup (a stack walk per line).
                caller = state.get("caller_oid")
                access_log.handle(access_log.makeRecord(
                    "cielo.access", logging.INFO, __file__, 0, _LINE,
                    (client[0] if client else "-", method, path, status, seconds * 1000, route or "unmatched",
                     request_id or "-", caller or "-"), None, extra={"access": {
                        "client": client[0] if client else None, "method": method, "path": path,
                        "route": route or "unmatched", "surface": surface.value, "status": status,
                        "duration_ms": round(seconds * 1000, 2), "request_id": request_id or None,
                        "caller": caller}}))
