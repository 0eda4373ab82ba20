"""The `arm` fixture of the resource-manager end-to-end tests (test_arm_*.py); helpers are in arm_support.py.

The tests change role assignments (some at subscription scope), create and delete resource groups and
delete principals, so they run against their own `cielo up`, never the shared session server. This is not
a conftest.py: each test_arm_* module loads it with `pytest_plugins = ("conftest_arm",)`, so all of them
share one server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from arm_support import Arm

from support.server import start_server


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session", name="arm")
def arm_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arm]:
    """A private Cielo for the ARM tests, and a client of its resource manager."""
    server = start_server(tmp_path_factory.mktemp("arm") / "data")
    try:
        client = Arm(server)
        yield client
        client.close()
    finally:
        server.stop()
