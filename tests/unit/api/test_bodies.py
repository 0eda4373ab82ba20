"""http/bodies.py: bodies read within a limit while they stream, and JSON nesting measured without parsing."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from cielo.agent.server import MAX_BODY_BYTES, build_app
from cielo.http.bodies import describe_size, nested_deeper_than, read_limited


class TooLarge(Exception):
    pass


def _request(headers: dict[str, str], chunks: list[bytes]) -> tuple[Request, list[int]]:
    """A request whose body arrives in `chunks`; the list counts the chunks the reader asked for."""
    asked = [0]

    async def receive() -> dict[str, Any]:
        index = asked[0]
        asked[0] += 1
        if index >= len(chunks):
            raise AssertionError("the reader asked for more than the client sent")
        return {"type": "http.request", "body": chunks[index], "more_body": index < len(chunks) - 1}

    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    return Request(scope, receive), asked


async def test_declared_length_over_the_limit_is_refused_before_reading() -> None:
    request, asked = _request({"content-length": str(10**12)}, [b"x"])
    with pytest.raises(TooLarge):
        await read_limited(request, 1024, TooLarge)
    assert asked == [0]


@pytest.mark.parametrize("declared", ["1e3", "-1", "+5", "١٢", "9" * 5000])
async def test_malformed_declared_length_is_refused(declared: str) -> None:
    request, asked = _request({"content-length": declared}, [b"x"])
    with pytest.raises(TooLarge):
        await read_limited(request, 1024, TooLarge)
    assert asked == [0]


async def test_undeclared_body_is_refused_once_the_count_passes_the_limit() -> None:
    chunks = [b"a" * 400] * 10  # 4000 bytes: the 3rd chunk passes 1000
    request, asked = _request({"transfer-encoding": "chunked"}, chunks)
    with pytest.raises(TooLarge):
        await read_limited(request, 1000, TooLarge)
    assert asked == [3]


async def test_bodies_up_to_the_limit_are_read_whole() -> None:
    request, _ = _request({"content-length": "1000"}, [b"a" * 600, b"b" * 400])
    assert await read_limited(request, 1000, TooLarge) == b"a" * 600 + b"b" * 400
    request, _ = _request({}, [b""])
    assert await read_limited(request, 1000, TooLarge) == b""


@pytest.mark.parametrize(("text", "depth"), [
    (b"{}", 1), (b"[]", 1), (b'"[[[[[["', 0), (b"1", 0), (b'{"a": [[{"b": []}]]}', 5),
    (b'["\\\\", [["\\"[[[[["]]]', 3), (b'["\\\\\\"[[[[", []]', 2), (b'{"[[[[": "]]]]", "x": [[]]}', 3),
    (b"[" * 65 + b"]" * 65, 65), (b'"]]]]' + b'"' + b"[" * 70, 70),
])
def test_nesting_is_measured_outside_strings(text: bytes, depth: int) -> None:
    for limit in (0, 1, 2, 3, depth - 1, depth, depth + 1, 64):
        if limit >= 0:
            assert nested_deeper_than(text, limit) is (depth > limit), (text, limit)


def test_unbalanced_deep_text_is_too_deep() -> None:
    assert nested_deeper_than(b"[" * 100_000)
    assert nested_deeper_than(b'{"a":' * 100_000)
    assert not nested_deeper_than(b"]" * 100_000 + b"[" * 10)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def test_nesting_matches_the_parsed_depth_of_random_json() -> None:
    rng = random.Random(20261206)
    alphabet = '[]{}"\\ a:,\n\u00e9\u2028'

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))

    def value(level: int) -> Any:
        roll = rng.random()
        if level > 8 or roll < 0.3:
            return rng.choice([text(), 1, None, True, 2.5])
        if roll < 0.65:
            return [value(level + 1) for _ in range(rng.randint(0, 4))]
        return {text(): value(level + 1) for _ in range(rng.randint(0, 4))}

    for _ in range(400):
        parsed = value(0)
        raw = json.dumps(parsed, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 1])).encode()
        depth = _depth(parsed)
        for limit in {0, 1, 2, max(depth - 1, 0), depth, depth + 1}:
            assert nested_deeper_than(raw, limit) is (depth > limit), (raw, limit, depth)


def test_describe_size() -> None:
    assert describe_size(4 * 1024 * 1024) == "4 MB"
    assert describe_size(64 * 1024) == "64 KB"
    assert describe_size(1000) == "1000 bytes"


# ----------------------------------------------------------------------------- the host agent (GET protocols)
class _NoTokens:
    async def token(self, resource: str, selector: tuple[str, str] | None) -> dict[str, Any]:
        raise AssertionError("a refused request must not reach the token service")

    async def close(self) -> None:
        pass


async def _chunks(total: int) -> AsyncIterator[bytes]:
    for _ in range(total // 1024):
        yield b"x" * 1024


@pytest.mark.parametrize(("path", "headers", "shape"), [
    ("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/",
     {"Metadata": "true"}, "imds"),
    ("/metadata/identity/info", {"Metadata": "true"}, "imds"),
    ("/msi/token?api-version=2019-08-01&resource=https://management.azure.com/", {"X-IDENTITY-HEADER": "s3cret"},
     "app_service"),
    ("/msi/legacy?api-version=2017-09-01&resource=https://management.azure.com/", {"secret": "s3cret"},
     "app_service"),
])
async def test_agent_refuses_request_bodies(path: str, headers: dict[str, str], shape: str) -> None:
    app = build_app(_NoTokens(), "s3cret", "tenant")  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        declared = await client.request("GET", path, headers={**headers, "Content-Length": str(10**9)})
        chunked = await client.request("GET", path, headers=headers, content=_chunks(MAX_BODY_BYTES * 4))
        small = await client.request("GET", "/metadata/identity/info", headers={"Metadata": "true"},
                                     content=b"x" * 100)
    for response in (declared, chunked):
        assert response.status_code == 413, response.text
        body = response.json()
        if shape == "imds":
            assert body["error"] == "invalid_request" and "request body" in body["error_description"]
        else:
            assert body["statusCode"] == 413 and "request body" in body["message"]
    assert small.status_code == 200, small.text
