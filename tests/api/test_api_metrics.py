"""/metrics (Prometheus text, read back with prometheus_client's parser), its protection, /healthz, /readyz and the
access log, in-process."""

from __future__ import annotations

import hashlib
import json
import logging

import httpx
import pytest
from inproc import BASE_URL, MOCK_DEPLOYMENT, World, arm_call
from prometheus_client.parser import text_string_to_metric_families

from cielo.logging_setup import JsonLines


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def _value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for found, v in samples.get(name, []) if all(found.get(k) == x for k, x in labels.items()))


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient, world: World) -> None:
    assert (await arm_call(client, world, "GET", world.rg_path("cielo-rg"))).status_code == 200
    chat = await client.post(world.openai_url("chat/completions"), headers={"api-key": world.api_key},
                             json={"messages": [{"role": "user", "content": "count me"}]})
    assert chat.status_code == 200, chat.text
    answer = await client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    samples = _samples(answer.text)
    arm_route = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
    assert _value(samples, "cielo_http_requests_total", surface="arm", route=arm_route, method="GET",
                  status="200") >= 1
    dp_route = "/accounts/{account}/openai/deployments/{deployment}/chat/completions"
    assert _value(samples, "cielo_http_requests_total", surface="data plane", route=dp_route, status="200") >= 1
    assert _value(samples, "cielo_http_request_duration_seconds_count", route=dp_route) >= 1
    # No raw path (names, ids) becomes a label.
    routes = {labels.get("route", "") for labels, _ in samples["cielo_http_requests_total"]}
    assert not any(world.sub in r or "cielo-rg" in r for r in routes), routes
    assert _value(samples, "cielo_tokens_issued_total", grant_type="password") >= 3  # the session's tokens
    assert _value(samples, "cielo_dataplane_tokens_total", deployment=MOCK_DEPLOYMENT, kind="completion") >= 1
    assert "cielo_dataplane_time_to_first_token_seconds" in answer.text


async def test_failed_token_requests_are_counted_by_aadsts(client: httpx.AsyncClient, world: World) -> None:
    before = _samples((await client.get("/metrics")).text)
    bad = await client.post(world.token_url(), data={"grant_type": "client_credentials", "client_id": "nope",
                                                     "client_secret": "x", "scope": "https://x/.default"})
    assert bad.status_code in (400, 401)
    code = str(bad.json()["error_codes"][0])
    after = _samples((await client.get("/metrics")).text)
    assert _value(after, "cielo_signin_failures_total", aadsts=code) == \
        _value(before, "cielo_signin_failures_total", aadsts=code) + 1


async def test_metrics_need_loopback_or_the_token(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = httpx.ASGITransport(app=world.app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=remote, base_url=BASE_URL) as c:
        refused = await c.get("/metrics")
        assert refused.status_code == 401 and "cielo_" not in refused.text
        assert refused.headers["www-authenticate"].startswith("Bearer")
        # Starlette's State is not put back by monkeypatch.setattr (it deletes the attribute): set it in its dict.
        monkeypatch.setitem(world.app.state._state, "metrics_digest",
                            hashlib.sha256(b"s3cret-metrics").hexdigest())
        assert (await c.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        allowed = await c.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"})
        assert allowed.status_code == 200 and "cielo_http_requests_total" in allowed.text


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    body = ready.json()
    assert set(body["checks"]) == {"database", "signing_keys", "models"}
    assert body["checks"]["database"] == "ok" and body["checks"]["signing_keys"] == "ok"
    assert ready.status_code == (200 if body["checks"]["models"] == "ok" else 503)
    assert body["status"] == ("ready" if ready.status_code == 200 else "not ready")


async def test_access_log_line_has_no_query_string(client: httpx.AsyncClient, world: World,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="cielo.access"):
        answer = await client.get(f"{world.sub_path}/resourcegroups/cielo-rg?api-version=2022-12-01&code=S3cretC0de",
                                  headers=world.arm)
    assert answer.status_code == 200, answer.text
    records = [r for r in caplog.records if r.name == "cielo.access"]
    assert records, caplog.records
    record = records[-1]
    fields = record.access  # type: ignore[attr-defined]
    assert fields["status"] == 200 and fields["method"] == "GET" and fields["caller"] == world.admin_id
    assert fields["route"] == "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
    assert fields["request_id"] == answer.headers["x-ms-request-id"]
    line = JsonLines().format(record)
    parsed = json.loads(line)
    assert parsed["status"] == 200 and parsed["logger"] == "cielo.access"
    assert "S3cretC0de" not in line and "S3cretC0de" not in record.getMessage() and "Bearer" not in line


@pytest.mark.parametrize("include_usage", [False, True])
async def test_streamed_answers_count_their_tokens(client: httpx.AsyncClient, world: World,
                                                   include_usage: bool) -> None:
    """A stream counts prompt and completion tokens (the counts its usage chunk gives, when it is asked for) and
    observes tokens/s, as a non-streamed answer does."""
    before = _samples((await client.get("/metrics")).text)
    body: dict[str, object] = {"messages": [{"role": "user", "content": "three little words"}], "stream": True,
                               "max_tokens": 20}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    async with client.stream("POST", world.openai_url("chat/completions"), headers={"api-key": world.api_key},
                             json=body) as answer:
        assert answer.status_code == 200
        events = [line[6:] async for line in answer.aiter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    after = _samples((await client.get("/metrics")).text)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    prompt = grew("cielo_dataplane_tokens_total", deployment=MOCK_DEPLOYMENT, kind="prompt")
    completion = grew("cielo_dataplane_tokens_total", deployment=MOCK_DEPLOYMENT, kind="completion")
    assert prompt > 0 and completion > 0
    assert grew("cielo_dataplane_tokens_per_second_count", deployment=MOCK_DEPLOYMENT) == 1
    assert grew("cielo_dataplane_time_to_first_token_seconds_count", deployment=MOCK_DEPLOYMENT) == 1
    if include_usage:  # the same counts the client was told
        usage = json.loads(events[-2])["usage"]
        assert (prompt, completion) == (usage["prompt_tokens"], usage["completion_tokens"])
