"""Access lines wait in memory for up to 0.2 s (logging_setup.BatchedLines), so a server that stops must write
them first: the last requests before a SIGTERM are in the log, with one worker and with two."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from support.server import start_server

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_last_access_lines_are_written_when_the_server_stops(tmp_path: Path, workers: str) -> None:
    server = start_server(tmp_path / "data", extra_args=("--workers", workers))
    try:
        with server.http() as client:
            for n in range(3):
                assert client.get(f"/healthz?last={n}").status_code == 200
        server.process.send_signal(signal.SIGTERM)  # at once: the flusher thread has not had its 0.2 s
        server.process.wait(30)
    finally:
        server.stop()
    lines = [line for line in server.log_path.read_text().splitlines()
             if "cielo.access" in line and "GET /healthz 200" in line]
    assert len(lines) >= 3, server.log_path.read_text()[-3000:]
