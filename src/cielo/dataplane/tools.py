"""Validating tool calling and structured-output parameters: `tools`, `tool_choice`, `parallel_tool_calls`, the
legacy `functions` and `function_call`, `response_format`, and the tool messages of a conversation.

Shapes from Azure's 2024-10-21 inference spec (azure-rest-api-specs, specification/cognitiveservices/
data-plane/AzureOpenAI/inference/stable/2024-10-21/inference.json: chatCompletionTool, FunctionObject,
chatCompletionToolChoiceOption, ResponseFormatJsonSchema, chatCompletionRequestMessageTool). Every problem is a
400 naming the parameter. A request with none of these fields costs one set operation on its keys and one look
at each message's role.
"""

from __future__ import annotations

import re
from typing import Any

from cielo.dataplane.wire import bad

FIELDS = frozenset({"tools", "tool_choice", "parallel_tool_calls", "functions", "function_call", "response_format"})
NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
MAX_TOOLS = 128
RESPONSE_FORMATS = ("text", "json_object", "json_schema")


def validate(kind: str, body: dict[str, Any]) -> None:
    if kind != "chat":
        present = sorted(FIELDS.intersection(body) - {"response_format"})
        if present:
            raise bad(f"'{present[0]}' is a parameter of chat completions, not of completions.", present[0])
        return
    if not FIELDS.isdisjoint(body):
        _fields(body)
    for index, message in enumerate(body["messages"]):
        if message.get("role") in ("tool", "function") or "tool_calls" in message or "function_call" in message:
            _message(index, message)


def _fields(body: dict[str, Any]) -> None:
    if body.get("tools") is not None and body.get("functions") is not None:
        raise bad("Use either 'tools' or the deprecated 'functions', not both.", "functions")
    declared: set[str] = set()
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not tools:
            raise bad("'tools' must be a non-empty list of tools.", "tools")
        if len(tools) > MAX_TOOLS:
            raise bad(f"'tools' holds {len(tools)} tools; at most {MAX_TOOLS} are allowed.", "tools")
        for index, tool in enumerate(tools):
            if not isinstance(tool, dict) or tool.get("type") != "function":
                raise bad(f"'tools[{index}].type' must be 'function'.", f"tools[{index}].type")
            declared.add(_function(tool.get("function"), f"tools[{index}].function", declared))
    functions = body.get("functions")
    if functions is not None:
        if not isinstance(functions, list) or not functions:
            raise bad("'functions' must be a non-empty list of functions.", "functions")
        if len(functions) > MAX_TOOLS:
            raise bad(f"'functions' holds {len(functions)} functions; at most {MAX_TOOLS} are allowed.", "functions")
        for index, function in enumerate(functions):
            declared.add(_function(function, f"functions[{index}]", declared))
    _choice(body, "tool_choice", "tools", ("none", "auto", "required"), declared)
    _choice(body, "function_call", "functions", ("none", "auto"), declared)
    if body.get("parallel_tool_calls") is not None:
        if not isinstance(body["parallel_tool_calls"], bool):
            raise bad("'parallel_tool_calls' must be a boolean.", "parallel_tool_calls")
        if tools is None:
            raise bad("'parallel_tool_calls' is only allowed when 'tools' are specified.", "parallel_tool_calls")
    _response_format(body.get("response_format"))


def _function(function: Any, where: str, declared: set[str]) -> str:
    if not isinstance(function, dict):
        raise bad(f"'{where}' must be an object with a 'name'.", where)
    name = function.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise bad(f"'{where}.name' must be 1 to 64 letters, digits, underscores or dashes.", f"{where}.name")
    if name in declared:
        raise bad(f"'{where}.name': the function '{name}' is declared twice.", f"{where}.name")
    if function.get("description") is not None and not isinstance(function["description"], str):
        raise bad(f"'{where}.description' must be a string.", f"{where}.description")
    parameters = function.get("parameters")
    if parameters is not None and (not isinstance(parameters, dict) or parameters.get("type", "object") != "object"):
        raise bad(f"'{where}.parameters' must be a JSON schema of type 'object'.", f"{where}.parameters")
    if function.get("strict") is not None and not isinstance(function["strict"], bool):
        raise bad(f"'{where}.strict' must be a boolean.", f"{where}.strict")
    return name


def _choice(body: dict[str, Any], name: str, needs: str, modes: tuple[str, ...], declared: set[str]) -> None:
    choice = body.get(name)
    if choice is None:
        return
    if body.get(needs) is None:
        raise bad(f"'{name}' is only allowed when '{needs}' are specified.", name)
    if isinstance(choice, str):
        if choice not in modes:
            raise bad(f"'{name}' must be one of {', '.join(repr(m) for m in modes)} or names a function.", name)
        return
    named = choice.get("name") if name == "function_call" and isinstance(choice, dict) else \
        (choice.get("function") or {}).get("name") if isinstance(choice, dict) and choice.get("type") == "function" \
        and isinstance(choice.get("function"), dict) else None
    if not isinstance(named, str):
        shape = '{"name": ...}' if name == "function_call" else '{"type": "function", "function": {"name": ...}}'
        raise bad(f"'{name}' must be one of {', '.join(repr(m) for m in modes)} or {shape}.", name)
    if named not in declared:
        raise bad(f"'{name}' names the function '{named}', which is not among the '{needs}'.", name)


def _response_format(response_format: Any) -> None:
    if response_format is None:
        return
    if not isinstance(response_format, dict) or response_format.get("type") not in RESPONSE_FORMATS:
        raise bad(f"'response_format.type' must be one of {', '.join(RESPONSE_FORMATS)}.", "response_format")
    if response_format["type"] != "json_schema":
        return
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict):
        raise bad("'response_format.json_schema' is required when the type is 'json_schema'.",
                  "response_format.json_schema")
    if not isinstance(spec.get("name"), str) or not NAME.fullmatch(spec["name"]):
        raise bad("'response_format.json_schema.name' is required: 1 to 64 letters, digits, underscores or dashes.",
                  "response_format.json_schema.name")
    if spec.get("schema") is not None and not isinstance(spec["schema"], dict):
        raise bad("'response_format.json_schema.schema' must be a JSON schema object.",
                  "response_format.json_schema.schema")
    if spec.get("strict") is not None and not isinstance(spec["strict"], bool):
        raise bad("'response_format.json_schema.strict' must be a boolean.", "response_format.json_schema.strict")


def _message(index: int, message: dict[str, Any]) -> None:
    where = f"messages[{index}]"
    role = message.get("role")
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise bad(f"'{where}.tool_call_id' is required in a tool message: the id of the call it answers.",
                  f"{where}.tool_call_id")
    if role == "function" and not isinstance(message.get("name"), str):
        raise bad(f"'{where}.name' is required in a function message.", f"{where}.name")
    if message.get("tool_calls") is not None or message.get("function_call") is not None:
        if role != "assistant":
            raise bad(f"'{where}': only assistant messages carry tool calls.", f"{where}.role")
        calls = message.get("tool_calls")
        if calls is not None:
            if not isinstance(calls, list):
                raise bad(f"'{where}.tool_calls' must be a list.", f"{where}.tool_calls")
            for k, call in enumerate(calls):
                at = f"{where}.tool_calls[{k}]"
                if not isinstance(call, dict) or not isinstance(call.get("id"), str):
                    raise bad(f"'{at}.id' is required.", f"{at}.id")
                if call.get("type") != "function":
                    raise bad(f"'{at}.type' must be 'function'.", f"{at}.type")
                _call(call.get("function"), f"{at}.function")
        if message.get("function_call") is not None:
            _call(message["function_call"], f"{where}.function_call")


def _call(function: Any, where: str) -> None:
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise bad(f"'{where}.name' is required.", f"{where}.name")
    if not isinstance(function.get("arguments"), str):
        raise bad(f"'{where}.arguments' must be a string (the arguments as JSON text).", f"{where}.arguments")
