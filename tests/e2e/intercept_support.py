"""Shared by the intercept-mode tests (test_intercept*.py): a `cielo up --intercept-port` with the mock deployment
and an app holding the data role, the variables `cielo env --intercept` prints, and client code run in a fresh
interpreter whose only settings are those variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest_dataplane import ACCOUNT, ARM_RESOURCE, MOCK, MOCK_DEPLOYMENT, DataPlane

from support.server import free_port, start_server


@contextmanager
def intercept_plane(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[DataPlane]:
    """A private `cielo up --intercept-port P` with the mock deployment and `plane.app` (Cognitive Services OpenAI
    User on the account, whose custom subdomain is its name)."""
    work = tmp_path_factory.mktemp(name)
    server = start_server(work / "data", extra_args=("--intercept-port", str(free_port())),
                          env={"CIELO_ENABLE_MOCK_MODEL": "1"})
    plane = DataPlane(server, work)
    try:
        plane.arm_token = server.admin_token(ARM_RESOURCE)
        plane.account_id = plane.account_path(ACCOUNT)
        plane.deploy(MOCK_DEPLOYMENT, MOCK, 400)
        plane.app = plane.new_app(f"{name}-e2e")
        yield plane
    finally:
        plane.close()
        server.stop()


def intercept_env(data_dir: Path, *flags: str) -> dict[str, str]:
    """`cielo env --intercept [flags] --format dotenv`, parsed, as a user would source it."""
    out = subprocess.run([sys.executable, "-m", "cielo.cli.main", "env", "--intercept", *flags, "--format", "dotenv",
                          "--data-dir", str(data_dir)], capture_output=True, text=True, check=True)
    return dict(line.split("=", 1) for line in out.stdout.splitlines())


def run_python(code: str, env: dict[str, str], cwd: Path, python: Path | None = None) -> Any:
    """`code` in a fresh interpreter (this one's, or `python`) with `env` and nothing of this process's Azure, MSI or
    Cielo settings; the JSON its last line prints."""
    base = {"PATH": os.environ.get("PATH", ""), "HOME": str(cwd)}
    done = subprocess.run([str(python or sys.executable), "-c", textwrap.dedent(code)], env={**base, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
