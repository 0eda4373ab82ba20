"""The portal in a real browser: Playwright for Python driving Debian's Chromium (/usr/bin/chromium; `scripts/setup
--dev` installs it as root) against a real `cielo up` with the test-only mock model. Screenshots of each blade go to
`.portal-screenshots/` (git-ignored)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.server import CieloServer, start_server

CHROMIUM = os.environ.get("CIELO_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / ".portal-screenshots"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/portal/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def portal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CieloServer]:
    server = start_server(tmp_path_factory.mktemp("portal") / "data",
                          env={"CIELO_ENABLE_MOCK_MODEL": "1", "CIELO_SIGNIN_THROTTLE_FAILURES": "10000"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Per module, not per session: while Playwright's sync API is open, its event loop counts as running in this
    thread, and every later test that calls asyncio.run() (the rest of the suite) would fail."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install it with 'apt-get install -y chromium' "
                    "(scripts/setup --dev does so as root)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def shots() -> Path:
    SHOTS.mkdir(exist_ok=True)
    return SHOTS
