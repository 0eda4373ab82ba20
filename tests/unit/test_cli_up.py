"""`cielo up`, `cielo env`, `cielo keys` and `cielo admin reset-password` in-process (click's CliRunner) on a
temporary data directory. `cielo up` runs to the point where it would serve: the server loop is recorded instead
(api/server.py's `run`), so no process is started and nothing is served. Plus cli/scrub.py's masking of a
password given on the command line."""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cielo.api import server
from cielo.cli import scrub
from cielo.cli.main import cli
from cielo.identity.pki import ensure_tls

PASSWORD = "Up-Test-Passw0rd!x"
ENV_CLEAR = {name: None for name in ("CIELO_ADMIN_PASSWORD", "CIELO_ADMIN_PASSWORD_FILE", "CIELO_ADMIN_USER",
                                     "CIELO_DATA_DIR", "CIELO_PORT", "CIELO_HOST", "CIELO_PUBLIC_URL")}


def run(*args: str, env: dict[str, str | None] | None = None, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env={**ENV_CLEAR, **(env or {})}, input=input, prog_name="cielo")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


run_server = server.run  # the real one (the fixture below replaces it for every test)


@pytest.fixture(autouse=True)
def never_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a test gets wrong, this process never starts serving."""
    def refuse(*_args: object) -> None:
        raise AssertionError("cielo up got as far as serving")

    monkeypatch.setattr(server, "run", refuse)


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One `cielo up --reset` (an old data directory is there: moved aside) setting up a new data directory, up to
    the server loop (recorded), with the password from a file."""
    data_dir = tmp_path_factory.mktemp("up") / "data"
    data_dir.mkdir()
    (data_dir / "old.txt").write_text("from before")
    password_file = data_dir.parent / "password"
    password_file.write_text(PASSWORD + "\n")
    port = _free_port()
    served: list[dict[str, Any]] = []

    def record(settings: Any, tls: Any, sockets: list[socket.socket]) -> None:
        served.append({"settings": settings, "tls": tls, "ports": [s.getsockname()[1] for s in sockets]})
        for sock in sockets:
            sock.close()
        raise KeyboardInterrupt  # as Ctrl-C ends it

    def leave(code: int) -> None:
        raise SystemExit(code)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(server, "run", record)
        patch.setattr(os, "_exit", leave)
        result = run("up", "--data-dir", str(data_dir), "--port", str(port), "--admin-password-file",
                     str(password_file), "--admin-user", "root@cielo.local", "--tls-name", "cielo.test", "--reset")
    return {"result": result, "served": served, "data_dir": data_dir, "port": port}


def test_up_sets_up_the_data_directory_and_prints_how_to_use_it(started: dict[str, Any]) -> None:
    result, data_dir, port = started["result"], started["data_dir"], started["port"]
    assert result.exit_code == 0, (result.output, result.exception)
    base = f"https://127.0.0.1:{port}"
    lines = result.stdout.splitlines()
    assert lines[0] == f"Cielo is running at {base}"
    assert f"  resource mgr   {base}/subscriptions" in lines
    assert f"  data dir       {data_dir}" in lines
    assert "Created the administrator root@cielo.local" in lines
    assert not any("password:" in line for line in lines)  # given, so not printed
    assert PASSWORD not in result.output
    assert f"  export SSL_CERT_FILE={data_dir / 'tls' / 'bundle.pem'}" in lines
    assert lines[-2:] == ["Press Ctrl-C to stop.", "Cielo stopped."]
    [call] = started["served"]
    assert call["ports"] == [port]
    assert call["settings"].admin_password is None  # the workers never get it
    # Everything in the data directory is private to its owner.
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for path in data_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    assert json.loads((data_dir / "server.json").read_text())["base_url"] == base
    # --reset moved the old directory aside (nothing deleted) and started over.
    [moved] = data_dir.parent.glob("data.bak-*")
    assert (moved / "old.txt").read_text() == "from before" and not (data_dir / "old.txt").exists()
    assert f"Moved the data directory {data_dir} aside to {moved}; starting over with a new one." in result.stderr


def test_a_second_start_keeps_the_data_directory_and_its_administrator(started: dict[str, Any],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[int] = []

    def record(settings: Any, tls: Any, sockets: list[socket.socket]) -> None:
        served.append(sockets[0].getsockname()[1])
        for sock in sockets:
            sock.close()

    def leave(code: int) -> None:
        raise SystemExit(code)

    monkeypatch.setattr(server, "run", record)
    monkeypatch.setattr(os, "_exit", leave)
    port = _free_port()
    # A stray world-readable file (an older version, another tool): tightened at the start.
    stray = started["data_dir"] / "notes.txt"
    stray.write_text("x")
    stray.chmod(0o644)
    result = run("up", "--data-dir", str(started["data_dir"]), "--port", str(port), "--admin-user", "other@x.y")
    assert result.exit_code == 0, (result.output, result.exception)
    assert served == [port]
    assert "  (the administrator options apply at the first start only: this data directory has one)" in \
        result.stdout.splitlines()
    assert "Created the administrator" not in result.stdout and "Upgraded the database" not in result.stderr
    assert stat.S_IMODE(stray.stat().st_mode) == 0o600


@pytest.mark.parametrize("log_level", ["info", "debug"])
def test_one_worker_serves_tls_on_the_given_sockets(started: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                                    log_level: str) -> None:
    """api/server.run with one worker: uvicorn (recorded, not run) gets the data directory's certificate and key,
    the pre-bound sockets, no access log of its own (Cielo's is the one), and no lifespan."""
    from cielo.settings import Settings

    runs: list[tuple[Any, list[socket.socket]]] = []

    class Recorder:
        def __init__(self, config: Any) -> None:
            self.config = config

        def run(self, sockets: list[socket.socket]) -> None:
            runs.append((self.config, sockets))

    monkeypatch.setattr("cielo.api.server.FlushingServer", Recorder)
    settings = Settings.model_validate({"data_dir": started["data_dir"], "log_level": log_level, "workers": 1})
    tls = ensure_tls(settings.tls_dir)
    with socket.socket() as sock:
        run_server(settings, tls, [sock])
    [(config, sockets)] = runs
    assert sockets == [sock]
    assert (config.ssl_certfile, config.ssl_keyfile) == (str(tls.server_cert), str(tls.server_key))
    assert (config.access_log, config.lifespan, config.log_level) == (False, "off", log_level)  # Cielo's access log


def test_env_prints_the_exports_of_the_last_start(started: dict[str, Any]) -> None:
    data_dir = started["data_dir"]
    bundle = data_dir / "tls" / "bundle.pem"
    last = json.loads((data_dir / "server.json").read_text())["base_url"]  # written by the last `cielo up`
    assert last.startswith("https://127.0.0.1:")
    result = run("env", "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"export REQUESTS_CA_BUNDLE={bundle}", f"export SSL_CERT_FILE={bundle}", f"export CURL_CA_BUNDLE={bundle}",
        f"export NODE_EXTRA_CA_CERTS={data_dir / 'tls' / 'ca.pem'}",
        f"export AZURE_AUTHORITY_HOST={last}", f"export CIELO_ENDPOINT={last}"]
    # Nothing listens there now: said on stderr, which `eval "$(cielo env)"` leaves out.
    assert "nothing answers at" in result.stderr
    other = run("env", "--data-dir", str(data_dir), "--port", "9999")
    assert "export CIELO_ENDPOINT=https://127.0.0.1:9999" in other.stdout.splitlines()


def test_env_warns_about_a_server_of_another_data_directory(started: dict[str, Any]) -> None:

    other = ensure_tls(started["data_dir"].parent / "other-tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(other.server_cert, other.server_key)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        listener.settimeout(10)  # never left hanging, whatever the client does
        # The handshake needs the server side too: accept in a thread that finishes after one connection.
        def serve_once() -> None:
            connection, _ = listener.accept()
            try:
                with context.wrap_socket(connection, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass  # the client refuses our certificate: expected

        thread = threading.Thread(target=serve_once)
        thread.start()
        result = run("env", "--data-dir", str(started["data_dir"]), "--port", str(port))
        thread.join(timeout=10)
    assert result.exit_code == 0
    assert "WARNING: the server answering at" in result.stderr and "is not the one of" in result.stderr


def test_env_without_data(tmp_path: Path) -> None:
    result = run("env", "--data-dir", str(tmp_path / "none"))
    assert (result.exit_code, result.stderr) == (1, f"ERROR: no Cielo data in {tmp_path / 'none'}; run `cielo up` "
                                                    "first\n")


def test_keys_rotate_adds_a_signing_key_and_list_shows_it(started: dict[str, Any]) -> None:
    data_dir = str(started["data_dir"])
    before = json.loads(run("keys", "list", "--data-dir", data_dir, "-o", "json").stdout)
    assert [k["signing"] for k in before] == [True]
    rotated = json.loads(run("keys", "rotate", "--data-dir", data_dir, "-o", "json").stdout)
    assert rotated["kid"] != before[0]["kid"]
    # The old key stays published (until its last token expires); the new one signs from now on.
    assert {k["kid"] for k in rotated["keys"]} == {before[0]["kid"], rotated["kid"]}


def test_a_damaged_key_file_is_one_error_line(tmp_path: Path) -> None:
    keys = tmp_path / "data" / "keys"
    keys.mkdir(parents=True)
    (keys / "broken.json").write_text("{not json")
    for command in ("list", "rotate"):
        result = run("keys", command, "--data-dir", str(tmp_path / "data"))
        assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
        assert result.stderr.startswith("ERROR: ") and "broken.json" in result.stderr, result.stderr


def test_reset_password_generates_one_for_a_user_of_the_data_directory(started: dict[str, Any]) -> None:
    result = run("admin", "reset-password", "--data-dir", str(started["data_dir"]), "--user", "root@cielo.local",
                 "--generate", "-o", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["userPrincipalName"], out["refreshTokensRevoked"]) == ("root@cielo.local", True)
    assert len(out["password"]) >= 12


@pytest.mark.parametrize(("args", "error"), [
    ((), "usage error: give the new password one way: --password-file FILE | --password-prompt | --generate"),
    (("--generate", "--password-prompt"), "usage error: give the new password one way"),
    (("--password-prompt",), "--password-prompt needs a terminal; use --password-file"),
    (("--generate",), "no Cielo data in"),
])
def test_reset_password_refusals(tmp_path: Path, args: tuple[str, ...], error: str) -> None:
    result = run("admin", "reset-password", "--data-dir", str(tmp_path / "none"), "--user", "u@cielo.local", *args)
    assert result.exit_code == 1 and result.stderr.startswith(f"ERROR: {error}"), result.output


@pytest.fixture()
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password"
    path.write_text(PASSWORD)
    return path


@pytest.mark.parametrize(("args", "env", "error"), [
    (("--admin-password", PASSWORD, "--admin-password-file", "{file}"), {},
     "give the administrator's password one way, not --admin-password and --admin-password-file"),
    (("--admin-password-prompt",), {"CIELO_ADMIN_PASSWORD": PASSWORD},
     "give the administrator's password one way, not CIELO_ADMIN_PASSWORD and --admin-password-prompt"),
    (("--admin-password", PASSWORD), {"CIELO_ADMIN_PASSWORD_FILE": "{file}"},
     "give the administrator's password one way, not --admin-password and CIELO_ADMIN_PASSWORD_FILE"),
    (("--admin-password-prompt",), {}, "--admin-password-prompt needs a terminal"),
    (("--admin-password", ""), {}, "the administrator's password is empty"),
    (("--admin-password-file", "{empty}"), {}, "{empty} holds no password"),
    (("--admin-password-file", "{binary}"), {}, "cannot read the administrator's password from {binary}"),
])
def test_up_refuses_a_password_given_two_ways_or_none(tmp_path: Path, password_file: Path, args: tuple[str, ...],
                                                      env: dict[str, str], error: str) -> None:
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "binary").write_bytes(b"\xff\xfe")
    names = {"file": str(password_file), "empty": str(tmp_path / "empty"), "binary": str(tmp_path / "binary")}
    data_dir = tmp_path / "data"
    result = run("up", "--data-dir", str(data_dir), *(a.format(**names) for a in args),
                 env={k: v.format(**names) for k, v in env.items()})
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[-1].startswith(f"ERROR: {error.format(**names)}"), result.stderr
    assert not data_dir.exists()  # refused before anything is made


def test_up_refuses_a_port_in_use_before_touching_the_data_directory(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("up", "--data-dir", str(tmp_path / "data"), "--port", str(port), "--reset")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"ERROR: cannot listen on 127.0.0.1:{port}: the port is in use by pid "), \
        result.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(("damaged", "says"), [
    ("keys/0123.json", "is not signing key metadata"),
    ("sealing.key", "is not a sealing key"),
])
def test_up_refuses_a_damaged_data_directory_with_one_line(tmp_path: Path, damaged: str, says: str) -> None:
    data_dir = tmp_path / "data"
    (data_dir / damaged).parent.mkdir(parents=True, exist_ok=True)
    (data_dir / damaged).write_text("{damaged")
    result = run("up", "--data-dir", str(data_dir), "--port", str(_free_port()))
    assert result.exit_code == 1, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"ERROR: cannot start: {data_dir / damaged}") and says in line, line
    assert line.endswith(f"restore it from a backup, or run `cielo up --reset` to move {data_dir} aside (to "
                         "data.bak-<timestamp>) and start over")
    assert not (data_dir / "cielo.db").exists()  # refused before the database is made or upgraded


@pytest.mark.parametrize(("area", "masked"), [
    (b"cielo\0up\0--admin-password\0s3cret\0", b"cielo\0up\0--admin-password\0******\0"),
    (b"cielo\0up\0--admin-password=s3cret\0--port\01\0", b"cielo\0up\0--admin-password=******\0--port\01\0"),
    (b"cielo\0--admin-password\0a\0--admin-password=bb\0", b"cielo\0--admin-password\0*\0--admin-password=**\0"),
    (b"cielo\0up\0--admin-password\0", None),  # no value follows
    (b"cielo\0up\0--admin-password\0***\0", None),  # masked already
    (b"cielo\0up\0--admin-password-file\0f\0", None),  # another option
])
def test_a_password_on_the_command_line_is_masked_in_place(area: bytes, masked: bytes | None) -> None:
    rewritten = scrub._rewrite(area, b"--admin-password")
    assert rewritten == masked
    if rewritten is not None:
        assert len(rewritten) == len(area) and rewritten.count(b"\0") == area.count(b"\0")


def test_hiding_rewrites_sys_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["cielo", "up", "--admin-password", "s3cret"])
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "cielo", "up", "--admin-password=s3cret"])
    # This test process's own command line holds no --admin-password: nothing there to overwrite.
    assert scrub.hide_option_values("--admin-password") is None
    assert sys.argv == ["cielo", "up", "--admin-password", "******"]
    assert sys.orig_argv == ["python", "-m", "cielo", "up", "--admin-password=******"]


def test_hiding_says_why_it_could_not(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable() -> tuple[int, int]:
        raise OSError("no /proc")

    monkeypatch.setattr(scrub, "_arg_area", unreadable)
    assert scrub.hide_option_values("--admin-password") == "cannot read this process's command line area (no /proc)"
    monkeypatch.setattr(scrub, "_arg_area", lambda: (100, 100))
    assert "not the one exec wrote" in str(scrub.hide_option_values("--admin-password"))
