"""Poisoned input, in-process (create_app through httpx.ASGITransport):

- a lone UTF-16 surrogate, anywhere in a JSON body (value or key, at any depth, escaped or as UTF-8 bytes), is a
  400 in the surface's envelope and nothing is written; a valid pair (an emoji) is accepted and round-trips;
- paths, query strings and form bodies cannot carry one;
- records an older release stored with one are served (U+FFFD in its place), not a 500 on every listing;
- whatever fails unexpectedly is a 500 in the surface's envelope with a request id, its traceback logged once,
  redacted; a stream that fails after its headers went out is not answered a second time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Message

from cielo.agent.server import build_app as build_agent
from cielo.api.app import Services, build_services, create_app
from cielo.bootstrap import DEFAULT_ACCOUNT, DEFAULT_RESOURCE_GROUP, bootstrap
from cielo.control.resources import ResourceWriter
from cielo.core.arm_ids import ResourceId
from cielo.dataplane import wire
from cielo.http.bodies import lone_surrogate_in
from cielo.http.surfaces import Surface, surface_of
from cielo.settings import Settings
from cielo.store.jsontext import load_json

PASSWORD = "Poison-Passw0rd!x"
ADMIN = "admin@cielo.local"
CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
ARM_API = "2022-12-01"
OPENAI_API = "2024-10-21"
SECRET = "abc8Q~POISONSECRET"

# JSON texts of a string that is not Unicode, as a client can send them.
LONE = {
    "high": b'"\\ud800"',
    "low": b'"\\udc00"',
    "reversed pair": b'"\\udc00\\ud800"',
    "high then a letter": b'"\\uD83Dx"',
    "after an escaped backslash": b'"\\\\\\ud800"',  # `\\` then `\ud800`
    "utf-8 bytes": b'"\xed\xa0\x80"',
}
EMOJI = b'"\\ud83d\\ude00"'  # a valid pair: U+1F600


def bodies_with(text: bytes, template: bytes) -> list[bytes]:
    """`template` with `text` as a value and as a key, at depth and at the top."""
    key = text if text.startswith(b'"') else b'"' + text + b'"'
    return [template.replace(b"VALUE", text), template.replace(b"VALUE", b'"x"').replace(b'"KEY"', key)]


@dataclass
class World:
    app: FastAPI
    services: Services
    data_dir: Path
    tenant: str
    sub: str
    arm: str
    graph: str
    api_key: str

    def client(self, app: Any = None) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app or self.app, raise_app_exceptions=True)
        return httpx.AsyncClient(transport=transport, base_url="https://127.0.0.1:8443")

    def arm_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.arm}", "Content-Type": "application/json"}

    def graph_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.graph}", "Content-Type": "application/json"}

    def rg(self, name: str) -> str:
        return f"/subscriptions/{self.sub}/resourcegroups/{name}?api-version={ARM_API}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("poison") / "data"
    settings = Settings(data_dir=data_dir, enable_mock_model=True)
    services = build_services(settings)
    result = bootstrap(services, ADMIN, PASSWORD)
    assert result.subscription is not None
    account = ResourceId(result.subscription.id, DEFAULT_RESOURCE_GROUP, "Microsoft.CognitiveServices",
                         ("accounts",), (DEFAULT_ACCOUNT,))
    services.resources.put_deployment(account.child("deployments", "mock"), {
        "sku": {"name": "Standard", "capacity": 1000},
        "properties": {"model": {"format": "Cielo", "name": "mock", "version": "1"}}}, ResourceWriter(ADMIN, "User"))
    api_key = services.resources.list_keys(services.resources.get_account(account))["key1"]
    app = create_app(settings, services)

    async def token(scope: str) -> str:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://127.0.0.1:8443") as client:
            answer = await client.post(f"/{result.tenant.id}/oauth2/v2.0/token", data={
                "client_id": CLI_CLIENT_ID, "grant_type": "password", "username": ADMIN, "password": PASSWORD,
                "scope": scope})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    arm = asyncio.run(token("https://management.core.windows.net//.default"))
    graph = asyncio.run(token("https://graph.microsoft.com/.default"))
    yield World(app, services, data_dir, result.tenant.id, result.subscription.id, arm, graph, api_key)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ----------------------------------------------------------------------------- the byte scan and the value walk
@pytest.mark.parametrize(("text", "lone"), [
    *((text, True) for text in LONE.values()),
    (b'{"\\ud800": 1}', True), (b'[[{"a": ["\\udfff"]}]]', True), (b'"\\ud83d\\ude00\\ude00"', True),
    (b'"\\ud800\\ud800\\udc00"', True), (b'"\\\\ud83d\\ude00"', True), (b'"\\ud83d\\\\ude00"', True),
    ('"\ud800"'.encode("utf-16-le", "surrogatepass"), True), ('"\\udc00"'.encode("utf-32"), True),
    (EMOJI, False), (b'"\\uD83D\\uDE00"', False), (b'"\\\\ud800"', False), (b'"\\\\\\\\ud800"', False),
    (b'"\xf0\x9f\x98\x80 \xed\x9f\xbf \xee\x80\x80"', False), (b'"\\u00e9\\ud7ff\\ue000 \\n\\""', False),
    ('"\U0001f600"'.encode("utf-16"), False), (b"", False), (b"{}", False),
])
def test_lone_surrogates_are_found_in_json_text_and_parsed_values(text: bytes, lone: bool) -> None:
    assert lone_surrogate_in(text) is lone
    parsed = json.loads(text) if text else {}
    assert wire.lone_surrogate_in(parsed) is lone
    # The truth: whether the parsed value can be encoded as UTF-8.
    assert (json.dumps(parsed, ensure_ascii=False).encode("utf-8", "surrogatepass")
            != json.dumps(parsed, ensure_ascii=False).encode("utf-8", "replace")) is lone


def test_the_byte_scan_agrees_with_the_parser_on_random_text() -> None:
    rng = random.Random(20261207)
    pieces = ["a", "\\\\", "\\n", "\\ud800", "\\udc00", "\\uD83D", "\\uDE00", "\\u0041", "\u00e9", "\U0001f600",
              '\\"', "\\ud83d\\ude00"]
    for _ in range(3000):
        inner = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
        raw = ('{"k": ["' + inner + '"]}').encode()
        parsed = json.loads(raw)
        assert lone_surrogate_in(raw) is wire.lone_surrogate_in(parsed), raw


def test_stored_json_with_lone_surrogates_is_repaired_on_reading() -> None:
    assert load_json('{"a": "\\ud800", "\\udc00": ["x\\udc00\\ud800y"], "e": "\\ud83d\\ude00"}') == {
        "a": "\ufffd", "\ufffd": ["x\ufffd\ufffdy"], "e": "\U0001f600"}
    assert load_json('{"a": "\\\\ud800", "n": 1}') == {"a": "\\ud800", "n": 1}


@pytest.mark.parametrize(("path", "surface"), [
    ("/subscriptions/s/resourcegroups/x", Surface.ARM), ("/providers/Microsoft.Authorization/x", Surface.ARM),
    ("/tenants", Surface.ARM), ("/metadata/endpoints", Surface.ARM), ("/v1.0/users", Surface.GRAPH),
    ("/accounts/a/openai/deployments/d/chat/completions", Surface.DATA_PLANE),
    ("/accounts/a/openai/v1/embeddings", Surface.DATA_PLANE), ("/t/oauth2/v2.0/token", Surface.OAUTH),
    ("/common/discovery/instance", Surface.OAUTH), ("/devicelogin", Surface.OAUTH),
    ("/cielo/managed-identity/token", Surface.OAUTH), ("/t/v2.0/.well-known/openid-configuration", Surface.OAUTH),
])
def test_each_path_belongs_to_one_surface(path: str, surface: Surface) -> None:
    assert surface_of(path) is surface


# ----------------------------------------------------------------------------- ARM
def _arm_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and set(error) <= {"code", "message", "target", "details"}, error
    return str(error["message"])


@pytest.mark.parametrize("name", LONE)
async def test_arm_refuses_a_lone_surrogate_and_writes_nothing(world: World, name: str) -> None:
    template = b'{"location": "local", "tags": {"KEY": VALUE}, "properties": {"deep": [[{"KEY": VALUE}]]}}'
    async with world.client() as client:
        for index, body in enumerate(bodies_with(LONE[name], template)):
            group = _unique(f"poison-{index}")
            response = await client.put(world.rg(group), headers=world.arm_headers(), content=body)
            assert "surrogate" in _arm_error(response, 400, "InvalidRequestContent")
            assert (await client.get(world.rg(group), headers=world.arm_headers())).status_code == 404
        listing = await client.get(f"/subscriptions/{world.sub}/resourcegroups?api-version={ARM_API}",
                                   headers=world.arm_headers())
    assert listing.status_code == 200, listing.text


async def test_arm_accepts_valid_pairs_and_literal_text(world: World) -> None:
    group = _unique("emoji")
    body = b'{"location": "local", "tags": {"escaped": ' + EMOJI + b', "raw": "\xf0\x9f\x98\x80", ' \
           b'"literal": "\\\\ud800", ' + EMOJI + b': "key"}}'
    async with world.client() as client:
        created = await client.put(world.rg(group), headers=world.arm_headers(), content=body)
        assert created.status_code == 201, created.text
        fetched = await client.get(world.rg(group), headers=world.arm_headers())
    assert fetched.json()["tags"] == {"escaped": "\U0001f600", "raw": "\U0001f600", "literal": "\\ud800",
                                      "\U0001f600": "key"}


async def test_arm_paths_and_queries_cannot_carry_a_surrogate(world: World) -> None:
    async with world.client() as client:
        missing = await client.get(f"/subscriptions/{world.sub}/resourcegroups/%ED%A0%80?api-version={ARM_API}",
                                   headers=world.arm_headers())
        version = await client.get(f"/subscriptions/{world.sub}/resourcegroups?api-version=%ED%A0%80",
                                   headers=world.arm_headers())
        put = await client.put(f"/subscriptions/{world.sub}/resourcegroups/x%ED%A0%80?api-version={ARM_API}",
                               headers=world.arm_headers(), content=b'{"location": "local"}')
        listing = await client.get(f"/subscriptions/{world.sub}/resourcegroups?api-version={ARM_API}",
                                   headers=world.arm_headers())
    # Percent-decoding replaces the bytes with U+FFFD: a name that is not there, a version that is not one.
    assert "\ufffd" in _arm_error(missing, 404, "ResourceGroupNotFound")
    assert version.status_code == 400, version.text
    assert put.status_code in (201, 400), put.text
    assert listing.status_code == 200, listing.text


async def test_check_access_refuses_a_lone_surrogate_at_the_boundary(world: World) -> None:
    # checkAccess reads its small body through the one ARM body reader: the surrogate never reaches a message.
    async with world.client() as client:
        response = await client.post(
            f"/subscriptions/{world.sub}/providers/Microsoft.Authorization/checkAccess?api-version=2022-04-01",
            headers=world.arm_headers(), content=b'{"action": "\\ud800/read"}')
    assert "surrogate" in _arm_error(response, 400, "InvalidRequestContent")


# ----------------------------------------------------------------------------- Graph
@pytest.mark.parametrize("name", LONE)
async def test_graph_refuses_a_lone_surrogate_and_writes_nothing(world: World, name: str) -> None:
    nickname = _unique("poison")
    template = b'{"displayName": VALUE, "mailNickname": "' + nickname.encode() + b'", "KEY": "x"}'
    async with world.client() as client:
        for body in bodies_with(LONE[name], template):
            response = await client.post("/v1.0/groups", headers=world.graph_headers(), content=body)
            assert "surrogate" in _arm_error(response, 400, "BadRequest")
        found = await client.get("/v1.0/groups", headers=world.graph_headers(),
                                 params={"$filter": f"mailNickname eq '{nickname}'"})
    assert found.status_code == 200 and found.json()["value"] == [], found.text


async def test_graph_accepts_a_valid_pair(world: World) -> None:
    nickname = _unique("emoji")
    body = b'{"displayName": "smile ' + EMOJI[1:-1] + b'", "mailNickname": "' + nickname.encode() + b'"}'
    async with world.client() as client:
        created = await client.post("/v1.0/groups", headers=world.graph_headers(), content=body)
        assert created.status_code == 201, created.text
        fetched = await client.get(f"/v1.0/groups/{created.json()['id']}", headers=world.graph_headers())
        query = await client.get("/v1.0/groups?$filter=displayName%20eq%20'%ED%A0%80'",
                                 headers=world.graph_headers())
    assert fetched.json()["displayName"] == "smile \U0001f600"
    assert query.status_code == 200 and query.json()["value"] == [], query.text


# ----------------------------------------------------------------------------- the data plane
def _openai_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and response.headers["x-ms-error-code"] == code, error
    assert response.headers.get("apim-request-id") and response.headers.get("x-request-id")
    return error


# A field no spec defines is refused ("Unrecognized request argument supplied"), so the second string sits where
# a spec allows any text: a key of `logit_bias` would have to be a token id, hence `user` and a message name.
DATA_PLANE = {
    "chat": ("/accounts/cielo-openai/openai/deployments/mock/chat/completions",
             b'{"messages": [{"role": "user", "content": VALUE, "name": "KEY"}]}'),
    "embeddings": ("/accounts/cielo-openai/openai/deployments/mock/embeddings",
                   b'{"input": [VALUE], "user": "KEY"}'),
    "v1 chat": ("/accounts/cielo-openai/openai/v1/chat/completions",
                b'{"model": "mock", "messages": [{"role": "user", "content": [{"type": "text", "text": VALUE}]}],'
                b' "user": "KEY"}'),
}


@pytest.mark.parametrize("operation", DATA_PLANE)
@pytest.mark.parametrize("name", LONE)
async def test_data_plane_refuses_a_lone_surrogate(world: World, operation: str, name: str) -> None:
    path, template = DATA_PLANE[operation]
    headers = {"api-key": world.api_key, "Content-Type": "application/json"}
    async with world.client() as client:
        for body in bodies_with(LONE[name], template):
            response = await client.post(path, params={"api-version": OPENAI_API}, headers=headers, content=body)
            error = _openai_error(response, 400, "BadRequest")
            assert error["type"] == "invalid_request_error" and "surrogate" in error["message"], error


@pytest.mark.parametrize("operation", DATA_PLANE)
async def test_data_plane_accepts_a_valid_pair(world: World, operation: str) -> None:
    path, template = DATA_PLANE[operation]
    body = template.replace(b"VALUE", b'"smile ' + EMOJI[1:-1] + b'"').replace(b'"KEY"', EMOJI)
    headers = {"api-key": world.api_key, "Content-Type": "application/json"}
    async with world.client() as client:
        response = await client.post(path, params={"api-version": OPENAI_API}, headers=headers, content=body)
    assert response.status_code == 200, response.text
    if operation == "chat":  # the mock model echoes the last message's text
        assert response.json()["choices"][0]["message"]["content"] == "echo: smile \U0001f600"


async def test_data_plane_query_cannot_carry_a_surrogate(world: World) -> None:
    path, _ = DATA_PLANE["chat"]
    async with world.client() as client:  # percent-decoding makes U+FFFD of the bytes: not a version
        response = await client.post(f"{path}?api-version=%ED%A0%80", headers={"api-key": world.api_key},
                                     json={"messages": [{"role": "user", "content": "hi"}]})
    assert "\ufffd" in _openai_error(response, 404, "UnsupportedApiVersion")["message"]


# ----------------------------------------------------------------------------- the token endpoint (forms)
async def test_token_endpoint_refuses_an_encoded_surrogate(world: World) -> None:
    async with world.client() as client:
        for form in ("client_id=%ED%A0%80&grant_type=client_credentials&scope=x",
                     f"client_id={CLI_CLIENT_ID}&grant_type=password&username={ADMIN}&password=a%ED%B0%80b"
                     "&scope=https://graph.microsoft.com/.default"):
            response = await client.post(f"/{world.tenant}/oauth2/v2.0/token", content=form.encode(),
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert response.status_code == 400, response.text
            body = response.json()
            assert body["error"] == "invalid_request" and body["error_codes"] == [9002313], body


# ----------------------------------------------------------------------------- records an older release stored
def _poison_row(data_dir: Path, table: str, column: str, key_column: str, key: str, text: str) -> None:
    """Write `text` into a row directly, as an older release (whose boundary let a surrogate in) would have."""
    with sqlite3.connect(data_dir / "cielo.db") as db:
        changed = db.execute(f"UPDATE {table} SET {column} = ? WHERE {key_column} = ?", (text, key)).rowcount
    assert changed == 1


async def test_records_stored_with_lone_surrogates_are_still_listed(world: World) -> None:
    group = _unique("legacy")
    async with world.client() as client:
        created = await client.put(world.rg(group), headers=world.arm_headers(),
                                   content=b'{"location": "local", "tags": {"a": "b"}}')
        assert created.status_code == 201, created.text
        app = await client.post("/v1.0/applications", headers=world.graph_headers(),
                                content=b'{"displayName": "legacy", "web": {"redirectUris": ["https://x.test/cb"]}}')
        assert app.status_code == 201, app.text
        key = f"/subscriptions/{world.sub}/resourcegroups/{group}".lower()
        _poison_row(world.data_dir, "resources", "tags", "key", key,
                    '{"a": "\\ud800", "\\udc00": "b", "pair": "\\ud83d\\ude00"}')
        _poison_row(world.data_dir, "resources", "properties", "key", key,
                    '{"provisioningState": "Succeeded", "note": "x\\udc00\\ud800y"}')
        _poison_row(world.data_dir, "applications", "redirect_uris", "object_id", app.json()["id"],
                    '["https://x.test/\\ud800"]')
        fetched = await client.get(world.rg(group), headers=world.arm_headers())
        groups = await client.get(f"/subscriptions/{world.sub}/resourcegroups?api-version={ARM_API}",
                                  headers=world.arm_headers())
        resources = await client.get(f"/subscriptions/{world.sub}/resourcegroups/{group}/resources"
                                     f"?api-version={ARM_API}", headers=world.arm_headers())
        apps = await client.get("/v1.0/applications", headers=world.graph_headers())
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["tags"] == {"a": "\ufffd", "\ufffd": "b", "pair": "\U0001f600"}
    assert groups.status_code == 200 and group in [g["name"] for g in groups.json()["value"]], groups.text
    assert resources.status_code == 200, resources.text
    assert apps.status_code == 200, apps.text
    listed = next(a for a in apps.json()["value"] if a["id"] == app.json()["id"])
    assert listed["web"]["redirectUris"] == ["https://x.test/\ufffd"]


# ----------------------------------------------------------------------------- 500s
def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError(f"forced failure with client_secret={SECRET} in its message")


def _one_traceback(caplog: pytest.LogCaptureFixture, request_id: str) -> str:
    records = [r for r in caplog.records if request_id in r.getMessage()]
    assert len(records) == 1, [r.getMessage()[:200] for r in caplog.records]
    text = records[0].getMessage()
    assert "Traceback (most recent call last)" in text and "RuntimeError: forced failure" in text, text
    assert SECRET not in caplog.text and records[0].exc_info is None
    return text


async def test_arm_unhandled_error_is_a_500_in_its_envelope(world: World, caplog: pytest.LogCaptureFixture,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(world.services.resources, "get_group", _boom)
    with caplog.at_level(logging.ERROR, logger="cielo.api"):
        async with world.client() as client:
            response = await client.get(world.rg(DEFAULT_RESOURCE_GROUP), headers=world.arm_headers())
    message = _arm_error(response, 500, "InternalServerError")
    request_id = response.headers["x-ms-request-id"]
    assert f"(request id {request_id})" in message
    _one_traceback(caplog, request_id)


async def test_graph_unhandled_error_is_a_500_in_its_envelope(world: World, caplog: pytest.LogCaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(world.services.directory, "get_group", _boom)
    with caplog.at_level(logging.ERROR, logger="cielo.api"):
        async with world.client() as client:
            response = await client.get(f"/v1.0/groups/{uuid.uuid4()}",
                                        headers={**world.graph_headers(), "client-request-id": "my-id"})
    assert response.status_code == 500, response.text
    error = response.json()["error"]
    assert error["code"] == "generalException" and error["message"] == "An unspecified error has occurred."
    inner = error["innerError"]
    assert inner["request-id"] == response.headers["request-id"] and inner["client-request-id"] == "my-id"
    assert inner["date"] and response.headers["client-request-id"] == "my-id"
    _one_traceback(caplog, inner["request-id"])


async def test_data_plane_unhandled_error_is_a_500_in_its_envelope(
        world: World, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    async def boom(*args: Any, **kwargs: Any) -> Any:
        _boom()

    monkeypatch.setattr(world.services.dataplane, "generate", boom)
    path, _ = DATA_PLANE["chat"]
    with caplog.at_level(logging.ERROR, logger="cielo.api"):
        async with world.client() as client:
            response = await client.post(path, params={"api-version": OPENAI_API},
                                         headers={"api-key": world.api_key, "x-ms-client-request-id": "mine"},
                                         json={"messages": [{"role": "user", "content": "hi"}]})
    error = _openai_error(response, 500, "InternalServerError")
    request_id = response.headers["apim-request-id"]
    assert error["type"] == "server_error" and error["param"] is None and request_id in error["message"]
    assert response.headers["x-request-id"] == request_id and response.headers["x-ms-client-request-id"] == "mine"
    _one_traceback(caplog, request_id)


async def test_token_service_unhandled_error_is_a_500_in_its_envelope(
        world: World, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(world.services.tokens, "token", _boom)
    with caplog.at_level(logging.ERROR, logger="cielo.api"):
        async with world.client() as client:
            response = await client.post(f"/{world.tenant}/oauth2/v2.0/token", headers={"client-request-id": "c-1"},
                                         data={"client_id": CLI_CLIENT_ID, "grant_type": "client_credentials",
                                               "client_secret": SECRET, "scope": "x/.default"})
    assert response.status_code == 500, response.text
    body = response.json()
    assert body["error"] == "server_error" and body["error_codes"] == [50000], body
    assert body["error_description"].startswith("AADSTS50000: ") and body["correlation_id"] == "c-1"
    assert f"Trace ID: {body['trace_id']}" in body["error_description"]
    assert response.headers["cache-control"].startswith("no-store")
    _one_traceback(caplog, body["trace_id"])


async def test_a_stream_failing_after_its_headers_is_not_answered_twice(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(world.app.state.settings, world.services)

    async def broken_events() -> AsyncIterator[bytes]:
        yield b"data: {}\n\n"
        _boom()

    async def broken(request: Request) -> Response:  # a test-only route, on this app only
        return StreamingResponse(broken_events(), media_type="text/event-stream")

    app.add_api_route("/accounts/{account_name}/openai/test-broken-stream", broken, methods=["GET"])
    sent: list[Message] = []

    async def receive() -> Message:
        await asyncio.sleep(3600)  # the client stays: only the app ends this request
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "https",
             "path": "/accounts/cielo-openai/openai/test-broken-stream", "raw_path": b"", "query_string": b"",
             "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8443)}
    with caplog.at_level(logging.ERROR, logger="cielo.api"):
        await asyncio.wait_for(app(scope, receive, send), 10)  # returns: the server closes the connection
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in starts] == [200]
    assert b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body") == b"data: {}\n\n"
    assert not any(m.get("more_body") is False for m in sent if m["type"] == "http.response.body")
    records = [r for r in caplog.records if "after the response had started" in r.getMessage()]
    assert len(records) == 1 and SECRET not in caplog.text


# ----------------------------------------------------------------------------- the host agent
class _FailingTokens:
    async def token(self, resource: str, selector: tuple[str, str] | None) -> dict[str, Any]:
        return _boom()  # type: ignore[no-any-return]

    async def close(self) -> None:
        pass


async def test_agent_unhandled_error_is_a_500_in_each_protocol(caplog: pytest.LogCaptureFixture) -> None:
    app = build_agent(_FailingTokens(), "s3cret", "tenant")  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    with caplog.at_level(logging.ERROR, logger="cielo.agent"):
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            imds = await client.get("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://x/",
                                    headers={"Metadata": "true"})
            app_service = await client.get("/msi/token?api-version=2019-08-01&resource=https://x/",
                                           headers={"X-IDENTITY-HEADER": "s3cret"})
    assert imds.status_code == 500 and imds.json()["error"] == "server_error", imds.text
    assert app_service.status_code == 500 and app_service.json()["statusCode"] == 500, app_service.text
    for message in (imds.json()["error_description"], app_service.json()["message"]):
        request_id = message.rsplit("request id ", 1)[1].rstrip(").")
        records = [r for r in caplog.records if request_id in r.getMessage()]
        assert len(records) == 1 and "Traceback" in records[0].getMessage()
    assert SECRET not in caplog.text
