"""The Azure OpenAI data plane with the mock model, in-process: response shapes (chat, completions, streams,
embeddings, deployments, models, v1 routes), api-version rules, authentication (key, bearer, RBAC) in Azure's
401/403/404 shapes, body validation, and quota answers (429 with its headers, 400 RequestTooLarge)."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import httpx
import pytest
from inproc import (
    ACCOUNT,
    COG_RESOURCE,
    MOCK_DEPLOYMENT,
    World,
    arm_call,
    assign,
    bearer,
    error_of,
    new_principal,
    sp_token,
    unique,
)

from cielo.core.clock import FrozenClock

CHAT = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]}


@pytest.fixture(scope="module")
def openai_user(world: World) -> dict[str, str]:
    """A service principal holding Cognitive Services OpenAI User on the default account, with its token."""
    import asyncio

    async def make() -> dict[str, str]:
        async with world.client() as client:
            who = await new_principal(client, world)
            answer = await arm_call(client, world, "PUT", f"{world.account_path()}/providers/Microsoft.Authorization/"
                                    f"roleAssignments/{uuid.uuid4()}", {"properties": {
                                        "roleDefinitionId": f"{world.sub_path}/providers/Microsoft.Authorization/"
                                        "roleDefinitions/5e0bd9bd-7b93-4f28-af87-19fc36ad61bd",
                                        "principalId": who.sp_id}})
            assert answer.status_code == 201, answer.text
            return {"id": who.sp_id, "token": await sp_token(client, world, who, COG_RESOURCE)}

    return asyncio.run(make())


def _key(world: World) -> dict[str, str]:
    return {"api-key": world.api_key}


# ----------------------------------------------------------------------------- shapes
async def test_chat_completion_shape(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(world.openai_url("chat/completions"), json=CHAT,
                               headers={**_key(world), "x-ms-client-request-id": "req-1"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-ms-client-request-id"] == "req-1"
    assert answer.headers["apim-request-id"] and answer.headers["x-request-id"]
    assert int(answer.headers["x-ratelimit-remaining-requests"]) >= 0
    assert int(answer.headers["x-ratelimit-remaining-tokens"]) >= 0
    body = answer.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] and isinstance(body["created"], int) and "system_fingerprint" in body
    choice = body["choices"][0]
    assert choice["message"] == {**choice["message"], "role": "assistant", "content": "echo: hello there"}
    assert choice["finish_reason"] == "stop"
    assert choice["content_filter_results"]["hate"] == {"filtered": False, "severity": "safe"}
    assert body["prompt_filter_results"][0]["prompt_index"] == 0
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]


async def test_completion_shape_with_n(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(world.openai_url("completions"), json={"prompt": "once upon", "n": 2,
                                                                     "max_tokens": 5}, headers=_key(world))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert body["choices"][0]["text"] == "echo: once upon"


async def test_chat_stream(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(world.openai_url("chat/completions"), json={**CHAT, "stream": True},
                               headers=_key(world))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = [line[len("data: "):] for line in answer.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"] == [] and "prompt_filter_results" in chunks[0]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[1:] if c["choices"])
    assert text == "echo: hello there"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_embeddings_shape(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(world.openai_url("embeddings"), json={"input": ["a b", "c"]}, headers=_key(world))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "list" and [d["index"] for d in body["data"]] == [0, 1]
    assert all(d["object"] == "embedding" and isinstance(d["embedding"], list) for d in body["data"])
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    b64 = await client.post(world.openai_url("embeddings"), json={"input": "a b", "encoding_format": "base64"},
                            headers=_key(world))
    assert isinstance(b64.json()["data"][0]["embedding"], str)


async def test_deployments_and_models_listings(client: httpx.AsyncClient, world: World) -> None:
    listed = await client.get(f"/accounts/{ACCOUNT}/openai/deployments?api-version=2022-12-01", headers=_key(world))
    assert listed.status_code == 200, listed.text
    names = {d["id"] for d in listed.json()["data"]}
    assert {MOCK_DEPLOYMENT, "smollm2", "e5-small"} <= names
    one = await client.get(f"/accounts/{ACCOUNT}/openai/deployments/{MOCK_DEPLOYMENT}?api-version=2022-12-01",
                           headers=_key(world))
    assert one.status_code == 200 and one.json()["id"] == MOCK_DEPLOYMENT and one.json()["model"] == "mock"
    models = await client.get(f"/accounts/{ACCOUNT}/openai/models?api-version=2024-10-21", headers=_key(world))
    assert models.status_code == 200 and models.json()["object"] == "list" and models.json()["data"]
    v1 = await client.get(f"/accounts/{ACCOUNT}/openai/v1/models", headers=bearer(world.api_key))
    assert v1.status_code == 200 and v1.json()["data"]


async def test_v1_routes_take_the_deployment_as_model(client: httpx.AsyncClient, world: World) -> None:
    # The stock OpenAI() client: the key as a bearer, no api-version.
    chat = await client.post(f"/accounts/{ACCOUNT}/openai/v1/chat/completions",
                             json={**CHAT, "model": MOCK_DEPLOYMENT}, headers=bearer(world.api_key))
    assert chat.status_code == 200 and chat.json()["choices"][0]["message"]["content"] == "echo: hello there"
    done = await client.post(f"/accounts/{ACCOUNT}/openai/v1/completions",
                             json={"prompt": "x", "model": MOCK_DEPLOYMENT}, headers=bearer(world.api_key))
    assert done.status_code == 200
    emb = await client.post(f"/accounts/{ACCOUNT}/openai/v1/embeddings",
                            json={"input": "x", "model": MOCK_DEPLOYMENT}, headers=bearer(world.api_key))
    assert emb.status_code == 200
    missing = await client.post(f"/accounts/{ACCOUNT}/openai/v1/chat/completions", json=CHAT,
                                headers=bearer(world.api_key))
    error = error_of(missing, 400, "BadRequest")
    assert error["param"] == "model"


# ----------------------------------------------------------------------------- api-version
@pytest.mark.parametrize(("version", "status", "code"), [
    (None, 400, "MissingApiVersionParameter"),
    ("2021-01-01", 404, "UnsupportedApiVersion"),
    ("garbage", 404, "UnsupportedApiVersion"),
])
async def test_api_version_rules(client: httpx.AsyncClient, world: World, version: str | None, status: int,
                                 code: str) -> None:
    answer = await client.post(world.openai_url("chat/completions", api_version=version), json=CHAT,
                               headers=_key(world))
    error = error_of(answer, status, code)
    if version:
        assert version in error["message"]


@pytest.mark.parametrize("version", ["2022-12-01", "2023-05-15", "2024-02-01", "2024-06-01", "2024-10-21",
                                     "2024-09-01-preview"])
async def test_supported_api_versions_for_completions(client: httpx.AsyncClient, world: World, version: str) -> None:
    answer = await client.post(world.openai_url("completions", api_version=version),
                               json={"prompt": "v", "max_tokens": 2}, headers=_key(world))
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("version", ["2022-12-01", "2023-05-15", "2024-02-01", "2024-06-01", "2025-01-01-preview"])
async def test_supported_api_versions(client: httpx.AsyncClient, world: World, version: str) -> None:
    answer = await client.post(world.openai_url("chat/completions", api_version=version), json=CHAT,
                               headers=_key(world))
    assert answer.status_code == 200, answer.text


# ----------------------------------------------------------------------------- authentication and RBAC
async def test_wrong_key(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(world.openai_url("chat/completions"), json=CHAT, headers={"api-key": "0" * 32})
    error = error_of(answer, 401, "401")
    assert error["message"].startswith("Access denied due to invalid subscription key or wrong API endpoint.")


async def test_no_credential(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(world.openai_url("chat/completions"), json=CHAT)
    assert answer.status_code == 401, answer.text
    assert "missing subscription key" in answer.text


@pytest.mark.parametrize("which", ["arm", "garbage"])
async def test_bearer_rejected(client: httpx.AsyncClient, world: World, which: str) -> None:
    headers = world.arm if which == "arm" else bearer("a.b.c")
    answer = await client.post(world.openai_url("chat/completions"), json=CHAT, headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.json() == {"statusCode": 401, "message": (
        "Unauthorized. Access token is missing, invalid, audience is incorrect "
        "(https://cognitiveservices.azure.com), or have expired.")}


async def test_owner_has_no_data_actions(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(world.openai_url("chat/completions"), json=CHAT, headers=world.cog)
    error = error_of(answer, 401, "PermissionDenied")
    assert error["message"] == (
        "The principal `admin@cielo.local` lacks the required data action "
        "`Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action` to perform "
        "`POST /openai/deployments/{deployment-id}/chat/completions` operation.")


async def test_openai_user_token_then_expiry(client: httpx.AsyncClient, world: World, openai_user: dict[str, str],
                                             moved_clock: FrozenClock) -> None:
    answer = await client.post(world.openai_url("chat/completions"), json=CHAT, headers=bearer(openai_user["token"]))
    assert answer.status_code == 200, answer.text
    moved_clock.advance(5400 + 301)
    expired = await client.post(world.openai_url("chat/completions"), json=CHAT,
                                headers=bearer(openai_user["token"]))
    assert expired.status_code == 401 and expired.json()["statusCode"] == 401


async def test_a_token_sent_as_api_key_and_as_bearer_is_a_bearer_token(client: httpx.AsyncClient, world: World,
                                                                         openai_user: dict[str, str]) -> None:
    """llama-index's Entra setup with openai>=2.34 sends the token in both headers; a JWT in `api-key` alone, or
    beside another bearer, is still a (wrong) key, and a real key beside any bearer is still the key."""
    token = openai_user["token"]
    url = world.openai_url("chat/completions")
    both = await client.post(url, json=CHAT, headers={"api-key": token, **bearer(token)})
    assert both.status_code == 200, both.text
    for headers in ({"api-key": token}, {"api-key": token, **bearer("a.b.c")}):
        refused = await client.post(url, json=CHAT, headers=headers)
        error = error_of(refused, 401, "401")
        assert error["message"].startswith("Access denied due to invalid subscription key")
    forged = await client.post(url, json=CHAT, headers={"api-key": token + "x", **bearer(token + "x")})
    assert forged.status_code == 401 and forged.json()["statusCode"] == 401  # validated as a bearer: refused
    keyed = await client.post(url, json=CHAT, headers={**_key(world), **bearer(token)})
    assert keyed.status_code == 200, keyed.text


async def test_disable_local_auth(client: httpx.AsyncClient, world: World) -> None:
    rg = unique("rg-dp")
    assert (await arm_call(client, world, "PUT", world.rg_path(rg), {"location": "local"})).status_code == 201
    name = unique("nolocal")
    made = await arm_call(client, world, "PUT", world.account_path(name, rg), {
        "location": "local", "kind": "OpenAI", "sku": {"name": "S0"}, "properties": {"disableLocalAuth": True}})
    assert made.status_code == 201, made.text
    answer = await client.post(world.openai_url("chat/completions", account=name), json=CHAT,
                               headers={"api-key": world.api_key})
    error_of(answer, 403, "AuthenticationTypeDisabled")


async def test_unknown_account_and_deployment(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(world.openai_url("chat/completions", account="nope"), json=CHAT, headers=_key(world))
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "404"
    missing = await client.post(world.openai_url("chat/completions", deployment="nope"), json=CHAT,
                                headers=_key(world))
    error = error_of(missing, 404, "DeploymentNotFound")
    assert error["message"] == ("The API deployment for this resource does not exist. If you created the deployment "
                                "within the last 5 minutes, please wait a moment and try again.")
    upper = await client.post(world.openai_url("embeddings", deployment="NO-SUCH"), json={"input": "x"},
                              headers=_key(world))
    assert upper.status_code == 404, upper.text
    # The deployments listing needs an api-version too.
    listing = await client.get(f"/accounts/{ACCOUNT}/openai/deployments", headers={"api-key": "x"})
    error_of(listing, 400, "MissingApiVersionParameter")


async def test_embeddings_on_a_chat_only_deployment_or_chat_on_embeddings(client: httpx.AsyncClient,
                                                                         world: World) -> None:
    answer = await client.post(world.openai_url("embeddings", deployment="smollm2"), json={"input": "x"},
                               headers=_key(world))
    assert answer.status_code == 400, answer.text
    assert "Embeddings_Create" in error_of(answer, 400, "OperationNotSupported")["message"]
    answer = await client.post(world.openai_url("chat/completions", deployment="e5-small"), json=CHAT,
                               headers=_key(world))
    assert answer.status_code == 400, answer.text
    assert "ChatCompletions_Create" in error_of(answer, 400, "OperationNotSupported")["message"]


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(("op", "body", "param"), [
    ("chat/completions", {"messages": []}, "messages"),
    ("chat/completions", {"messages": ["hi"]}, "messages[0]"),
    ("chat/completions", {"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ("chat/completions", {"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ("chat/completions", {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
     "messages[0].content"),
    ("chat/completions", {**CHAT, "temperature": 3}, "temperature"),
    ("chat/completions", {**CHAT, "max_tokens": "ten"}, "max_tokens"),
    ("chat/completions", {**CHAT, "stream": "yes"}, "stream"),
    ("chat/completions", {**CHAT, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ("completions", {"prompt": 5}, "prompt"),
    ("completions", {"prompt": "x", "best_of": 21}, "best_of"),
    ("embeddings", {"input": []}, "input"),
    ("embeddings", {"input": ["ok", ""]}, "input"),
    ("embeddings", {"input": "x", "encoding_format": "int8"}, "encoding_format"),
])
async def test_body_validation(client: httpx.AsyncClient, world: World, op: str, body: dict[str, Any],
                               param: str) -> None:
    answer = await client.post(world.openai_url(op), json=body, headers=_key(world))
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error", error
    assert error["code"] in ("BadRequest", "invalid_value"), error


def _bad_request(answer: httpx.Response, param: str | None, code: str = "BadRequest") -> dict[str, Any]:
    error = error_of(answer, 400, code)
    assert error["type"] == "invalid_request_error" and error.get("param") == param, error
    return error


@pytest.mark.parametrize(("op", "body", "param", "code"), [
    ("chat/completions", {"messages": "Hi"}, "messages", "BadRequest"),
    ("chat/completions", {"max_tokens": 3}, "messages", "BadRequest"),
    ("chat/completions", {**CHAT, "temperature": 5}, "temperature", None),
    ("chat/completions", {**CHAT, "n": 0}, "n", None),
    ("chat/completions", {**CHAT, "top_p": 2}, "top_p", None),
    ("chat/completions", {**CHAT, "presence_penalty": -3}, "presence_penalty", None),
    ("completions", {"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop", "BadRequest"),
    ("completions", {"prompt": "x", "logprobs": 9}, "logprobs", "invalid_value"),
    ("completions", {"max_tokens": 3}, "prompt", "BadRequest"),
])
async def test_more_body_validation(client: httpx.AsyncClient, world: World, op: str, body: dict[str, Any],
                                    param: str, code: str | None) -> None:
    answer = await client.post(world.openai_url(op), json=body, headers=_key(world))
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error", error
    if code:
        _bad_request(answer, param, code)


async def test_unreadable_bodies_say_why(client: httpx.AsyncClient, world: World) -> None:
    url = world.openai_url("chat/completions")
    raw = {**_key(world), "Content-Type": "application/json"}
    error = _bad_request(await client.post(url, content=b'{"messages": [{"role": "user", ', headers=raw), None)
    assert "not valid JSON" in error["message"]
    _bad_request(await client.post(url, content=b"\xff\xfe not utf-8", headers=raw), None)
    error = _bad_request(await client.post(url, content=b'[{"role": "user", "content": "Hi"}]', headers=raw), None)
    assert "JSON object" in error["message"]
    for constant in ("NaN", "Infinity", "-Infinity"):  # json.loads takes them; JSON has no such numbers
        body = b'{"messages": [{"role": "user", "content": "Hi"}], "metadata": {"x": ' + constant.encode() + b"}}"
        error = _bad_request(await client.post(url, content=body, headers=raw), None)
        assert f"{constant} is not a JSON number" in error["message"]
    _bad_request(await client.post(url, content=b"", headers=raw), None)
    error = _bad_request(await client.post(url, json={**CHAT, "temperature": "hot"}, headers=_key(world)),
                         "temperature")
    assert "number" in error["message"]
    # Over 4 MiB on completions as well.
    huge = b'{"prompt": "' + b"a" * (4 * 1024 * 1024 + 16) + b'"}'
    error_of(await client.post(world.openai_url("completions"), content=huge, headers=raw), 413,
                 "RequestTooLarge")


@pytest.mark.parametrize("raw", [b"{", b"[1]", b"[" * 100 + b"]" * 100])
async def test_bodies_that_are_not_an_object(client: httpx.AsyncClient, world: World, raw: bytes) -> None:
    answer = await client.post(world.openai_url("chat/completions"), content=raw,
                               headers={**_key(world), "Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["type"] == "invalid_request_error"


async def test_body_over_the_limit(client: httpx.AsyncClient, world: World) -> None:
    answer = await client.post(world.openai_url("chat/completions"), content=b"x" * (4 * 1024 * 1024 + 1),
                               headers={**_key(world), "Content-Type": "application/json"})
    error_of(answer, 413, "RequestTooLarge")


# ----------------------------------------------------------------------------- quotas
async def _small_deployment(client: httpx.AsyncClient, world: World) -> str:
    name = unique("q")
    answer = await arm_call(client, world, "PUT", world.account_path() + f"/deployments/{name}", {
        "sku": {"name": "Standard", "capacity": 1},
        "properties": {"model": {"format": "Cielo", "name": "mock", "version": "1"}}})
    assert answer.status_code == 201, answer.text
    return name


async def test_call_rate_limit_429_and_its_headers(client: httpx.AsyncClient, world: World,
                                                   moved_clock: FrozenClock) -> None:
    name = await _small_deployment(client, world)  # 2 requests per 10 s, 1000 tokens per 60 s
    body = {"prompt": "x", "max_tokens": 1}
    first = await client.post(world.openai_url("completions", name), json=body, headers=_key(world))
    assert first.status_code == 200 and first.headers["x-ratelimit-remaining-requests"] == "1"
    assert (await client.post(world.openai_url("completions", name), json=body, headers=_key(world))).status_code == 200
    limited = await client.post(world.openai_url("completions", name), json=body, headers=_key(world))
    error = error_of(limited, 429, "429")
    assert "call rate limit" in error["message"] and "Completions_Create" in error["message"]
    retry = int(limited.headers["retry-after"])
    assert 1 <= retry <= 10 and int(limited.headers["retry-after-ms"]) <= retry * 1000
    assert limited.headers["policy-id"] == "DeploymentRatelimit-Call"
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"
    moved_clock.advance(retry)
    assert (await client.post(world.openai_url("completions", name), json=body, headers=_key(world))).status_code == 200


async def test_token_rate_limit_and_request_too_large(client: httpx.AsyncClient, world: World,
                                                      moved_clock: FrozenClock) -> None:
    name = await _small_deployment(client, world)
    too_large = await client.post(world.openai_url("chat/completions", name), json={**CHAT, "max_tokens": 5000},
                                  headers=_key(world))
    error = error_of(too_large, 400, "RequestTooLarge")
    assert error["param"] == "max_tokens" and error["type"] == "invalid_request_error"
    big = await client.post(world.openai_url("completions", name), json={"prompt": "x", "max_tokens": 900},
                            headers=_key(world))
    assert big.status_code == 200, big.text
    limited = await client.post(world.openai_url("completions", name), json={"prompt": "x", "max_tokens": 900},
                                headers=_key(world))
    error = error_of(limited, 429, "429")
    assert "token rate limit" in error["message"]
    assert limited.headers["policy-id"] == "DeploymentRatelimit-Token"
    assert "x-rate-limit-reset-tokens" in limited.headers
    moved_clock.advance(60)
    again = await client.post(world.openai_url("completions", name), json={"prompt": "x", "max_tokens": 900},
                              headers=_key(world))
    assert again.status_code == 200, again.text


async def test_an_open_ended_chat_gives_back_its_reservation_when_it_ends(client: httpx.AsyncClient, world: World,
                                                                         moved_clock: FrozenClock) -> None:
    """Chat without max_tokens reserves the model's context (2,048 tokens a slot here) while it runs, then keeps
    only what it used; with max_tokens named, the estimate stays charged for the minute."""
    name = unique("q")
    answer = await arm_call(client, world, "PUT", world.account_path() + f"/deployments/{name}", {
        "sku": {"name": "Standard", "capacity": 5},  # 5,000 tokens a minute, 5 requests per 10 s
        "properties": {"model": {"format": "Cielo", "name": "mock", "version": "1"}}})
    assert answer.status_code == 201, answer.text
    url = world.openai_url("chat/completions", name)
    remaining = []
    for stream in (False, True, False):  # each reserves more than 2,048 tokens: 3 of them would not fit at once
        done = await client.post(url, json={**CHAT, "stream": stream}, headers=_key(world))
        assert done.status_code == 200, done.text
        remaining.append(int(done.headers["x-ratelimit-remaining-tokens"]))
    assert all(r < 3000 for r in remaining)  # while each ran, its whole reservation was counted
    moved_clock.advance(10)  # a new request window, the same token window
    named = {**CHAT, "max_tokens": 2000}
    assert (await client.post(url, json=named, headers=_key(world))).status_code == 200
    assert (await client.post(url, json=named, headers=_key(world))).status_code == 200
    error_of(await client.post(url, json=named, headers=_key(world)), 429, "429")


async def test_a_new_assignment_applies_to_the_next_request(client: httpx.AsyncClient, world: World) -> None:
    who = await new_principal(client, world)
    token = bearer(await sp_token(client, world, who, COG_RESOURCE))
    denied = await client.post(world.openai_url("embeddings"), json={"input": "x"}, headers=token)
    error_of(denied, 401, "PermissionDenied")
    await assign(client, world, "Cognitive Services User", who.sp_id, world.account_path())
    allowed = await client.post(world.openai_url("embeddings"), json={"input": "x"}, headers=token)
    assert allowed.status_code == 200, allowed.text


async def test_permission_denied_reason_is_logged_with_the_request_id(
        client: httpx.AsyncClient, world: World, caplog: pytest.LogCaptureFixture) -> None:
    """RBAC's reason for a data-plane PermissionDenied is logged at debug level with the apim-request-id the
    answer carries, and never sent; the token is not in the log."""
    with caplog.at_level(logging.DEBUG, logger="cielo"):
        answer = await client.post(world.openai_url("chat/completions"), json=CHAT, headers=world.cog)
    error = error_of(answer, 401, "PermissionDenied")
    assert "Denied" not in error["message"]
    request_id = answer.headers["apim-request-id"]
    lines = [r.getMessage() for r in caplog.records if request_id in r.getMessage() and r.name != "cielo.access"]
    assert len(lines) == 1, caplog.text
    assert lines[0].startswith("PermissionDenied on POST ")
    assert f"(request id {request_id}): Denied: " in lines[0]
    assert "data action 'Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action'" in lines[0]
    assert all(r.levelno == logging.DEBUG for r in caplog.records
               if request_id in r.getMessage() and r.name != "cielo.access")  # the access line names it too
    assert world.cog["Authorization"].split()[1] not in caplog.text
