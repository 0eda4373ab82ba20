"""`cielo agent` and `cielo agent env` in-process (click's CliRunner), with the server loop replaced by a recorder:
the checks made before serving (credential file, its mode and CA bundle, --allow-host, the identity header, the
port), what it prints and the state file `agent env` reads; and the host credential file itself."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from cielo.agent import server as agent_server
from cielo.agent.credential import HostCredentialFile
from cielo.cli.main import cli

TENANT = "2f1a7c4e-0000-4000-8000-000000000001"
RESOURCE = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    return tmp_path / "config"


def run(home: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env={"CIELO_CONFIG_DIR": str(home), "CIELO_AGENT_IDENTITY_HEADER": None,
                                                    "CIELO_AGENT_ALLOW_HOSTS": None, **(env or {})},
                              prog_name="cielo")


def credential_file(tmp_path: Path, *, ca_bundle: str | None = None, mode: int = 0o600) -> Path:
    path = tmp_path / "host" / "credential.json"
    HostCredentialFile("https://127.0.0.1:8443", TENANT, RESOURCE, "id.secret", ca_bundle).save(path)
    os.chmod(path, mode)
    return path


@pytest.fixture()
def served(monkeypatch: pytest.MonkeyPatch, home: Path) -> Iterator[list[dict[str, Any]]]:
    """`run_forever` recorded instead of run: the app, the addresses, the port, and the state file meanwhile."""
    calls: list[dict[str, Any]] = []

    def record(app: Any, hosts: list[str], port: int) -> None:
        state = home / "agent" / f"agent-{port}.json"
        calls.append({"app": app, "hosts": hosts, "port": port, "state": json.loads(state.read_text()),
                      "dir_mode": stat.S_IMODE(state.parent.stat().st_mode),
                      "file_mode": stat.S_IMODE(state.stat().st_mode)})
        raise KeyboardInterrupt  # as Ctrl-C ends it

    monkeypatch.setattr(agent_server, "run_forever", record)
    monkeypatch.setattr("cielo.cli.agent.signal.signal", lambda *_args: None)  # leave this process's SIGTERM alone
    yield calls


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_agent_serves_with_its_credential_and_cleans_up(tmp_path: Path, home: Path,
                                                            served: list[dict[str, Any]]) -> None:
    port = _free_port()
    header = "x" * 40
    result = run(home, "agent", "--credential", str(credential_file(tmp_path)), "--port", str(port),
                 "--no-imds-address", "--allow-host", "sidecar", env={"CIELO_AGENT_IDENTITY_HEADER": f" {header} "})
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"Cielo host agent for {RESOURCE}",
        f"  IMDS         http://127.0.0.1:{port}/metadata/identity/oauth2/token",
        f"  App Service  http://127.0.0.1:{port}/msi/token (X-IDENTITY-HEADER)",
        "  also as      sidecar (--allow-host)",
        f"  workloads:   eval \"$(cielo agent env --port {port})\""]
    [call] = served
    assert (call["hosts"], call["port"]) == (["127.0.0.1"], port)
    assert call["state"] == {"port": port, "identityHeader": header, "pid": os.getpid()}
    assert (call["dir_mode"], call["file_mode"]) == (0o700, 0o600)
    assert not (home / "agent" / f"agent-{port}.json").exists()  # a stopped agent leaves no state behind

    async def info(host: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=call["app"])
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as client:
            return await client.get("/metadata/identity/info", headers={"Metadata": "true"})

    assert asyncio.run(info("sidecar")).json() == {"tenantId": TENANT}  # the tenant of the credential
    assert asyncio.run(info("elsewhere")).status_code == 400


def test_without_an_identity_header_a_random_one_is_made(tmp_path: Path, home: Path,
                                                         served: list[dict[str, Any]]) -> None:
    for _ in range(2):
        assert run(home, "agent", "--credential", str(credential_file(tmp_path)), "--port", str(_free_port()),
                   "--no-imds-address").exit_code == 0
    first, second = (call["state"]["identityHeader"] for call in served)
    assert len(first) >= 32 and first != second


@pytest.mark.parametrize(("setup", "args", "env", "error"), [
    (None, (), {}, "--credential is required (write one with `cielo vm agent-credential --file PATH`)"),
    ({"mode": 0o644}, (), {}, "is readable by others; run `chmod 600"),
    ({"ca_bundle": "/nonexistent/bundle.pem"}, (), {},
     "its caBundle /nonexistent/bundle.pem does not exist on this host"),
    ({}, ("--allow-host", "evil.example:80"), {},
     "--allow-host: 'evil.example:80' is not a host name or an IP address (give it without a port)"),
    ({}, (), {"CIELO_AGENT_ALLOW_HOSTS": "ok.example bad/name"}, "--allow-host: 'bad/name' is not a host name"),
    ({}, (), {"CIELO_AGENT_IDENTITY_HEADER": "short"}, "the identity header must have at least 32 characters"),
])
def test_the_agent_refuses_to_start(tmp_path: Path, home: Path, served: list[dict[str, Any]],
                                    setup: dict[str, Any] | None, args: tuple[str, ...], env: dict[str, str],
                                    error: str) -> None:
    credential = () if setup is None else ("--credential", str(credential_file(tmp_path, **setup)))
    result = run(home, "agent", *credential, "--no-imds-address", "--port", str(_free_port()), *args, env=env)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("ERROR: ") and error in result.stderr, result.stderr
    assert served == []


def test_a_credential_file_missing_a_field_is_refused(tmp_path: Path, home: Path,
                                                      served: list[dict[str, Any]]) -> None:
    path = tmp_path / "partial.json"
    path.write_text(json.dumps({"endpoint": "https://127.0.0.1:8443", "tenantId": TENANT}))
    path.chmod(0o600)
    result = run(home, "agent", "--credential", str(path), "--no-imds-address")
    assert result.exit_code == 1 and result.stderr == f"ERROR: cannot use {path}: 'resourceId'\n"


def test_a_port_in_use_is_refused(tmp_path: Path, home: Path, served: list[dict[str, Any]]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(home, "agent", "--credential", str(credential_file(tmp_path)), "--port", str(port),
                     "--no-imds-address")
    assert (result.exit_code, result.stderr) == (1, f"ERROR: port {port} on 127.0.0.1 is in use\n")
    assert served == []


@pytest.mark.parametrize(("protocol", "lines"), [
    ("appservice", ["export IDENTITY_ENDPOINT=http://127.0.0.1:8123/msi/token", "export IDENTITY_HEADER=s3cret"]),
    ("legacy", ["export MSI_ENDPOINT=http://127.0.0.1:8123/msi/legacy", "export MSI_SECRET=s3cret"]),
    ("imds", ["export AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.0.0.1:8123"]),
])
def test_agent_env_prints_what_workloads_need(home: Path, protocol: str, lines: list[str]) -> None:
    state = home / "agent" / "agent-8123.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"port": 8123, "identityHeader": "s3cret", "pid": 1}))
    result = run(home, "agent", "env", "--port", "8123", "--protocol", protocol)
    assert (result.exit_code, result.stdout.splitlines()) == (0, lines)


@pytest.mark.parametrize("protocol", ["appservice", "legacy"])
def test_agent_env_without_a_running_agent(home: Path, protocol: str) -> None:
    result = run(home, "agent", "env", "--port", "8124", "--protocol", protocol)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == ("ERROR: no agent is running on port 8124 for this user (start `cielo agent "
                             "--credential ...`)\n")
    # IMDS needs no secret: it is printed whether or not an agent runs.
    assert run(home, "agent", "env", "--port", "8124", "--protocol", "imds").exit_code == 0


def test_the_credential_file_round_trips_private(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    path = credential_file(tmp_path, ca_bundle=str(bundle))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["credential.json"]  # no temporary file left
    loaded = HostCredentialFile.load(path)
    assert loaded == HostCredentialFile("https://127.0.0.1:8443", TENANT, RESOURCE, "id.secret", str(bundle))
    path.chmod(0o640)
    with pytest.raises(PermissionError, match="readable by others"):
        HostCredentialFile.load(path)
