"""Validating Azure OpenAI request bodies against Azure's published inference specs
(Azure/azure-rest-api-specs, specification/cognitiveservices/data-plane/AzureOpenAI/inference; the
extracts Cielo is tested against are in tests/contract/specs), per route and api-version.

Every problem is a 400 in Azure's envelope naming the parameter (`param`), before any quota is
charged or any model runs. A field no spec of the request's api-version defines is refused as Azure
refuses it ("Unrecognized request argument supplied: X"); a defined field Cielo does not honour is
refused with `unsupported_parameter` (or `unsupported_value` where only its default is honoured),
never accepted and ignored. docs/data-plane.md has the table of every field.

The checks are a few dict look-ups and type tests per field present: they run on every request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cielo.errors import (
    DataPlaneError,
    InvalidRequestError,
    InvalidValue,
    RequestBodyTooLarge,
    UnsupportedParameter,
    UnsupportedValue,
)

ROLES = frozenset({"system", "user", "assistant", "tool", "function", "developer"})
MAX_EMBEDDING_INPUTS = 2048
FIRST_DEVELOPER_VERSION = "2024-12-01-preview"  # the first inference spec whose messages may be `developer`
# The fields a second helper module validates and serves (tool calls, structured output, stream usage); they are
# known on every api-version here and checked there.
SERVED_ELSEWHERE = frozenset({"tools", "tool_choice", "parallel_tool_calls", "functions", "function_call",
                              "response_format", "stream_options"})
_SAMPLING = frozenset({"model", "temperature", "top_p", "n", "stream", "stop", "max_tokens", "presence_penalty",
                       "frequency_penalty", "logit_bias", "user"})
# The request fields each spec defines (`model` too: the openai SDK always sends it).
_CHAT_2023 = _SAMPLING | SERVED_ELSEWHERE | {"messages"}
_CHAT_GA = _CHAT_2023 | {"data_sources", "logprobs", "top_logprobs", "seed", "max_completion_tokens"}
_CHAT_PREVIEW = _CHAT_GA | {"store", "metadata", "reasoning_effort", "modalities", "prediction", "audio",
                            "user_security_context"}
_COMPLETIONS_2023 = _SAMPLING | {"prompt", "logprobs", "suffix", "echo", "best_of", "completion_config",
                                 "cache_level", "stream_options"}
_COMPLETIONS_GA = _SAMPLING | {"prompt", "logprobs", "suffix", "echo", "best_of", "seed", "stream_options"}
_EMBEDDINGS = frozenset({"model", "input", "user", "input_type", "encoding_format", "dimensions"})
_OLD = frozenset({"2022-12-01", "2023-05-15"})
# Defined fields Cielo does not honour, with the values that ask for nothing (the spec's defaults): any other
# value is refused. On Your Data (`data_sources`) is not served at all.
NOT_SERVED: dict[str, tuple[Any, ...]] = {
    "data_sources": (None,), "suffix": (None,), "completion_config": (None,),
    "cache_level": (None,), "input_type": (None,), "store": (None, False), "metadata": (None,),
    "reasoning_effort": (None,), "modalities": (None, ["text"]), "prediction": (None,), "audio": (None,),
    "user_security_context": (None,),
}


def bad(message: str, param: str | None = None) -> DataPlaneError:
    return InvalidRequestError(message, param)


def too_large(limit: int) -> DataPlaneError:
    """413 for a body over `limit` bytes, raised while it streams in (before it is held or parsed)."""
    return RequestBodyTooLarge(f"The request body is larger than {limit} bytes.")


def too_deep(max_depth: int) -> DataPlaneError:
    return bad(f"The request body nests arrays and objects deeper than {max_depth} levels.")


class NotJsonNumber(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise NotJsonNumber(name)


_DECODER = json.JSONDecoder(parse_constant=_no_constant)  # json.loads(raw) with it, less a decoder per call


def parse_body(raw: bytes) -> dict[str, Any]:
    """A JSON object. The caller has bounded `raw` (size, and nesting with a byte scan); RecursionError is
    still answered as a 400 rather than a 500, should text nested past Python's limit ever get here.

    Text that is not Unicode (a UTF-16 surrogate without its pair: `json.loads` makes one of an unpaired
    `\\ud800` escape, or of the bytes ED A0 80) is refused: no tokenizer, upstream or echo could encode it. So are
    `NaN`, `Infinity` and `-Infinity`, which `json.loads` accepts but JSON (RFC 8259) does not have: passed on
    to an upstream they would be written as `null` (core/fast_json.py)."""
    try:
        body = _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass")) if raw.strip() else None
    except NotJsonNumber as exc:
        raise bad(f"The request body is not valid JSON: {exc} is not a JSON number.") from exc
    except json.JSONDecodeError as exc:
        raise bad(f"The request body is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno}).") from exc
    except ValueError as exc:  # e.g. bytes that are not UTF-8
        raise bad("The request body is not valid JSON text.") from exc
    except RecursionError as exc:
        raise bad("The request body nests arrays and objects too deeply.") from exc
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object.")
    if _may_hold_surrogates(raw) and lone_surrogate_in(body):
        raise bad("The request body holds a UTF-16 surrogate (\\ud800 to \\udfff) without its pair, which is "
                  "not Unicode text.")
    return body


def _may_hold_surrogates(raw: bytes) -> bool:
    """False when `json.loads` cannot have made a surrogate of `raw`: text with neither an escape (a backslash),
    nor the lead byte ED of a surrogate encoded as UTF-8, nor a NUL (JSON in UTF-16 or UTF-32 has one in every
    ASCII character, its brackets and quotes; JSON in UTF-8 never has one). Three memchr passes."""
    return b"\\" in raw or b"\xed" in raw or b"\x00" in raw


_SCALARS = frozenset({int, float, bool, type(None)})


def lone_surrogate_in(value: Any) -> bool:
    """Whether a parsed JSON value holds a surrogate code point in a string or a key. `json.loads` joins a valid
    escaped pair into one code point, so any surrogate left is a lone one.

    Its cost follows the number of containers, not the bytes: a list of numbers is passed by the set of its
    types, strings (a list's, or an object's keys) are joined and checked at once: ASCII text in O(1) (`isascii`
    reads a flag), other text by CPython's strict UTF-32 encoder, the fastest strict one (~1 ns a code point)
    and, like every strict UTF encoder, one that refuses surrogates. Joining cannot make a pair of two halves:
    a str holds code points, and the encoder refuses each."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            if not _encodable(item):
                return True
        elif kind is dict:
            if not _encodable("".join(item)):
                return True
            stack.extend(item.values())
        elif kind is list:
            kinds = set(map(type, item))
            if kinds == {str}:
                if not _encodable("".join(item)):
                    return True
            elif not kinds <= _SCALARS:
                stack.extend(item)
    return False


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-32-le")
    except UnicodeEncodeError:
        return False
    return True


def known_fields(kind: str, version: str | None) -> frozenset[str]:
    """The request fields the spec of `version` defines for `kind` (None: the v1 routes, which follow the
    newest preview)."""
    if kind == "embeddings":
        return _EMBEDDINGS
    if kind == "chat":
        if version is None or version.endswith("-preview"):
            return _CHAT_PREVIEW
        return _CHAT_2023 if version in _OLD else _CHAT_GA
    return _COMPLETIONS_2023 if version in _OLD else _COMPLETIONS_GA


def check_version(kind: str, body: dict[str, Any], version: str | None, *, developer: bool = True) -> None:
    """What depends on the api-version: the fields its spec defines, and whether messages may be `developer`.
    `developer=False` says the body cannot hold that role (the route saw neither the word nor an escape in
    its bytes), which spares looking at every message."""
    known = known_fields(kind, version)
    if not known.issuperset(body):
        names = sorted(body.keys() - known)
        plural = "s" if len(names) > 1 else ""
        raise bad(f"Unrecognized request argument{plural} supplied: {', '.join(names)}", names[0])
    if kind == "completions" and version in _OLD and "prompt" not in body:
        # Optional before 2024 ("if a prompt is not specified the model will generate as if from the beginning
        # of a new document"), required since: the default is set here, the required check is validate's.
        body["prompt"] = None
    if developer and kind == "chat" and version is not None and version < FIRST_DEVELOPER_VERSION:
        messages = body.get("messages")
        if type(messages) is list:
            for index, message in enumerate(messages):
                if type(message) is dict and message.get("role") == "developer":
                    raise bad(f"'messages[{index}].role' 'developer' is not supported in api-version {version}; "
                              f"it needs {FIRST_DEVELOPER_VERSION} or later.", f"messages[{index}].role")


def unsupported(message: str, param: str, *, value: bool = False) -> DataPlaneError:
    return (UnsupportedValue if value else UnsupportedParameter)(message, param)


# ----------------------------------------------------------------------------- one check per field
# Each request's fields are checked by looking each of its own keys up in its route's table: a body of five
# fields costs five look-ups and calls, whatever the number of fields a spec defines. A null is the field left
# out, as in OpenAI's API.
Check = Callable[[str, Any], None]


def _integer(low: int, high: int) -> Check:
    def check(name: str, value: Any) -> None:
        if type(value) is not int:
            raise bad(f"'{name}' must be an integer, not {type(value).__name__}.", name)
        if not low <= value <= high:
            raise InvalidValue(f"'{name}' must be between {low} and {high}; got {value}.", name)
    return check


def _real(low: float, high: float) -> Check:
    def check(name: str, value: Any) -> None:
        kind = type(value)
        if kind is not float and kind is not int:
            raise bad(f"'{name}' must be a number, not {kind.__name__}.", name)
        if not low <= value <= high:  # NaN too
            raise InvalidValue(f"'{name}' must be between {low:g} and {high:g}; got {value}.", name)
    return check


def _boolean(name: str, value: Any) -> None:
    if type(value) is not bool:
        raise bad(f"'{name}' must be a boolean.", name)


def _text(name: str, value: Any) -> None:
    if type(value) is not str:
        raise bad(f"'{name}' must be a string.", name)


def _object(name: str, value: Any) -> None:
    if type(value) is not dict:
        raise bad(f"'{name}' must be an object.", name)


def _stop(name: str, value: Any) -> None:
    if type(value) is not str and (
            type(value) is not list or not 1 <= len(value) <= 4 or any(type(s) is not str for s in value)):
        raise bad("'stop' must be a string or a list of 1 to 4 strings.", name)


def _logit_bias(name: str, bias: Any) -> None:
    """A map of token ids (decimal strings) to integers from -100 to 100."""
    if type(bias) is not dict:
        raise bad("'logit_bias' must be an object mapping token ids to integers.", name)
    for token, value in bias.items():
        if not token.isdecimal() or type(value) is not int or not -100 <= value <= 100:
            raise bad(f"'logit_bias' maps token ids to integers from -100 to 100; got {json.dumps(token)}: "
                      f"{json.dumps(value)}.", name)


def _not_served(defaults: tuple[Any, ...]) -> Check:
    def check(name: str, value: Any) -> None:
        if value in defaults:
            return
        if name == "data_sources":
            raise unsupported("'data_sources' (Azure OpenAI On Your Data) is not served by this deployment.", name)
        shown = " or ".join(json.dumps(d) for d in (None, *defaults))
        raise unsupported(f"Unsupported parameter: '{name}' is not supported by this deployment; only {shown} is "
                          "accepted.", name, value=bool(defaults))
    return check


_INT64 = 2**63 - 1
_SERVED_CHECKS: dict[str, Check] = {
    "model": _text, "max_tokens": _integer(0, _INT64), "temperature": _real(0, 2), "top_p": _real(0, 1),
    "n": _integer(1, 128), "presence_penalty": _real(-2, 2), "frequency_penalty": _real(-2, 2),
    "seed": _integer(-(2**63), _INT64), "stream": _boolean, "user": _text, "stop": _stop, "logit_bias": _logit_bias,
    # Served by the tools module, which checks the rest; the data plane reads `include_usage` of an object.
    "stream_options": _object,
}
_REFUSED = {name: _not_served(tuple(d for d in defaults if d is not None)) for name, defaults in NOT_SERVED.items()}
CHAT_CHECKS: dict[str, Check] = {**_SERVED_CHECKS, **_REFUSED, "max_completion_tokens": _integer(0, _INT64),
                                 "logprobs": _boolean, "top_logprobs": _integer(0, 20)}
COMPLETIONS_CHECKS: dict[str, Check] = {**_SERVED_CHECKS, **_REFUSED, "logprobs": _integer(0, 5), "echo": _boolean,
                                        "best_of": _integer(0, 20)}
EMBEDDINGS_CHECKS: dict[str, Check] = {"model": _text, "user": _text, **_REFUSED}


def _fields(body: dict[str, Any], checks: dict[str, Check]) -> None:
    for name, value in body.items():
        if value is not None:
            check = checks.get(name)
            if check is not None:
                check(name, value)


_REQUIRED_CONTENT = frozenset({"system", "user", "developer"})


def validate_chat(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if type(messages) is not list or not messages:
        raise bad("'messages' must be a non-empty list.", "messages")
    for index, message in enumerate(messages):
        if type(message) is not dict:
            raise bad(f"'messages[{index}]' must be an object.", f"messages[{index}]")
        role = message.get("role")
        if type(role) is not str or role not in ROLES:
            raise bad(f"'messages[{index}].role' must be one of {sorted(ROLES)}.", f"messages[{index}].role")
        content = message.get("content")
        if content is None:
            if role in _REQUIRED_CONTENT:
                raise bad(f"'messages[{index}].content' is required in a {role} message.",
                          f"messages[{index}].content")
        elif type(content) is list:
            if not content:
                raise bad(f"'messages[{index}].content' must hold at least one part.", f"messages[{index}].content")
            if not all(type(p) is dict and p.get("type") == "text" and type(p.get("text")) is str for p in content):
                _not_text(content, f"messages[{index}].content")
        elif type(content) is not str:
            raise bad(f"'messages[{index}].content' must be a string or a list of parts.",
                      f"messages[{index}].content")
        if len(message) > 2:  # most messages are a role and a content
            _message_extras(message, role, index)
    _fields(body, CHAT_CHECKS)


# The fields each role's message schema defines (the inference specs, all versions together; `name` on tool messages
# as OpenAI's older shape has it). Azure refuses any other: "Additional properties are not allowed ('x' was
# unexpected) - 'messages.1'".
_MESSAGE_FIELDS = {
    "system": frozenset({"role", "content", "name"}), "user": frozenset({"role", "content", "name"}),
    "developer": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "name", "refusal", "tool_calls", "function_call"}),
    "tool": frozenset({"role", "content", "tool_call_id", "name"}), "function": frozenset({"role", "content", "name"}),
}


def _message_extras(message: dict[str, Any], role: str, index: int) -> None:
    if not _MESSAGE_FIELDS[role].issuperset(message):
        extra = sorted(message.keys() - _MESSAGE_FIELDS[role])[0]
        raise bad(f"Additional properties are not allowed ('{extra}' was unexpected) - 'messages.{index}'",
                  f"messages[{index}].{extra}")
    name = message.get("name")
    if name is not None and type(name) is not str and role not in ("tool", "function"):
        raise bad(f"'messages[{index}].name' must be a string.", f"messages[{index}].name")
    refusal = message.get("refusal")
    if refusal is not None and (role != "assistant" or type(refusal) is not str):
        raise bad(f"'messages[{index}].refusal' must be a string, in an assistant message.",
                  f"messages[{index}].refusal")


_PART_FIELDS = {"text": "text", "refusal": "refusal", "input_audio": "input_audio"}


def _not_text(parts: list[Any], param: str) -> None:
    """Parts that are not all text: well-formed image, audio or refusal parts are not served (the models read
    text); anything else is not a content part at all."""
    for part in parts:
        kind = part.get("type") if type(part) is dict else None
        field = _PART_FIELDS.get(kind) if type(kind) is str else None
        if field is not None and type(part.get(field)) is (dict if kind == "input_audio" else str):
            continue
        image = part.get("image_url") if kind == "image_url" else None
        if type(image) is not dict or type(image.get("url")) is not str:
            raise bad(f"'{param}' must be a list of content parts, each with a 'type' and its field.", param)
    raise unsupported(f"'{param}' parts must be text parts; this deployment reads text only.", param, value=True)


ENDOFTEXT = "<|endoftext|>"  # the spec's default prompt: generate as if from the beginning of a new document


def validate_completions(body: dict[str, Any]) -> None:
    """`prompt` is required; null is the spec's default, `<|endoftext|>` (set in `body`)."""
    prompt = body.get("prompt")
    if prompt is None:
        if "prompt" not in body:
            raise bad("'prompt' is required: a string or a list of strings.", "prompt")
        body["prompt"] = ENDOFTEXT
    elif type(prompt) is not str and (type(prompt) is not list or any(type(p) is not str for p in prompt)):
        raise bad("'prompt' must be a string or a list of strings.", "prompt")
    _fields(body, COMPLETIONS_CHECKS)
    if body.get("echo") and (type(body["prompt"]) is not str or body.get("stream")):
        # The answer repeats a single prompt before its completion; not for a prompt list, nor in a stream.
        raise unsupported("'echo' is supported for a single string prompt without 'stream' only.", "echo",
                          value=True)
    best_of = body.get("best_of")
    if best_of is not None and best_of > 0:
        n = body.get("n") or 1
        if best_of < n:
            # OpenAI's rule ("best_of must be greater than or equal to n"): n of the best_of candidates are returned.
            raise InvalidValue(f"'best_of' must be greater than or equal to 'n'; got best_of {best_of} and n {n}.",
                               "best_of")
        if best_of > n:
            raise unsupported("'best_of' greater than 'n' is not supported by this deployment: it does not generate "
                              "candidates to choose from.", "best_of", value=True)


Decoder = Callable[[list[int]], str]
_STR = {str}


def validate_embeddings(body: dict[str, Any], dimensions: int, decode: Decoder | None = None) -> list[str]:
    """The texts to embed: a string (empty allowed, as the spec's default), a list of 1 to 2048 non-empty
    strings, a token array, or a list of token arrays. Token ids are cl100k_base's (what the openai SDK and
    langchain send after counting tokens with tiktoken); `decode` (the data plane passes tiktoken's) turns them
    into text for the model, so that wire needs no tokenizer. Without it a token array is refused."""
    data = body.get("input")
    if type(data) is str:
        inputs = [data]
    elif type(data) is list and data and len(data) <= MAX_EMBEDDING_INPUTS:
        kinds = set(map(type, data))
        if kinds == _STR:  # the common case, at C speed
            inputs = data
        elif type(data[0]) is int:
            inputs = [_decode(data, "input", decode)]
        else:
            inputs = [item if type(item) is str else _decode(item, f"input[{index}]", decode)
                      for index, item in enumerate(data)]
        if "" in inputs:
            raise bad("'input' cannot contain empty strings.", "input")
    elif type(data) is list and data:
        raise bad(f"Too many inputs: at most {MAX_EMBEDDING_INPUTS} per request.", "input")
    else:
        raise bad("'input' must be a string, a non-empty list of strings, a token array or a list of token "
                  "arrays.", "input")
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise bad("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
    _fields(body, EMBEDDINGS_CHECKS)
    wanted = body.get("dimensions")
    if wanted is not None and (type(wanted) is not int or wanted != dimensions):
        raise bad("This model does not support specifying dimensions.", "dimensions")
    return inputs


def _decode(ids: Any, param: str, decode: Decoder | None) -> str:
    if type(ids) is not list or not ids or any(type(t) is not int for t in ids):
        raise bad(f"'{param}' must be a string or a non-empty array of token ids.", param)
    if decode is None:
        raise bad(f"'{param}': token arrays are not accepted here.", param)
    try:
        text = decode(ids)
    except (KeyError, OverflowError, ValueError) as exc:
        raise bad(f"'{param}' holds a token id that is not in the cl100k_base vocabulary.", param) from exc
    return text
