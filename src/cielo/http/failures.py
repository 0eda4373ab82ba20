"""Unhandled failures: logged once (redacted), answered with a 500 in the caller's envelope unless the response
had already started (then the connection is closed, and nothing is answered twice).

Shared by the server's surfaces (api/errors.py), the data plane's fast path (api/openai.py) and the host agent
(agent/server.py); each supplies its own 500 answer.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cielo.logging_setup import redact

log = logging.getLogger("cielo")

# The 500 answer for a request, given its scope and the request id to show.
Answer = Callable[[Scope, str], ASGIApp]


def log_failure(scope: Scope, exc: BaseException, request_id: str, *, started: bool) -> None:
    """The traceback, once, through the redaction patterns, with text that cannot be encoded escaped."""
    text = "".join(traceback.format_exception(exc))
    where = f"{scope.get('method', '?')} {scope.get('path', '?')}"
    note = " after the response had started; the connection is closed" if started else ""
    line = redact(f"Unhandled {type(exc).__name__} on {where} (request id {request_id}){note}\n{text}")
    log.error("%s", line.encode("utf-8", "backslashreplace").decode("utf-8"))


def log_denial(scope: Scope, code: str, request_id: str, reason: str) -> None:
    """RBAC's reason for a denial (`Decision.reason`: principal, action, scope and the assignments that did not
    grant it), at debug level, with the request id the answer names. It never holds a token or a secret; the
    line goes through the redaction patterns all the same."""
    if log.isEnabledFor(logging.DEBUG):
        where = f"{scope.get('method', '?')} {scope.get('path', '?')}"
        log.debug("%s", redact(f"{code} on {where} (request id {request_id}): {reason}"))


async def run_guarded(app: ASGIApp, answer: Answer, scope: Scope, receive: Receive, send: Send) -> None:
    """Run `app`; an exception it lets out is logged and, if nothing was sent yet, answered by `answer`."""
    started = False

    async def tracking_send(message: Message) -> None:
        nonlocal started
        if message["type"] == "http.response.start":
            started = True
        await send(message)

    try:
        await app(scope, receive, tracking_send)
    except Exception as exc:
        request_id = str(uuid.uuid4())
        log_failure(scope, exc, request_id, started=started)
        if not started:
            await answer(scope, request_id)(scope, receive, send)


class CatchAll:
    """Pure ASGI middleware around `run_guarded`. Outermost: Starlette's ServerErrorMiddleware would answer in
    plain text and re-raise, so the server would log the traceback a second time, unredacted."""

    def __init__(self, app: ASGIApp, answer: Answer) -> None:
        self.app = app
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await run_guarded(self.app, self.answer, scope, receive, send)
