"""Workload identity federation in-process: an application trusts an external OIDC issuer (a federated identity
credential made through Graph); a workload presents that issuer's token as its client assertion. The issuer is the
test: its discovery document and JWKS are served to identity/federation.py's fetcher through an httpx mock
transport (the same requests, no network), so the test sees what Cielo fetches, when it uses its cache, and when
it fetches again."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from inproc import COG_RESOURCE, World, new_principal, oauth_error, unique

from cielo.identity import federation
from cielo.identity.federation import FederationError, JwksFetcher

EXCHANGE = "api://AzureADTokenExchange"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


_KEYS: dict[str, rsa.RSAPrivateKey] = {}


@dataclass
class Issuer:
    """An external OIDC issuer: its keys (kid -> key), which of them it publishes, and the requests it saw."""

    url: str
    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    down: bool = False

    def new_key(self, kid: str, publish: bool = True) -> None:
        if kid not in _KEYS:  # RSA key generation is slow: one key per name for the whole module
            _KEYS[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.keys[kid] = _KEYS[kid]
        if publish:
            self.published.append(kid)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.fetched.append(request.url.path)
        if self.down:
            return httpx.Response(503)
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": self.url, "jwks_uri": f"{self.url}/keys"})
        if request.url.path == "/keys":
            keys = []
            for kid in self.published:
                jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
                keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
            return httpx.Response(200, json={"keys": keys})
        return httpx.Response(404)

    def token(self, kid: str, subject: str, audience: str = EXCHANGE, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": self.url, "sub": subject, "aud": audience, "iat": now, "nbf": now, "exp": now + 600, **claims}
        return jwt.encode(body, self.keys[kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture()
def issuer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Issuer]:
    found = Issuer(f"https://{unique('issuer')}.example")
    found.new_key("k1")

    def client(*, verify: Any, timeout: float) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(found.handle), timeout=timeout)

    monkeypatch.setattr(federation, "httpx", SimpleNamespace(Client=client, HTTPError=httpx.HTTPError))
    yield found


async def _trusting_app(client: httpx.AsyncClient, world: World, issuer: Issuer, subject: str) -> str:
    principal = await new_principal(client, world)
    answer = await client.post(f"/v1.0/applications/{principal.app_object_id}/federatedIdentityCredentials",
                               json={"name": "ci", "issuer": issuer.url, "subject": subject,
                                     "audiences": [EXCHANGE]}, headers=world.graph)
    assert answer.status_code == 201, answer.text
    return principal.app_id


def _exchange(app_id: str, assertion: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": app_id, "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion, "scope": f"{COG_RESOURCE}/.default"}


async def test_a_trusted_issuers_token_is_exchanged_and_its_keys_cached(client: httpx.AsyncClient, world: World,
                                                                        issuer: Issuer) -> None:
    app_id = await _trusting_app(client, world, issuer, "repo:cielo/main:ref:refs/heads/main")
    for _ in range(2):
        answer = await client.post(world.token_url(), data=_exchange(
            app_id, issuer.token("k1", "repo:cielo/main:ref:refs/heads/main")))
        assert answer.status_code == 200, answer.text
        claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
        assert claims["appid"] == app_id and claims["aud"] == COG_RESOURCE
    assert issuer.fetched == ["/.well-known/openid-configuration", "/keys"]  # once: the second used the cache


async def test_a_rotated_key_is_fetched_once_more(client: httpx.AsyncClient, world: World, issuer: Issuer) -> None:
    app_id = await _trusting_app(client, world, issuer, "svc")
    assert (await client.post(world.token_url(), data=_exchange(app_id, issuer.token("k1", "svc")))).status_code == 200
    issuer.new_key("k2")  # the issuer rotates: its new key is published, Cielo's cache does not have it yet
    answer = await client.post(world.token_url(), data=_exchange(app_id, issuer.token("k2", "svc")))
    assert answer.status_code == 200, answer.text
    assert issuer.fetched.count("/keys") == 2
    # A key the issuer never published: fetched once more, then refused.
    issuer.new_key("k3", publish=False)
    refused = await client.post(world.token_url(), data=_exchange(app_id, issuer.token("k3", "svc")))
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"] == "invalid_client"
    assert issuer.fetched.count("/keys") == 3


async def test_an_unreachable_issuer_is_invalid_client(client: httpx.AsyncClient, world: World,
                                                       issuer: Issuer) -> None:
    app_id = await _trusting_app(client, world, issuer, "svc")
    issuer.down = True
    answer = await client.post(world.token_url(), data=_exchange(app_id, issuer.token("k1", "svc")))
    body = oauth_error(answer, 401, "invalid_client", 700211)
    assert f"Could not fetch the signing keys of issuer '{issuer.url}'" in body["error_description"]
    assert "HTTPStatusError" in body["error_description"]


@pytest.mark.parametrize(("subject", "audience"), [("other-subject", EXCHANGE), ("svc", "api://something-else")])
async def test_a_token_the_credential_does_not_describe_is_refused(client: httpx.AsyncClient, world: World,
                                                                   issuer: Issuer, subject: str,
                                                                   audience: str) -> None:
    app_id = await _trusting_app(client, world, issuer, "svc")
    answer = await client.post(world.token_url(), data=_exchange(app_id, issuer.token("k1", subject, audience)))
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client", answer.text
    if subject != "svc":
        assert answer.json()["error_codes"] == [70021]
        assert f"Assertion Subject: '{subject}'" in answer.json()["error_description"]


def test_the_fetcher_refuses_plain_http_and_refetches_after_ten_minutes(issuer: Issuer,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    fetcher = JwksFetcher(None)
    with pytest.raises(FederationError, match="the issuer must be an https URL"):
        fetcher.keys("http://issuer.example")
    now = [5000.0]
    monkeypatch.setattr("cielo.identity.federation.time.monotonic", lambda: now[0])
    assert [k.key_id for k in fetcher.keys(issuer.url + "/")] == ["k1"]
    now[0] += 599
    fetcher.keys(issuer.url + "/")
    assert issuer.fetched.count("/keys") == 1
    now[0] += 2
    fetcher.keys(issuer.url + "/")
    assert issuer.fetched.count("/keys") == 2
    assert issuer.fetched[0] == "/.well-known/openid-configuration"  # the trailing slash is not doubled


@pytest.mark.parametrize("answer", [
    httpx.Response(200, json={"no_jwks_uri": True}),
    httpx.Response(200, text="not json"),
])
def test_a_broken_discovery_document_is_a_federation_error(monkeypatch: pytest.MonkeyPatch,
                                                          answer: httpx.Response) -> None:
    def client(*, verify: Any, timeout: float) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(lambda _request: answer))

    monkeypatch.setattr(federation, "httpx", SimpleNamespace(Client=client, HTTPError=httpx.HTTPError))
    with pytest.raises(FederationError, match="could not read the issuer's signing keys: "):
        JwksFetcher(None).keys("https://broken.example")
