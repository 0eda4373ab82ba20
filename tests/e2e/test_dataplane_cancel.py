"""A generation of the embedded model stops when its client leaves, streamed or not, and a request whose
client left while it waited for a model slot never starts. Measured from outside, by the CPU time the
server process (its threads and any children) uses once the client has gone (/proc/PID/stat).

The generations cannot end early: SmolLM2's end tokens (ids 0, 1, 2) are banned, so each would run for
hundreds of tokens, keeping the model's threads (2 by default) busy for tens of seconds.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.server import CieloServer, start_server

pytestmark = pytest.mark.e2e

ACCOUNT = "cielo-openai"
DEPLOYMENT = "long"
SMOLLM2 = {"format": "HuggingFace", "name": "SmolLM2-135M-Instruct", "version": "1"}
NO_END = {"0": -100, "1": -100, "2": -100}
IDLE_CPU_S = 0.5  # over 3 s; a generation that goes on uses up to 2 CPU-seconds per second here
IDLE_WINDOW_CPU_S = 0.05  # over 0.5 s: idle
STOPS_WITHIN_S = 10  # the generations here would run for minutes


class Plane:
    def __init__(self, server: CieloServer, key: str) -> None:
        self.server = server
        self.key = key
        self.url = f"{server.base_url}/accounts/{ACCOUNT}/openai/deployments/{DEPLOYMENT}/completions"

    def post(self, body: dict[str, Any], timeout: float) -> httpx.Response:
        """POST and wait at most `timeout` seconds; past that the client closes its connection and leaves."""
        with httpx.Client(verify=self.server.bundle, timeout=timeout) as http:
            return http.post(self.url, params={"api-version": "2024-10-21"}, json=body,
                             headers={"api-key": self.key})

    def leave_after(self, body: dict[str, Any], seconds: float) -> None:
        with pytest.raises(httpx.ReadTimeout):
            self.post(body, seconds)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process and its live descendants, threads included."""
        pids = [self.server.process.pid]
        pids += _descendants(pids[0])
        ticks = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            except FileNotFoundError:
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
        return ticks / os.sysconf("SC_CLK_TCK")

    def cpu_over(self, seconds: float) -> float:
        before = self.cpu_seconds()
        time.sleep(seconds)
        return self.cpu_seconds() - before

    def assert_stops(self, what: str) -> None:
        """Once `what` happened, the server goes idle within STOPS_WITHIN_S and stays idle for 3 s.

        llama.cpp stops at the end of the token it is computing; on a loaded machine (2 cores shared with
        other work) one token can take a second or more, hence the wait before the 3 s measured."""
        left = time.monotonic()
        while self.cpu_over(0.5) > IDLE_WINDOW_CPU_S:
            assert time.monotonic() - left < STOPS_WITHIN_S, f"still busy {STOPS_WITHIN_S} s after {what}"
        after = self.cpu_over(3)
        assert after < IDLE_CPU_S, f"{after:.2f} CPU-seconds in 3 s once idle after {what}: work started again"


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _long(prompt: str = "Tell me a very long story.", max_tokens: int = 1500) -> dict[str, Any]:
    return {"prompt": prompt, "max_tokens": max_tokens, "temperature": 1.0, "logit_bias": NO_END}


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    server = start_server(tmp_path_factory.mktemp("cancel") / "data")
    try:
        account = (f"/subscriptions/{server.subscription_id}/resourceGroups/cielo-rg/providers/"
                   f"Microsoft.CognitiveServices/accounts/{ACCOUNT}")
        token = server.admin_token("https://management.core.windows.net/")
        with server.http() as http:
            headers = {"Authorization": f"Bearer {token}"}
            deployed = http.put(f"{account}/deployments/{DEPLOYMENT}", params={"api-version": "2023-05-01"},
                                headers=headers, json={"sku": {"name": "Standard", "capacity": 500},
                                                       "properties": {"model": SMOLLM2}})
            assert deployed.status_code in (200, 201), deployed.text
            keys = http.post(f"{account}/listKeys", params={"api-version": "2023-05-01"}, headers=headers)
            assert keys.status_code == 200, keys.text
        plane = Plane(server, keys.json()["key1"])
        warm = plane.post({"prompt": "Hello", "max_tokens": 2}, 120)  # loads the model
        assert warm.status_code == 200, warm.text
        yield plane
    finally:
        server.stop()


def _settle(plane: Plane) -> None:
    """Wait until the server is idle (an earlier test's leftovers, if any, must not count)."""
    for _ in range(60):
        if plane.cpu_over(0.5) < IDLE_WINDOW_CPU_S:
            return
    pytest.fail("the server never went idle")


def test_a_non_streamed_generation_stops_when_its_client_leaves(plane: Plane) -> None:
    _settle(plane)
    before = plane.cpu_seconds()
    plane.leave_after(_long(), 2)
    busy = plane.cpu_seconds() - before
    assert busy > 0.3, f"the generation did not run while the client waited ({busy:.2f} CPU-s)"
    plane.assert_stops("the client left")


def test_a_streamed_generation_stops_when_its_client_leaves(plane: Plane) -> None:
    _settle(plane)
    with httpx.Client(verify=plane.server.bundle, timeout=60) as http, http.stream(
            "POST", plane.url, params={"api-version": "2024-10-21"}, json={**_long(), "stream": True},
            headers={"api-key": plane.key}) as response:
        assert response.status_code == 200
        texts = 0
        for line in response.iter_lines():
            if line.startswith("data: {") and json.loads(line[6:])["choices"]:
                texts += 1
                if texts == 5:
                    break
    plane.assert_stops("the client left")


def test_a_queued_request_whose_client_left_never_starts(plane: Plane) -> None:
    """Two generations fill the model's two slots; a third, with a long prompt, waits for one. Its client
    leaves first, then the other two. Had the third been handed to llama.cpp (or started once a slot
    freed), evaluating its prompt alone would keep the server busy long after everyone left."""
    _settle(plane)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        holders = [pool.submit(plane.leave_after, _long(), 4.0) for _ in range(2)]
        time.sleep(1)
        queued = pool.submit(plane.leave_after, _long("hello " * 1500, max_tokens=400), 1.5)
        queued.result()
        for holder in holders:
            holder.result()
    plane.assert_stops("every client left")


def test_abandoned_requests_do_not_delay_the_next_one(plane: Plane) -> None:
    """Four long requests whose clients leave after a second; a 5-token request right after is answered as
    on an idle server (before: it waited for all four generations, 81.7 s)."""
    _settle(plane)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for left in [pool.submit(plane.leave_after, _long(), 1.0) for _ in range(4)]:
            left.result()
    started = time.monotonic()
    quick = plane.post({"prompt": "Hello", "max_tokens": 5}, 120)
    elapsed = time.monotonic() - started
    assert quick.status_code == 200, quick.text
    assert quick.json()["usage"]["completion_tokens"] > 0
    assert elapsed < 30, f"a 5-token request took {elapsed:.1f} s after four clients left"
