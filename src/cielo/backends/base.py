"""The interface every model backend implements, and the errors it may raise.

Bodies are OpenAI-shaped dicts (already validated by the data plane); results are OpenAI-shaped
dicts too. The data plane adds Azure's fields (ids, prompt_filter_results, ...) around them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol


class BackendError(Exception):
    """A failure to report to the client in the OpenAI envelope."""

    def __init__(self, message: str, *, status: int = 500, code: str = "InternalServerError",
                 param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.param = param


class ContextLengthExceeded(BackendError):
    def __init__(self, message: str, param: str = "messages") -> None:
        super().__init__(message, status=400, code="context_length_exceeded", param=param)


class ModelBackend(Protocol):
    """`kind` is "chat" or "completions"."""

    async def complete(self, kind: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def stream(self, kind: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]: ...

    async def embed(self, inputs: list[str]) -> tuple[list[list[float]], int]: ...

    async def close(self) -> None: ...
