"""A client assertion is checked on a worker thread, never on the event loop: a federated issuer's keys may have
to be fetched (identity/federation.py, up to 5 s a request), which would stall every other request of the worker.
The issuer is served to the fetcher through an httpx mock transport that records the thread each fetch ran on."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from inproc import COG_RESOURCE, World, new_principal, unique

from cielo.identity import federation

EXCHANGE = "api://AzureADTokenExchange"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class _Issuer:
    def __init__(self) -> None:
        self.url = f"https://{unique('offloop')}.example"
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.threads: list[int] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.threads.append(threading.get_ident())
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": self.url, "jwks_uri": f"{self.url}/keys"})
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return httpx.Response(200, json={"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]})

    def token(self, subject: str, audience: str = EXCHANGE) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "sub": subject, "aud": audience, "iat": now, "nbf": now, "exp": now + 600}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture()
def issuer(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Issuer]:
    found = _Issuer()

    def client(*, verify: Any, timeout: float) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(found.handle), timeout=timeout)

    monkeypatch.setattr(federation, "httpx", SimpleNamespace(Client=client, HTTPError=httpx.HTTPError))
    yield found


async def _trusting_app(client: httpx.AsyncClient, world: World, issuer: _Issuer, subject: str) -> str:
    principal = await new_principal(client, world)
    answer = await client.post(f"/v1.0/applications/{principal.app_object_id}/federatedIdentityCredentials",
                               json={"name": "ci", "issuer": issuer.url, "subject": subject,
                                     "audiences": [EXCHANGE]}, headers=world.graph)
    assert answer.status_code == 201, answer.text
    return principal.app_id


def _form(app_id: str, assertion: str, **extra: str) -> dict[str, str]:
    return {"client_id": app_id, "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion,
            "scope": f"{COG_RESOURCE}/.default", **extra}


async def test_the_issuers_keys_are_fetched_off_the_event_loop(client: httpx.AsyncClient, world: World,
                                                               issuer: _Issuer) -> None:
    app_id = await _trusting_app(client, world, issuer, "svc")
    answer = await client.post(world.token_url(), data=_form(app_id, issuer.token("svc"),
                                                             grant_type="client_credentials"))
    assert answer.status_code == 200, answer.text
    assert len(issuer.threads) == 2  # discovery, then the JWKS
    loop_thread = threading.get_ident()
    assert all(thread != loop_thread for thread in issuer.threads), "a fetch ran on the event loop's thread"


async def test_a_refused_assertion_is_also_checked_off_the_loop(client: httpx.AsyncClient, world: World,
                                                                issuer: _Issuer) -> None:
    """The refusal (a wrong audience) keeps its error; the fetch before it still ran on a worker thread."""
    app_id = await _trusting_app(client, world, issuer, "svc")
    answer = await client.post(world.token_url(), data=_form(app_id, issuer.token("svc", "api://other"),
                                                             grant_type="client_credentials"))
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "invalid_client" and answer.json()["error_codes"] == [700212]
    assert issuer.threads and threading.get_ident() not in issuer.threads
