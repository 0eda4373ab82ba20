"""`cielo up`'s logging settings and its Redis check, in-process (click's CliRunner): `--log-format plain|json` (or
CIELO_LOG_FORMAT, checked: a bad value is one line naming the setting), uvicorn's own access log off at every level
(Cielo's access log is the one line per request), and `--redis-url` to a server that does not answer refused with
one line naming the URL, its password masked, before anything touches the data directory."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cielo.api import server
from cielo.cli.main import cli
from cielo.identity.pki import ensure_tls
from cielo.logging_setup import JsonLines
from cielo.settings import Settings

ENV_CLEAR = {name: None for name in ("CIELO_ADMIN_PASSWORD", "CIELO_ADMIN_PASSWORD_FILE", "CIELO_ADMIN_USER",
                                     "CIELO_DATA_DIR", "CIELO_PORT", "CIELO_HOST", "CIELO_PUBLIC_URL",
                                     "CIELO_LOG_FORMAT", "CIELO_REDIS_URL", "CIELO_DATABASE_URL")}


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env={**ENV_CLEAR, **(env or {})}, prog_name="cielo")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def never_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> None:
        raise AssertionError("cielo up got as far as serving")

    monkeypatch.setattr(server, "run", refuse)


def _one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def test_a_bad_log_format_setting_is_one_line_naming_it(tmp_path: Path) -> None:
    line = _one_error_line(run("up", "--data-dir", str(tmp_path / "data"), "--port", str(_free_port()),
                               env={"CIELO_LOG_FORMAT": "xml"}))
    assert line.startswith("ERROR: cannot start: ") and "CIELO_LOG_FORMAT" in line and "--log-format" in line
    assert "'xml'" in line and "plain" in line and "json" in line
    assert not (tmp_path / "data").exists()
    flag = run("up", "--data-dir", str(tmp_path / "data"), "--log-format", "xml")
    assert flag.exit_code == 2 and "--log-format" in flag.output and "'xml' is not one of" in flag.output


def test_log_format_is_case_insensitive_in_the_environment() -> None:
    assert Settings.model_validate({"log_format": " JSON"}).log_format == "json"
    assert Settings.model_validate({}).log_format == "plain"


def test_up_log_format_json_configures_json_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[Any] = []

    def record(settings: Any, tls: Any, sockets: list[socket.socket]) -> None:
        served.append(settings)
        for sock in sockets:
            sock.close()
        raise KeyboardInterrupt

    def leave(code: int) -> None:
        raise SystemExit(code)

    root = logging.getLogger()
    before = list(root.handlers)
    monkeypatch.setattr(server, "run", record)
    monkeypatch.setattr(os, "_exit", leave)
    password = tmp_path / "password"
    password.write_text("Up-Log-Passw0rd!x\n")
    try:
        result = run("up", "--data-dir", str(tmp_path / "data"), "--port", str(_free_port()), "--log-format",
                     "json", "--admin-password-file", str(password))
        assert result.exit_code == 0, result.output
        [settings] = served
        assert settings.log_format == "json"
        added = [h for h in root.handlers if h not in before]
        assert [type(h.formatter) for h in added] == [JsonLines]
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)


def test_uvicorn_access_log_is_off_even_when_debugging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With --log-level debug a request was logged twice (uvicorn's line and Cielo's): only Cielo's is left."""
    configs: list[Any] = []

    class Recorder:
        def __init__(self, config: Any) -> None:
            configs.append(config)

        def run(self, sockets: list[socket.socket]) -> None:
            return None

    monkeypatch.setattr("cielo.api.server.FlushingServer", Recorder)
    monkeypatch.setattr("cielo.api.server.create_app", lambda settings: None)
    settings = Settings.model_validate({"data_dir": tmp_path / "data", "log_level": "debug"})
    tls = ensure_tls(settings.tls_dir)
    with socket.socket() as sock:
        server._serve(settings, tls, [sock])
    [config] = configs
    assert config.access_log is False and config.log_level == "debug"


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1", "redis://cielo:S3cret-Redis-Pw@127.0.0.1:1/0"])
def test_up_with_an_unreachable_redis_is_one_line_naming_it(tmp_path: Path, url: str) -> None:
    data_dir = tmp_path / "data"
    line = _one_error_line(run("up", "--data-dir", str(data_dir), "--port", str(_free_port()), "--redis-url", url))
    assert line.startswith("ERROR: cannot start: cannot reach Redis at redis://") and "127.0.0.1:1" in line
    assert "S3cret-Redis-Pw" not in line
    if "@" in url:
        assert "redis://cielo:***@127.0.0.1:1/0" in line
    assert not data_dir.exists()  # refused before anything was set up
    env = _one_error_line(run("up", "--data-dir", str(data_dir), "--port", str(_free_port()),
                              env={"CIELO_REDIS_URL": url}))
    assert env == line
    scheme = _one_error_line(run("up", "--data-dir", str(data_dir), "--redis-url", "http://cache:6379"))
    assert "--redis-url http://cache:6379 is not a Redis URL" in scheme
