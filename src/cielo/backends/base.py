"""The interface every model backend implements, and the errors it may raise.

Bodies are OpenAI-shaped dicts (already validated by the data plane); results are OpenAI-shaped
dicts too. The data plane adds Azure's fields (ids, prompt_filter_results, ...) around them.

Cancellation is part of the contract: when the task awaiting `complete`, or iterating `stream`, is
cancelled (its client went away), the backend stops the generation and frees what it held; a request
still waiting for a model slot never starts.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Protocol


class BackendError(Exception):
    """A failure to report to the client in the OpenAI envelope; `headers` go on the response."""

    def __init__(self, message: str, *, status: int = 500, code: str = "InternalServerError",
                 param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.param = param
        self.headers = headers or {}


class ContextLengthExceeded(BackendError):
    def __init__(self, message: str, param: str = "messages") -> None:
        super().__init__(message, status=400, code="context_length_exceeded", param=param)


class UpstreamTimeout(BackendError):
    """The upstream engine did not start its answer in time (or, in a stream, went quiet).

    Azure OpenAI answers a model that takes too long with `408 {"error": {"code": "Timeout", "message":
    "The operation was timeout."}}` (seen in langgenius/dify-official-plugins#2199 and
    QuantumNous/new-api#1565); the openai SDK retries a 408 as it does a 5xx.
    """

    MESSAGE = "The operation was timeout."

    def __init__(self, detail: str = "") -> None:
        super().__init__(f"{self.MESSAGE} {detail}".strip(), status=408, code="Timeout")


class UpstreamUnreachable(BackendError):
    """No connection to the upstream engine: refused or reset (502), or not made in time (504)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message, status=504 if timed_out else 502,
                         code="GatewayTimeout" if timed_out else "UpstreamError")


class BadUpstreamAnswer(BackendError):
    """502: the upstream answered something that is not an OpenAI answer (HTML, bad JSON, an empty body,
    the wrong shape, a 5xx, a stream that breaks off or ends without `[DONE]`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=502, code="UpstreamError")


@dataclass(frozen=True)
class UpstreamTimeouts:
    """How long Cielo waits on an upstream engine (settings `upstream_*_timeout_s`).

    `connect_s`: to open the connection. `first_byte_s`: from sending the request to the start of the
    answer: all of a non-streamed answer (engines send it in one piece when generation ends), the first
    event of a stream. `idle_s`: between two events of a stream.
    """

    connect_s: float = 10.0
    first_byte_s: float = 120.0
    idle_s: float = 60.0


class ModelBackend(Protocol):
    """`kind` is "chat" or "completions"."""

    async def complete(self, kind: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def stream(self, kind: str, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]: ...

    async def embed(self, inputs: list[str]) -> tuple[list[list[float]], int]: ...

    async def close(self) -> None: ...
