"""deploy/zero-code-change/compose.yaml: an unmodified app container pointed at Cielo's intercept proxy by
environment variables alone. Docker is not needed to check what matters: the app shares Cielo's loopback (the proxy
listens there only), it gets the public trust files and never the data directory, its variables are the ones
`cielo env --intercept` prints (nothing Azure-specific), and the flags given to `cielo up` exist."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from cielo.cli.main import cli
from cielo.cli.up import DEFAULT_INTERCEPT_PORT, up
from cielo.identity.pki import ensure_tls

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "zero-code-change" / "compose.yaml"


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_the_app_shares_cielos_loopback_and_only_the_public_trust_files() -> None:
    services = _compose()["services"]
    app = services["app"]
    assert app["network_mode"] == "service:cielo"
    assert app["volumes"] == ["trust:/trust:ro"]
    copy = " ".join(services["cielo-trust"]["entrypoint"])
    assert "ca.pem" in copy and "bundle.pem" in copy and "key" not in copy
    assert "cielo-data:/var/lib/cielo:ro" in services["cielo-trust"]["volumes"]


def test_the_apps_variables_are_cielo_envs_intercept_lines(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ensure_tls(data / "tls")
    (data / "server.json").write_text(json.dumps({"base_url": "https://127.0.0.1:1", "pid": 1}))
    printed = CliRunner().invoke(cli, ["env", "--intercept", "--format", "dotenv", "--data-dir", str(data)],
                                 env={"CIELO_DATA_DIR": None}).stdout
    expected = dict(line.split("=", 1) for line in printed.splitlines())
    environment = _compose()["services"]["app"]["environment"]
    assert set(environment) == set(expected)
    for name, value in environment.items():
        assert value == expected[name].replace(str((data / "tls").resolve()), "/trust"), name
    assert environment["HTTPS_PROXY"] == f"http://127.0.0.1:{DEFAULT_INTERCEPT_PORT}"
    assert not any(name.startswith("AZURE_") for name in environment)


def test_cielo_is_started_with_flags_cielo_up_has() -> None:
    help_text = CliRunner().invoke(up, ["--help"], terminal_width=200).output
    for arg in _compose()["services"]["cielo"]["command"]:
        flag = arg.split("=", 1)[0]
        assert re.search(rf"(^|\s){re.escape(flag)}[\s,]", help_text), flag
    assert "--intercept" in _compose()["services"]["cielo"]["command"]
