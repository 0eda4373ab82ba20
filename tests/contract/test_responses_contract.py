"""Azure's published Responses API contract (the 2025-03-01-preview inference spec's `/responses` paths), checked with
schemathesis against a live `cielo up` (HTTPS, api-key, the mock model), as test_inference_contract.py checks the
completions, chat and embeddings operations.

schemathesis generates create bodies the spec allows (positive) and bodies it forbids (negative), and path and query
parameters for retrieve, delete and input items, with a fixed seed. Create requests alternate between the preview
route (`openai/responses?api-version=2025-03-01-preview`) and the v1 route (`openai/v1/responses`). Every answer
must:

- never be a 5xx;
- conform to the spec's response schema (`response`, `responseItemList`, `errorResponse`), or, for a stream, carry
  events each valid against `responseStreamEvent`, in the documented order;
- for a forbidden body or parameter: be a 400 in Azure's error envelope naming the parameter at fault;
- for an allowed one: not be a 400, except the refusals Cielo documents for what it does not serve
  (`unsupported_parameter`, `unsupported_value`: docs/responses.md), and a 404 for an id no one stored.

Where Azure or OpenAI answer otherwise than this spec (it is OpenAI's early Responses schema, which OpenAI's API and
its own later specs loosened or tightened), the test follows the service and says so (`SERVICE_RULES`); every such
rule is listed in docs/responses.md. They are applied to the loaded spec here, never to the vendored file.
A stored response's retrieve, input items and delete are checked on real ids by the tests at the end.
"""

from __future__ import annotations

import copy
import json
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case, GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import response_schema_conformance

from contract.conftest import Contract
from contract.test_inference_contract import _header, _validator

pytestmark = pytest.mark.e2e

SPEC = Path(__file__).parent / "specs" / "inference-2025-03-01-preview.json"
VERSION = "2025-03-01-preview"
DEPLOYMENT = "mock"
PATHS = ("/responses", "/responses/{response_id}", "/responses/{response_id}/input_items")
CREATE_EXAMPLES = 50  # create bodies (positive and negative together)
READ_EXAMPLES = 12  # per read operation (retrieve, delete, input items): unknown ids and generated queries
NOT_SERVED = {"unsupported_parameter", "unsupported_value"}
MAX_OUTPUT_TOKENS = 16  # OpenAI's minimum (SERVICE_RULES); also what the test asks for, to keep cases fast

FUNCTION = {"type": "function", "name": "get_weather", "description": "The weather in a city.", "strict": True,
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                           "additionalProperties": False}}
EXAMPLE_BODIES: list[dict[str, Any]] = [
    {"model": DEPLOYMENT, "input": "Say hi.", "stream": True},
    {"model": DEPLOYMENT, "input": [{"role": "developer", "content": "Be brief."},
                                    {"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
     "instructions": "Answer in English.", "max_output_tokens": 16, "temperature": 0.5, "metadata": {"k": "v"}},
    {"model": DEPLOYMENT, "input": "Weather in Paris?", "tools": [FUNCTION], "tool_choice": "required"},
    {"model": DEPLOYMENT, "input": "Weather in Paris?", "tools": [FUNCTION],
     "tool_choice": {"type": "function", "name": "get_weather"}, "stream": True},
    {"model": DEPLOYMENT, "input": [
        {"type": "message", "role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
         "arguments": "{\"city\": \"Paris\"}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}], "tools": [FUNCTION]},
    {"model": DEPLOYMENT, "input": "A city as JSON.", "text": {"format": {
        "type": "json_schema", "name": "city", "strict": True, "schema": {
            "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
            "additionalProperties": False}}}, "store": False},
]


def _schema(raw: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    return raw["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]] if "$ref" in ref else ref


def _as_served(raw: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    raw.pop("security", None)  # the key is sent by the test
    raw["paths"] = {path: item for path, item in raw["paths"].items() if path in PATHS}
    schemas = raw["components"]["schemas"]
    create = raw["paths"]["/responses"]["post"]
    create["requestBody"]["content"]["application/json"]["examples"] = {
        f"example-{index}": {"value": body} for index, body in enumerate(EXAMPLE_BODIES)}
    # The request's fields are those of allOf's three parts; closed, as Azure and OpenAI refuse any other field
    # ("Unrecognized request argument supplied").
    request = schemas["createResponse"]
    merged: dict[str, Any] = {}
    for part in [schemas["ModelResponseProperties"], *request["allOf"][1:]]:  # the first part is an allOf of it
        merged.update(copy.deepcopy(_schema(raw, part).get("properties", {})))
    schemas["createResponse"] = {"type": "object", "properties": merged, "required": ["model", "input"],
                                 "additionalProperties": False}
    # The deployment is the test's: `model` names it (a v1 request's deployment, and the preview route's too).
    merged["model"] = {"type": "string", "enum": [DEPLOYMENT]}
    # SERVICE_RULES, requests: null for an optional field is that field left out, as in OpenAI's API.
    for name, prop in merged.items():
        if name not in ("model", "input"):
            prop["nullable"] = True
    # SERVICE_RULES, requests: max_output_tokens is at least 16 (OpenAI's API: "integer_below_min_value"); metadata
    # is at most 16 string pairs, keys up to 64 characters, values up to 512 (the Metadata schema's description).
    merged["max_output_tokens"].update(minimum=MAX_OUTPUT_TOKENS)
    merged["metadata"] = {"type": "object", "nullable": True, "maxProperties": 16,
                          "propertyNames": {"maxLength": 64},
                          "additionalProperties": {"type": "string", "maxLength": 512}}
    # SERVICE_RULES, requests: a function tool's `parameters` and `strict` may be left out (OpenAI's API takes them
    # so; the spec's own description of `strict` gives its default), and `reasoning.effort` too (OpenAI's later specs).
    schemas["FunctionTool"]["required"] = ["type", "name"]
    schemas["Reasoning"].pop("required", None)
    # SERVICE_RULES, requests: an `input` list has at least one item (an empty conversation asks nothing).
    merged["input"]["oneOf"][1]["minItems"] = 1
    # SERVICE_RULES, answers: a response's `user` is null when none was given, as OpenAI's and Azure's answers carry
    # it (the spec's own example of the response object shows `"user": null`).
    schemas["ModelResponseProperties"]["properties"]["user"]["nullable"] = True
    # SERVICE_RULES, answers: `usage` is null until the response is done (response.created and response.in_progress
    # carry it so, as the spec's own examples of those events show).
    answer = schemas["response"]["allOf"][2]["properties"]
    answer["usage"] = {"oneOf": [answer["usage"]], "nullable": True}
    # input_items: `limit` is 1 to 100 (its description).
    for item in raw["paths"]["/responses/{response_id}/input_items"]["get"]["parameters"]:
        if item["name"] == "limit":
            item["schema"].update(minimum=1, maximum=100)
    return raw


def _load() -> Any:
    schema = schemathesis.openapi.from_dict(_as_served(json.loads(SPEC.read_text())))
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                                    max_examples=CREATE_EXAMPLES, deterministic=True, allow_extra_parameters=False,
                                    database="none")
    schema.config.phases.update(phases=["examples", "fuzzing"])
    return schema


SCHEMA = _load()
CREATE = SCHEMA.include(path="/responses", method="POST")
READS = SCHEMA.exclude(path="/responses", method="POST")
SETTINGS: dict[str, Any] = dict(derandomize=True, database=None, deadline=None, print_blob=True,
                                suppress_health_check=list(HealthCheck))


def _events(response: Any) -> list[dict[str, Any]]:
    events = []
    name = None
    for line in response.text.splitlines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            event = json.loads(line[5:].strip())
            assert event["type"] == name, (name, event)
            events.append(event)
    return events


def _check_stream(raw: dict[str, Any], response: Any) -> None:
    """Each event valid against responseStreamEvent; the sequence opens with response.created and
    response.in_progress and ends with response.completed or response.incomplete (or error, response.failed)."""
    events = _events(response)
    names = {}  # each event type's own schema, for a precise message
    for ref in raw["components"]["schemas"]["responseStreamEvent"]["anyOf"]:
        name = ref["$ref"].rsplit("/", 1)[1]
        names[raw["components"]["schemas"][name]["properties"]["type"]["enum"][0]] = name
    for event in events:
        assert event["type"] in names, event
        errors = [str(error) for error in _validator(raw, names[event["type"]]).iter_errors(event)]
        assert not errors, f"{errors[0]} in {event}"
    kinds = [event["type"] for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"], kinds
    assert kinds[-1] in ("response.completed", "response.incomplete", "response.failed"), kinds
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    final = _validator(raw, "response")
    errors = [str(error) for error in final.iter_errors(events[-1]["response"])]
    assert not errors, f"{errors[0]} in {events[-1]['response']}"


def _mode(case: Case) -> GenerationMode:
    if case.meta is None:
        return GenerationMode.POSITIVE
    modes = [component.mode for component in case.meta.components.values()]
    return GenerationMode.NEGATIVE if GenerationMode.NEGATIVE in modes else GenerationMode.POSITIVE


def _check_error(response: Any) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert error.get("type") == "invalid_request_error" and error["message"], error
    assert _header(response, "x-ms-error-code") == error["code"]
    assert error.get("param", "") is not None  # named, or absent where no one field is at fault
    return error


@CREATE.parametrize()
@settings(max_examples=CREATE_EXAMPLES, **SETTINGS)
def test_create_response(case: Case, contract: Contract) -> None:
    body = case.meta.components.get(ParameterLocation.BODY) if case.meta is not None else None
    mode = body.mode if body is not None else GenerationMode.POSITIVE
    # The test's budget, not the contract: a valid body stays valid with fewer tokens.
    if mode == GenerationMode.POSITIVE and isinstance(case.body, dict) \
            and type(case.body.get("max_output_tokens")) is int:
        case.body["max_output_tokens"] = MAX_OUTPUT_TOKENS
    # Alternate routes by the body (deterministic): the v1 route, or the preview one with its api-version.
    v1 = zlib.crc32(json.dumps(case.body, sort_keys=True, default=str).encode()) % 2 == 1
    response = case.call(base_url=contract.base_url + ("/v1" if v1 else ""),
                         params={} if v1 else {"api-version": VERSION},
                         headers={"api-key": contract.key}, verify=contract.server.bundle, timeout=30)
    status = response.status_code
    assert status < 500, f"{status} {response.text[:500]}"
    route = "v1" if v1 else "preview"
    if status == 200 and _header(response, "content-type").startswith("text/event-stream"):
        _check_stream(case.operation.schema.raw_schema, response)
    elif status != 429:
        case.validate_response(response, checks=[response_schema_conformance])
    if status == 400:
        error = _check_error(response)
    if mode == GenerationMode.NEGATIVE:
        if status == 404 and isinstance(case.body, dict) and case.body.get("model") != DEPLOYMENT \
                and isinstance(case.body.get("model"), str) and case.body.get("model"):
            return  # another deployment's name: 404 DeploymentNotFound, as for chat
        assert status == 400, (f"a body the spec forbids got {status} on the {route} route: "
                               f"{json.dumps(case.body)[:500]} ({case.meta.components if case.meta else ''})")
    elif status == 400:
        assert error["code"] in NOT_SERVED, (f"a body the spec allows got 400 {error} on the {route} route: "
                                             f"{json.dumps(case.body)[:500]}")
    elif status == 404:
        # previous_response_id naming no stored response
        assert isinstance(case.body, dict) and case.body.get("previous_response_id"), response.text[:300]
        assert response.json()["error"]["param"] == "previous_response_id"


@READS.parametrize()
@settings(max_examples=READ_EXAMPLES, **SETTINGS)
def test_read_and_delete_unknown(case: Case, contract: Contract) -> None:
    """Retrieve, delete and input items with generated ids (none stored) and query parameters."""
    response = case.call(base_url=contract.base_url, params={**(case.query or {}), "api-version": VERSION},
                         headers={"api-key": contract.key}, verify=contract.server.bundle, timeout=30)
    status = response.status_code
    assert status < 500, f"{status} {response.text[:500]}"
    case.validate_response(response, checks=[response_schema_conformance])
    if _mode(case) == GenerationMode.NEGATIVE:
        assert status == 400, f"parameters the spec forbids got {status}: {case.path_parameters} {case.query}"
        _check_error(response)
    elif status == 400:
        error = _check_error(response)
        assert error["code"] in NOT_SERVED, f"{error} for {case.path_parameters} {case.query}"
    else:
        assert status == 404, f"{status} {response.text[:300]}"
        assert response.json()["error"]["code"] == "NotFound"


@pytest.mark.parametrize("v1", [False, True], ids=["preview", "v1"])
def test_stored_response_reads(contract: Contract, v1: bool) -> None:
    """A stored response's retrieve, input items (both orders, a cursor) and delete, each answer valid against the
    spec's schema (`response`, `responseItemList`); then the id is gone (404 in errorResponse's shape)."""
    raw = SCHEMA.raw_schema
    base = contract.base_url + ("/v1" if v1 else "")
    params = {} if v1 else {"api-version": VERSION}
    with httpx.Client(base_url=base, headers={"api-key": contract.key}, verify=contract.server.bundle,
                      params=params, timeout=30) as client:
        created = client.post("/responses", json=EXAMPLE_BODIES[4])
        assert created.status_code == 200, created.text
        response_id = created.json()["id"]
        got = client.get(f"/responses/{response_id}")
        assert got.status_code == 200 and got.json() == created.json()
        errors = [str(error) for error in _validator(raw, "response").iter_errors(got.json())]
        assert not errors, errors[0]
        listing = _validator(raw, "responseItemList")
        pages = [client.get(f"/responses/{response_id}/input_items", params={**params, **query}).json()
                 for query in ({}, {"order": "asc", "limit": "2"})]
        for page in pages:
            errors = [str(error) for error in listing.iter_errors(page)]
            assert not errors, f"{errors[0]} in {page}"
        assert [item["type"] for item in pages[1]["data"]] == ["message", "function_call"] and pages[1]["has_more"]
        after = client.get(f"/responses/{response_id}/input_items",
                           params={**params, "order": "asc", "after": pages[1]["last_id"]}).json()
        assert [item["type"] for item in after["data"]] == ["function_call_output"] and not after["has_more"]
        deleted = client.delete(f"/responses/{response_id}")
        assert deleted.status_code == 200 and deleted.json() == {"id": response_id, "object": "response",
                                                                 "deleted": True}
        gone = client.get(f"/responses/{response_id}")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "NotFound"
        errors = [str(error) for error in _validator(raw, "errorResponse").iter_errors(gone.json())]
        assert not errors, errors[0]
