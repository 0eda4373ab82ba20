"""A deployment served by an upstream OpenAI-compatible engine that demands its own credential.

The upstream here is a second Cielo (its account's `/openai/v1/` surface, a mock model deployment), which
accepts only a token of a service principal holding "Cognitive Services OpenAI User" on its account. The
front Cielo gets that token with OAuth2 client credentials (`--upstream ...,token-url=,client-id=,
client-secret-env=`), trusts the upstream's private CA (`ca-bundle=`), and never forwards its caller's token.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import AzureOpenAI, InternalServerError

from support.server import CieloServer, start_server

pytestmark = pytest.mark.e2e

OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"
ACCOUNT = "cielo-openai"
COGNITIVE = "https://cognitiveservices.azure.com"


def _arm(server: CieloServer, method: str, path: str, body: object) -> dict[str, object]:
    with server.http() as client:
        response = client.request(method, path, params={"api-version": "2023-05-01"}, json=body, headers={
            "Authorization": f"Bearer {server.admin_token('https://management.core.windows.net/')}"})
    assert response.status_code in (200, 201), response.text
    result: dict[str, object] = response.json()
    return result


def _account_id(server: CieloServer) -> str:
    return (f"/subscriptions/{server.subscription_id}/resourceGroups/cielo-rg/providers/"
            f"Microsoft.CognitiveServices/accounts/{ACCOUNT}")


def _deploy(server: CieloServer, name: str, model: dict[str, str]) -> None:
    _arm(server, "PUT", f"{_account_id(server)}/deployments/{name}",
         {"sku": {"name": "Standard", "capacity": 100}, "properties": {"model": model}})


def _grant(server: CieloServer, principal_id: str) -> None:
    _arm(server, "PUT", f"{_account_id(server)}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
         {"properties": {"roleDefinitionId": OPENAI_USER, "principalId": principal_id}})


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CieloServer, CieloServer, dict[str, str]]]:
    upstream = start_server(tmp_path_factory.mktemp("upstream") / "data", env={"CIELO_ENABLE_MOCK_MODEL": "1"})
    front: CieloServer | None = None
    try:
        _deploy(upstream, "mock-dep", {"format": "Cielo", "name": "mock", "version": "1"})
        app = upstream.create_app("front-cielo")
        _grant(upstream, app["spObjectId"])
        spec = (f"b={upstream.base_url}/accounts/{ACCOUNT}/openai/v1,model=mock-dep,"
                f"token-url={upstream.base_url}/{upstream.tenant_id}/oauth2/v2.0/token,client-id={app['appId']},"
                f"client-secret-env=UPSTREAM_SECRET,ca-bundle={upstream.bundle}")
        wrong = spec.replace("b=", "wrong=", 1).replace("UPSTREAM_SECRET", "WRONG_SECRET")
        front = start_server(tmp_path_factory.mktemp("front") / "data",
                             extra_args=("--upstream", spec, "--upstream", wrong),
                             env={"UPSTREAM_SECRET": app["secret"], "WRONG_SECRET": "not-the-secret"})
        _deploy(front, "via-b", {"format": "OpenAI-Compatible", "name": "b", "version": "1"})
        _deploy(front, "via-wrong", {"format": "OpenAI-Compatible", "name": "wrong", "version": "1"})
        admin_oid = front.graph("GET", "/me")["id"]
        _grant(front, admin_oid)
        yield front, upstream, app
    finally:
        if front is not None:
            front.stop()
        upstream.stop()


def _client(front: CieloServer) -> AzureOpenAI:
    token = front.admin_token(COGNITIVE)
    return AzureOpenAI(azure_endpoint=f"{front.base_url}/accounts/{ACCOUNT}/", api_version="2024-10-21",
                       azure_ad_token=token, max_retries=0,
                       http_client=httpx.Client(verify=front.bundle))


def test_chat_and_stream_through_an_upstream_with_its_own_credential(
        servers: tuple[CieloServer, CieloServer, dict[str, str]]) -> None:
    front, _upstream, _app = servers
    client = _client(front)
    answer = client.chat.completions.create(model="via-b", messages=[{"role": "user", "content": "hello upstream"}])
    assert answer.choices[0].message.content == "echo: hello upstream"
    assert answer.model == "b"
    streamed = client.chat.completions.create(model="via-b", stream=True,
                                              messages=[{"role": "user", "content": "one two three"}])
    text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
    assert text == "echo: one two three"


def test_the_callers_token_is_not_what_the_upstream_sees(
        servers: tuple[CieloServer, CieloServer, dict[str, str]]) -> None:
    front, upstream, _app = servers
    # The front's admin token means nothing to the upstream: a direct call with it is refused there.
    token = front.admin_token(COGNITIVE)
    with httpx.Client(verify=upstream.bundle) as http:
        refused = http.post(f"{upstream.base_url}/accounts/{ACCOUNT}/openai/v1/chat/completions",
                            headers={"Authorization": f"Bearer {token}"},
                            json={"model": "mock-dep", "messages": [{"role": "user", "content": "x"}]})
    assert refused.status_code == 401


def test_a_refused_upstream_credential_is_a_clear_502(
        servers: tuple[CieloServer, CieloServer, dict[str, str]]) -> None:
    front, _upstream, _app = servers
    with pytest.raises(InternalServerError) as info:
        _client(front).chat.completions.create(model="via-wrong", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502
    assert "UpstreamAuthenticationFailed" in str(info.value.body) or "refused" in str(info.value)
    assert Path(front.bundle).exists()
