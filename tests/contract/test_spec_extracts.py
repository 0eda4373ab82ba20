"""The vendored spec extracts are whole: every `$ref` they hold resolves inside the file, and the preview extract is
what tests/contract/extract_spec.py makes of it (so running the script on the whole published file redoes it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contract.extract_spec import _refs, extract

SPECS = Path(__file__).parent / "specs"
PREVIEW_SOURCE = ("specification/cognitiveservices/data-plane/AzureOpenAI/inference/preview/2025-03-01-preview/"
                  "inference.json")


@pytest.mark.parametrize("name", ["inference-2023-05-15.json", "inference-2024-10-21.json",
                                  "inference-2025-03-01-preview.json"])
def test_extracts_are_closed(name: str) -> None:
    raw = json.loads((SPECS / name).read_text())
    found: list[str] = []
    _refs(raw, found)
    assert found and set(found) <= set(raw["components"]["schemas"])


def test_the_preview_extract_is_the_scripts() -> None:
    raw = json.loads((SPECS / "inference-2025-03-01-preview.json").read_text())
    assert extract(raw, PREVIEW_SOURCE, "54923347f07c69f929305d5c2fd3fa7fda1dab96") == raw
    chat = raw["components"]["schemas"]["createChatCompletionRequest"]["allOf"][1]["properties"]
    assert {"reasoning_effort", "modalities", "prediction", "audio", "stream_options",
            "user_security_context"} <= chat.keys()


def test_the_preview_extract_has_the_responses_api() -> None:
    raw = json.loads((SPECS / "inference-2025-03-01-preview.json").read_text())
    assert {"/responses", "/responses/{response_id}", "/responses/{response_id}/input_items"} <= raw["paths"].keys()
    schemas = raw["components"]["schemas"]
    assert len(schemas["responseStreamEvent"]["anyOf"]) == 29
    # A field named `description` is a field, not an annotation: kept.
    assert "description" in schemas["FunctionTool"]["properties"]
    assert "title" in schemas["UrlCitation"]["properties"]


def test_prune_keeps_fields_named_like_annotations() -> None:
    spec = {"info": {"title": "t", "version": "v"}, "servers": [], "components": {"schemas": {"S": {
        "type": "object", "description": "gone", "x-ms-enum": {},
        "properties": {"description": {"type": "string", "description": "gone"}, "title": {"type": "string"}}}}},
        "paths": {"/responses": {"post": {"summary": "gone", "requestBody": {"content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/S"}}}}}}}}
    schema = extract(spec, "s", "c")["components"]["schemas"]["S"]
    assert schema == {"type": "object", "properties": {"description": {"type": "string"}, "title": {"type": "string"}}}
