"""Quotas are exact across the workers of one server (docs/data-plane.md, Quotas): a `--workers 2` server
admits exactly a deployment's limit, whether a burst arrives over many connections (spread over both
workers by SO_REUSEPORT) or over one keep-alive connection (one worker); prompt lists and n > 1 are charged
per completion; a request that could never fit is a 400, not a 429. The deployments serve the test-only
`mock` model, so only the limiter decides.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest_dataplane import API_VERSION, ARM_RESOURCE, MOCK, DataPlane, azure_error
from openai import AzureOpenAI, BadRequestError

from support.server import start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataPlane]:
    """A private `cielo up --workers 2` with the mock model and a service principal allowed to call it."""
    work = tmp_path_factory.mktemp("quota-exact")
    server = start_server(work / "data", extra_args=("--workers", "2"), env={"CIELO_ENABLE_MOCK_MODEL": "1"})
    plane = DataPlane(server, work)
    try:
        plane.arm_token = server.admin_token(ARM_RESOURCE)
        plane.account_id = plane.account_path("cielo-openai")
        account = plane.arm("GET", plane.account_id)
        assert account.status_code == 200, account.text
        plane.endpoint = str(account.json()["properties"]["endpoint"])
        plane.app = plane.new_app("quota-exact")
        yield plane
    finally:
        plane.close()


@pytest.fixture(scope="module")
def token(two_workers: DataPlane) -> str:
    return two_workers.sp_token()


def _deploy(plane: DataPlane, capacity: int) -> str:
    name = f"q{capacity}-{secrets.token_hex(3)}"
    plane.deploy(name, MOCK, capacity)
    return name


def _fresh_window(period: int, need: float) -> None:
    """Wait, if need be, so that at least `need` seconds of the current fixed window remain."""
    left = period - time.time() % period
    if left < need:
        time.sleep(left + 0.05)


def _post(client: httpx.Client, plane: DataPlane, deployment: str, token: str, body: dict[str, object],
          operation: str = "completions") -> httpx.Response:
    return client.post(plane.url(deployment, operation), params={"api-version": API_VERSION}, json=body,
                       headers={"Authorization": f"Bearer {token}"})


def _throttled(response: httpx.Response) -> None:
    """Azure's 429 for the call limit, with the headers clients wait by."""
    error = azure_error(response, 429, "429")
    assert "exceeded call rate limit" in error["message"], error
    seconds = int(response.headers["retry-after"])
    assert 1 <= seconds <= 10
    assert 0 < int(response.headers["retry-after-ms"]) <= seconds * 1000
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert int(response.headers["x-ratelimit-remaining-tokens"]) > 0


@pytest.mark.parametrize("capacity", [3, 5])
def test_a_burst_over_many_connections_admits_exactly_the_limit(two_workers: DataPlane, token: str,
                                                                capacity: int) -> None:
    deployment = _deploy(two_workers, capacity)
    limit = capacity  # requests per 10 s (rateLimits: max(2, capacity))
    go = threading.Barrier(3 * capacity)
    responses: list[httpx.Response] = []

    def one() -> None:
        # A connection of its own: SO_REUSEPORT spreads them over both workers.
        with httpx.Client(verify=two_workers.tls(), timeout=60) as client:
            go.wait()
            responses.append(_post(client, two_workers, deployment, token, {"prompt": "hello", "max_tokens": 5}))

    _fresh_window(10, 6.0)
    threads = [threading.Thread(target=one) for _ in range(3 * capacity)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    admitted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert len(responses) == 3 * capacity
    assert len(admitted) == limit, [(r.status_code, r.text[:80]) for r in responses]
    # One counter: every admitted request saw a different number of requests left, down to 0.
    assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in admitted) == list(range(limit))
    for response in refused:
        _throttled(response)


def test_one_keep_alive_connection_gets_the_whole_limit(two_workers: DataPlane, token: str) -> None:
    deployment = _deploy(two_workers, 3)
    _fresh_window(10, 6.0)
    with httpx.Client(verify=two_workers.tls(), timeout=60) as client:
        responses = [_post(client, two_workers, deployment, token, {"prompt": "hello", "max_tokens": 5})
                     for _ in range(9)]
    assert [r.status_code for r in responses] == [200] * 3 + [429] * 6, [r.text[:80] for r in responses]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in responses[:3]] == ["2", "1", "0"]
    for response in responses[3:]:
        _throttled(response)


def test_a_prompt_list_is_charged_per_prompt(two_workers: DataPlane, token: str) -> None:
    deployment = _deploy(two_workers, 5)  # 5,000 tokens per minute, a fresh window
    with httpx.Client(verify=two_workers.tls(), timeout=60) as client:
        # "hello" is one cl100k token: 64 prompts x (1 + max_tokens 16), not 64 + 16 once.
        response = _post(client, two_workers, deployment, token, {"prompt": ["hello"] * 64, "max_tokens": 16})
        assert response.status_code == 200, response.text
        assert 5000 - int(response.headers["x-ratelimit-remaining-tokens"]) == 64 * (1 + 16)
        # With n, every prompt's every choice: 2 prompts x (1 + 10 x 3).
        response = _post(client, two_workers, deployment, token, {"prompt": ["hello"] * 2, "max_tokens": 10, "n": 3})
        assert response.status_code == 200, response.text
        assert 5000 - int(response.headers["x-ratelimit-remaining-tokens"]) == 64 * 17 + 2 * (1 + 30)


def test_n_choices_are_charged_max_tokens_each(two_workers: DataPlane, token: str) -> None:
    deployment = _deploy(two_workers, 5)
    messages = [{"role": "user", "content": "hello"}]
    with AzureOpenAI(azure_endpoint=two_workers.endpoint, api_version=API_VERSION, azure_ad_token=token,
                     http_client=httpx.Client(verify=two_workers.tls())) as client:
        raw = client.chat.completions.with_raw_response.create(model=deployment, messages=messages,  # type: ignore[arg-type]
                                                               max_tokens=100, n=3)
    assert len(raw.parse().choices) == 3
    # The chat estimate: 3 + (4 + 1) for the one message, then 100 for each of the 3 choices.
    assert 5000 - int(raw.headers["x-ratelimit-remaining-tokens"]) == 3 + 4 + 1 + 3 * 100


def test_a_request_that_can_never_fit_is_a_400(two_workers: DataPlane, token: str) -> None:
    deployment = _deploy(two_workers, 1)  # 1,000 tokens per minute
    with httpx.Client(verify=two_workers.tls(), timeout=60) as client:
        cases = [
            ("chat/completions", {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 1200}),
            ("chat/completions", {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 400, "n": 3}),
            ("completions", {"prompt": ["hello"] * 64, "max_tokens": 16}),  # was charged 80 and admitted
        ]
        for operation, body in cases:
            response = _post(client, two_workers, deployment, token, body, operation)
            error = azure_error(response, 400, "RequestTooLarge")
            assert (error["type"], error["param"]) == ("invalid_request_error", "max_tokens")
            assert re.search(r"more than its whole limit of 1000 tokens per minute", error["message"]), error
            assert "retry-after" not in response.headers
        # Nothing was counted: the whole minute's budget is still there, and exactly that much fits.
        whole = _post(client, two_workers, deployment, token, {"prompt": "hello", "max_tokens": 999})
        assert whole.status_code == 200, whole.text
        assert whole.headers["x-ratelimit-remaining-tokens"] == "0"
    # The openai client takes it as a bad request, and does not retry it.
    with AzureOpenAI(azure_endpoint=two_workers.endpoint, api_version=API_VERSION, azure_ad_token=token,
                     http_client=httpx.Client(verify=two_workers.tls())) as openai_client, \
            pytest.raises(BadRequestError) as refused:
        openai_client.chat.completions.create(model=deployment, messages=[{"role": "user", "content": "hi"}],
                                              max_tokens=5000)
    assert refused.value.code == "RequestTooLarge"


def test_the_workers_share_one_counter_file(two_workers: DataPlane) -> None:
    counters = Path(two_workers.server.data_dir) / "quota-counters.bin"
    assert counters.exists() and counters.stat().st_mode & 0o777 == 0o600
