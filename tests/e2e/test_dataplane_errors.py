"""Bad requests and bad credentials get Azure's status and envelope (docs/data-plane.md), and the server keeps
serving afterwards; a client that leaves mid-stream frees its model slot at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from conftest_dataplane import (
    CHAT,
    COGNITIVE,
    MISSING_KEY,
    MOCK_DEPLOYMENT,
    DataPlane,
    azure_error,
    gateway_401,
    sse_events,
)

from support.server import CieloServer, start_server

pytest_plugins = ("conftest_dataplane",)
pytestmark = pytest.mark.e2e

HI = [{"role": "user", "content": "Hi"}]


def _bad_request(response: httpx.Response, param: str | None, code: str = "BadRequest") -> dict[str, Any]:
    error = azure_error(response, 400, code)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param, response.text
    return error


def _still_serving(dataplane: DataPlane, token: str) -> None:
    with httpx.Client(verify=dataplane.tls(), timeout=30) as fresh:
        assert fresh.get(f"{dataplane.server.base_url}/healthz").status_code == 200
        served = fresh.post(dataplane.url(MOCK_DEPLOYMENT, "chat/completions"), params={"api-version": "2024-10-21"},
                            json={"messages": HI, "max_tokens": 3}, headers={"Authorization": f"Bearer {token}"})
    assert served.status_code == 200, served.text
    assert dataplane.server.process.poll() is None


# ----------------------------------------------------------------------------- prompts over the context
def test_over_long_prompt(dataplane: DataPlane) -> None:
    token = dataplane.sp_token()
    long_text = "hello " * 2500  # SmolLM2 has 2048 tokens of context per slot
    error = _bad_request(dataplane.post(CHAT, "completions", {"prompt": long_text, "max_tokens": 4}, token=token),
                         "prompt", "context_length_exceeded")
    assert error["message"].startswith("This model's maximum context length is 2048 tokens.")
    error = _bad_request(dataplane.post(CHAT, "chat/completions", {"messages": [{"role": "user", "content": long_text}],
                                                                   "max_tokens": 4}, token=token),
                         "messages", "context_length_exceeded")
    # Streamed, the error is still a 400 (not an error event inside a 200 stream).
    for operation, body in (("completions", {"prompt": long_text}),
                            ("chat/completions", {"messages": [{"role": "user", "content": long_text}]})):
        streamed = dataplane.post(CHAT, operation, {**body, "max_tokens": 4, "stream": True}, token=token)
        assert streamed.status_code == 400, streamed.text[:500]
        assert streamed.json()["error"]["code"] == "context_length_exceeded"
    _still_serving(dataplane, token)


# ----------------------------------------------------------------------------- credentials
@pytest.fixture(scope="module")
def other_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CieloServer]:
    """A second Cielo: its own tenant and signing key."""
    server = start_server(tmp_path_factory.mktemp("dataplane-other") / "data")
    yield server
    server.stop()


def _resigned(dataplane: DataPlane, token: str, **claims: Any) -> str:
    """`token` with some claims changed, signed again with the server's own key (from its data directory)."""
    header = jwt.get_unverified_header(token)
    body = {**jwt.decode(token, options={"verify_signature": False}), **claims}
    key = (dataplane.server.data_dir / "keys" / f"{header['kid']}.key").read_bytes()
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": header["kid"], "x5t": header["kid"]})


def test_bad_credentials(dataplane: DataPlane, other_server: CieloServer) -> None:
    good = dataplane.sp_token()

    def call(headers: dict[str, str]) -> httpx.Response:
        return dataplane.post(CHAT, "chat/completions", {"messages": HI, "max_tokens": 3}, headers=headers)

    gateway_401(call({}), MISSING_KEY)
    gateway_401(call({"Authorization": "Bearer"}), MISSING_KEY)
    gateway_401(call({"Authorization": f"Basic {good}"}), MISSING_KEY)
    gateway_401(call({"Authorization": "Bearer not-a-jwt"}))
    gateway_401(call({"Authorization": "Bearer abc.def.ghi"}))
    gateway_401(call({"Authorization": f"Bearer {good[:-8]}AAAAAAAA"}))  # signature altered

    # Tokens for another audience: Graph, the resource manager.
    gateway_401(call({"Authorization": f"Bearer {dataplane.sp_token(scope='https://graph.microsoft.com/.default')}"}))
    gateway_401(call({"Authorization": f"Bearer {dataplane.arm_token}"}))

    # A cognitive-services token from another Cielo (another tenant, another signing key).
    foreign = other_server.admin_token(COGNITIVE)
    assert jwt.get_unverified_header(foreign)["kid"] != jwt.get_unverified_header(good)["kid"]
    gateway_401(call({"Authorization": f"Bearer {foreign}"}))

    # Signed by this server's own key: accepted while valid, refused once expired (beyond the 5-minute skew).
    now = int(time.time())
    assert call({"Authorization": f"Bearer {_resigned(dataplane, good, exp=now + 600)}"}).status_code == 200
    expired = _resigned(dataplane, good, iat=now - 7200, nbf=now - 7200, exp=now - 3600)
    gateway_401(call({"Authorization": f"Bearer {expired}"}))
    gateway_401(call({"Authorization": f"Bearer {_resigned(dataplane, good, aud='https://vault.azure.net')}"}))

    # A valid token of a principal without a data action: the administrator, Owner of the subscription.
    owner = dataplane.server.admin_token(COGNITIVE)
    denied = call({"Authorization": f"Bearer {owner}"})
    error = azure_error(denied, 401, "PermissionDenied")
    assert "admin@cielo.local" in error["message"]
    assert "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action" in error["message"]
    assert denied.json() == {"error": {"code": "PermissionDenied", "message": error["message"]}}

    assert call({"Authorization": f"Bearer {good}"}).status_code == 200
    _still_serving(dataplane, good)


# ----------------------------------------------------------------------------- disconnects
def test_disconnect_mid_stream_frees_the_model(dataplane: DataPlane) -> None:
    """Two streams fill SmolLM2's two parallel slots with generations that cannot stop early (the end tokens
    are banned) and would run for tens of seconds; their clients leave after a few tokens. A short request
    right after is served as soon as it would be on an idle server: the generations stopped."""
    token = dataplane.sp_token()
    body = {"prompt": "Tell me a very long story.", "max_tokens": 1900, "temperature": 1.0, "stream": True,
            "logit_bias": {"0": -100, "1": -100, "2": -100}}
    for _ in range(2):
        with httpx.Client(verify=dataplane.tls(), timeout=60) as leaving, leaving.stream(
                "POST", dataplane.url(CHAT, "completions"), params={"api-version": "2024-10-21"}, json=body,
                headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status_code == 200
            tokens = 0
            for line in response.iter_lines():
                if line.startswith("data: {") and json.loads(line[6:])["choices"]:
                    tokens += 1
                    if tokens == 3:
                        break
            assert tokens == 3

    started = time.monotonic()
    quick = dataplane.post(CHAT, "completions", {"prompt": "Hello", "max_tokens": 8}, token=token)
    elapsed = time.monotonic() - started
    assert quick.status_code == 200, quick.text
    assert quick.json()["usage"]["completion_tokens"] > 0
    assert elapsed < 15, f"a short completion took {elapsed:.1f}s: the abandoned generations kept the slots"

    # And a complete stream still works from start to [DONE].
    with dataplane.http.stream("POST", dataplane.url(CHAT, "chat/completions"), params={"api-version": "2024-10-21"},
                               json={"messages": HI, "max_tokens": 4, "stream": True},
                               headers={"Authorization": f"Bearer {token}"}) as response:
        events = sse_events(response.iter_lines())
    assert events[-1] == "[DONE]" and len(events) >= 3
