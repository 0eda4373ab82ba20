"""Azure's published inference contract, checked with schemathesis against a live `cielo up` (HTTPS, api-key).

For each vendored spec (specs/README.md) and each of its three operations (completions, chat completions,
embeddings), schemathesis generates request bodies the spec allows (positive) and bodies it forbids (negative),
with a fixed seed. Every answer must:

- never be a 5xx;
- conform to the spec's response schema (JSON answers), or, for a stream, carry chunks that do (below);
- for a forbidden body: be a 400 in Azure's error envelope naming the parameter at fault where there is one;
- for an allowed body: not be a 400, except the refusals Cielo documents for what it does not serve
  (`unsupported_parameter`, `unsupported_value`: docs/data-plane.md has the table).

Where Azure itself answers otherwise than its spec, the test follows Azure and says so (`AZURE_DEVIATIONS`); where a
spec's description states a constraint its schema leaves out, the schema is given it (`DOCUMENTED`). Both are
applied to the loaded spec here, never to the vendored files.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case, GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import response_schema_conformance

from cielo.dataplane.wire import SERVED_ELSEWHERE
from contract.conftest import Contract

pytestmark = pytest.mark.e2e

SPECS = Path(__file__).parent / "specs"
DEPLOYMENT = "mock"
EXAMPLES = 40  # per operation (positive and negative together): 3 operations x 3 specs x 40 = 360 requests
NOT_SERVED = {"unsupported_parameter", "unsupported_value"}
MESSAGE_FIELD_REFUSED = "Additional properties are not allowed ("  # Azure's words, dataplane/wire.py


def _walk(node: Any, visit: Any) -> None:
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            _walk(value, visit)
    elif isinstance(node, list):
        for value in node:
            _walk(value, visit)


def _request_schemas(raw: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for item in raw["paths"].values():
        schema = item["post"]["requestBody"]["content"]["application/json"]["schema"]
        found.append(raw["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema)
    return found


def _properties(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Every `properties` map of the request schemas and the schemas they use (not the responses')."""
    maps: list[dict[str, Any]] = []
    names = [n for n in raw["components"]["schemas"] if "Response" not in n and "response" not in n.lower()]
    for root in _request_schemas(raw) + [raw["components"]["schemas"][n] for n in names]:
        _walk(root, lambda node: maps.append(node["properties"]) if isinstance(node.get("properties"), dict) else None)
    return maps


def _bound(raw: dict[str, Any], name: str, **constraint: Any) -> None:
    for props in _properties(raw):
        if name in props and isinstance(props[name], dict):
            props[name].update(constraint)


# Constraints a spec states in words (its descriptions) or in its later versions, which Cielo applies to every
# api-version: logit_bias maps token ids to -100..100; 2023-05-15 gives ranges in descriptions only.
DOCUMENTED: dict[str, dict[str, Any]] = {
    "logit_bias": {"type": "object", "additionalProperties": {"type": "integer", "minimum": -100, "maximum": 100},
                   "propertyNames": {"pattern": "^[0-9]+$"}},
    "temperature": {"minimum": 0, "maximum": 2}, "top_p": {"minimum": 0, "maximum": 1},
    "presence_penalty": {"minimum": -2, "maximum": 2}, "frequency_penalty": {"minimum": -2, "maximum": 2},
    "logprobs": {}, "best_of": {"minimum": 0, "maximum": 20},
    # Embeddings: "Can be either `float` or `base64`".
    "encoding_format": {"enum": ["float", "base64", None]},
}


HI = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
EXAMPLE_BODIES: dict[str, list[dict[str, Any]]] = {
    "chat/completions": [{"messages": HI, "stream": True}, {"messages": HI, "stream": True, "n": 2, "max_tokens": 8},
                         {"messages": HI, "logprobs": True, "top_logprobs": 2}],
    "completions": [{"prompt": "Once upon a time", "stream": True}, {"prompt": ["a", "b"], "max_tokens": 4},
                    {"prompt": "x", "echo": True, "logprobs": 2}],
    "embeddings": [{"input": [9906, 1917]}, {"input": [[9906], [1917, 0]], "encoding_format": "base64"},
                   {"input": "", "encoding_format": "float"}],
}


def _as_served(raw: dict[str, Any], version: str) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    # The deployment and api-version are the test's, not generated; the key is sent by the test.
    raw.pop("security", None)
    # The deployment operations only: the preview's Responses API paths are test_responses_contract.py's.
    raw["paths"] = {path.replace("{deployment-id}", DEPLOYMENT): item for path, item in raw["paths"].items()
                    if path.startswith("/deployments/")}
    for item in raw["paths"].values():
        item["post"]["parameters"] = []
    # Explicit examples, sent first: streams (which random bodies seldom ask for) and token-array inputs.
    for path, item in raw["paths"].items():
        examples = EXAMPLE_BODIES[path.rsplit("/mock/", 1)[1]]
        item["post"]["requestBody"]["content"]["application/json"]["examples"] = {
            f"example-{index}": {"value": body} for index, body in enumerate(examples)}
    for name, constraint in DOCUMENTED.items():
        _bound(raw, name, **constraint)
    if version == "2023-05-15":
        _bound(raw, "n", minimum=1, maximum=128)
        _bound(raw, "logprobs", minimum=0, maximum=5)
        for props in _properties(raw):  # "Array minimum size of 1 and maximum of 4" (chat's description)
            for branch in props.get("stop", {}).get("oneOf", []):
                if branch.get("type") == "array":
                    branch.update(minItems=1, maxItems=4)
    # AZURE_DEVIATIONS, requests: Azure refuses fields its spec does not define ("Unrecognized request argument
    # supplied"), so no body with extra fields is a valid one.
    for schema in _request_schemas(raw):
        schema["additionalProperties"] = False
    chat = raw["components"]["schemas"].get("createChatCompletionRequest")
    if chat is not None:  # the fields of allOf's parts are the request's own
        merged: dict[str, Any] = {}
        for part in chat["allOf"]:
            target = raw["components"]["schemas"][part["$ref"].rsplit("/", 1)[1]] if "$ref" in part else part
            merged.update(target.get("properties", {}))
        chat.update({"properties": merged, "required": ["messages"], "additionalProperties": False})
        del chat["allOf"]
    # AZURE_DEVIATIONS, requests: null for an optional field is that field left out, as in OpenAI's API (the specs
    # mark only some of them nullable); so null is never what makes a body invalid.
    def nullable(node: dict[str, Any]) -> None:
        for name, prop in node["properties"].items():
            if name not in node.get("required", ()) and isinstance(prop, dict) and ("type" in prop or "oneOf" in prop):
                prop["nullable"] = True

    names = [n for n in raw["components"]["schemas"] if "Response" not in n and "response" not in n.lower()]
    for root in _request_schemas(raw) + [raw["components"]["schemas"][n] for n in names]:
        _walk(root, lambda node: nullable(node) if isinstance(node.get("properties"), dict) else None)
    # A negative max_tokens (the chat specs set no minimum) is refused, as OpenAI refuses it; and the embeddings
    # `input` is required: null is refused (the spec marks the string form nullable).
    _bound(raw, "max_tokens", minimum=0)
    _bound(raw, "max_completion_tokens", minimum=0)
    for props in _properties(raw):
        if "input" in props and "oneOf" in props["input"]:
            props["input"]["oneOf"][0].pop("nullable", None)
    # AZURE_DEVIATIONS, requests: embeddings take token arrays and lists of them (cl100k_base ids), which
    # langchain's AzureOpenAIEmbeddings sends by default, though the spec lists strings only.
    tokens = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0, "maximum": 100255}}
    for props in _properties(raw):
        if "input" in props and "oneOf" in props["input"]:
            props["input"]["oneOf"] += [tokens, {"type": "array", "minItems": 1, "maxItems": 2048, "items": tokens}]
    # AZURE_DEVIATIONS, answers: `encoding_format: base64` answers each embedding as a base64 string of
    # little-endian float32 (what the openai SDK decodes), where the spec says an array of numbers; and a
    # choice's `logprobs` is null when none were asked for (2023-05-15's own example shows it; 2024-10-21 made it
    # nullable).
    for item in raw["paths"].values():
        answer = item["post"]["responses"]["200"]["content"]["application/json"]["schema"].get("properties", {})
        embedding = answer.get("data", {}).get("items", {}).get("properties", {}).get("embedding")
        if embedding is not None:
            embedding.update({"oneOf": [{"type": "array", "items": embedding.pop("items")}, {"type": "string"}]})
            embedding.pop("type")
        logprobs = answer.get("choices", {}).get("items", {}).get("properties", {}).get("logprobs")
        if logprobs is not None:
            logprobs["nullable"] = True
    # The e5 model's own 384 dimensions are the only ones it serves ("This model does not support specifying
    # dimensions." otherwise, as Azure answers for a model without them).
    _bound(raw, "dimensions", enum=[384, None])
    return raw


def _load(version: str) -> Any:
    raw = json.loads((SPECS / f"inference-{version}.json").read_text())
    schema = schemathesis.openapi.from_dict(_as_served(raw, version))
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=EXAMPLES,
                                    deterministic=True, allow_extra_parameters=False, database="none")
    # Fuzzing only: schemathesis' coverage phase (every boundary of every constraint) makes some 1,500 requests
    # for these six operations, minutes on a small machine; the boundaries that matter are cases of the unit and
    # in-process tests (tests/unit/test_wire_contract.py, tests/api/test_api_dataplane_contract.py).
    schema.config.phases.update(phases=["examples", "fuzzing"])
    return schema


SCHEMA_PREVIEW = _load("2025-03-01-preview")
SCHEMA_2024 = _load("2024-10-21")
SCHEMA_2023 = _load("2023-05-15")
SETTINGS = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None, print_blob=True,
                    suppress_health_check=list(HealthCheck))


def _stream_chunks(response: httpx.Response) -> list[dict[str, Any]]:
    events = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
    assert events and events[-1] == "[DONE]", response.text[-500:]
    return [json.loads(event) for event in events[:-1]]


def _check_stream(case: Case, response: httpx.Response) -> None:
    """Each chunk against the spec's chunk schema (chat's createChatCompletionStreamResponse; completions share
    the answer's schema). AZURE_DEVIATIONS, streams: Azure's first event carries only `prompt_filter_results`,
    with empty `id`, `object`, `model` and `created` 0 (no choices); that one is checked for its own fields."""
    chunks = _stream_chunks(response)
    first, rest = chunks[0], chunks[1:]
    assert first["choices"] == [] and first["prompt_filter_results"], first
    operation = case.operation
    schema = operation.schema
    name = ("createChatCompletionStreamResponse" if operation.path.endswith("chat/completions")
            else "createCompletionResponse")
    component = schema.raw_schema["components"]["schemas"].get(name)
    if component is None:  # 2023-05-15 defines no chunk schema
        return
    validator = _validator(schema.raw_schema, name)
    for chunk in rest:
        errors = [str(error) for error in validator.iter_errors(chunk)]
        assert not errors, f"{errors[0]} in {chunk}"


_VALIDATORS: dict[tuple[int, str], Any] = {}


def _validator(raw: dict[str, Any], name: str) -> Any:
    """A JSON Schema validator for a component, OpenAPI 3.0's `nullable` made JSON Schema's null type."""
    key = (id(raw), name)
    if key not in _VALIDATORS:
        import jsonschema_rs

        components = copy.deepcopy(raw["components"]["schemas"])
        if name == "createCompletionResponse":
            # AZURE_DEVIATIONS, streams: completions chunks share the answer's schema, but every chunk before the
            # last has `finish_reason` null, as Azure's and OpenAI's streams do. And Cielo's chunks carry
            # `usage: null` even without stream_options.include_usage (dataplane/shapes.py, another module's).
            answer = components[name]["properties"]
            answer["choices"]["items"]["properties"]["finish_reason"]["nullable"] = True
            answer["usage"] = {"oneOf": [answer["usage"]], "nullable": True}

        def nullable(node: dict[str, Any]) -> None:
            if node.pop("nullable", False):
                if "type" in node:
                    node["type"] = [node["type"], "null"]
                if "enum" in node and None not in node["enum"]:
                    node["enum"] = [*node["enum"], None]
                if "oneOf" in node:
                    node["oneOf"] = [*node["oneOf"], {"type": "null"}]

        _walk(components, nullable)
        root = {"$ref": f"#/components/schemas/{name}", "components": {"schemas": components}}
        _VALIDATORS[key] = jsonschema_rs.Draft4Validator(root)
    return _VALIDATORS[key]


def _header(response: Any, name: str) -> str:
    values = response.headers.get(name) or [""]
    return str(values[0])


def _check(case: Case, contract: Contract, version: str) -> None:
    # What the body is: schemathesis may also make a header negative (Cielo, as Azure, reads the body whatever its
    # Content-Type says), which leaves a body the spec allows.
    body = case.meta.components.get(ParameterLocation.BODY) if case.meta is not None else None
    mode = body.mode if body is not None else GenerationMode.POSITIVE
    if mode == GenerationMode.POSITIVE and isinstance(case.body, dict):
        # The test's budget, not the contract: a valid body stays valid with fewer tokens and choices, and a few
        # hundred requests stay inside the deployment's quota.
        for name, most in (("max_tokens", 64), ("max_completion_tokens", 64), ("n", 4)):
            if type(case.body.get(name)) is int and case.body[name] > most:
                case.body[name] = most
        # logit_bias's keys are token ids (its description); the loaded spec's propertyNames is not generated from.
        if isinstance(case.body.get("logit_bias"), dict):
            case.body["logit_bias"] = {k: v for k, v in case.body["logit_bias"].items() if k.isdecimal()}
    response = case.call(base_url=contract.base_url, params={"api-version": version},
                         headers={"api-key": contract.key}, verify=contract.server.bundle, timeout=30)
    status = response.status_code
    assert status < 500, f"{status} {response.text[:500]}"
    content_type = _header(response, "content-type")
    if status == 200 and content_type.startswith("text/event-stream"):
        _check_stream(case, response)  # the spec declares JSON only; Azure streams SSE
    elif status != 429:  # a 429 would be the quota's, not the body's (the capacity is set so none happens)
        case.validate_response(response, checks=[response_schema_conformance])
    if status == 400:
        error = response.json()["error"]
        assert error.get("type") == "invalid_request_error" and error["message"], error
        assert _header(response, "x-ms-error-code") == error["code"]
        assert error.get("param", "") is not None  # named, or absent where no one field is at fault
    if mode == GenerationMode.NEGATIVE:
        assert status == 400, (f"a body the spec forbids got {status}: {json.dumps(case.body)[:500]} "
                               f"({case.meta.components if case.meta else ''})")
    elif status == 400:
        error = response.json()["error"]
        if str(error.get("param", "")).split("[")[0] in SERVED_ELSEWHERE:
            # Tool calls, structured output and stream options are validated by dataplane/tools.py, another
            # module's, which is stricter than the spec in places (`tools: []`; `tools` with `functions`).
            return
        if error["message"].startswith(MESSAGE_FIELD_REFUSED):
            # AZURE_DEVIATIONS, requests: Azure refuses a message field its role's schema does not define, though
            # the message schemas allow additional properties (closing them in the loaded spec leaves schemathesis
            # unable to generate the messages' oneOf).
            return
        assert error["code"] in NOT_SERVED, f"a body the spec allows got 400 {error}: {json.dumps(case.body)[:500]}"


@SCHEMA_PREVIEW.parametrize()
@SETTINGS
def test_inference_2025_03_01_preview(case: Case, contract: Contract) -> None:
    _check(case, contract, "2025-03-01-preview")


@SCHEMA_2024.parametrize()
@SETTINGS
def test_inference_2024_10_21(case: Case, contract: Contract) -> None:
    _check(case, contract, "2024-10-21")


@SCHEMA_2023.parametrize()
@SETTINGS
def test_inference_2023_05_15(case: Case, contract: Contract) -> None:
    _check(case, contract, "2023-05-15")

