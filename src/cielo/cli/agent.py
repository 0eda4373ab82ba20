"""`cielo agent`: the managed-identity host agent, and `cielo agent env` for the workloads beside it."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
from pathlib import Path

import click

from cielo.cli.common import CliError
from cielo.cli.profile import config_dir

DEFAULT_PORT = 8100
IMDS_ADDRESS = "169.254.169.254"
MIN_HEADER_LENGTH = 32


def _state_path(port: int) -> Path:
    return config_dir() / "agent" / f"agent-{port}.json"


def _write_state(port: int, identity_header: str) -> None:
    path = _state_path(port)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"port": port, "identityHeader": identity_header, "pid": os.getpid()}, handle)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _can_bind(host: str, port: int) -> bool:
    try:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        return True
    except OSError:
        return False


@click.group("agent", invoke_without_command=True)
@click.option("--credential", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The host credential file (from `cielo vm agent-credential`).")
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True, help="Loopback port to serve on.")
@click.option("--no-imds-address", is_flag=True, help="Do not try to listen on 169.254.169.254:80.")
@click.option("--identity-header", envvar="CIELO_AGENT_IDENTITY_HEADER", show_envvar=True, default=None,
              help="The secret workloads send as X-IDENTITY-HEADER (IDENTITY_HEADER) and MSI_SECRET, instead of a "
              f"random one made at each start; at least {MIN_HEADER_LENGTH} characters. Set it through the "
              "environment (a command line is visible to every local user).")
@click.option("--allow-host", "allow_hosts", multiple=True, envvar="CIELO_AGENT_ALLOW_HOSTS", show_envvar=True,
              metavar="NAME",
              help="A further name (or address) workloads may reach the agent by, e.g. a sidecar's service name; "
              "repeatable (the environment variable: separated by spaces). Requests whose Host header names "
              "anything but 127.0.0.1, localhost, [::1], 169.254.169.254 and these are refused (DNS rebinding).")
@click.pass_context
def agent(ctx: click.Context, credential: Path | None, port: int, no_imds_address: bool,
          identity_header: str | None, allow_hosts: tuple[str, ...]) -> None:
    """Run the managed-identity host agent: IMDS and App Service token protocols on loopback.

    Workloads on this host get tokens for the identities of the resource the credential enrolls,
    without holding any secret. `cielo agent env` prints what they need.

    \b
    Examples:
      cielo agent --credential host1.credential
      eval "$(cielo agent env)\""""
    if ctx.invoked_subcommand is not None:
        return
    if credential is None:
        raise CliError("--credential is required (write one with `cielo vm agent-credential --file PATH`)")
    from cielo.agent.credential import HostCredentialFile
    from cielo.agent.hosts import HostAllowList
    from cielo.agent.server import build_app, run_forever
    from cielo.agent.upstream import TokenSource

    try:
        host_credential = HostCredentialFile.load(credential)
    except (PermissionError, OSError, ValueError, KeyError) as exc:
        raise CliError(f"cannot use {credential}: {exc}") from exc
    try:
        hosts = HostAllowList(allow_hosts)
    except ValueError as exc:
        raise CliError(f"--allow-host: {exc}") from exc
    if identity_header is not None and len(identity_header.strip()) < MIN_HEADER_LENGTH:
        raise CliError(f"the identity header must have at least {MIN_HEADER_LENGTH} characters")
    identity_header = identity_header.strip() if identity_header else secrets.token_urlsafe(24)
    app = build_app(TokenSource(host_credential), identity_header, host_credential.tenant_id, hosts)
    addresses = ["127.0.0.1"]
    if not no_imds_address and _can_bind(IMDS_ADDRESS, 80):
        addresses.append(IMDS_ADDRESS)
    if not _can_bind("127.0.0.1", port):
        raise CliError(f"port {port} on 127.0.0.1 is in use")
    # uvicorn shuts down gracefully on SIGTERM and then re-raises it: with the default handler the process would
    # die there, before the `finally` that removes the state file (and `agent env` would print a dead agent's).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _write_state(port, identity_header)
    click.echo(f"Cielo host agent for {host_credential.resource_id}")
    click.echo(f"  IMDS         http://127.0.0.1:{port}/metadata/identity/oauth2/token"
               + (f" and http://{IMDS_ADDRESS}/metadata/identity/oauth2/token" if len(addresses) > 1 else ""))
    click.echo(f"  App Service  http://127.0.0.1:{port}/msi/token (X-IDENTITY-HEADER)")
    if allow_hosts:
        click.echo(f"  also as      {', '.join(allow_hosts)} (--allow-host)")
    click.echo(f"  workloads:   eval \"$(cielo agent env --port {port})\"")
    try:
        run_forever(app, addresses, port)
    except KeyboardInterrupt:
        pass
    finally:
        _state_path(port).unlink(missing_ok=True)


@agent.command("env")
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True, help="The agent's port.")
@click.option("--protocol", type=click.Choice(["appservice", "imds", "legacy"]), default="appservice",
              show_default=True, help="App Service (IDENTITY_ENDPOINT/HEADER), IMDS, or the 2017 MSI protocol.")
def agent_env(port: int, protocol: str) -> None:
    """Print, as `export` lines, what a workload needs to reach the agent on this host."""
    if protocol == "imds":
        click.echo(f"export AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.0.0.1:{port}")
        return
    try:
        state = json.loads(_state_path(port).read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"no agent is running on port {port} for this user (start `cielo agent --credential ...`)") \
            from exc
    if protocol == "legacy":
        click.echo(f"export MSI_ENDPOINT=http://127.0.0.1:{port}/msi/legacy")
        click.echo(f"export MSI_SECRET={state['identityHeader']}")
        return
    click.echo(f"export IDENTITY_ENDPOINT=http://127.0.0.1:{port}/msi/token")
    click.echo(f"export IDENTITY_HEADER={state['identityHeader']}")
