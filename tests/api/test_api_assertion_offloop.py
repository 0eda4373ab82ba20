"""A client assertion is checked on a worker thread, never on the event loop: a federated issuer's keys may have
to be fetched (identity/federation.py, up to 5 s a request), which would stall every other request of the worker.
The issuer is served to the fetcher through an httpx mock transport that records the thread each fetch ran on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from inproc import COG_RESOURCE, World, unique
from test_api_federation import ASSERTION_TYPE, Issuer, _trusting_app

from cielo.identity import federation


@dataclass
class _Issuer(Issuer):
    """test_api_federation's issuer, recording the thread each of its answers was fetched on."""

    threads: list[int] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.threads.append(threading.get_ident())
        return super().handle(request)


@pytest.fixture()
def issuer(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Issuer]:
    found = _Issuer(f"https://{unique('offloop')}.example")
    found.new_key("k1")

    def client(*, verify: Any, timeout: float) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(found.handle), timeout=timeout)

    monkeypatch.setattr(federation, "httpx", SimpleNamespace(Client=client, HTTPError=httpx.HTTPError))
    yield found


def _form(app_id: str, assertion: str, **extra: str) -> dict[str, str]:
    return {"client_id": app_id, "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion,
            "scope": f"{COG_RESOURCE}/.default", **extra}


async def test_the_issuers_keys_are_fetched_off_the_event_loop(client: httpx.AsyncClient, world: World,
                                                               issuer: _Issuer) -> None:
    app_id = await _trusting_app(client, world, issuer, "svc")
    answer = await client.post(world.token_url(), data=_form(app_id, issuer.token("k1", "svc"),
                                                             grant_type="client_credentials"))
    assert answer.status_code == 200, answer.text
    assert len(issuer.threads) == 2  # discovery, then the JWKS
    loop_thread = threading.get_ident()
    assert all(thread != loop_thread for thread in issuer.threads), "a fetch ran on the event loop's thread"


async def test_a_refused_assertion_is_also_checked_off_the_loop(client: httpx.AsyncClient, world: World,
                                                                issuer: _Issuer) -> None:
    """The refusal (a wrong audience) keeps its error; the fetch before it still ran on a worker thread."""
    app_id = await _trusting_app(client, world, issuer, "svc")
    answer = await client.post(world.token_url(), data=_form(app_id, issuer.token("k1", "svc", "api://other"),
                                                             grant_type="client_credentials"))
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "invalid_client" and answer.json()["error_codes"] == [700212]
    assert issuer.threads and threading.get_ident() not in issuer.threads
