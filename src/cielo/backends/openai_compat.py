"""Forwarding to any OpenAI-compatible engine (vLLM, llama.cpp server, Ollama, another Cielo, Azure).

Non-streamed requests go through backends/http1.py (pooled keep-alive connections and httptools'
parser), which costs about half of aiohttp's CPU per forwarded request (docs/benchmarks.md); streams
go through one pooled aiohttp session per upstream (about a fifth of httpx's CPU, ARCHITECTURE.md).
The upstream's own credential is an API key or a bearer-token provider; the caller's credential is
never forwarded.

Nothing the upstream does is passed on silently (docs/data-plane.md, "When an upstream engine
misbehaves"):
- no connection in `connect_s`: 504 GatewayTimeout; refused or reset: 502;
- no answer in `first_byte_s` (a stream: no first event): Azure's 408 Timeout;
- its 429 stays a 429 with its retry-after, retry-after-ms and x-ratelimit-* headers; its 400 stays a 400;
- anything else that is not an OpenAI answer (HTML, invalid JSON, an empty body, the wrong shape, a 5xx):
  502 UpstreamError saying what came back;
- in a stream, a malformed event, an `{"error": ...}` event, a dropped connection, `idle_s` without an
  event, or the end without `[DONE]`: a BackendError raised to the data plane, which ends the client's
  stream with an error event.
Cancelling the awaiting task (the client left) closes the upstream connection, which engines such as
vLLM and llama.cpp's server take as the signal to stop generating.

Tool calling and structured outputs are the engine's own: `tools`, `tool_choice`, `parallel_tool_calls`,
`functions`, `function_call`, `response_format` and `stream_options` are sent as the client sent them (the
data plane validated them), and the engine's `message.tool_calls` / `function_call` and `delta.tool_calls`
come back as they are (docs/tools-and-structured-outputs.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from cielo.backends.base import (
    BackendError,
    BadUpstreamAnswer,
    UpstreamTimeout,
    UpstreamTimeouts,
    UpstreamUnreachable,
)
from cielo.backends.http1 import ConnectFailed, Http1Pool
from cielo.core import fast_json

TokenProvider = Callable[[], Awaitable[str]]
log = logging.getLogger("cielo.upstream")

ERROR_BODY_LIMIT = 64 * 1024  # of an error answer, enough for any message; the rest is not read
ANSWER_LIMIT = 512 * 1024 * 1024  # of a whole answer (2,048 embeddings of 3,072 floats as JSON are ~150 MB)
PASSED_ON_429 = ("retry-after", "retry-after-ms")


class OpenAICompatBackend:
    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 token_provider: TokenProvider | None = None, timeouts: UpstreamTimeouts | None = None,
                 ssl: Any = None) -> None:
        self._base = base_url.rstrip("/")
        self._model = model
        self._api_key = api_key
        self._token_provider = token_provider
        self._timeouts = timeouts or UpstreamTimeouts()
        # Only the connect phase is left to aiohttp; the first-byte and idle limits are asyncio deadlines
        # around the reads (aiohttp's sock_read cannot tell the wait for an answer from a pause in a stream).
        self._client_timeout = aiohttp.ClientTimeout(total=None, connect=None,
                                                     sock_connect=self._timeouts.connect_s, sock_read=None)
        self._ssl = ssl
        self._session: aiohttp.ClientSession | None = None
        self._pool: Http1Pool | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=256, ssl=self._ssl if self._ssl is not None else True)
            self._session = aiohttp.ClientSession(timeout=self._client_timeout, connector=connector,
                                                  json_serialize=json.dumps)
        return self._session

    async def _headers(self) -> dict[str, str]:
        if self._token_provider is not None:
            return {"Authorization": f"Bearer {await self._token_provider()}"}
        if self._api_key:
            return {"Authorization": f"Bearer {self._api_key}"}
        return {}

    def _url(self, kind: str) -> str:
        return f"{self._base}{_path(kind)}"

    def _http1(self) -> Http1Pool:
        if self._pool is None:
            self._pool = Http1Pool(self._base, ssl=self._ssl, connect_s=self._timeouts.connect_s)
        return self._pool

    async def _send(self, kind: str, payload: dict[str, Any]) -> aiohttp.ClientResponse:
        """The response, once its headers are in (the caller bounds this with the first-byte deadline)."""
        headers = await self._headers()
        return await self._http().post(self._url(kind), json=payload, headers=headers, allow_redirects=False)

    async def complete(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        payload = fast_json.dumps({**body, "model": self._model, "stream": False})
        try:
            async with asyncio.timeout(self._timeouts.first_byte_s):
                answer = await self._http1().post(_path(kind), payload, await self._headers(), limit=ANSWER_LIMIT,
                                                  error_limit=ERROR_BODY_LIMIT)
        except BackendError:
            raise
        except TimeoutError as exc:
            raise UpstreamTimeout(f"The upstream model server did not answer within "
                                  f"{self._timeouts.first_byte_s:g} s.") from exc
        except ConnectFailed as exc:
            if exc.timed_out:
                raise UpstreamUnreachable(f"Could not connect to the upstream model server within "
                                          f"{self._timeouts.connect_s:g} s.", timed_out=True) from exc
            raise UpstreamUnreachable(f"Could not connect to the upstream model server: {exc}.") from exc
        except OSError as exc:
            raise BadUpstreamAnswer(f"The upstream model server failed: {exc}.") from exc
        if answer.status != 200:
            raise _status_error(answer.status, answer.headers, answer.body)
        if answer.truncated:
            raise BadUpstreamAnswer(f"The upstream model server's answer is larger than {ANSWER_LIMIT} bytes.")
        return _check_answer(kind, _json_object(answer.body, answer.content_type))

    async def stream(self, kind: str, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        payload = {**body, "model": self._model, "stream": True}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeouts.first_byte_s
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._send(kind, payload)
        except BackendError:
            raise
        except TimeoutError as exc:
            raise _timeout(exc, self._timeouts) from exc
        except aiohttp.ClientError as exc:
            raise _transport_error(exc) from exc
        started = False
        try:
            if response.status != 200:
                try:
                    async with asyncio.timeout_at(deadline):
                        raw = await response.content.read(ERROR_BODY_LIMIT)
                except (TimeoutError, aiohttp.ClientError):
                    raw = b""
                raise _status_error(response.status, response.headers, raw)
            if response.content_type != "text/event-stream":
                async with asyncio.timeout_at(deadline):
                    raw = await response.content.read(ERROR_BODY_LIMIT)
                _json_object(raw, response.content_type)  # raises for HTML, bad JSON, an empty body
                raise BadUpstreamAnswer(f"The upstream model server answered a streaming request with "
                                        f"{response.content_type or 'no content type'}, not an event stream.")
            async for data in _events(response.content, loop, deadline, self._timeouts.idle_s):
                if data == b"[DONE]":
                    return
                yield _check_chunk(data)
                started = True
            raise BadUpstreamAnswer("The upstream model server ended its stream without [DONE]." if started else
                                    "The upstream model server answered an empty event stream.")
        except BackendError:
            raise
        except TimeoutError as exc:
            if not started:
                raise _timeout(exc, self._timeouts) from exc
            raise UpstreamTimeout(f"The upstream model server sent nothing for {self._timeouts.idle_s:g} s "
                                  "in the middle of its stream.") from exc
        except (aiohttp.ClientError, ValueError) as exc:  # ValueError: aiohttp's "Chunk too big" for a line
            raise BadUpstreamAnswer(f"The upstream model server's stream broke off: {type(exc).__name__}.") from exc
        finally:
            # Not read to its end (an error, or the client left): the connection is closed, not pooled,
            # and the engine sees its client go.
            response.release()

    async def embed(self, inputs: list[str]) -> tuple[list[list[float]], int]:
        result = await self.complete("embeddings", {"input": inputs, "encoding_format": "float"})
        vectors = [d["embedding"] for d in sorted(result["data"], key=lambda d: d["index"])]
        return vectors, int((result.get("usage") or {}).get("prompt_tokens", 0))

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._session is not None:
            await self._session.close()


def _path(kind: str) -> str:
    return f"/{'chat/completions' if kind == 'chat' else kind}"


async def _events(content: aiohttp.StreamReader, loop: asyncio.AbstractEventLoop, deadline: float,
                  idle_s: float) -> AsyncGenerator[bytes, None]:
    """The `data` of each server-sent event (WHATWG HTML §9.2.6: `data:` lines up to a blank line), the
    first one before `deadline`, each next one within `idle_s` of the one before. A TimeoutError past
    either; the end of the body ends the iteration."""
    lines: list[bytes] = []
    while True:
        # The deadline wraps the read only, never the yield: a deadline across a yield would cancel the consumer.
        async with asyncio.timeout_at(deadline):
            line = await content.readline()
        if not line:
            if lines:
                yield b"\n".join(lines)
            return
        line = line.rstrip(b"\r\n")
        if line:
            if line.startswith(b"data:"):
                value = line[5:]
                lines.append(value[1:] if value.startswith(b" ") else value)
            continue  # comments (`:`), `event:`, `id:`, `retry:` carry nothing an OpenAI stream needs
        if lines:
            yield b"\n".join(lines)
            lines = []
            deadline = loop.time() + idle_s


def _json_object(raw: bytes, content_type: str) -> dict[str, Any]:
    """The answer as a JSON object, or a BadUpstreamAnswer naming what came instead."""
    text = raw.strip()
    if not text:
        raise BadUpstreamAnswer("The upstream model server answered with an empty body.")
    if "html" in content_type or text[:1] == b"<":
        _log_body("an HTML page", raw)
        raise BadUpstreamAnswer("The upstream model server answered with an HTML page, not JSON.")
    try:
        data = fast_json.loads(text)
    except (ValueError, RecursionError) as exc:
        _log_body("invalid JSON", raw)
        reason = f" ({exc.msg} at line {exc.lineno} column {exc.colno})" if isinstance(
            exc, json.JSONDecodeError) else ""
        raise BadUpstreamAnswer(f"The upstream model server answered with invalid JSON{reason}.") from exc
    if not isinstance(data, dict):
        raise BadUpstreamAnswer(f"The upstream model server answered with a JSON {type(data).__name__}, "
                                "not an object.")
    return data


def _check_answer(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI answer of this kind: what the data plane reads from it has the type it expects."""
    if isinstance(data.get("error"), dict):
        raise BadUpstreamAnswer(f"The upstream model server answered 200 with an error: {_message(data)}")
    usage = data.get("usage")
    if usage is not None and not (isinstance(usage, dict) and all(
            isinstance(usage.get(k, 0), int) for k in ("prompt_tokens", "completion_tokens", "total_tokens"))):
        raise BadUpstreamAnswer("The upstream model server's answer has a malformed 'usage'.")
    if kind == "embeddings":
        items = data.get("data")
        if not isinstance(items, list) or not all(
                isinstance(d, dict) and isinstance(d.get("index"), int) and isinstance(d.get("embedding"), list)
                for d in items):
            raise BadUpstreamAnswer("The upstream model server's answer is not an embeddings list "
                                    "('data' with an 'index' and an 'embedding' per item).")
        return data
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
        raise BadUpstreamAnswer("The upstream model server's answer has no 'choices'.")
    for choice in choices:
        if kind == "chat" and not isinstance(choice.get("message"), dict):
            raise BadUpstreamAnswer("The upstream model server's chat answer has a choice without a 'message'.")
        if kind == "completions" and not isinstance(choice.get("text"), str):
            raise BadUpstreamAnswer("The upstream model server's completion has a choice without a 'text'.")
    return data


def _check_chunk(data: bytes) -> dict[str, Any]:
    """One event of a stream: a JSON object with a list of choices, or an error to pass on."""
    try:
        chunk = json.loads(data)
    except (ValueError, RecursionError) as exc:
        _log_body("a malformed stream event", data)
        raise BadUpstreamAnswer("The upstream model server sent a malformed event (not JSON) in its stream.") from exc
    if not isinstance(chunk, dict):
        raise BadUpstreamAnswer("The upstream model server sent a stream event that is not a JSON object.")
    if chunk.get("error"):
        raise BadUpstreamAnswer(f"The upstream model server failed in the middle of its stream: {_message(chunk)}")
    choices = chunk.get("choices", [])
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise BadUpstreamAnswer("The upstream model server sent a stream event with malformed 'choices'.")
    return chunk


def _message(data: Any) -> str:
    """The message of an error body in the shapes engines use: OpenAI/Azure `{"error": {"message"}}`,
    vLLM `{"object": "error", "message"}`, Azure's gateway `{"statusCode", "message"}`."""
    if not isinstance(data, dict):
        return ""
    error = data.get("error")
    message = error.get("message") if isinstance(error, dict) else error if isinstance(error, str) else None
    message = message if isinstance(message, str) else data.get("message")
    return message[:500] if isinstance(message, str) else ""


def _status_error(status: int, response_headers: Mapping[str, str], raw: bytes) -> BackendError:
    try:
        data = json.loads(raw) if raw.strip() else None
    except (ValueError, RecursionError):
        data = None
    message = _message(data)
    if status == 429:
        headers = {name: response_headers[name] for name in PASSED_ON_429 if name in response_headers}
        headers.update({name.lower(): value for name, value in response_headers.items()
                        if name.lower().startswith("x-ratelimit-")})
        return BackendError(message or "The upstream model server is rate limiting requests; please retry later.",
                            status=429, code="429", headers=headers)
    if status in (400, 422):
        error = data.get("error") if isinstance(data, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        return BackendError(message or "The upstream model server refused the request as invalid.", status=400,
                            code=code if code == "context_length_exceeded" else "BadRequest",
                            param=error.get("param") if isinstance(error, dict) else None)
    if status == 408:
        return UpstreamTimeout("The upstream model server timed out.")
    if status in (401, 403):
        return BackendError(f"The upstream model server refused Cielo's credential ({status})"
                            f"{': ' + message if message else '.'}", status=502, code="UpstreamAuthenticationFailed")
    if not message:
        _log_body(f"a {status} answer", raw)
    return BadUpstreamAnswer(f"The upstream model server answered {status}{': ' + message if message else '.'}")


def _timeout(exc: BaseException, timeouts: UpstreamTimeouts) -> BackendError:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamUnreachable(f"Could not connect to the upstream model server within {timeouts.connect_s:g} s.",
                                   timed_out=True)
    return UpstreamTimeout(f"The upstream model server did not answer within {timeouts.first_byte_s:g} s.")


def _transport_error(exc: aiohttp.ClientError) -> BackendError:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamUnreachable(f"Could not connect to the upstream model server: {type(exc).__name__}.")
    return BadUpstreamAnswer(f"The upstream model server failed: {type(exc).__name__}.")


def _log_body(what: str, raw: bytes) -> None:
    # The caller gets a description only; the start of the body, for whoever runs Cielo, goes to the log.
    log.warning("upstream answered %s: %r", what, raw[:200])
