"""Secrets and trust on the host itself, against real processes.

- The administrator's password never stays in a process list: `cielo up --admin-password X` overwrites X
  in its own command line (what `/proc/PID/cmdline` and `ps` show every local user), workers included;
  `--admin-password-file`, `CIELO_ADMIN_PASSWORD_FILE` and `--admin-password-prompt` keep it off the
  command line altogether.
- The data directory is private: directories 0700, the database (with its -wal/-shm), signing keys, TLS
  private keys and the sealing key 0600, also when an earlier start left them wider.
- The host agent answers only requests whose `Host` names it (DNS rebinding), plus `--allow-host` names.
"""

from __future__ import annotations

import os
import pty
import re
import secrets
import stat
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mi_support import COGNITIVE, Agent, MiServer, start_agent, start_mi_server

from cielo.store.db import open_engine
from support.server import ADMIN_USER, CLI_CLIENT_ID, CieloServer, free_port, start_server

pytestmark = pytest.mark.e2e

CIELO = [sys.executable, "-m", "cielo.cli.main"]


# ----------------------------------------------------------------------------- processes
def _ppid(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text[text.rindex(")") + 2:].split()[1])


def _process_tree(root: int) -> list[int]:
    """`root` and every process descended from it."""
    parents = {int(p.name): _ppid(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()}
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def _cmdlines(root: int) -> dict[int, bytes]:
    lines = {}
    for pid in _process_tree(root):
        try:
            lines[pid] = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
    return lines


def _sign_in(server: CieloServer, password: str) -> int:
    with server.http() as client:
        return client.post(f"/{server.tenant_id}/oauth2/v2.0/token", data={
            "client_id": CLI_CLIENT_ID, "grant_type": "password", "username": ADMIN_USER, "password": password,
            "scope": "https://management.core.windows.net//.default"}).status_code


def _password() -> str:
    return f"Pw-{secrets.token_hex(10)}!"


@pytest.fixture()
def servers() -> Iterator[list[CieloServer]]:
    started: list[CieloServer] = []
    yield started
    for server in started:
        server.stop()


# ----------------------------------------------------------------------------- the administrator's password
@pytest.mark.parametrize("form", ["separate", "equals"])
def test_admin_password_on_the_command_line_leaves_every_process_list(
        tmp_path: Path, servers: list[CieloServer], form: str) -> None:
    password = _password()
    given = ("--admin-password", password) if form == "separate" else (f"--admin-password={password}",)
    server = start_server(tmp_path / "data", extra_args=(*given, "--workers", "2"))
    servers.append(server)
    lines = _cmdlines(server.process.pid)
    assert len(lines) == 3, lines  # the server and its two workers
    for pid, line in lines.items():
        assert b"--admin-password" in line, (pid, line)  # the process we mean
        assert password.encode() not in line, (pid, line)
    assert _sign_in(server, password) == 200
    assert _sign_in(server, "not-" + password) != 200


@pytest.mark.parametrize("via", ["option", "environment"])
def test_admin_password_file(tmp_path: Path, servers: list[CieloServer], via: str) -> None:
    password = _password()
    secret = tmp_path / "admin-password"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    if via == "option":
        server = start_server(tmp_path / "data", extra_args=("--admin-password-file", str(secret)))
    else:
        server = start_server(tmp_path / "data", env={"CIELO_ADMIN_PASSWORD_FILE": str(secret)})
    servers.append(server)
    for pid, line in _cmdlines(server.process.pid).items():
        assert password.encode() not in line, (pid, line)
    assert _sign_in(server, password) == 200  # one trailing newline dropped


def test_help_says_the_command_line_is_visible_to_other_users() -> None:
    done = subprocess.run([*CIELO, "up", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    text = re.sub(r"(\w)- (\w)", r"\1-\2", " ".join(done.stdout.split()))  # click wraps after hyphens too
    assert ("visible to other local users until Cielo starts; prefer --admin-password-file or CIELO_ADMIN_PASSWORD"
            in text), text
    assert "--admin-password-file" in text and "--admin-password-prompt" in text


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--admin-password", "x-Passw0rd", "--admin-password-file", "PWFILE"], {},
     "not --admin-password and --admin-password-file"),
    (["--admin-password-file", "PWFILE"], {"CIELO_ADMIN_PASSWORD": "x-Passw0rd"},
     "not CIELO_ADMIN_PASSWORD and --admin-password-file"),
    (["--admin-password-prompt"], {}, "--admin-password-prompt needs a terminal"),
    (["--admin-password", ""], {}, "password is empty"),
    (["--admin-password-file", "EMPTYFILE"], {}, "holds no password"),
])
def test_admin_password_given_ambiguously_or_without_a_terminal_is_refused(
        tmp_path: Path, args: list[str], env: dict[str, str], message: str) -> None:
    (tmp_path / "pw").write_text("from-a-file\n")
    (tmp_path / "empty").write_text("\n")
    args = [{"PWFILE": str(tmp_path / "pw"), "EMPTYFILE": str(tmp_path / "empty")}.get(a, a) for a in args]
    data = tmp_path / "data"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CIELO_ADMIN_PASSWORD")}
    done = subprocess.run([*CIELO, "up", "--data-dir", str(data), "--port", str(free_port()), *args],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env={**environment, **env})
    assert done.returncode == 1, done.stdout + done.stderr
    assert message in done.stderr, done.stderr
    assert not (data / "cielo.db").exists()  # refused before anything was set up


def test_admin_password_prompt_on_a_terminal(tmp_path: Path, servers: list[CieloServer]) -> None:
    password = _password()
    master, terminal = pty.openpty()
    data, port, log = tmp_path / "data", free_port(), tmp_path / "up.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CIELO_ADMIN_PASSWORD")}
    try:
        with open(log, "wb") as out:
            # A new session has no controlling terminal: the prompt reads the pty on stdin, never the tty the
            # tests may run in.
            process = subprocess.Popen([*CIELO, "up", "--data-dir", str(data), "--port", str(port), "--admin-user",
                                        ADMIN_USER, "--admin-password-prompt"], stdin=terminal, stdout=out,
                                       stderr=subprocess.STDOUT, env=environment, start_new_session=True)
        server = CieloServer(data, port, process, log)
        servers.append(server)

        def answer_when(text: str, times: int, answer: str) -> None:
            def asked() -> bool:  # the prompt is shown (again) and echo is off: getpass is reading
                return server.log_text().count(text) >= times and not termios.tcgetattr(terminal)[3] & termios.ECHO
            _wait(asked, process, server.log_text)
            os.write(master, answer.encode() + b"\n")

        answer_when("Password for the new administrator", 1, "weak")
        answer_when("Password for the new administrator", 2, password)  # asked again, saying why
        answer_when("Repeat for confirmation", 1, password)
        _wait(lambda: "Cielo is running" in server.log_text(), process, server.log_text)
        assert "password complexity" in server.log_text()
        assert password not in server.log_text()  # not echoed, not printed
        server.tenant_id = re.search(r"tenant\s+(\S+)", server.log_text()).group(1)  # type: ignore[union-attr]
        assert _sign_in(server, password) == 200
    finally:
        os.close(master)
        os.close(terminal)


def test_a_weak_admin_password_is_refused_and_leaves_nothing_half_made(
        tmp_path: Path, servers: list[CieloServer]) -> None:
    data = tmp_path / "data"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CIELO_ADMIN_PASSWORD")}
    done = subprocess.run([*CIELO, "up", "--data-dir", str(data), "--port", str(free_port())],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env={**environment, "CIELO_ADMIN_PASSWORD": "weak"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ERROR: cannot create the administrator" in done.stderr and "Traceback" not in done.stderr, done.stderr
    password = _password()
    server = start_server(data, env={"CIELO_ADMIN_PASSWORD": password})  # a true first start: no tenant was left
    servers.append(server)
    assert "Created the administrator" in server.log_text()
    assert _sign_in(server, password) == 200


def _wait(condition: Callable[[], bool], process: subprocess.Popen[bytes], output: Callable[[], str]) -> None:
    deadline = time.time() + 60
    while not condition():
        assert process.poll() is None, output()
        assert time.time() < deadline, output()
        time.sleep(0.05)


# ----------------------------------------------------------------------------- the data directory
SECRETS = ["cielo.db", "cielo.db-wal", "cielo.db-shm", "sealing.key", "tls/ca-key.pem", "tls/server-key.pem"]


def _modes(data: Path) -> dict[str, int]:
    return {str(p.relative_to(data)) or ".": stat.S_IMODE(p.lstat().st_mode) for p in [data, *data.rglob("*")]}


def _assert_private(data: Path) -> None:
    modes = _modes(data)
    for name in SECRETS:
        assert modes.get(name) == 0o600, (name, modes)
    signing_keys = [name for name in modes if name.startswith("keys/") and name.endswith(".key")]
    assert signing_keys and all(modes[name] == 0o600 for name in signing_keys), modes
    wide = {name: oct(mode) for name, mode in modes.items()
            if mode & 0o077 or ((data / name).is_dir() and mode != 0o700)}
    assert not wide, wide


def test_data_directory_is_private_from_the_first_start(tmp_path: Path, servers: list[CieloServer]) -> None:
    server = start_server(tmp_path / "data")
    servers.append(server)
    _assert_private(server.data_dir)


def test_data_directory_left_wide_is_narrowed_at_start(tmp_path: Path, servers: list[CieloServer]) -> None:
    data = tmp_path / "data"
    start_server(data).stop()
    for name in [*SECRETS, "tls/ca.pem"]:
        if (data / name).exists():
            (data / name).chmod(0o644)
    for name in ("keys", "tls"):
        (data / name).chmod(0o755)
    for key in (data / "keys").glob("*.key"):
        key.chmod(0o644)
    assert _modes(data)["cielo.db"] == 0o644
    server = start_server(data)
    servers.append(server)
    _assert_private(data)


def test_a_new_sqlite_database_is_never_readable_by_others(tmp_path: Path) -> None:
    """The store on its own (not `cielo up`, which also narrows what it finds): under the usual umask 022
    SQLite would create 0644 files."""
    old = os.umask(0o022)
    try:
        engine = open_engine(tmp_path / "new.db")
        with engine.connect() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x)")
            connection.commit()
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
        engine.dispose()
    finally:
        os.umask(old)
    assert modes == {"new.db": 0o600, "new.db-wal": 0o600, "new.db-shm": 0o600}, modes


# ----------------------------------------------------------------------------- the host agent's Host check
IMDS_QUERY = {"api-version": "2018-02-01", "resource": COGNITIVE}


@pytest.fixture(scope="module")
def mi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MiServer]:
    server = start_mi_server(tmp_path_factory, "sec-host")
    try:
        server.put_vm("vm-host")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def credential(mi: MiServer) -> Path:
    return mi.host_credential_api("vm-host")


@pytest.fixture(scope="module")
def agent(mi: MiServer, credential: Path) -> Iterator[Agent]:
    running = start_agent(mi, credential, "host-check")
    yield running
    running.stop()


def _imds(agent: Agent, host: str, path: str = "/metadata/identity/oauth2/token") -> httpx.Response:
    answer = httpx.get(f"{agent.base}{path}", params=IMDS_QUERY, headers={"Metadata": "true", "Host": host},
                       timeout=30)
    if answer.status_code == 429:  # the agent's own 20-a-second limit
        time.sleep(1.05)
        answer = httpx.get(f"{agent.base}{path}", params=IMDS_QUERY, headers={"Metadata": "true", "Host": host},
                           timeout=30)
    return answer


def _refused_imds(answer: httpx.Response) -> None:
    assert answer.status_code == 400, answer.text
    body: dict[str, Any] = answer.json()
    assert body["error"] == "invalid_request", body
    assert "Host" in body["error_description"], body


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "localhost.evil.example", "127.0.0.2",
                                  "127.0.0.1.evil.example:{port}", "[::ffff:127.0.0.1]:{port}", "127.0.0.1:x"])
def test_agent_refuses_a_host_that_does_not_name_it(agent: Agent, host: str) -> None:
    _refused_imds(_imds(agent, host.format(port=agent.port)))


def test_agent_refuses_a_foreign_host_on_every_protocol(agent: Agent) -> None:
    host = f"evil.example:{agent.port}"
    _refused_imds(_imds(agent, host, "/metadata/identity/info"))
    for path, header in (("/msi/token", "X-IDENTITY-HEADER"), ("/msi/legacy", "secret")):
        answer = httpx.get(f"{agent.base}{path}", params={**IMDS_QUERY, "api-version": "2019-08-01"},
                           headers={header: agent.identity_header, "Host": host}, timeout=30)
        assert answer.status_code == 400, answer.text
        assert answer.json()["statusCode"] == 400 and "Host" in answer.json()["message"], answer.text


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "127.0.0.1", "localhost", "LocalHost:{port}", "localhost.",
                                  "[::1]:{port}", "169.254.169.254", "169.254.169.254:80"])
def test_agent_answers_a_host_that_names_it(agent: Agent, host: str) -> None:
    answer = _imds(agent, host.format(port=agent.port))
    assert answer.status_code == 200, answer.text
    assert answer.json()["access_token"]


def test_agent_approves_no_cors_preflight(agent: Agent) -> None:
    """What keeps a cross-site page from sending `Metadata: true` (docs/agent-deployment.md)."""
    answer = httpx.options(f"{agent.base}/metadata/identity/oauth2/token", params=IMDS_QUERY, timeout=30, headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "metadata"})
    assert answer.status_code >= 400, answer.text
    assert not [name for name in answer.headers if name.lower().startswith("access-control-")], answer.headers


def _launch(mi: MiServer, credential: Path, name: str, *args: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    """`cielo agent` with extra options (mi_support's launcher takes none); the caller stops it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIELO_AGENT", "IDENTITY_", "MSI_"))}
    env.update({"CIELO_CONFIG_DIR": str(mi.work / f"agent-{name}-config"), "HOME": str(mi.work)})
    port, log = free_port(), mi.work / f"agent-{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([*CIELO, "agent", "--credential", str(credential), "--port", str(port),
                                    "--no-imds-address", *args], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env)
    return process, port, log


def test_agent_allow_host_extends_the_names(mi: MiServer, credential: Path) -> None:
    process, port, log = _launch(mi, credential, "allow-flag", "--allow-host", "cielo-agent.pod.local",
                                 "--allow-host", "10.1.2.3")
    running = Agent(mi, port, mi.work / "agent-allow-flag-config", process, log)
    mi.agents.append(running)
    try:
        _wait_until_answering(running)
        for host in ("cielo-agent.pod.local", f"CIELO-AGENT.pod.local:{port}", "10.1.2.3:80", "127.0.0.1"):
            answer = _imds(running, host)
            assert answer.status_code == 200, (host, answer.text)
        for host in ("evil.example", "pod.local", "agent.pod.local", "10.1.2.4"):
            _refused_imds(_imds(running, host))
    finally:
        running.stop()


def test_agent_allow_hosts_from_the_environment(mi: MiServer, credential: Path) -> None:
    running = start_agent(mi, credential, "allow-env", {"CIELO_AGENT_ALLOW_HOSTS": "sidecar other.internal"})
    try:
        for host in ("sidecar", f"other.internal:{running.port}"):
            assert _imds(running, host).status_code == 200, host
        _refused_imds(_imds(running, "evil.example"))
    finally:
        running.stop()


@pytest.mark.parametrize("value", ["*", "evil.example:80", "http://x", ""])
def test_agent_refuses_a_malformed_allow_host(mi: MiServer, credential: Path, value: str) -> None:
    process, _port, log = _launch(mi, credential, "allow-bad", "--allow-host", value)
    assert process.wait(60) == 1, log.read_text()
    assert "ERROR: --allow-host" in log.read_text()


def _wait_until_answering(agent: Agent) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        assert agent.process.poll() is None, agent.output()
        try:
            httpx.get(f"{agent.base}/", timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError(agent.output())
