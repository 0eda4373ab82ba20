"""A chat completions stream retold as the Responses API's event stream.

The events and their order, as openai-python's types/responses/*_event.py type them and its
lib/streaming/responses accumulates them: response.created, response.in_progress; per output item
response.output_item.added, then for a message response.content_part.added, response.output_text.delta…,
response.output_text.done, response.content_part.done, and for a function call
response.function_call_arguments.delta…, response.function_call_arguments.done; response.output_item.done;
and last response.completed (response.incomplete when max_output_tokens cut the answer). Each is one SSE event
with an `event:` line naming its type and a `sequence_number` counting from 0.

A stream that fails after it started ends with an `error` event and response.failed, never with
response.completed, so that no client takes a cut-off answer for a whole one.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cielo.dataplane import responses


@dataclass
class _Call:
    item: dict[str, Any]
    index: int  # its place in `output`


@dataclass
class Retold:
    """What the stream said, for storing once it completed."""

    response: dict[str, Any] | None = None  # the final response object; None when the stream failed or was left
    sequence: int = 0
    output: list[dict[str, Any]] = field(default_factory=list)


def _parse(chunk: bytes) -> Any:
    """One event of DataPlane's chat stream (`data: …\\n\\n`, one per chunk, dataplane/shapes.py `sse`)."""
    text = chunk.decode().strip()
    if not text.startswith("data:"):
        return None
    data = text[5:].strip()
    return data if data == "[DONE]" else json.loads(data)


class Teller:
    """Turns chat chunks into Responses events, keeping the output it has told so far."""

    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response
        self.retold = Retold()
        self._text: dict[str, Any] | None = None  # the message item being written
        self._text_index = 0
        self._calls: dict[int, _Call] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None

    def event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.retold.sequence, **fields}
        self.retold.sequence += 1
        return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()

    def start(self) -> list[bytes]:
        return [self.event("response.created", response=copy.deepcopy(self.response)),
                self.event("response.in_progress", response=copy.deepcopy(self.response))]

    def chunk(self, data: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        if data.get("usage"):
            self.usage = data["usage"]
        for choice in data.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                out += self._text_delta(delta["content"])
            for call in delta.get("tool_calls") or []:
                out += self._call_delta(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    def _open_text(self) -> tuple[dict[str, Any], list[bytes]]:
        if self._text is not None:
            return self._text, []
        text = self._text = responses.text_item(responses.new_id("msg"), None, "in_progress")
        self._text_index = len(self.retold.output)
        self.retold.output.append(text)
        added = self.event("response.output_item.added", output_index=self._text_index, item=copy.deepcopy(text))
        text["content"] = [{"type": "output_text", "text": "", "annotations": []}]
        part = self.event("response.content_part.added", item_id=text["id"], output_index=self._text_index,
                          content_index=0, part={"type": "output_text", "text": "", "annotations": []})
        return text, [added, part]

    def _text_delta(self, text: str) -> list[bytes]:
        item, out = self._open_text()
        item["content"][0]["text"] += text
        out.append(self.event("response.output_text.delta", item_id=item["id"], output_index=self._text_index,
                              content_index=0, delta=text, logprobs=[]))
        return out

    def _call_delta(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        position = int(call.get("index") or 0)
        function = call.get("function") or {}
        known = self._calls.get(position)
        if known is None:
            item = responses.call_item(responses.new_id("fc"), str(call.get("id") or responses.new_id("call")),
                                       str(function.get("name") or ""), "", "in_progress")
            known = self._calls[position] = _Call(item, len(self.retold.output))
            self.retold.output.append(item)
            out.append(self.event("response.output_item.added", output_index=known.index, item=copy.deepcopy(item)))
        arguments = function.get("arguments")
        if arguments:
            known.item["arguments"] += arguments
            out.append(self.event("response.function_call_arguments.delta", item_id=known.item["id"],
                                  output_index=known.index, delta=arguments))
        return out

    def end(self) -> list[bytes]:
        """The closing events of every open item, then response.completed (or response.incomplete)."""
        out: list[bytes] = []
        status = "incomplete" if self.finish_reason in ("length", "content_filter") else "completed"
        if self._text is None and not self._calls:
            # Nothing was said: an empty message, as a non-streamed answer has one.
            out += self._open_text()[1]
        if self._text is not None:
            text = self._text["content"][0]["text"]
            part = {"type": "output_text", "text": text, "annotations": []}
            out.append(self.event("response.output_text.done", item_id=self._text["id"],
                                  output_index=self._text_index, content_index=0, text=text, logprobs=[]))
            out.append(self.event("response.content_part.done", item_id=self._text["id"],
                                  output_index=self._text_index, content_index=0, part=part))
            self._text["status"] = status
            out.append(self.event("response.output_item.done", output_index=self._text_index,
                                  item=copy.deepcopy(self._text)))
        for known in self._calls.values():
            item = known.item
            out.append(self.event("response.function_call_arguments.done", item_id=item["id"],
                                  output_index=known.index, name=item["name"], arguments=item["arguments"]))
            item["status"] = status
            out.append(self.event("response.output_item.done", output_index=known.index, item=copy.deepcopy(item)))
        final = responses.finish(self.response, self.retold.output, self.finish_reason, self.usage)
        self.retold.response = final
        kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        out.append(self.event(kind, response=copy.deepcopy(final)))
        return out

    def fail(self, code: str, message: str) -> list[bytes]:
        failed = {**copy.deepcopy(self.response), "status": "failed", "output": self.retold.output,
                  "error": {"code": "server_error", "message": message}}
        return [self.event("error", code=code, message=message, param=None),
                self.event("response.failed", response=failed)]


async def retell(chat_events: AsyncIterator[bytes], response: dict[str, Any],
                 on_complete: Callable[[dict[str, Any]], Awaitable[None]]) -> AsyncIterator[bytes]:
    """The Responses events of one chat stream; `on_complete` gets the final response once it has one."""
    teller = Teller(response)
    for event in teller.start():
        yield event
    try:
        async for raw in chat_events:
            data = _parse(raw)
            if data is None:
                continue
            if data == "[DONE]":
                for event in teller.end():
                    yield event
                assert teller.retold.response is not None
                await on_complete(teller.retold.response)
                return
            if isinstance(data, dict) and isinstance(data.get("error"), dict):
                error = data["error"]
                for event in teller.fail(str(error.get("code")), str(error.get("message"))):
                    yield event
                return
            for event in teller.chunk(data):
                yield event
    finally:
        close = getattr(chat_events, "aclose", None)
        if close is not None:
            await close()  # a consumer that left stops its generation now
