"""`/metrics` (Prometheus text format, protected: docs/monitoring.md) and `/readyz` (readiness)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, PlainTextResponse, Response

router = APIRouter()
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def expected_digest(token: str | None, digest: str | None) -> str | None:
    """The SHA-256 hex digest a caller's bearer token must have: the configured one, else the token's."""
    if digest:
        return digest.strip().lower()
    if token:
        return hashlib.sha256(token.encode()).hexdigest()
    return None


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def may_read_metrics(client_host: str | None, authorization: str | None, digest: str | None) -> bool:
    """Loopback callers may; others present `Bearer <token>` whose SHA-256 matches (compared in constant time)."""
    if is_loopback(client_host):
        return True
    if digest is None or not authorization or authorization[:7].lower() != "bearer ":
        return False
    offered = hashlib.sha256(authorization[7:].strip().encode()).hexdigest()
    return hmac.compare_digest(offered, digest)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    state = request.app.state
    if not may_read_metrics(request.client.host if request.client else None, request.headers.get("authorization"),
                            state.metrics_digest):
        return PlainTextResponse("Unauthorized: /metrics needs a loopback caller or the metrics bearer token.\n",
                                 status_code=401, headers={"WWW-Authenticate": 'Bearer realm="cielo-metrics"'})
    body = await run_in_threadpool(state.metrics.render)
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """200 when every check passes, else 503 naming the failing ones; each check is what this worker sees."""
    checks: dict[str, Callable[[], Any]] = request.app.state.readiness
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            problem = await run_in_threadpool(check)
        except Exception as exc:  # a check that fails is the answer, not a 500
            problem = f"{type(exc).__name__}"
        results[name] = "ok" if not problem else str(problem)
    ready = all(v == "ok" for v in results.values())
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": results},
                        status_code=200 if ready else 503, headers={"Cache-Control": "no-store"})
