"""Backend pools through the real app (create_app, in-process): deployments whose model is a pool of fake engines
on loopback ports (one from `--upstream` given twice, one from a backends file). The client sees failover as one
ordinary answer, a stream that fails over before its first event as one ordinary stream, a stream cut after it
started as an error event (never a second answer), and a pool with nothing left as Azure's 429 or a 503 in the
OpenAI envelope, each with when to retry."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from inproc import ACCOUNT, ADMIN, BASE_URL, OPENAI_API, PASSWORD, RG

from cielo.api.app import build_services, create_app
from cielo.bootstrap import bootstrap
from cielo.control.resources import ResourceWriter
from cielo.core.arm_ids import ResourceId
from cielo.settings import Settings
from support.fake_engine import FakeEngine

# One event loop for the module, as a server worker has one: the pools' pooled upstream connections belong to it.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Front:
    app: object
    key: str
    a: FakeEngine
    b: FakeEngine
    c: FakeEngine


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    a, b, c = FakeEngine("a").start(), FakeEngine("b").start(), FakeEngine("c").start()
    root = tmp_path_factory.mktemp("pools")
    pools = root / "pools.yaml"
    pools.write_text(f"""
models:
  filepool:
    health_interval_s: 0
    backends:
      - url: {c.url}
      - url: {b.url}
        priority: 1
""")
    settings = Settings(data_dir=root / "data", upstreams=[f"pool={a.url},priority=0", f"pool={b.url},priority=1"],
                        backends_file=pools, upstream_first_byte_timeout_s=0.3, upstream_connect_timeout_s=2.0,
                        signin_throttle_failures=10_000)
    services = build_services(settings)
    result = bootstrap(services, ADMIN, PASSWORD)
    assert result.subscription is not None
    account = ResourceId(result.subscription.id, RG, "Microsoft.CognitiveServices", ("accounts",), (ACCOUNT,))
    for name in ("pool", "filepool"):
        services.resources.put_deployment(account.child("deployments", name), {
            "sku": {"name": "Standard", "capacity": 100},
            "properties": {"model": {"format": "OpenAI-Compatible", "name": name, "version": "1"}}},
            ResourceWriter(ADMIN, "User"))
    key = services.resources.list_keys(services.resources.get_account(account))["key1"]
    yield Front(create_app(settings, services), key, a, b, c)
    for engine in (a, b, c):
        engine.stop()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def backends_closed(front: Front) -> AsyncIterator[None]:
    """The pools' connections are closed on the loop they belong to, when the module is done."""
    yield
    await front.app.state.services.dataplane.backends.close()  # type: ignore[attr-defined]


@pytest_asyncio.fixture(loop_scope="module")
async def client(front: Front, backends_closed: None) -> AsyncIterator[httpx.AsyncClient]:
    for engine in (front.a, front.b, front.c):
        engine.mode, engine.healthy, engine.requests = "ok", True, 0
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=front.app),  # type: ignore[arg-type]
                                 base_url=BASE_URL) as c:
        yield c
    # The pools' circuits outlive a test: let every test start with closed ones.
    services_pools = [p for p in front.app.state.services.dataplane.backends._backends.values()  # type: ignore
                      if hasattr(p, "members")]
    for pool in services_pools:
        for member in pool.members:
            member.open_until, member.failures, member.throttled, member.healthy = 0.0, 0, False, True


async def chat(client: httpx.AsyncClient, front: Front, deployment: str = "pool", *,
               stream: bool = False) -> httpx.Response:
    body: dict[str, object] = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    if stream:
        body["stream"] = True
    return await client.post(f"/accounts/{ACCOUNT}/openai/deployments/{deployment}/chat/completions",
                             params={"api-version": OPENAI_API}, json=body, headers={"api-key": front.key})


def events(response: httpx.Response) -> list[object]:
    return [json.loads(line[6:]) if line != "data: [DONE]" else "[DONE]"
            for line in response.text.splitlines() if line.startswith("data: ")]


async def test_a_failing_first_engine_is_invisible_to_the_client(client: httpx.AsyncClient, front: Front) -> None:
    front.a.mode = "500"
    response = await chat(client, front)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "from b"
    assert front.a.requests == 1


async def test_a_backends_file_pool_serves(client: httpx.AsyncClient, front: Front) -> None:
    response = await chat(client, front, "filepool")
    assert response.json()["choices"][0]["message"]["content"] == "from c"
    front.c.mode = "slow"
    front.c.delay_s = 3.0
    response = await chat(client, front, "filepool")  # the first-byte timeout (0.3 s), then b
    assert response.json()["choices"][0]["message"]["content"] == "from b"


async def test_a_stream_fails_over_before_its_first_event(client: httpx.AsyncClient, front: Front) -> None:
    front.a.mode = "429"
    response = await chat(client, front, stream=True)
    assert response.status_code == 200
    got = events(response)
    assert got[-1] == "[DONE]"
    texts = [e["choices"][0]["delta"].get("content") for e in got[1:-1]]  # type: ignore[index]
    assert texts == ["from b", " and more"]


async def test_a_stream_cut_after_it_started_ends_with_an_error_event(client: httpx.AsyncClient,
                                                                      front: Front) -> None:
    front.a.mode = "drop"
    response = await chat(client, front, stream=True)
    assert response.status_code == 200
    got = events(response)
    assert "[DONE]" not in got
    assert got[-1] == {"error": {"code": "UpstreamError", "message": got[-1]["error"]["message"]}}  # type: ignore
    assert front.b.requests == 0


async def test_every_engine_rate_limited_is_a_429_with_retry_after(client: httpx.AsyncClient, front: Front) -> None:
    front.a.mode = front.b.mode = "429"
    front.a.retry_after_ms, front.b.retry_after_ms = 8000, 3000
    response = await chat(client, front)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json()["error"]["code"] == "429"
    again = await chat(client, front)  # both still out: answered without asking them
    assert again.status_code == 429 and front.a.requests == front.b.requests == 1


async def test_every_engine_down_is_a_503_model_unavailable(client: httpx.AsyncClient, front: Front) -> None:
    front.a.healthy = front.b.healthy = False
    backend = front.app.state.services.dataplane.backends._backends[("pool", "pool")]  # type: ignore
    await backend.check_health()
    response = await chat(client, front)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "ModelUnavailable"
    assert error["message"].startswith("No backend of the model 'pool' is available: 2 of 2 failed their health check")
    assert front.a.requests == front.b.requests == 0


async def test_a_bad_request_is_not_sent_to_a_second_engine(client: httpx.AsyncClient, front: Front) -> None:
    front.a.mode = "400"
    response = await chat(client, front)
    assert response.status_code == 400
    assert front.b.requests == 0


async def test_the_pools_are_models_the_resource_manager_lists(front: Front) -> None:
    names = {e.name for e in front.app.state.services.resources.catalogue.entries}  # type: ignore[attr-defined]
    assert {"pool", "filepool"} <= names
