"""Every `cielo` command is a new process: the CLI imports a command's module, and the heavy libraries it needs,
only when that command runs (or help lists it). These tests run the CLI in a fresh interpreter and look at what
it imported, so that a top-level import added later cannot silently make every command slower."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import click
import pytest

from cielo.cli.main import cli

# Libraries none of these command lines needs: the HTTP client, output formats, the server's stack.
HEAVY = ("httpx", "yaml", "rich", "jmespath", "pygments", "sqlalchemy", "cryptography", "pydantic", "fastapi",
         "starlette", "uvicorn", "http.server", "webbrowser")

_PROBE = """
import json, sys
sys.argv = ["cielo", *sys.argv[1:]]
from cielo.cli.main import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({"code": code, "modules": sorted(k for k, v in sys.modules.items() if v is not None)}),
      file=sys.stderr)
"""


def _imported(tmp_path: Path, *args: str, endpoint: str | None = None) -> tuple[int, set[str]]:
    """Run `cielo ARGS` in a new interpreter with an empty config directory: (exit code, modules it imported)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CIELO_CONFIG_DIR": str(tmp_path / "config")}
    if endpoint:
        env["CIELO_ENDPOINT"] = endpoint
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return report["code"], set(report["modules"])


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY)


def test_building_the_cli_imports_no_command_module(tmp_path: Path) -> None:
    code, modules = _imported(tmp_path, "--version")
    assert code == 0
    assert "click" in modules  # the probe sees what the CLI does import
    assert _heavy(modules) == []
    commands = sorted(m for m in modules if m.startswith("cielo.cli.") and m not in ("cielo.cli.main",
                                                                                      "cielo.cli.common",
                                                                                      "cielo.cli.output"))
    assert commands == []


@pytest.mark.parametrize(("args", "module"), [
    (("group", "--help"), "group"), (("role", "assignment", "--help"), "role"), (("account", "show"), "account"),
    (("cloud", "show"), "account"), (("ad", "sp", "--help"), "ad_sp"),
])
def test_a_command_imports_only_what_it_uses(tmp_path: Path, args: tuple[str, ...], module: str) -> None:
    code, modules = _imported(tmp_path, *args)
    assert code == (1 if args == ("account", "show") else 0)  # no account in an empty config: az's error
    assert f"cielo.cli.{module}" in modules
    assert _heavy(modules) == []
    assert "cielo.cli.up" not in modules and "cielo.cli.compute" not in modules


def test_an_output_format_imports_its_library(tmp_path: Path) -> None:
    code, modules = _imported(tmp_path, "cloud", "show", "-o", "yaml", "--query", "endpoint")
    assert code == 0
    assert {"yaml", "jmespath"} <= modules
    assert "httpx" not in modules


def test_a_command_that_talks_to_a_server_imports_httpx_but_not_its_command_line_tool(tmp_path: Path) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: the login fails at once with az's "cannot reach"
    code, modules = _imported(tmp_path, "login", "-u", "someone", "-p", "secret", endpoint=f"https://127.0.0.1:{port}")
    assert code == 1
    assert "httpx" in modules
    assert [m for m in _heavy(modules) if m.split(".")[0] != "httpx"] == []  # no rich, pygments, yaml, ...


def test_every_command_is_found_by_its_own_name() -> None:
    names = list(cli.commands)
    assert len(names) > 20 and "group" in names and "import" in names
    for name, command in cli.commands.items():
        assert command.name == name
    assert isinstance(cli.commands["ad"], click.Group) and "sp" in cli.commands["ad"].commands
    assert cli.get_command(click.Context(cli), "no-such-command") is None
