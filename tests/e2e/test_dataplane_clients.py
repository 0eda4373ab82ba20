"""Unmodified Python clients against the data plane: azure-identity's ClientSecretCredential (sync and
async) with `get_bearer_token_provider`, openai's `AzureOpenAI` / `AsyncAzureOpenAI` and the v1-style
`OpenAI(base_url=.../openai/v1/)`, and raw SSE read with httpx (openai-python's lib/azure.py builds the
deployment URLs; Azure's shapes are those of azure-rest-api-specs' AzureOpenAI inference specs).

The service principal holds "Cognitive Services OpenAI User" on the account (assigned through ARM).
The `chat` deployment is SmolLM2-135M-Instruct, `embed` multilingual-e5-small: real generated text.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from azure.identity import ClientSecretCredential, get_bearer_token_provider
from conftest_dataplane import API_VERSION, CHAT, COGNITIVE_SCOPE, EMBED, DataPlane, assert_filters, sse_events
from openai import AsyncAzureOpenAI, AzureOpenAI, OpenAI

from cielo.chatml import create_prompt

pytest_plugins = ("conftest_dataplane",)
pytestmark = pytest.mark.e2e

MODEL_NAME = "SmolLM2-135M-Instruct"
HI = [{"role": "user", "content": "Say hello."}]
NO_END = {"0": -100, "1": -100, "2": -100}  # SmolLM2's end tokens banned: every choice runs to max_tokens


@pytest.fixture()
def credential(dataplane: DataPlane, dp_env: dict[str, str]) -> Iterator[ClientSecretCredential]:
    cred = ClientSecretCredential(dataplane.server.tenant_id, dataplane.app["appId"], dataplane.app["secret"],
                                  authority=dataplane.server.base_url, disable_instance_discovery=True)
    yield cred
    cred.close()


@pytest.fixture()
def client(dataplane: DataPlane, credential: ClientSecretCredential) -> Iterator[AzureOpenAI]:
    provider = get_bearer_token_provider(credential, COGNITIVE_SCOPE)
    with AzureOpenAI(azure_endpoint=dataplane.endpoint, api_version=API_VERSION,
                     azure_ad_token_provider=provider) as azure:
        yield azure


def _extra(model: Any, name: str) -> Any:
    """An Azure-only field the openai types do not declare (kept in `model_extra`)."""
    return model.model_dump()[name]


def _check_usage(usage: Any, max_tokens: int) -> None:
    assert usage.prompt_tokens > 0
    assert 0 < usage.completion_tokens <= max_tokens
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


# ----------------------------------------------------------------------------- chat
def test_chat_completion(client: AzureOpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model=CHAT, messages=HI, max_tokens=8, temperature=0,
                                                           extra_headers={"x-ms-client-request-id": "e2e-123"})
    headers = raw.http_response.headers
    assert raw.http_response.url.path.endswith(f"/openai/deployments/{CHAT}/chat/completions")
    assert headers["apim-request-id"] and headers["x-ms-client-request-id"] == "e2e-123"
    assert int(headers["x-ratelimit-remaining-requests"]) >= 0
    assert int(headers["x-ratelimit-remaining-tokens"]) >= 0
    answer = raw.parse()
    assert answer.object == "chat.completion"
    assert answer.id.startswith("chatcmpl-")
    assert answer.model == MODEL_NAME
    choice = answer.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    _check_usage(answer.usage, 8)
    body = answer.model_dump()
    assert_filters(body)
    assert body["prompt_filter_results"][0]["content_filter_results"]["jailbreak"] == {
        "filtered": False, "detected": False}


def test_chat_parameters(client: AzureOpenAI) -> None:
    two = client.chat.completions.create(model=CHAT, messages=HI, max_tokens=3, n=2, temperature=1, seed=3,
                                         logit_bias=NO_END)
    assert [c.index for c in two.choices] == [0, 1]
    assert all(c.message.content for c in two.choices)
    assert two.usage is not None and two.usage.completion_tokens == 2 * 3  # both choices are counted

    first, again = (client.chat.completions.create(model=CHAT, messages=HI, max_tokens=4, temperature=1, seed=1234,
                                                   logprobs=True, top_logprobs=2) for _ in range(2))
    assert first.choices[0].message.content == again.choices[0].message.content
    content = first.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None and len(content) == first.usage.completion_tokens  # type: ignore[union-attr]
    assert "".join(t.token for t in content) == first.choices[0].message.content
    for token in content:
        assert token.logprob <= 0 and 1 <= len(token.top_logprobs) <= 2

    capped = client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "Count to 50."}],
                                            max_completion_tokens=3, temperature=0)
    assert capped.usage is not None and capped.usage.completion_tokens == 3
    assert capped.choices[0].finish_reason == "length"


# ----------------------------------------------------------------------------- completions
def test_completion_parameters(client: AzureOpenAI) -> None:
    plain = client.completions.create(model=CHAT, prompt="Once upon a time", max_tokens=5, temperature=0)
    assert plain.object == "text_completion" and plain.id.startswith("cmpl-")
    assert plain.choices[0].text.strip() and plain.choices[0].finish_reason == "length"
    assert plain.usage is not None and plain.usage.completion_tokens == 5
    _check_usage(plain.usage, 5)
    assert_filters(plain.model_dump())

    stopped = client.completions.create(model=CHAT, prompt="1, 2, 3, 4,", max_tokens=12, temperature=0, stop=["6"])
    assert stopped.choices[0].finish_reason == "stop", stopped.choices[0]
    assert "6" not in stopped.choices[0].text and "5" in stopped.choices[0].text

    two = client.completions.create(model=CHAT, prompt="Once upon a time", max_tokens=3, n=2, temperature=1, seed=7,
                                    logit_bias=NO_END)
    assert [c.index for c in two.choices] == [0, 1]
    assert two.usage is not None and two.usage.completion_tokens == 2 * 3  # both choices are counted
    assert two.usage.prompt_tokens == plain.usage.prompt_tokens  # the prompt once

    echoed = client.completions.create(model=CHAT, prompt="Once upon a time", max_tokens=3, temperature=0, echo=True)
    assert echoed.choices[0].text.startswith("Once upon a time")
    assert len(echoed.choices[0].text) > len("Once upon a time")

    scored = client.completions.create(model=CHAT, prompt="Once upon a time", max_tokens=3, temperature=0,
                                       logprobs=2)
    logprobs = scored.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens is not None and logprobs.token_logprobs is not None
    assert scored.usage is not None and len(logprobs.tokens) == scored.usage.completion_tokens
    assert "".join(logprobs.tokens) == scored.choices[0].text
    assert logprobs.text_offset is not None and logprobs.text_offset[0] == 0
    assert all(lp <= 0 for lp in logprobs.token_logprobs)
    assert logprobs.top_logprobs is not None and all(1 <= len(top) <= 2 for top in logprobs.top_logprobs)

    seeded = [client.completions.create(model=CHAT, prompt="My favourite colour is", max_tokens=6, temperature=1.2,
                                        seed=99).choices[0].text for _ in range(2)]
    assert seeded[0] == seeded[1] and seeded[0].strip()


def test_chatml_prompt_through_completions(client: AzureOpenAI) -> None:
    """The how-to's ChatML prompt (cielo.chatml.create_prompt) with stop=["<|im_end|>"]."""
    system_message = "<|im_start|>system\n{}\n<|im_end|>".format("You are a helpful assistant.")
    prompt = create_prompt(system_message, [{"sender": "user", "text": "What is the capital of France?"}])
    answer = client.completions.create(model=CHAT, prompt=prompt, temperature=0, max_tokens=24,
                                       stop=["<|im_end|>"])
    text = answer.choices[0].text
    assert text.strip(), answer
    assert "<|im_end|>" not in text and "<|im_start|>" not in text
    assert answer.usage is not None and answer.usage.prompt_tokens > 10


def test_usage_is_the_models_count(client: AzureOpenAI, dataplane: DataPlane) -> None:
    """The same deterministic request, streamed with include_usage and not: the model's own counts."""
    whole = client.completions.create(model=CHAT, prompt="The sky is", max_tokens=6, temperature=0)
    streamed = list(client.completions.create(model=CHAT, prompt="The sky is", max_tokens=6, temperature=0,
                                              stream=True, stream_options={"include_usage": True}))
    usage = [c.usage for c in streamed if c.usage is not None]
    assert len(usage) == 1
    assert whole.usage is not None
    assert (usage[0].prompt_tokens, usage[0].completion_tokens) == (whole.usage.prompt_tokens,
                                                                    whole.usage.completion_tokens)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == whole.choices[0].text


# ----------------------------------------------------------------------------- embeddings
def test_embeddings(client: AzureOpenAI) -> None:
    raw = client.embeddings.with_raw_response.create(model=EMBED, input="The quick brown fox")
    wire = raw.http_response.json()
    assert isinstance(wire["data"][0]["embedding"], str), "the client asks for base64 by default"
    default = raw.parse()
    vector = default.data[0].embedding
    assert len(vector) == 384 and all(isinstance(x, float) for x in vector)
    assert vector == list(struct.unpack("<384f", base64.b64decode(wire["data"][0]["embedding"])))
    assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-2)
    assert default.usage.prompt_tokens > 0 and default.usage.total_tokens == default.usage.prompt_tokens

    floats = client.embeddings.create(model=EMBED, input=["The quick brown fox", "A lazy dog"],
                                      encoding_format="float")
    assert [d.index for d in floats.data] == [0, 1]
    assert all(len(d.embedding) == 384 for d in floats.data)
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(floats.data[0].embedding, vector, strict=True))


# ----------------------------------------------------------------------------- streaming
def test_streaming_with_the_client(client: AzureOpenAI) -> None:
    chunks = list(client.chat.completions.create(model=CHAT, messages=HI, max_tokens=8, stream=True))
    assert chunks[0].choices == [] and _extra(chunks[0], "prompt_filter_results")[0]["prompt_index"] == 0
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")

    pieces = list(client.completions.create(model=CHAT, prompt="Once upon a time", max_tokens=6, stream=True))
    assert pieces[0].choices == []
    assert "".join(c.choices[0].text for c in pieces if c.choices).strip()


def test_streaming_raw_sse(dataplane: DataPlane) -> None:
    token = dataplane.sp_token()
    with dataplane.http.stream("POST", dataplane.url(CHAT, "chat/completions"), params={"api-version": API_VERSION},
                               json={"messages": HI, "max_tokens": 6, "stream": True},
                               headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-ratelimit-remaining-requests"]
        events = sse_events(response.iter_lines())
    first, *chunks, done = events
    assert done == "[DONE]"
    assert first["choices"] == [] and first["id"] == ""
    assert first["prompt_filter_results"][0]["content_filter_results"]["hate"] == {"filtered": False,
                                                                                   "severity": "safe"}
    assert chunks and all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text.strip()
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    with_content = [c for c in chunks if c["choices"][0]["delta"].get("content")]
    assert all("content_filter_results" in c["choices"][0] for c in with_content)


# ----------------------------------------------------------------------------- async
async def test_async_client(dataplane: DataPlane, dp_env: dict[str, str]) -> None:
    from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential
    from azure.identity.aio import get_bearer_token_provider as async_token_provider

    # aiohttp builds its default SSL context when first imported, so SSL_CERT_FILE set by a fixture may come
    # too late for it in this process: the credential is given the bundle itself (openai's httpx reads the env).
    cred = AsyncClientSecretCredential(dataplane.server.tenant_id, dataplane.app["appId"], dataplane.app["secret"],
                                       authority=dataplane.server.base_url, connection_verify=dataplane.server.bundle)
    provider = async_token_provider(cred, COGNITIVE_SCOPE)
    async with cred, AsyncAzureOpenAI(azure_endpoint=dataplane.endpoint, api_version=API_VERSION,
                                      azure_ad_token_provider=provider) as client:
        answer = await client.chat.completions.create(model=CHAT, messages=HI, max_tokens=6)
        assert answer.choices[0].message.content
        assert_filters(answer.model_dump())
        stream = await client.chat.completions.create(model=CHAT, messages=HI, max_tokens=6, stream=True)
        text = ""
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
        assert text.strip()
        vectors = await client.embeddings.create(model=EMBED, input="hello")
        assert len(vectors.data[0].embedding) == 384


# ----------------------------------------------------------------------------- v1
def test_v1_openai_client(dataplane: DataPlane, credential: ClientSecretCredential) -> None:
    provider = get_bearer_token_provider(credential, COGNITIVE_SCOPE)
    with OpenAI(base_url=f"{dataplane.endpoint}openai/v1/", api_key=provider) as v1:
        answer = v1.chat.completions.create(model=CHAT, messages=HI, max_tokens=6)
        assert answer.choices[0].message.content
        assert_filters(answer.model_dump())
        text = v1.completions.create(model=CHAT, prompt="Once upon a time", max_tokens=4)
        assert text.choices[0].text.strip()
        vectors = v1.embeddings.create(model=EMBED, input="hello")
        assert len(vectors.data[0].embedding) == 384
        chunks = list(v1.chat.completions.create(model=CHAT, messages=HI, max_tokens=4, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
        assert {m.id for m in v1.models.list()} >= {CHAT, EMBED, "smollm2", "e5-small"}

    # A static token as the key works too (the stock client sends `Authorization: Bearer <api_key>`).
    with OpenAI(base_url=f"{dataplane.endpoint}openai/v1/", api_key=dataplane.sp_token()) as v1:
        assert v1.chat.completions.create(model=CHAT, messages=HI, max_tokens=3).choices[0].message.content
        with pytest.raises(Exception) as missing:
            v1.chat.completions.create(model="no-such-deployment", messages=HI, max_tokens=3)
        assert getattr(missing.value, "status_code", None) == 404


def test_v1_routes_raw(dataplane: DataPlane) -> None:
    """No api-version on v1; the deployment is the body's `model`."""
    token = dataplane.sp_token()
    response = dataplane.http.post(f"{dataplane.endpoint}openai/v1/chat/completions",
                                   json={"model": CHAT, "messages": HI, "max_tokens": 3},
                                   headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    missing_model = dataplane.http.post(f"{dataplane.endpoint}openai/v1/chat/completions",
                                        json={"messages": HI, "max_tokens": 3},
                                        headers={"Authorization": f"Bearer {token}"})
    assert missing_model.status_code == 400 and missing_model.json()["error"]["param"] == "model"
