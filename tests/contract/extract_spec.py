"""Make an extract of an Azure OpenAI inference spec (Azure/azure-rest-api-specs,
specification/cognitiveservices/data-plane/AzureOpenAI/inference/{stable,preview}/VERSION/inference.json): the
operations Cielo serves, with every component schema they use, as the files under specs/ are.

    python tests/contract/extract_spec.py FULL_INFERENCE_JSON SOURCE_PATH COMMIT > tests/contract/specs/inference-V.json

Kept: the deployment paths Cielo serves (completions, chat completions, embeddings: `PATHS`), their parameters,
request and response schemas, and every component schema reachable from them by `$ref`, with types, enums, bounds,
`required`, `nullable`, `default`, `format`, `deprecated` and `additionalProperties` as published. Left out:
`description`, `summary`, `title`, `example`/`examples`, `tags` and the `x-*` annotations (`x-ms-*`, `x-oai*`,
`x-stainless-*`, `x-tokenInfoFunc`), the other operations and their schemas, and the On Your Data bodies below
`azureChatExtensionConfiguration` (kept with its required `type`, without its `discriminator`: Cielo refuses
`data_sources` whatever it holds). Where the spec has them (2025-03-01-preview), the Responses API's paths
(`/responses`, `/responses/{response_id}`, `/responses/{response_id}/input_items`) are kept too, with OpenAI's item,
tool and stream-event schemas they reach. A field *named* `description` or `title` (a function tool's description,
a URL citation's title) is a field, not an annotation, and is kept.
`openapi` is given as 3.0.0: the inference specs use 3.0's `nullable` throughout, also where they declare 3.1.0
(2025-03-01-preview does), and schemathesis reads `nullable` only under 3.0.

Run on an extract, it gives that extract back (every `$ref` it holds is resolved inside it): the test
`test_extracts_are_closed` checks so for each vendored file.
"""

from __future__ import annotations

import json
import sys
from typing import Any

PATHS = ("/deployments/{deployment-id}/completions", "/deployments/{deployment-id}/embeddings",
         "/deployments/{deployment-id}/chat/completions",
         # The Responses API (2025-03-01-preview on): create, retrieve and delete, input items.
         "/responses", "/responses/{response_id}", "/responses/{response_id}/input_items")
_DROPPED = frozenset({"description", "summary", "title", "example", "examples", "tags"})
_CUT = {"azureChatExtensionConfiguration": ("discriminator",)}  # the On Your Data bodies are not followed
_PREFIX = "#/components/schemas/"


def _prune(node: Any, names: bool = False) -> Any:
    """`node` without annotations; `names`: node is a `properties` map, whose keys are field names (a field called
    `description` or `title` is kept)."""
    if isinstance(node, dict):
        return {key: _prune(value, key == "properties" and not names) for key, value in node.items()
                if names or (key not in _DROPPED and not key.startswith("x-"))}
    if isinstance(node, list):
        return [_prune(value) for value in node]
    return node


def _refs(node: Any, found: list[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_PREFIX):
            found.append(ref[len(_PREFIX):])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def extract(raw: dict[str, Any], source: str, commit: str) -> dict[str, Any]:
    schemas = raw["components"]["schemas"]
    paths = {path: _prune(raw["paths"][path]) for path in PATHS if path in raw["paths"]}
    kept: dict[str, Any] = {}
    todo: list[str] = []
    _refs(paths, todo)
    while todo:
        name = todo.pop()
        if name in kept:
            continue
        schema = _prune(schemas[name])
        for key in _CUT.get(name, ()):
            schema.pop(key, None)
        kept[name] = schema
        _refs(schema, todo)
    ordered = {name: kept[name] for name in schemas if name in kept}  # the spec's own order
    version = raw["info"]["version"]
    info = {"title": raw["info"]["title"], "version": version,
            "description": f"Extract of {source} at commit {commit}: the operations Cielo serves and the schemas "
                           "they use; descriptions and examples left out. See README.md."}
    return {"openapi": "3.0.0", "info": info, "servers": raw["servers"], "security": raw.get("security", []),
            "paths": paths,
            "components": {"schemas": ordered, "securitySchemes": raw["components"].get("securitySchemes", {})}}


def main(argv: list[str]) -> None:
    if len(argv) != 4:
        raise SystemExit(__doc__)
    with open(argv[1], encoding="utf-8") as handle:
        raw = json.load(handle)
    json.dump(extract(raw, argv[2], argv[3]), sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
