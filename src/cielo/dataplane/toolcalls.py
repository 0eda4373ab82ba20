"""Tool calls for a model whose chat template knows no tools (the embedded SmolLM2), and for the mock model.

This is what llama.cpp's "generic" tool-call format does for such models (common/chat.cpp,
`common_chat_params_init_generic`): the tool definitions go into the system message, and the output is
constrained by a JSON schema, which llama.cpp turns into a grammar, so that it always parses:

- `tool_choice` "required" or a named function: `{"tool_call": {"name": <const>, "arguments": <the
  function's parameters schema>}}`, an anyOf over the functions allowed (with `parallel_tool_calls: true`,
  `{"tool_calls": [...]}`, at least one);
- "auto": that, or `{"response": <text, or the response_format schema>}`;
- "none": no tools, no constraint.

The answer is read back into OpenAI's shape: `message.tool_calls` (`call_…` ids, `function.arguments` a JSON
string) and finish_reason "tool_calls", or for the legacy `functions` parameter `message.function_call` and
"function_call". Earlier tool calls and their results are rendered into messages SmolLM2's template knows
(system, user, assistant). Requests were validated by dataplane/tools.py before they get here.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

TOOL_FIELDS = ("tools", "tool_choice", "parallel_tool_calls", "functions", "function_call")
_ALPHABET = string.ascii_letters + string.digits
ENVELOPE = "tool_call_or_response"  # the name of the JSON schema a tool request's output is constrained by
ARGUMENT_PIECE = 48  # characters of `arguments` per stream delta, as OpenAI streams them in fragments


def new_call_id() -> str:
    return "call_" + "".join(secrets.choice(_ALPHABET) for _ in range(24))


@dataclass(frozen=True)
class ToolPlan:
    """How one chat request with tools (or with tool calls in its history) is run on a model without them."""

    request: dict[str, Any]  # the request for the model: messages rendered, tools as a system message + schema
    mode: str = "none"  # "none" (no tools offered), "auto" or "required" (a named function is "required" of one)
    allowed: tuple[str, ...] = ()
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)  # function name → its parameters schema
    parallel: bool = False
    legacy: bool = False
    structured: bool = False  # the "response" branch holds JSON (response_format), returned as JSON text

    @property
    def constrained(self) -> bool:
        return self.mode != "none"


def has_tool_history(messages: Any) -> bool:
    return isinstance(messages, list) and any(
        isinstance(m, dict) and (m.get("role") in ("tool", "function") or m.get("tool_calls") or m.get("function_call"))
        for m in messages)


def plan_for(body: dict[str, Any]) -> ToolPlan | None:
    """None for a request with no tools, no functions and no tool calls in its history (nothing to do)."""
    if "tools" not in body and "functions" not in body and not has_tool_history(body.get("messages")):
        return None
    legacy = body.get("functions") is not None
    if legacy:
        functions = list(body["functions"])
        choice = body.get("function_call") or "auto"
        if isinstance(choice, dict):
            choice = {"type": "function", "function": {"name": choice.get("name")}}
    else:
        functions = [tool["function"] for tool in body.get("tools") or []]
        choice = body.get("tool_choice") or ("auto" if functions else "none")
    parameters = {f["name"]: f.get("parameters") or {"type": "object", "properties": {}} for f in functions}
    request = {k: v for k, v in body.items() if k not in TOOL_FIELDS}
    messages = render_history(body.get("messages") or [])
    if not functions or choice == "none":
        return ToolPlan({**request, "messages": messages})
    if isinstance(choice, dict):
        mode, allowed = "required", (choice["function"]["name"],)
    else:
        mode, allowed = choice, tuple(parameters)
    response_format = body.get("response_format") or {}
    answer_schema: dict[str, Any] = {"type": "string"}
    if response_format.get("type") == "json_schema":
        answer_schema = (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
    elif response_format.get("type") == "json_object":
        answer_schema = {"type": "object"}
    plan = ToolPlan(request, mode, allowed, parameters, parallel=body.get("parallel_tool_calls") is True and not legacy,
                    legacy=legacy, structured=answer_schema.get("type") != "string")
    request["messages"] = _with_tools_prompt(messages, functions, plan)
    request["response_format"] = {"type": "json_schema", "json_schema": {
        "name": ENVELOPE, "strict": True, "schema": envelope_schema(plan, answer_schema)}}
    return plan


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def envelope_schema(plan: ToolPlan, answer_schema: dict[str, Any] | None = None) -> dict[str, Any]:
    calls = [_object({"name": {"const": name}, "arguments": plan.parameters[name]}) for name in plan.allowed]
    call = calls[0] if len(calls) == 1 else {"anyOf": calls}
    forced = _object({"tool_calls": {"type": "array", "items": call, "minItems": 1}} if plan.parallel
                     else {"tool_call": call})
    if plan.mode == "required":
        return forced
    return {"anyOf": [forced, _object({"response": answer_schema or {"type": "string"}})]}


def _with_tools_prompt(messages: list[dict[str, Any]], functions: list[dict[str, Any]],
                       plan: ToolPlan) -> list[dict[str, Any]]:
    offered = [{k: f[k] for k in ("name", "description", "parameters") if k in f}
               for f in functions if f["name"] in plan.allowed]
    key = '"tool_calls": [{"name": ..., "arguments": {...}}, ...]' if plan.parallel else \
        '"tool_call": {"name": ..., "arguments": {...}}'
    text = (f"You can call these tools:\n{json.dumps(offered, ensure_ascii=False)}\n"
            f"Answer in JSON: {{{key}}} to call a tool")
    text += '; or {"response": ...} to answer the user directly.' if plan.mode == "auto" else "."
    if messages and messages[0].get("role") in ("system", "developer") and isinstance(messages[0].get("content"), str):
        return [{"role": "system", "content": f"{messages[0]['content']}\n\n{text}"}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def _arguments(raw: Any) -> Any:
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return raw


def render_history(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Earlier tool calls and their results in messages SmolLM2's template knows: each result becomes a user
    message naming the call it answers (`Result of get_weather({"city": "Paris"}): ...`); an assistant message
    that only made calls is left out (kept, it teaches the model to answer in call JSON even with no tools)."""
    if not has_tool_history(messages):
        return messages
    calls: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant" and (message.get("tool_calls") or message.get("function_call")):
            for call in message.get("tool_calls") or [{"id": "", "function": message["function_call"]}]:
                function = call["function"]
                arguments = json.dumps(_arguments(function.get("arguments")), ensure_ascii=False)
                calls[call["id"]] = f"{function['name']}({arguments})"
            if _text(message):
                out.append({"role": "assistant", "content": _text(message)})
        elif role in ("tool", "function"):
            made = calls.get(message.get("tool_call_id", ""), "") if role == "tool" else \
                calls.get("", message.get("name", ""))
            out.append({"role": "user", "content": f"Result of {made or 'the tool call'}: {_text(message)}"})
        else:
            out.append(message)
    return out


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


# ----------------------------------------------------------------------------- reading the answer back
def choice_from_envelope(plan: ToolPlan, choice: dict[str, Any], value: Any) -> dict[str, Any]:
    """A chat choice (index, finish_reason, message) from the JSON the model answered in."""
    finish = choice.get("finish_reason")
    out: dict[str, Any] = {"index": choice.get("index", 0), "finish_reason": finish, "logprobs": None}
    made = value.get("tool_calls") or [value.get("tool_call")] if isinstance(value, dict) else []
    if made and all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in made):
        calls = [{"id": new_call_id(), "type": "function", "function": {
            "name": c["name"], "arguments": json.dumps(c.get("arguments", {}), ensure_ascii=False,
                                                       separators=(",", ":"))}} for c in made]
        done = finish in (None, "stop")
        if plan.legacy:
            out["message"] = {"role": "assistant", "content": None, "function_call": calls[0]["function"]}
            out["finish_reason"] = "function_call" if done else finish
        else:
            out["message"] = {"role": "assistant", "content": None, "tool_calls": calls}
            out["finish_reason"] = "tool_calls" if done else finish
        return out
    answer = value.get("response", value) if isinstance(value, dict) else value
    text = answer if isinstance(answer, str) and not plan.structured else json.dumps(answer, ensure_ascii=False)
    out["message"] = {"role": "assistant", "content": text}
    return out


def read_choice(plan: ToolPlan, choice: dict[str, Any]) -> dict[str, Any]:
    """The model's constrained JSON as a tool call or an answer. Output cut short by max_tokens does not
    parse: it is returned as it came, with its finish_reason "length", as OpenAI returns truncated JSON."""
    if not plan.constrained:
        return choice
    text = (choice.get("message") or {}).get("content") or ""
    try:
        value = json.loads(text)
    except ValueError:
        return choice
    return choice_from_envelope(plan, choice, value)


def read_answer(plan: ToolPlan, result: dict[str, Any]) -> dict[str, Any]:
    if not plan.constrained:
        return result
    return {**result, "choices": [read_choice(plan, c) for c in result.get("choices") or []]}


def stream_answer(result: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """An answer read back (read_answer) as OpenAI's chunks: per tool call a delta with its index, id, type,
    name and empty arguments, then the arguments in fragments; then the finish_reason; then the usage."""
    for choice in result.get("choices") or []:
        index = choice.get("index", 0)
        message = choice.get("message") or {}

        def delta(d: dict[str, Any], finish: str | None = None, i: int = index) -> dict[str, Any]:
            return {"object": "chat.completion.chunk", "choices": [{"index": i, "delta": d, "finish_reason": finish}]}

        if message.get("tool_calls"):
            for k, call in enumerate(message["tool_calls"]):
                head = {"index": k, "id": call["id"], "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""}}
                yield delta({"role": "assistant", "content": None, "tool_calls": [head]} if k == 0
                            else {"tool_calls": [head]})
                for piece in _pieces(call["function"]["arguments"]):
                    yield delta({"tool_calls": [{"index": k, "function": {"arguments": piece}}]})
        elif message.get("function_call"):
            call = message["function_call"]
            yield delta({"role": "assistant", "content": None,
                         "function_call": {"name": call["name"], "arguments": ""}})
            for piece in _pieces(call["arguments"]):
                yield delta({"function_call": {"arguments": piece}})
        else:
            yield delta({"role": "assistant", "content": message.get("content") or ""})
        yield delta({}, choice.get("finish_reason"))
    if result.get("usage"):
        yield {"object": "chat.completion.chunk", "choices": [], "usage": result["usage"]}


def _pieces(text: str) -> list[str]:
    return [text[i:i + ARGUMENT_PIECE] for i in range(0, len(text), ARGUMENT_PIECE)] or [""]


# ----------------------------------------------------------------------------- sample values (the mock model)
def sample(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """A simple value that satisfies `schema`'s types, required properties, consts and enums (the mock model's
    answers). Whatever a schema holds, this returns a value: malformed parts are taken as "anything"."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 16:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return sample(target, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return sample(schema[key][0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    low = schema.get("minimum")
    low = low if isinstance(low, int | float) and not isinstance(low, bool) else 1
    if kind == "object" or (kind is None and "properties" in schema):
        properties: Any = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required: Any = schema.get("required")
        required = required if isinstance(required, list) else []
        return {name: sample(properties.get(name, {}), root, depth + 1) for name in required if isinstance(name, str)}
    if kind == "array":
        count: Any = schema.get("minItems")
        count = count if isinstance(count, int) else 0
        return [sample(schema.get("items", {}), root, depth + 1) for _ in range(max(0, min(count, 8)))]
    if kind == "integer":
        return max(1, int(low))
    if kind == "number":
        return max(1.0, float(low))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "mock" if kind == "string" else {}
