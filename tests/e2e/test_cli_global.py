"""az's global options (-o, --query, --only-show-errors, --debug), error output, `cielo env`,
`cielo cloud set` / CIELO_ENDPOINT and `--help` on every command. The real `cielo` in a subprocess."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from e2e.cli_helpers import CLI, COGNITIVE, Cli, make_cli, verify_token
from support.server import ADMIN_PASSWORD, ADMIN_USER, CieloServer

UNREACHABLE = "https://127.0.0.1:9"


@pytest.fixture()
def cli(cielo_server: CieloServer, client_env: dict[str, str], tmp_path: Path) -> Cli:
    return make_cli(cielo_server, client_env, tmp_path)


@pytest.fixture()
def admin(cli: Cli) -> Cli:
    cli.login_admin()
    return cli


# ----------------------------------------------------------------------------- -o and --query
def test_output_formats(admin: Cli, cielo_server: CieloServer) -> None:
    as_json = admin.run("account", "show", "-o", "json").stdout
    shown = json.loads(as_json)
    assert list(shown) == sorted(shown)  # az sorts keys
    assert as_json.startswith('{\n  "environmentName"') and as_json.endswith("}\n")
    # Not a terminal: jsonc is plain json, no colour codes. On a terminal it is coloured.
    assert admin.run("account", "show", "-o", "jsonc").stdout == as_json
    coloured = _on_a_terminal(admin, "account", "show", "-o", "jsonc")
    assert "\x1b[" in coloured and json.loads(re.sub(r"\x1b\[[0-9;]*m", "", coloured)) == shown
    assert "\x1b[" not in _on_a_terminal(admin, "account", "show", "-o", "json")
    assert yaml.safe_load(admin.run("account", "show", "-o", "yaml").stdout) == shown
    assert admin.run("account", "show", "-o", "none").stdout == ""
    assert admin.run("account", "show", "-o", "JSON").stdout == as_json

    table = admin.run("account", "show", "-o", "table").stdout.splitlines()
    assert len(table) == 3
    headers = table[0].split()
    assert "Name" in headers and "TenantId" in headers and "IsDefault" in headers
    assert "Id" not in headers and "User" not in headers  # az's auto-table skips id and nested values
    assert set(table[1].replace(" ", "")) == {"-"}
    assert cielo_server.subscription_id not in table[2] and "Cielo Subscription" in table[2]

    tsv = admin.run("account", "show", "--query", "[name, state, isDefault]", "-o", "tsv").stdout
    assert tsv == "Cielo Subscription\nEnabled\ntrue\n"  # knack lower-cases a bare boolean
    assert admin.run("account", "show", "--query", "{n: name, s: state}", "-o", "tsv").stdout == (
        "Cielo Subscription\tEnabled\n")
    assert admin.json("account", "list", "--query", "[?isDefault].id") == [cielo_server.subscription_id]
    assert admin.run("account", "show", "--query", "user.name").stdout == f'"{ADMIN_USER}"\n'
    assert admin.run("account", "show", "--query", "no.such.field").stdout == ""  # null prints nothing, as in az

    # A bad -o is a usage error (exit 2, as az's parser); a bad --query is an error before anything runs.
    bad_output = admin.run("account", "show", "-o", "xml", ok=False)
    assert bad_output.returncode == 2 and "xml" in bad_output.stderr and bad_output.stdout == ""
    assert "--query" in admin.fails("account", "show", "--query", "user.[").stderr


def _on_a_terminal(cli: Cli, *args: str) -> str:
    """stdout of `cielo ARGS` when it is a terminal (a pseudo-terminal here)."""
    import os
    import pty

    leader, follower = pty.openpty()
    try:
        done = subprocess.run([*CLI, *args], env=cli.env, stdout=follower, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, timeout=60)
    finally:
        os.close(follower)
    chunks = []
    try:
        assert done.returncode == 0, done.stderr
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal has no writer any more
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_a_bad_query_is_refused_before_the_command_runs(admin: Cli) -> None:
    """Like az, which parses --query with the arguments: a typo must not cost a secret shown once."""
    name = f"cli-query-{secrets.token_hex(4)}"
    assert "invalid jmespath" in admin.fails("ad", "sp", "create-for-rbac", "-n", name, "--query", "password[").stderr
    assert admin.json("ad", "sp", "list", "--display-name", name) == []
    assert admin.json("ad", "app", "list", "--display-name", name) == []


def test_only_show_errors(admin: Cli) -> None:
    warned = admin.run("ad", "sp", "create-for-rbac", "-n", f"cli-warn-{secrets.token_hex(4)}")
    assert warned.stderr.startswith("WARNING: ") and "credentials" in warned.stderr
    quiet = admin.run("ad", "sp", "create-for-rbac", "-n", f"cli-quiet-{secrets.token_hex(4)}",
                      "--only-show-errors")
    assert quiet.stderr == ""
    assert quiet.json()["password"]
    # Errors still show.
    assert "ERROR: " in admin.fails("account", "set", "-s", "nope", "--only-show-errors").stderr


# ----------------------------------------------------------------------------- --debug
def test_debug_shows_requests_but_no_secrets(cli: Cli, cielo_server: CieloServer) -> None:
    login = cli.run("login", "-u", ADMIN_USER, "-p", ADMIN_PASSWORD, "--debug")
    assert "DEBUG" in login.stderr and "/oauth2/v2.0/token" in login.stderr
    stored = cli.tokens()
    refresh = stored["accounts"][ADMIN_USER]["refresh_token"]
    secrets_seen = [ADMIN_PASSWORD, refresh, *(t["accessToken"] for t in stored["access_tokens"].values())]

    token = cli.run("account", "get-access-token", "--resource", COGNITIVE, "--debug")
    access = token.json()["accessToken"]
    assert "DEBUG" in token.stderr
    cli.expire_access_tokens()
    renewed = cli.run("account", "get-access-token", "--resource", COGNITIVE, "--debug")
    assert "/oauth2/v2.0/token" in renewed.stderr  # it did talk to the token service
    secrets_seen += [access, renewed.json()["accessToken"], cli.tokens()["accounts"][ADMIN_USER]["refresh_token"]]

    created = cli.run("ad", "sp", "create-for-rbac", "-n", f"cli-debug-{secrets.token_hex(4)}", "--debug")
    secret = created.json()["password"]
    sp_cli = make_cli(cielo_server, cli.env, cli.home.parent, "sp")
    sp_login = sp_cli.run("login", "--service-principal", "-u", created.json()["appId"], "-p", secret,
                          "--tenant", cielo_server.tenant_id, "--allow-no-subscriptions", "--debug")
    sp_token = sp_cli.run("account", "get-access-token", "--debug")
    secrets_seen += [secret, sp_token.json()["accessToken"]]

    for result in (login, token, renewed, created, sp_login, sp_token):
        for value in secrets_seen:
            assert value not in result.stderr, f"a secret is in the --debug output of {result.args}"
        assert "eyJ" not in result.stderr
    # Without --debug, nothing but the result.
    assert cli.run("account", "get-access-token", "--resource", COGNITIVE).stderr == ""


# ----------------------------------------------------------------------------- errors
def test_errors_are_az_style(cli: Cli, cielo_server: CieloServer) -> None:
    assert cli.fails("account", "show").stderr == "ERROR: Please run 'cielo login' to setup account.\n"
    error = cli.fails("login", "-u", ADMIN_USER, "-p", ADMIN_PASSWORD, env={"CIELO_ENDPOINT": UNREACHABLE})
    assert error.stderr.startswith("ERROR: ") and "Traceback" not in error.stderr
    # A server whose CA the client does not trust is an error too, not a traceback.
    untrusted = cli.fails("login", "-u", ADMIN_USER, "-p", ADMIN_PASSWORD,
                          env={"REQUESTS_CA_BUNDLE": "", "SSL_CERT_FILE": "", "CURL_CA_BUNDLE": ""})
    assert "certificate" in untrusted.stderr.lower() and "Traceback" not in untrusted.stderr
    cli.login_admin()
    assert cli.fails("account", "show", "-s", "nope").stderr.startswith("ERROR: Subscription 'nope' not found")
    assert "does not exist" in cli.fails("ad", "user", "show", "--id", "nobody@cielo.local").stderr


# ----------------------------------------------------------------------------- env and cloud
def test_env_prints_exports_that_work(cli: Cli, cielo_server: CieloServer) -> None:
    bundle = str(cielo_server.data_dir / "tls" / "bundle.pem")
    for extra in ([], ["--port", str(cielo_server.port)]):
        result = cli.run("env", "--data-dir", str(cielo_server.data_dir), *extra)
        lines = result.stdout.splitlines()
        assert all(line.startswith("export ") for line in lines), lines
        exports = dict(line.removeprefix("export ").split("=", 1) for line in lines)
        assert exports["REQUESTS_CA_BUNDLE"] == exports["SSL_CERT_FILE"] == bundle
    assert exports["CIELO_ENDPOINT"] == exports["AZURE_AUTHORITY_HOST"] == cielo_server.base_url
    # One bundle with Cielo's CA *and* the system CAs (each variable replaces the default store).
    assert Path(bundle).read_text().count("BEGIN CERTIFICATE") > 1

    # A fresh shell with nothing but those lines can sign in.
    bare = {k: v for k, v in cli.env.items()
            if k not in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE", "AZURE_AUTHORITY_HOST",
                         "CIELO_ENDPOINT")}
    cielo = " ".join(CLI)
    script = textwrap.dedent(f"""\
        {cielo} account show -o none 2>/dev/null && exit 3
        eval "$({cielo} env --data-dir {cielo_server.data_dir} --port {cielo_server.port})"
        {cielo} login -u {ADMIN_USER} -p '{ADMIN_PASSWORD}' -o none
        {cielo} account show --query user.name -o tsv
        """)
    done = subprocess.run(["bash", "-e", "-c", script], env=bare, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{ADMIN_USER}\n"

    missing = cli.fails("env", "--data-dir", str(cli.home / "nothing-here"))
    assert "cielo up" in missing.stderr


def test_cloud_set_and_cielo_endpoint(cli: Cli, cielo_server: CieloServer) -> None:
    without = {k: v for k, v in cli.env.items() if k not in ("CIELO_ENDPOINT", "REQUESTS_CA_BUNDLE",
                                                             "SSL_CERT_FILE", "CURL_CA_BUNDLE")}
    local = Cli(cielo_server, without, cli.home)
    assert local.json("cloud", "show")["endpoint"] == "https://127.0.0.1:8443"  # the default
    assert "https" in local.fails("cloud", "set", "--endpoint", "http://127.0.0.1:1").stderr
    shown = local.json("cloud", "set", "--endpoint", cielo_server.base_url + "/", "--ca-bundle", cielo_server.bundle)
    assert shown == {"endpoint": cielo_server.base_url, "caBundle": cielo_server.bundle}
    assert local.json("cloud", "show")["endpointFromEnvironment"] is False
    local.run("login", "-u", ADMIN_USER, "-p", ADMIN_PASSWORD)
    token = local.json("account", "get-access-token", "--resource", COGNITIVE)
    assert verify_token(cielo_server, token["accessToken"], COGNITIVE)["upn"] == ADMIN_USER

    # CIELO_ENDPOINT wins over the configured endpoint.
    env = {"CIELO_ENDPOINT": UNREACHABLE}
    assert local.json("cloud", "show", env=env)["endpoint"] == UNREACHABLE
    assert local.json("cloud", "show", env=env)["endpointFromEnvironment"] is True
    assert "cannot reach" in local.fails("login", "-u", ADMIN_USER, "-p", ADMIN_PASSWORD, env=env).stderr


# ----------------------------------------------------------------------------- --help
def _commands() -> list[tuple[list[str], bool]]:
    import click

    from cielo.cli.main import cli

    found: list[tuple[list[str], bool]] = []

    def walk(command: click.Command, path: list[str]) -> None:
        is_group = isinstance(command, click.Group)
        found.append((path, is_group))
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])

    walk(cli, [])
    return found


def test_help_for_every_command(cli: Cli) -> None:
    commands = _commands()
    assert len(commands) > 40

    # As real processes: the installed `cielo` script, and a nested group. The root lists every group.
    script = Path(sys.executable).parent / "cielo"
    root = subprocess.run([str(script) if script.exists() else CLI[0], *([] if script.exists() else CLI[1:]),
                           "--help"], env=cli.env, capture_output=True, text=True, timeout=60)
    assert root.returncode == 0, root.stderr
    assert root.stdout.startswith("Usage: cielo [OPTIONS] COMMAND [ARGS]...")
    for path, _ in commands:
        if len(path) == 1:
            assert f"\n  {path[0]} " in root.stdout, path
    nested = cli.run("ad", "app", "credential", "-h").stdout
    assert nested.startswith("Usage: cielo ad app credential ") and "  reset " in nested

    # Every command and group, in one process (55 interpreters would cost ~15 s): exit 0, a usage
    # line, and for a group every subcommand listed.
    probe = textwrap.dedent("""\
        import json, sys
        from click.testing import CliRunner
        from cielo.cli.main import cli
        runner = CliRunner()
        out = {}
        for path in json.loads(sys.argv[1]):
            result = runner.invoke(cli, [*path, "--help"], prog_name="cielo")
            out[" ".join(path)] = [result.exit_code, result.output]
        print(json.dumps(out))
        """)
    paths = [path for path, _ in commands if path]
    done = subprocess.run([sys.executable, "-c", probe, json.dumps(paths)], env=cli.env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    helped = json.loads(done.stdout)
    assert len(helped) == len(paths)
    names = {" ".join(path) for path in paths}
    for name, (code, output) in helped.items():
        assert code == 0, (name, output)
        assert output.startswith(f"Usage: cielo {name} "), output
        assert "--help" in output
        for child in (n for n in names if n.startswith(name + " ") and " " not in n[len(name) + 1:]):
            assert f"\n  {child.rsplit(' ', 1)[1]} " in output, (name, child)
    # The global options are on every command that prints a result, as in az.
    for name in ("account show", "account get-access-token", "login", "ad sp create-for-rbac", "ad user list"):
        for option in ("--output", "--query", "--debug", "--only-show-errors"):
            assert option in helped[name][1], (name, option)
