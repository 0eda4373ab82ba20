"""How Cielo picks and authenticates an upstream engine: `--gguf` / `--upstream` specs (dataplane/catalogue.py),
the backend registry (dataplane/backends.py), and the tokens Cielo presents upstream (backends/upstream_auth.py:
a service principal's client credentials, or this host's managed identity), against a token service on loopback.
No model is loaded."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from cielo.backends import upstream_auth
from cielo.backends.base import BackendError
from cielo.dataplane.backends import BackendRegistry
from cielo.dataplane.catalogue import E5_SMALL, MOCK, SMOLLM2, ModelCatalogue, ModelEntry, parse_gguf, parse_upstream


@dataclass
class TokenService:
    """Answers token requests with the next of `answers` (status, JSON), and records each request."""

    answers: list[tuple[int, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        form = dict(await request.post()) if request.method == "POST" else {}
        self.requests.append({"method": request.method, "path": request.path, "query": dict(request.query),
                              "form": form, "headers": dict(request.headers)})
        status, body = self.answers.pop(0)
        return web.json_response(body, status=status)


@pytest.fixture()
async def tokens() -> AsyncIterator[TokenService]:
    service = TokenService()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", service.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    service.url = f"http://127.0.0.1:{port}"
    yield service
    await runner.cleanup()


async def test_client_credentials_are_sent_and_the_token_cached_until_near_expiry(
        tokens: TokenService, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_000_000.0]
    monkeypatch.setattr("cielo.backends.upstream_auth.time.time", lambda: now[0])
    tokens.answers = [(200, {"access_token": "t1", "expires_in": 3600}), (200, {"access_token": "t2"})]
    provider = upstream_auth.client_credentials(f"{tokens.url}/tenant/oauth2/v2.0/token", "app-id", "s3cret",
                                                "https://cognitiveservices.azure.com/.default")
    assert await provider() == "t1"
    assert tokens.requests[0]["form"] == {"grant_type": "client_credentials", "client_id": "app-id",
                                          "client_secret": "s3cret",
                                          "scope": "https://cognitiveservices.azure.com/.default"}
    assert tokens.requests[0]["path"] == "/tenant/oauth2/v2.0/token"
    now[0] += 3600 - 301  # still more than five minutes left: cached
    assert await provider() == "t1" and len(tokens.requests) == 1
    now[0] += 2  # within five minutes of expiry: renewed (expires_in defaults to an hour)
    assert await provider() == "t2" and len(tokens.requests) == 2


@pytest.mark.parametrize(("status", "body", "says"), [
    (401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."},
     "refused Cielo's credential: AADSTS7000215: Invalid client secret provided."),
    (200, {"token_type": "Bearer"}, "refused Cielo's credential: {'token_type': 'Bearer'}"),
    (400, {"error": "x" * 500}, "refused Cielo's credential: {'error': '" + "x" * 100),
])
async def test_a_refused_credential_is_a_502(tokens: TokenService, status: int, body: Any, says: str) -> None:
    tokens.answers = [(status, body)]
    provider = upstream_auth.client_credentials(f"{tokens.url}/token", "app-id", "wrong", "api://x/.default")
    with pytest.raises(BackendError) as caught:
        await provider()
    assert (caught.value.status, caught.value.code) == (502, "UpstreamAuthenticationFailed")
    assert says in caught.value.message
    assert len(caught.value.message) < 300  # the body is cut, never echoed whole
    assert "wrong" not in caught.value.message


async def test_an_unreachable_token_service_is_a_502() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again at once: nothing listens there
    with pytest.raises(BackendError) as caught:
        await upstream_auth.client_credentials(f"http://127.0.0.1:{port}/token", "a", "s", "x")()
    assert (caught.value.status, caught.value.code) == (502, "UpstreamAuthenticationFailed")
    assert caught.value.message == "Could not get a token for the upstream: ClientConnectorError"


@pytest.mark.parametrize(("app_service", "identity", "expected_query"), [
    (True, None, {"api-version": "2019-08-01", "resource": "https://cognitiveservices.azure.com"}),
    (True, "11111111-2222-3333-4444-555555555555", {"api-version": "2019-08-01",
                                                    "resource": "https://cognitiveservices.azure.com",
                                                    "client_id": "11111111-2222-3333-4444-555555555555"}),
    (False, "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u",
     {"api-version": "2018-02-01", "resource": "https://cognitiveservices.azure.com",
      "msi_res_id": "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u"}),
])
async def test_the_managed_identity_is_asked_where_the_host_says(
        tokens: TokenService, monkeypatch: pytest.MonkeyPatch, app_service: bool, identity: str | None,
        expected_query: dict[str, str]) -> None:
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "AZURE_POD_IDENTITY_AUTHORITY_HOST"):
        monkeypatch.delenv(name, raising=False)
    if app_service:
        monkeypatch.setenv("IDENTITY_ENDPOINT", f"{tokens.url}/msi/token")
        monkeypatch.setenv("IDENTITY_HEADER", "header-secret")
    else:
        monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", tokens.url + "/")
    expires_on = int(time.time()) + 7200
    tokens.answers = [(200, {"access_token": "mi-token", "expires_on": str(expires_on)})]
    provider = upstream_auth.managed_identity("https://cognitiveservices.azure.com/.default", identity)
    assert await provider() == "mi-token"
    assert await provider() == "mi-token"  # cached: two hours left
    [sent] = tokens.requests
    assert sent["method"] == "GET" and sent["query"] == expected_query
    if app_service:
        assert (sent["path"], sent["headers"]["X-IDENTITY-HEADER"]) == ("/msi/token", "header-secret")
    else:
        assert (sent["path"], sent["headers"]["Metadata"]) == ("/metadata/identity/oauth2/token", "true")


async def test_a_managed_identity_refusal_is_a_502(tokens: TokenService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{tokens.url}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "h")
    tokens.answers = [(400, {"statusCode": 400, "message": "Identity not found"})]
    with pytest.raises(BackendError) as caught:
        await upstream_auth.managed_identity("https://x")()
    assert caught.value.status == 502 and "Identity not found" in caught.value.message


@pytest.mark.parametrize(("spec", "expected"), [
    ("vllm=http://10.0.0.5:8000/v1", ModelEntry(
        "OpenAI-Compatible", "vllm", "1", (("chatCompletion", "true"), ("completion", "true")), "upstream",
        "http://10.0.0.5:8000/v1", "vllm")),
    ("emb=https://e.example/v1,model=bge,embeddings,api-key-env=EMB_KEY", ModelEntry(
        "OpenAI-Compatible", "emb", "1", (("embeddings", "true"),), "upstream", "https://e.example/v1", "bge",
        "EMB_KEY", (("api-key-env", "EMB_KEY"), ("embeddings", "true"), ("model", "bge")))),
    ("aoai=https://a.example,token-url=https://t/token,client-id=c,client-secret-env=S", ModelEntry(
        "OpenAI-Compatible", "aoai", "1", (("chatCompletion", "true"), ("completion", "true")), "upstream",
        "https://a.example", "aoai", "", (("client-id", "c"), ("client-secret-env", "S"),
                                          ("token-url", "https://t/token")))),
])
def test_upstream_specs(spec: str, expected: ModelEntry) -> None:
    assert parse_upstream(spec) == expected


@pytest.mark.parametrize(("spec", "error"), [
    ("vllm", "--upstream expects NAME=URL"),
    ("=http://x", "--upstream expects NAME=URL"),
    ("vllm=ftp://x", "--upstream expects NAME=URL"),
    ("vllm=http://x,colour=blue", "--upstream: unknown option 'colour'"),
    ("vllm=http://x,token-url=https://t", "--upstream: token-url needs client-id and client-secret-env"),
])
def test_bad_upstream_specs(spec: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_upstream(spec)


def test_gguf_specs_and_catalogue_lookup() -> None:
    entry = parse_gguf("tiny=/models/tiny.gguf")
    assert (entry.format, entry.name, entry.backend, entry.target, entry.is_embedding) == (
        "GGUF", "tiny", "llamacpp", "/models/tiny.gguf", False)
    for bad in ("tiny", "=/x", "tiny="):
        with pytest.raises(ValueError, match="--gguf expects NAME=PATH"):
            parse_gguf(bad)
    catalogue = ModelCatalogue([SMOLLM2, E5_SMALL, entry])
    assert catalogue.by_name("smollm2-135m-instruct") is SMOLLM2
    assert catalogue.find("huggingface", "multilingual-e5-small", "1") is E5_SMALL
    assert catalogue.find("GGUF", "multilingual-e5-small", None) is None
    assert catalogue.find(None, "tiny", "2") is None
    assert E5_SMALL.is_embedding and not SMOLLM2.is_embedding


async def test_the_registry_makes_one_backend_per_model_lazily() -> None:
    registry = BackendRegistry(n_ctx=4096, n_parallel=4)
    assert registry.context_per_slot() == 1024
    mock = registry.for_model(MOCK)
    assert registry.for_model(MOCK) is mock
    e5 = registry.for_model(E5_SMALL)  # made, not loaded: the model loads at the first embedding
    for call in (e5.complete("chat", {}), _first(e5.stream("chat", {}))):
        with pytest.raises(BackendError) as caught:
            await call
        assert (caught.value.status, caught.value.code) == (400, "OperationNotSupported")
    await registry.close()


async def _first(stream: Any) -> Any:
    async for item in stream:
        return item


@pytest.mark.parametrize(("entry", "status", "says"), [
    (ModelEntry("GGUF", "gone", "1", (), "llamacpp", "/nonexistent/model.gguf"), 503,
     "The model file for 'gone' is not installed"),
    (ModelEntry("X", "odd", "1", (), "tensorrt"), 500, "Unknown backend 'tensorrt'."),
    (parse_upstream("sp=https://u.example,token-url=https://t/token,client-id=c,client-secret-env=CIELO_TEST_UNSET"),
     503, "The upstream 'sp' names CIELO_TEST_UNSET for its client secret, but it is not set."),
])
def test_a_backend_that_cannot_be_made_says_why(monkeypatch: pytest.MonkeyPatch, entry: ModelEntry, status: int,
                                                 says: str) -> None:
    monkeypatch.delenv("CIELO_TEST_UNSET", raising=False)
    with pytest.raises(BackendError) as caught:
        BackendRegistry().for_model(entry)
    assert caught.value.status == status and caught.value.message.startswith(says)
