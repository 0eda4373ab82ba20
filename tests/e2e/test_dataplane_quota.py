"""Per-deployment rate limits (learn.microsoft.com/azure/ai-services/openai/how-to/quota): capacity 1 means
2 requests per 10 s and 1,000 tokens per 60 s, in fixed windows; tokens are charged at admission from
prompt + max_tokens. The deployments here serve the deterministic `mock` model, so only the limiter
decides what happens.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest
from conftest_dataplane import API_VERSION, MOCK, DataPlane, azure_error
from openai import AzureOpenAI, RateLimitError

pytest_plugins = ("conftest_dataplane",)
pytestmark = pytest.mark.e2e

QUOTA_LINK = "Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default " \
             "rate limit."


@pytest.fixture(scope="module")
def limited(dataplane: DataPlane) -> Iterator[tuple[str, str]]:
    """Two capacity-1 deployments: one for the request limit, one for the token limit."""
    calls, tokens = f"calls-{secrets.token_hex(3)}", f"tokens-{secrets.token_hex(3)}"
    dataplane.deploy(calls, MOCK, 1)
    dataplane.deploy(tokens, MOCK, 1)
    shown = dataplane.arm("GET", f"{dataplane.account_id}/deployments/{calls}").json()
    assert shown["properties"]["rateLimits"] == [{"key": "request", "renewalPeriod": 10, "count": 2},
                                                 {"key": "token", "renewalPeriod": 60, "count": 1000}]
    yield calls, tokens


def _fresh_window(period: int, need: float) -> None:
    """Wait, if need be, so that at least `need` seconds of the current fixed window remain."""
    left = period - time.time() % period
    if left < need:
        time.sleep(left + 0.05)


def _limited(response: httpx.Response, operation: str, which: str) -> int:
    """Azure's 429: the message names the operation, the api-version and the limit; returns retry-after-ms."""
    error = azure_error(response, 429, "429")
    match = re.fullmatch(
        rf"Requests to the {operation} Operation under Azure OpenAI API version {API_VERSION} have exceeded "
        rf"{which} rate limit of your current OpenAI S0 pricing tier\. Please retry after (\d+) seconds?\. "
        + re.escape(QUOTA_LINK), error["message"])
    assert match, error["message"]
    seconds = int(response.headers["retry-after"])
    assert seconds == int(match.group(1)) >= 1
    retry_ms = int(response.headers["retry-after-ms"])
    assert 0 < retry_ms <= seconds * 1000
    assert response.headers["policy-id"] == ("DeploymentRatelimit-Call" if which == "call" else
                                             "DeploymentRatelimit-Token")
    return retry_ms


def test_call_rate_limit_and_client_retry(dataplane: DataPlane, limited: tuple[str, str],
                                          dp_env: dict[str, str]) -> None:
    calls, _ = limited
    token = dataplane.sp_token()
    body = {"prompt": "one two three", "max_tokens": 5}
    _fresh_window(10, 5.0)
    first = dataplane.post(calls, "completions", body, token=token)
    second = dataplane.post(calls, "completions", body, token=token)
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    tokens_left = [int(r.headers["x-ratelimit-remaining-tokens"]) for r in (first, second)]
    assert 1000 - 5 > tokens_left[0] > tokens_left[1] >= 1000 - 2 * 20

    third = dataplane.post(calls, "completions", body, token=token)
    assert _limited(third, "Completions_Create", "call") <= 10_000
    assert third.headers["x-ratelimit-remaining-requests"] == "0"

    # The openai client, told not to retry, surfaces the 429 ...
    messages = [{"role": "user", "content": "again"}]
    with AzureOpenAI(azure_endpoint=dataplane.endpoint, api_version=API_VERSION, azure_ad_token=token,
                     max_retries=0) as client, pytest.raises(RateLimitError) as refused:
        client.chat.completions.create(model=calls, messages=messages, max_tokens=5)
    refused_at = time.monotonic()
    assert refused.value.status_code == 429 and "exceeded call rate limit" in str(refused.value)
    wait_s = _limited(refused.value.response, "ChatCompletions_Create", "call") / 1000

    # ... and by default waits as long as retry-after-ms says, then is served.
    with AzureOpenAI(azure_endpoint=dataplane.endpoint, api_version=API_VERSION, azure_ad_token=token) as client:
        raw = client.chat.completions.with_raw_response.create(model=calls, messages=messages, max_tokens=5)
    waited = time.monotonic() - refused_at
    assert raw.parse().choices[0].message.content == "echo: again"
    assert raw.retries_taken >= 1
    assert wait_s - 0.25 <= waited <= wait_s + 8, (wait_s, waited)


def test_token_rate_limit(dataplane: DataPlane, limited: tuple[str, str], dp_env: dict[str, str]) -> None:
    _, tokens = limited
    token = dataplane.sp_token()
    messages = [{"role": "user", "content": "count my tokens"}]
    # More than the whole minute's budget could never be served: a 400 (clients do not retry it), not a 429.
    too_big = dataplane.post(tokens, "chat/completions", {"messages": messages, "max_tokens": 1200}, token=token)
    error = azure_error(too_big, 400, "RequestTooLarge")
    assert "more than its whole limit of 1000 tokens per minute" in error["message"]
    assert "retry-after" not in too_big.headers

    _fresh_window(60, 5.0)
    half = dataplane.post(tokens, "chat/completions", {"messages": messages, "max_tokens": 600}, token=token)
    assert half.status_code == 200, half.text
    left = int(half.headers["x-ratelimit-remaining-tokens"])
    assert 300 < left < 400  # 1000 - (600 + the prompt's estimate)
    # max_tokens is charged at admission, however short the answer: the same request again no longer fits.
    again = dataplane.post(tokens, "chat/completions", {"messages": messages, "max_tokens": 600}, token=token)
    _limited(again, "ChatCompletions_Create", "token")
    assert int(again.headers["x-ratelimit-remaining-tokens"]) == left
    # Requests refused for tokens are not counted as calls: an embeddings request over what is left is
    # refused for tokens too, and one that fits is served (the window's second call).
    with AzureOpenAI(azure_endpoint=dataplane.endpoint, api_version=API_VERSION, azure_ad_token=token,
                     max_retries=0) as client, pytest.raises(RateLimitError) as refused:
        client.embeddings.create(model=tokens, input="word " * 500)
    assert "exceeded token rate limit" in str(refused.value)
    _limited(refused.value.response, "Embeddings_Create", "token")
    small = dataplane.post(tokens, "completions", {"prompt": "tiny", "max_tokens": 10}, token=token)
    assert small.status_code == 200, small.text
    assert int(small.headers["x-ratelimit-remaining-tokens"]) < left
