"""The Azure OpenAI operations: validate, admit under quota, run the backend, shape the answer."""

from __future__ import annotations

import base64
import json
import logging
import struct
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from cielo.backends.base import BackendError
from cielo.dataplane import shapes, tokens, tools, wire
from cielo.dataplane.auth import GrantCache
from cielo.dataplane.backends import BackendRegistry
from cielo.dataplane.index import Account, DataPlaneIndex, Deployment
from cielo.dataplane.quota import Admission, QuotaLimiter
from cielo.errors import (
    DataPlaneError,
    DeploymentNotFound,
    EstimateExceedsTokenLimit,
    OperationNotSupported,
    RateLimited,
)
from cielo.observability import metrics

log = logging.getLogger("cielo.dataplane")
OPERATIONS = {"chat": "ChatCompletions_Create", "completions": "Completions_Create", "embeddings": "Embeddings_Create"}
ACTIONS = {
    "chat": "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action",
    "completions": "Microsoft.CognitiveServices/accounts/OpenAI/deployments/completions/action",
    "embeddings": "Microsoft.CognitiveServices/accounts/OpenAI/deployments/embeddings/action",
    "deployments": "Microsoft.CognitiveServices/accounts/OpenAI/deployments/read",
    "models": "Microsoft.CognitiveServices/accounts/OpenAI/models/read",
}
ROUTES = {
    "chat": "POST /openai/deployments/{deployment-id}/chat/completions",
    "completions": "POST /openai/deployments/{deployment-id}/completions",
    "embeddings": "POST /openai/deployments/{deployment-id}/embeddings",
    "deployments": "GET /openai/deployments",
    "models": "GET /openai/models",
}
EMBEDDING_DIMENSIONS = 384
DEFAULT_MAX_TOKENS = 16  # OpenAI's completions default; chat defaults to what is left of the context
PASSTHROUGH = ("max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stop", "presence_penalty",
               "frequency_penalty", "seed", "logprobs", "top_logprobs", "response_format", "logit_bias", "user",
               "tools", "tool_choice", "parallel_tool_calls", "functions", "function_call")


@dataclass
class Answer:
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Stream:
    events: AsyncIterator[bytes]
    headers: dict[str, str]


@dataclass(frozen=True)
class Reservation:
    """What admission charged a request. `inferred` is the part reserved for completions whose length the caller
    left open (chat without max_tokens: the model's context, as Azure infers it); the rest of it goes back to the
    window when the request ends (`DataPlane._settle`)."""

    deployment_key: str
    admission: Admission
    inferred: int = 0


class DataPlane:
    def __init__(self, index: DataPlaneIndex, quota: QuotaLimiter, backends: BackendRegistry,
                 grants: GrantCache | None = None) -> None:
        self.index = index
        self.quota = quota
        self.backends = backends
        self.grants = grants

    # ----------------------------------------------------------------- lookups
    def deployment(self, account: Account, name: str) -> Deployment:
        found = account.deployments.get(name.lower())
        if found is None:
            raise DeploymentNotFound(
                "The API deployment for this resource does not exist. If you created the deployment within the last "
                "5 minutes, please wait a moment and try again.")
        return found

    def _admit(self, deployment: Deployment, kind: str, body: dict[str, Any], api_version: str | None,
               account: Account) -> tuple[dict[str, str], Reservation]:
        default = self.backends.context_per_slot() if kind == "chat" else DEFAULT_MAX_TOKENS
        estimate = tokens.estimate_request(kind, body, default)
        open_ended = kind == "chat" and not (body.get("max_tokens") or body.get("max_completion_tokens"))
        inferred = default * max(int(body.get("n") or 1), 1) if open_ended else 0
        declared = body.get("tools") or body.get("functions")
        if declared:  # the definitions are part of the prompt, as Azure counts them
            estimate += tokens.count(json.dumps(declared))
        admission = self.quota.admit(deployment.key, deployment.rate_limits, estimate)
        if admission.limit == "size":
            raise EstimateExceedsTokenLimit(
                f"Request too large for deployment {deployment.name}: its token estimate is {estimate} (the prompt, "
                f"and max_tokens for every choice of every prompt), more than its whole limit of "
                f"{admission.token_limit} tokens per minute, so it can never be served. Lower max_tokens, n or the "
                "prompt, or raise the deployment's capacity.",
                param="input" if kind == "embeddings" else "max_tokens", error_type="invalid_request_error")
        headers = {"x-ratelimit-remaining-requests": str(admission.remaining_requests),
                   "x-ratelimit-remaining-tokens": str(admission.remaining_tokens)}
        if admission.allowed:
            return headers, Reservation(deployment.key, admission, inferred)
        seconds = max(1, int(admission.retry_after_s + 0.999))
        which = "token rate limit" if admission.limit == "token" else "call rate limit"
        version = f" under Azure OpenAI API version {api_version}" if api_version else ""
        tier = "AIServices" if account.kind == "AIServices" else "OpenAI"
        headers.update({
            "retry-after": str(seconds), "retry-after-ms": str(int(admission.retry_after_s * 1000) or 1000),
            "policy-id": "DeploymentRatelimit-Token" if admission.limit == "token" else "DeploymentRatelimit-Call",
            "x-rate-limit-reset-tokens": str(seconds),
        })
        raise RateLimited(
            f"Requests to the {OPERATIONS[kind]} Operation{version} have exceeded {which} of your current {tier} S0 "
            f"pricing tier. Please retry after {seconds} seconds. Please go here: https://aka.ms/oai/quotaincrease "
            "if you would like to further increase the default rate limit.", headers=headers)

    # ----------------------------------------------------------------- completions and chat
    async def generate(self, account: Account, deployment: Deployment, kind: str, body: dict[str, Any],
                       api_version: str | None) -> Answer | Stream:
        caps = dict(deployment.model.capabilities)
        if caps.get("chatCompletion" if kind == "chat" else "completion") != "true":
            raise OperationNotSupported(f"The {OPERATIONS[kind]} operation does not work with the specified model, "
                                        f"{deployment.model.name}. Please choose different model and try again.")
        (wire.validate_chat if kind == "chat" else wire.validate_completions)(body)
        tools.validate(kind, body)
        headers, reservation = self._admit(deployment, kind, body, api_version, account)
        request = {k: body[k] for k in PASSTHROUGH if body.get(k) is not None}
        if kind == "chat":
            request["messages"] = body["messages"]
        else:
            request["prompt"] = body["prompt"]
            # The backend would otherwise generate until the context is full; OpenAI's default is 16.
            request.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        try:
            # Creating a model's backend can fail too (a model file not installed, an upstream secret not set).
            backend = self.backends.for_model(deployment.model)
        except BackendError as exc:
            raise _from_backend(exc) from exc
        model = deployment.model.name
        started = time.perf_counter()
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            if include_usage:
                request["stream_options"] = {"include_usage": True}
            chunks = backend.stream(kind, request)
            try:
                # A request's own errors (an over-long prompt) come before its first token: answer them
                # with their status, as Azure does, rather than inside a 200 stream.
                first = await anext(chunks, None)
            except BackendError as exc:
                raise _from_backend(exc) from exc
            metrics.generation(deployment.name, None, time.perf_counter() - started, first_token=True)
            return Stream(self._events(first, chunks, kind, model, body, include_usage, reservation,
                                       deployment.name, started), headers)
        try:
            result = await backend.complete(kind, request)
        except BackendError as exc:
            raise _from_backend(exc) from exc
        answer = shapes.finish(kind, result, model, body)
        metrics.generation(deployment.name, answer["usage"], time.perf_counter() - started)
        self._settle(reservation, answer["usage"]["completion_tokens"])
        return Answer(answer, headers)

    def _settle(self, reservation: Reservation, completion_tokens: int) -> None:
        """A request that left its length open gives back what it reserved beyond what it generated (Microsoft:
        "If max_tokens isn't provided, the maximum possible value of the model context size will be inferred for
        the request's quota reservation ... until the request finishes", learn.microsoft.com/answers/questions/
        1381398). A request that named max_tokens is charged its estimate, as Azure's quota page documents."""
        if reservation.inferred:
            used = reservation.admission.charged - reservation.inferred + max(0, completion_tokens)
            self.quota.settle(reservation.deployment_key, reservation.admission, used)

    async def _events(self, first: dict[str, Any] | None, chunks: AsyncGenerator[dict[str, Any], None], kind: str,
                      model: str, body: dict[str, Any], include_usage: bool,
                      reservation: Reservation, deployment: str = "", started: float = 0.0) -> AsyncIterator[bytes]:
        """The SSE events. With `stream_options.include_usage` the usage follows the last choice in a chunk of
        its own: the backend's count or, from a backend that sends none, Cielo's (tiktoken, as for quotas).
        When the stream ends, however it ends, the reservation is settled with what was generated."""
        usage_for = body if include_usage else None
        counting = include_usage or bool(reservation.inferred) or metrics.current() is not None  # metrics: tokens
        stream_id = shapes.new_id(kind)
        created = int(time.time())
        yield shapes.prompt_annotation_event()
        role_sent = kind != "chat"
        usage: dict[str, Any] | None = None
        texts: list[str] = []

        def shaped(raw: dict[str, Any]) -> bytes | None:
            nonlocal role_sent, usage
            if counting:
                usage = raw.get("usage") or usage
                texts.extend(_texts(kind, raw))
            out = shapes.chunk(kind, raw, stream_id, created, model)
            if out is None:
                return None
            if not role_sent and out["choices"]:
                # The first chat chunk names the role, as Azure's do (llama.cpp leaves it out on some paths).
                for choice in out["choices"]:
                    choice["delta"].setdefault("role", "assistant")
                role_sent = True
            return shapes.sse(out)

        try:
            if first is not None:
                event = shaped(first)
                if event is not None:
                    yield event
                async for raw in chunks:
                    event = shaped(raw)
                    if event is not None:
                        yield event
        except BackendError as exc:
            # A fault after the 200 went out: an error event and the end, never [DONE], so that no client
            # takes a cut-off answer for a whole one (the openai SDK raises APIError on an `error` event).
            error = _from_backend(exc)
            yield shapes.error_event(error.code, error.message)
            return
        except Exception:
            log.exception("a %s stream failed", kind)
            yield shapes.error_event("InternalServerError", "The server had an error while processing your request.")
            return
        finally:
            await chunks.aclose()  # a consumer that left stops its generation now, not when collected
            # What was generated: the backend's count, else Cielo's (counted once, for the quota and the usage).
            generated = usage.get("completion_tokens") if isinstance(usage, dict) else None
            completion = generated if isinstance(generated, int) else tokens.count("".join(texts)) if counting else 0
            if reservation.inferred:
                self._settle(reservation, completion)
            metrics.stream_finished(deployment, usage, completion, time.perf_counter() - started,
                                    lambda: tokens.estimate_prompt(kind, body))
        if usage_for is not None:
            if not isinstance(usage, dict):
                usage = {"prompt_tokens": tokens.estimate_prompt(kind, usage_for), "completion_tokens": completion}
            yield shapes.sse(shapes.usage_chunk(kind, usage, stream_id, created, model))
        yield shapes.sse("[DONE]")

    # ----------------------------------------------------------------- embeddings
    async def embeddings(self, account: Account, deployment: Deployment, body: dict[str, Any],
                         api_version: str | None) -> Answer:
        if not deployment.model.is_embedding:
            raise OperationNotSupported(f"The Embeddings_Create operation does not work with the specified model, "
                                        f"{deployment.model.name}. Please choose different model and try again.")
        # Token arrays (cl100k_base ids, as the openai SDK and langchain send) become the text they encode.
        inputs = wire.validate_embeddings(body, EMBEDDING_DIMENSIONS, tokens.encoding().decode)
        headers, _ = self._admit(deployment, "embeddings", body, api_version, account)
        try:
            vectors, used = await self.backends.for_model(deployment.model).embed(inputs)
        except BackendError as exc:
            raise _from_backend(exc) from exc
        as_base64 = body.get("encoding_format") == "base64"
        data = [{"object": "embedding", "index": i,
                 "embedding": _b64(v) if as_base64 else v} for i, v in enumerate(vectors)]
        return Answer({"object": "list", "data": data, "model": deployment.model.name,
                       "usage": {"prompt_tokens": used, "total_tokens": used}}, headers)


def _texts(kind: str, raw: dict[str, Any]) -> list[str]:
    """What a chunk adds to the answer (text, tool-call names and arguments), to count when a backend does not."""
    out: list[str] = []
    for choice in raw.get("choices") or []:
        if kind != "chat":
            out.append(str(choice.get("text") or ""))
            continue
        delta = choice.get("delta") or {}
        out.append(str(delta.get("content") or ""))
        for call in [*(delta.get("tool_calls") or []), *([delta["function_call"]] if delta.get("function_call")
                                                          else [])]:
            function = call.get("function", call) if isinstance(call, dict) else {}
            out.append(str(function.get("name") or "") + str(function.get("arguments") or ""))
    return out


def _b64(vector: list[float]) -> str:
    """Little-endian float32, as the openai client decodes `encoding_format=base64`
    (openai-python's resources/embeddings.py)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def _from_backend(exc: BackendError) -> DataPlaneError:
    error_type = "invalid_request_error" if exc.status == 400 else None
    if exc.status == 429:
        return RateLimited(exc.message, code=exc.code, headers=exc.headers)
    return DataPlaneError(exc.message, code=exc.code, status=exc.status, param=exc.param, error_type=error_type,
                          headers=exc.headers)
