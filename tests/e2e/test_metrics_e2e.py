"""`cielo up --workers 2`: /metrics sums both workers' samples (prometheus-client's multiprocess mode), and each
request leaves a JSON access-log line in the server's output, without its query string."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.server import CieloServer, start_server

pytestmark = pytest.mark.e2e

REQUESTS = 40


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CieloServer]:
    work = tmp_path_factory.mktemp("metrics-workers")
    running = start_server(work / "data", extra_args=("--workers", "2"), env={"CIELO_LOG_FORMAT": "json"})
    try:
        yield running
    finally:
        running.stop()


def _healthz_count(text: str) -> float:
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "cielo_http_requests_total" and s.labels.get("route") == "/healthz")


def test_metrics_add_up_over_workers_and_requests_are_logged(server: CieloServer) -> None:
    with httpx.Client(verify=server.bundle, timeout=10) as client:
        before = _healthz_count(client.get(f"{server.base_url}/metrics").text)
    for _ in range(REQUESTS):  # a connection each: SO_REUSEPORT spreads them over both workers
        with httpx.Client(verify=server.bundle, timeout=10) as client:
            assert client.get(f"{server.base_url}/healthz?code=S3cretC0de").status_code == 200
    with httpx.Client(verify=server.bundle, timeout=10) as client:
        after = _healthz_count(client.get(f"{server.base_url}/metrics").text)
    assert after - before == REQUESTS  # whichever worker answered, all samples are there
    files = list((server.data_dir / "metrics").glob("*.db"))
    pids = {f.stem.rsplit("_", 1)[-1] for f in files}
    assert len(pids) >= 2, files  # both workers wrote samples
    deadline = time.time() + 5
    lines: list[dict[str, object]] = []
    while time.time() < deadline and len(lines) < REQUESTS:
        lines = []
        for raw in server.log_text().splitlines():
            if raw.startswith("{") and '"cielo.access"' in raw:
                entry = json.loads(raw)
                if entry.get("route") == "/healthz":
                    lines.append(entry)
        time.sleep(0.2)
    assert len(lines) >= REQUESTS, server.log_text()[-2000:]
    assert {e["status"] for e in lines} == {200} and all(e["path"] == "/healthz" for e in lines)
    assert "S3cretC0de" not in server.log_text()
