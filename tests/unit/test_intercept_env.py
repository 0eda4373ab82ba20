"""`cielo env --intercept`: the variables for intercept mode, in each shell's syntax, with the port the last
`cielo up --intercept` recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cielo.cli.main import cli
from cielo.identity.pki import ensure_tls

CLEAR = {name: None for name in ("CIELO_DATA_DIR", "CIELO_PORT", "CIELO_HOST", "CIELO_PUBLIC_URL")}


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    ensure_tls(data / "tls")
    (data / "server.json").write_text(json.dumps({"base_url": "https://127.0.0.1:1", "pid": 1,
                                                  "intercept_port": 18555}))
    return data


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["env", *args], env=CLEAR, prog_name="cielo")


def test_sh_lines_name_the_recorded_port_and_the_bundle(data_dir: Path) -> None:
    result = run("--data-dir", str(data_dir), "--intercept")
    assert result.exit_code == 0, result.output
    bundle, ca = data_dir / "tls" / "bundle.pem", data_dir / "tls" / "ca.pem"
    assert result.stdout.splitlines() == [
        "export HTTPS_PROXY=http://127.0.0.1:18555", "export https_proxy=http://127.0.0.1:18555",
        "export NO_PROXY=localhost,127.0.0.1,::1", "export no_proxy=localhost,127.0.0.1,::1",
        f"export REQUESTS_CA_BUNDLE={bundle}", f"export SSL_CERT_FILE={bundle}", f"export CURL_CA_BUNDLE={bundle}",
        f"export NODE_EXTRA_CA_CERTS={ca}"]
    assert "NO_PROXY" in result.stderr  # why other hosts are refused, on stderr: `eval` takes stdout only


@pytest.mark.parametrize(("style", "first", "count"), [
    ("dotenv", "HTTPS_PROXY=http://127.0.0.1:9000", 8),
    ("fish", "set -gx HTTPS_PROXY http://127.0.0.1:9000", 8),
    ("powershell", "$env:HTTPS_PROXY = 'http://127.0.0.1:9000'", 6),  # case-insensitive names: one line each
])
def test_other_formats(data_dir: Path, style: str, first: str, count: int) -> None:
    result = run("--data-dir", str(data_dir), "--intercept-port", "9000", "--format", style)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == first and len(lines) == count
    assert not any("AZURE_AUTHORITY_HOST" in line for line in lines)


def test_a_path_with_spaces_is_quoted(tmp_path: Path) -> None:
    data = tmp_path / "my data"
    ensure_tls(data / "tls")
    sh = run("--data-dir", str(data), "--intercept").stdout.splitlines()
    assert f"export SSL_CERT_FILE='{data / 'tls' / 'bundle.pem'}'" in sh
    ps = run("--data-dir", str(data), "--intercept", "--format", "powershell").stdout.splitlines()
    assert "$env:HTTPS_PROXY = 'http://127.0.0.1:8444'" in ps  # nothing recorded: the default port


def test_plain_env_has_no_proxy(data_dir: Path) -> None:
    result = run("--data-dir", str(data_dir))
    assert result.exit_code == 0
    assert not any("PROXY" in line for line in result.stdout.splitlines())


def test_a_busy_intercept_port_is_refused_before_start() -> None:
    import socket

    from cielo.cli.common import CliError
    from cielo.cli.up import _intercept_socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(CliError, match=f"127.0.0.1:{port} for --intercept"):
            _intercept_socket(port)
    assert _intercept_socket(None) is None


def test_http_proxy_only_when_the_proxy_hands_imds_to_an_agent(data_dir: Path) -> None:
    plain = run("--data-dir", str(data_dir), "--intercept", "--format", "dotenv").stdout
    assert "HTTP_PROXY=" not in plain and "HTTPS_PROXY=http://127.0.0.1:18555" in plain
    recorded = json.loads((data_dir / "server.json").read_text())
    (data_dir / "server.json").write_text(json.dumps({**recorded, "intercept_imds": "127.0.0.1:8100"}))
    lines = run("--data-dir", str(data_dir), "--intercept", "--format", "dotenv").stdout.splitlines()
    assert "HTTP_PROXY=http://127.0.0.1:18555" in lines and "http_proxy=http://127.0.0.1:18555" in lines


@pytest.mark.parametrize(("value", "problem"), [
    ("127.0.0.1", "HOST:PORT"), ("127.0.0.1:0", "HOST:PORT"), ("10.0.0.5:8100", "on loopback"),
    ("agent.example:8100", "on loopback"), ("169.254.169.254:80", "on loopback"),
])
def test_intercept_imds_names_an_agent_on_loopback(value: str, problem: str) -> None:
    from cielo.cli.common import CliError
    from cielo.cli.up import parse_imds_agent

    with pytest.raises(CliError, match=problem):
        parse_imds_agent(value)
    assert parse_imds_agent("127.0.0.1:8100") == ("127.0.0.1", 8100)
    assert parse_imds_agent("[::1]:8100") == ("::1", 8100)
    assert parse_imds_agent("localhost:8100") == ("localhost", 8100)


def test_node_preload_only_on_request(data_dir: Path) -> None:
    from cielo.cli.up import NODE_FETCH_PROXY

    assert NODE_FETCH_PROXY.is_file()
    plain = run("--data-dir", str(data_dir), "--intercept", "--format", "dotenv").stdout
    assert "NODE_OPTIONS" not in plain
    lines = run("--data-dir", str(data_dir), "--intercept", "--node", "--format", "dotenv").stdout.splitlines()
    assert f"NODE_OPTIONS=--import={NODE_FETCH_PROXY.as_uri()}" in lines
    refused = run("--data-dir", str(data_dir), "--node")
    assert refused.exit_code != 0 and "--intercept" in refused.output
