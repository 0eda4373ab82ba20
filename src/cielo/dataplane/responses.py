"""The Responses API on top of chat completions: a Responses request checked and translated into a chat body,
and a chat answer shaped back into a `response` object.

Shapes from openai-python's types/responses (response.py, response_create_params.py, response_input_item_param.py)
and Azure's example of the preview API (azure-rest-api-specs, specification/cognitiveservices/data-plane/AzureOpenAI/
inference/preview/2025-04-01-preview/examples/responses.json). Only function tools, text and structured output are
served; every other field is refused with a 400 naming it before any quota is charged (dataplane/wire.py's rule).
"""

from __future__ import annotations

import secrets
from typing import Any

from cielo.dataplane.wire import bad, unsupported
from cielo.errors import IntegerBelowMinValue

MIN_OUTPUT_TOKENS = 16  # OpenAI refuses a smaller max_output_tokens ("Expected a value >= 16")
# Fields served as OpenAI documents them.
SERVED = frozenset({"model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "text",
                    "max_output_tokens", "temperature", "top_p", "store", "previous_response_id", "metadata",
                    "stream", "user"})
# Fields accepted only at the value that asks for nothing (what the SDKs send when they mean "not used").
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "truncation": (None, "disabled"), "background": (None, False), "include": (None, []),
    "reasoning": (None, {}), "service_tier": (None, "auto", "default"), "top_logprobs": (None, 0),
    "max_tool_calls": (None,), "prompt": (None,), "conversation": (None,), "prompt_cache_key": (None,),
    "safety_identifier": (None,), "prompt_cache_retention": (None,),
    # Cielo's events carry no `obfuscation` padding: only a request that asks for none is served.
    "stream_options": (None, {}, {"include_obfuscation": False}),
    "prompt_cache_options": (None,), "context_management": (None,)}
# Input items and content parts of the Responses API that Cielo does not serve (refused by name, never dropped).
UNSERVED_ITEMS = ("item_reference", "file_search_call", "computer_call", "computer_call_output", "reasoning",
                  "web_search_call", "image_generation_call", "code_interpreter_call", "local_shell_call",
                  "local_shell_call_output", "mcp_list_tools", "mcp_approval_request", "mcp_approval_response",
                  "mcp_call", "custom_tool_call", "custom_tool_call_output")
UNSERVED_PARTS = ("input_image", "input_file", "input_audio", "refusal")
HOSTED_TOOLS = ("file_search", "web_search", "web_search_preview", "code_interpreter", "computer_use_preview",
                "image_generation", "mcp", "local_shell", "custom")
MAX_METADATA = 16
# `include` values OpenAI's API knows (its includable enum, 2025-03-01-preview's three and later ones): each names
# output Cielo does not produce, so a known one is refused as not served and any other as invalid.
INCLUDABLE = frozenset({"file_search_call.results", "message.input_image.image_url",
                        "computer_call_output.output.image_url", "reasoning.encrypted_content",
                        "message.output_text.logprobs", "code_interpreter_call.outputs",
                        "web_search_call.action.sources", "web_search_call.results"})


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


# ----------------------------------------------------------------------------- the request
def check_include(values: list[str]) -> None:
    """The `include` query parameter of a retrieve or input items request: nothing extra is served."""
    for value in values:
        if value not in INCLUDABLE:
            raise bad(f"Invalid value for 'include': {value[:100]!r} is not one of {', '.join(sorted(INCLUDABLE))}.",
                      "include")
        raise unsupported(f"'include' ({value}) is not supported: Cielo produces none of the extra output it names.",
                          "include", value=True)


def check(body: dict[str, Any]) -> None:
    """Every field of a create request, before anything runs."""
    for name, value in body.items():
        if name in SERVED:
            continue
        if name not in NEUTRAL:
            raise bad(f"Unrecognized request argument supplied: {name}", name)
        if value not in NEUTRAL[name]:
            raise unsupported(f"'{name}' is not supported by this deployment: Cielo serves text, function tools and "
                              f"structured output; leave '{name}' out.", name, value=len(NEUTRAL[name]) > 1)
    if "input" not in body:
        raise bad("Missing required parameter: 'input'.", "input")
    for name in ("instructions", "previous_response_id", "user"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise bad(f"'{name}' must be a string.", name)
    for name in ("store", "stream", "parallel_tool_calls"):
        if body.get(name) is not None and not isinstance(body[name], bool):
            raise bad(f"'{name}' must be a boolean.", name)
    tokens = body.get("max_output_tokens")
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < MIN_OUTPUT_TOKENS):
        raise IntegerBelowMinValue(f"Invalid 'max_output_tokens': it must be an integer of at least "
                                   f"{MIN_OUTPUT_TOKENS}.", "max_output_tokens")
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or len(metadata) > MAX_METADATA or not all(
            isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512 for k, v in metadata.items())):
        raise bad(f"'metadata' must be an object of at most {MAX_METADATA} string values (keys up to 64 characters, "
                  "values up to 512).", "metadata")


def input_items(source: Any) -> list[dict[str, Any]]:
    """The request's `input` as items in the shape the API returns them (each with its id)."""
    if isinstance(source, str):
        return [_message("user", [{"type": "input_text", "text": source}])]
    if not isinstance(source, list) or not source:
        raise bad("'input' must be a string or a non-empty list of items.", "input")
    return [_item(index, item) for index, item in enumerate(source)]


def _message(role: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": new_id("msg"), "type": "message", "role": role, "content": content, "status": "completed"}


def _item(index: int, item: Any) -> dict[str, Any]:
    where = f"input[{index}]"
    if not isinstance(item, dict):
        raise bad(f"'{where}' must be an object.", where)
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        return _message_item(where, item)
    if kind == "function_call":
        for name in ("call_id", "name", "arguments"):
            if not isinstance(item.get(name), str):
                raise bad(f"'{where}.{name}' must be a string.", f"{where}.{name}")
        return {"id": item.get("id") if isinstance(item.get("id"), str) else new_id("fc"), "type": "function_call",
                "call_id": item["call_id"], "name": item["name"], "arguments": item["arguments"],
                "status": "completed"}
    if kind == "function_call_output":
        if not isinstance(item.get("call_id"), str):
            raise bad(f"'{where}.call_id' must be a string.", f"{where}.call_id")
        if not isinstance(item.get("output"), str):
            raise bad(f"'{where}.output' must be a string; this model reads text only.", f"{where}.output")
        return {"id": new_id("fco"), "type": "function_call_output", "call_id": item["call_id"],
                "output": item["output"], "status": "completed"}
    if kind in UNSERVED_ITEMS:
        raise unsupported(f"'{where}.type' {kind!r} is not supported by this deployment: input items are messages, "
                          "function_call and function_call_output.", f"{where}.type", value=True)
    raise bad(f"'{where}.type' {kind!r} is not a known input item type: input items are messages, function_call and "
              "function_call_output.", f"{where}.type")


def _message_item(where: str, item: dict[str, Any]) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "system", "developer", "assistant"):
        raise bad(f"'{where}.role' must be one of 'user', 'system', 'developer' or 'assistant'.", f"{where}.role")
    text_type = "output_text" if role == "assistant" else "input_text"
    content = item.get("content")
    parts: list[dict[str, Any]]
    if isinstance(content, str):
        parts = [{"type": text_type, "text": content}]
    elif isinstance(content, list):
        parts = []
        for number, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") in UNSERVED_PARTS:
                raise unsupported(f"'{where}.content[{number}]' is a {part['type']} part; this deployment reads text "
                                  "only.", f"{where}.content[{number}]", value=True)
            if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text") \
                    or not isinstance(part.get("text"), str):
                raise bad(f"'{where}.content[{number}]' must be a text part (input_text or output_text); this "
                          "model reads text only.", f"{where}.content[{number}]")
            parts.append({"type": part["type"], "text": part["text"]})
    else:
        raise bad(f"'{where}.content' must be a string or a list of text parts.", f"{where}.content")
    if role == "assistant":
        parts = [{**p, "type": "output_text", "annotations": []} for p in parts]
    out = _message(role, parts)
    if isinstance(item.get("id"), str):
        out["id"] = item["id"]
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise bad("'tools' must be a list of tools.", "tools")
    chat = []
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind in HOSTED_TOOLS:
            raise unsupported(f"'{where}.type' {kind!r} is a built-in tool Cielo does not serve; only function tools "
                              "are.", f"{where}.type", value=True)
        if kind != "function" or not isinstance(tool, dict):
            raise bad(f"'{where}.type' must be 'function'.", f"{where}.type")
        if not isinstance(tool.get("name"), str):
            raise bad(f"'{where}.name' must be a string.", f"{where}.name")
        function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
        chat.append({"type": "function", "function": function})
    return chat


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    if isinstance(choice, dict) and choice.get("type") in HOSTED_TOOLS:
        raise unsupported(f"'tool_choice' names the built-in tool {choice['type']!r}, which Cielo does not serve.",
                          "tool_choice", value=True)
    raise bad("'tool_choice' must be 'auto', 'none', 'required' or {\"type\": \"function\", \"name\": …}; built-in "
              "tools are not served.", "tool_choice")


def _response_format(text: Any) -> dict[str, Any] | None:
    if not isinstance(text, dict):
        raise bad("'text' must be an object.", "text")
    extra = sorted(set(text) - {"format", "verbosity"})
    if extra:
        raise bad(f"Unrecognized request argument supplied: text.{extra[0]}", f"text.{extra[0]}")
    if text.get("verbosity") not in (None, "medium"):
        raise unsupported("'text.verbosity' other than 'medium' is not supported.", "text.verbosity", value=True)
    fmt = text.get("format")
    if fmt is None or fmt == {"type": "text"}:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") not in ("json_object", "json_schema"):
        raise bad("'text.format.type' must be 'text', 'json_object' or 'json_schema'.", "text.format.type")
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    if not isinstance(fmt.get("name"), str) or not isinstance(fmt.get("schema"), dict):
        raise bad("'text.format' of type json_schema needs a 'name' and a 'schema' object.", "text.format.schema")
    schema = {k: fmt[k] for k in ("name", "description", "schema", "strict") if fmt.get(k) is not None}
    return {"type": "json_schema", "json_schema": schema}


def chat_body(body: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat request that answers a Responses request whose conversation is `items`."""
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    for item in items:
        if item["type"] == "message":
            # The developer role is the system role of newer models; chat templates of small models know only system.
            role = "system" if item["role"] == "developer" else item["role"]
            messages.append({"role": role, "content": "".join(p["text"] for p in item["content"])})
        elif item["type"] == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                # A message and the calls after it (one response's output) are one assistant turn, as chat has it.
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        else:
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
    chat: dict[str, Any] = {"messages": messages}
    for name in ("temperature", "top_p", "user"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("parallel_tool_calls") is not None and body.get("tools"):
        # Without tools it has nothing to govern (the Responses API takes it so, and echoes it); chat refuses it.
        chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    elif body.get("tools") is not None:
        _tools(body["tools"])
    if body.get("tool_choice") is not None:
        choice = _tool_choice(body["tool_choice"])
        if body.get("tools"):
            chat["tool_choice"] = choice
        elif choice not in ("auto", "none"):
            raise bad("'tool_choice' names a tool, but 'tools' is empty.", "tool_choice")
    if body.get("text") is not None:
        response_format = _response_format(body["text"])
        if response_format is not None:
            chat["response_format"] = response_format
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


# ----------------------------------------------------------------------------- the answer
def text_format(body: dict[str, Any]) -> dict[str, Any]:
    fmt = (body.get("text") or {}).get("format") or {"type": "text"}
    return {"format": fmt}


def skeleton(body: dict[str, Any], response_id: str, created_at: int, model: str) -> dict[str, Any]:
    """A `response` object with the request's fields echoed, as openai-python's Response type reads them (a field
    sent as null echoed as its default: null asks for the default, as leaving the field out does)."""
    def given(name: str, default: Any) -> Any:
        value = body.get(name)
        return default if value is None else value

    return {
        "id": response_id, "object": "response", "created_at": created_at, "status": "in_progress",
        "background": False, "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "max_tool_calls": None, "model": model, "output": [],
        "parallel_tool_calls": given("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"), "reasoning": {"effort": None, "summary": None},
        "service_tier": "default", "store": given("store", True),
        "temperature": given("temperature", 1.0), "text": text_format(body),
        "tool_choice": given("tool_choice", "auto"), "tools": body.get("tools") or [],
        "top_p": given("top_p", 1.0), "truncation": "disabled", "usage": None, "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def usage(chat_usage: dict[str, Any] | None) -> dict[str, Any]:
    used = chat_usage or {}
    prompt, completion = int(used.get("prompt_tokens") or 0), int(used.get("completion_tokens") or 0)
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": prompt + completion}


def finish(response: dict[str, Any], output: list[dict[str, Any]], finish_reason: str | None,
           chat_usage: dict[str, Any] | None) -> dict[str, Any]:
    """`response` completed with its output: "incomplete" when the token limit (or a filter) cut it."""
    reason = {"length": "max_output_tokens", "content_filter": "content_filter"}.get(finish_reason or "")
    response["status"] = "incomplete" if reason else "completed"
    response["incomplete_details"] = {"reason": reason} if reason else None
    response["output"] = output
    response["usage"] = usage(chat_usage)
    return response


def output_items(message: dict[str, Any], finish_reason: str | None) -> list[dict[str, Any]]:
    """A chat answer's message as output items: a `message` with its text, and a `function_call` per tool call."""
    status = "incomplete" if finish_reason in ("length", "content_filter") else "completed"
    items: list[dict[str, Any]] = []
    calls = message.get("tool_calls") or []
    text = message.get("content")
    if text or not calls:
        items.append(text_item(new_id("msg"), text or "", status))
    for call in calls:
        function = call.get("function") or {}
        items.append(call_item(new_id("fc"), str(call.get("id") or new_id("call")), str(function.get("name", "")),
                               str(function.get("arguments") or ""), status))
    return items


def text_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [{"type": "output_text", "text": text, "annotations": []}]
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": content}


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "function_call", "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}
