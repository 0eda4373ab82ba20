"""The `cielo` CLI where it must match az 2.91 and needs no az to check: table and tsv layouts, exit codes and
error lines, idempotent role assignments, create-for-rbac with roles, `--cert @file`, `ad user update`, the
Graph `startswith` filter, the offline password reset, the CA order, `cielo env`'s check of the server it
describes, shell completion and the examples in every group's help. tests/e2e/test_az_parity.py runs the same
commands side by side with the real az."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from inproc import ADMIN, RG, World, error_of, unique
from inproc_cli import Cli, cli_in, signed_in_cli

from cielo.cli.main import cli as cielo
from cielo.client.http import ca_bundle_choice

NEW_PASSWORD = "Parity-Passw0rd!2"


@pytest.fixture()
def cli(world: World, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Cli]:
    with signed_in_cli(world, tmp_path_factory, tmp_path) as runner:
        yield runner


def _headers(table: str) -> list[str]:
    return table.splitlines()[0].split()


def _knack_tsv_line(item: dict[str, Any]) -> str:
    """What knack writes for one object: values in key order, a list as its length, an object as nothing."""
    def field(value: Any) -> str:
        return str(len(value)) if isinstance(value, list) else "" if isinstance(value, dict) else str(value)

    return "\t".join(field(value) for _, value in sorted(item.items()))


# ----------------------------------------------------------------------------- table and tsv
def test_account_table_and_tsv_are_azs(cli: Cli, world: World) -> None:
    assert _headers(cli.ok("account", "list", "-o", "table")) == \
        ["Name", "CloudName", "SubscriptionId", "TenantId", "State", "IsDefault"]
    row = cli.ok("account", "list", "-o", "table").splitlines()[2].split()
    assert row[-4:] == [world.sub, world.tenant, "Enabled", "True"], row
    shown = cli.json("account", "show")
    assert cli.ok("account", "show", "-o", "tsv") == _knack_tsv_line(shown) + "\n"
    # account show has no layout of its own: knack's auto-table, columns by key.
    assert _headers(cli.ok("account", "show", "-o", "table")) == sorted(
        k[:1].upper() + k[1:] for k, v in shown.items() if v is not None and not isinstance(v, dict | list)
        and k not in ("id", "type"))


def test_group_table_and_tsv_are_azs(cli: Cli) -> None:
    table = cli.ok("group", "list", "-o", "table")
    assert _headers(table) == ["Name", "Location", "Status"]
    assert any(line.split() == [RG, "local", "Succeeded"] for line in table.splitlines()[2:]), table
    shown = cli.json("group", "show", "-g", RG)
    tsv = cli.ok("group", "show", "-g", RG, "-o", "tsv")
    assert tsv == _knack_tsv_line(shown) + "\n"
    assert "None" in tsv.split("\t") or None not in shown.values()  # a null is written as None
    # A --query keeps the order it names; without one a dict's values go by key.
    assert cli.ok("group", "show", "-g", RG, "--query", "{n:name, l:location}", "-o", "tsv") == f"{RG}\tlocal\n"
    assert cli.ok("group", "show", "-g", RG, "--query", "{n:name, l:location}", "-o", "table").splitlines()[0] \
        .split() == ["N", "L"]


def test_not_found_exits_3_with_code_and_message_lines(cli: Cli) -> None:
    missing = unique("missing-rg")
    err = cli.fails("group", "show", "-g", missing, code=3)
    assert err == (f"ERROR: (ResourceGroupNotFound) Resource group '{missing}' could not be found.\n"
                   f"Code: ResourceGroupNotFound\nMessage: Resource group '{missing}' could not be found.\n")
    # A directory object az does not find is an ordinary error (az's Graph errors exit 1, message only).
    err = cli.fails("ad", "user", "show", "--id", "nobody@cielo.local")
    assert err.startswith("ERROR: Resource 'nobody@cielo.local' does not exist") and "Code:" not in err


# ----------------------------------------------------------------------------- role assignments
def test_role_assignment_create_twice_then_list_as_a_table(cli: Cli, world: World) -> None:
    rg = unique("parity-rg")
    cli.ok("group", "create", "-n", rg, "-l", "local", "-o", "none")
    scope = world.rg_path(rg)
    first = cli.json("role", "assignment", "create", "--role", "Reader", "--assignee", ADMIN, "--scope", scope)
    second = cli("role", "assignment", "create", "--role", "Reader", "--assignee", ADMIN, "--scope", scope)
    assert second.exit_code == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["id"] == first["id"] and again["principalName"] == ADMIN and again["roleDefinitionName"] == "Reader"
    table = cli.ok("role", "assignment", "list", "--scope", scope, "-o", "table")
    assert _headers(table) == ["Principal", "Role", "Scope"]
    assert table.splitlines()[2].split() == [ADMIN, "Reader", scope]
    assert cli.ok("role", "assignment", "list", "--scope", scope, "--query", "[].roleDefinitionName",
                  "-o", "tsv") == "Reader\n"


def test_create_for_rbac_assigns_the_role_at_each_scope(cli: Cli, world: World) -> None:
    rg = unique("parity-rg")
    cli.ok("group", "create", "-n", rg, "-l", "local", "-o", "none")
    name = unique("parity-sp")
    made = cli("ad", "sp", "create-for-rbac", "-n", name, "--role", "Reader", "--scopes", world.rg_path(rg))
    assert made.exit_code == 0, made.stderr
    assert f"WARNING: Creating 'Reader' role assignment under scope '{world.rg_path(rg)}'" in made.stderr
    sp = json.loads(made.stdout)
    assert list(sp) == ["appId", "displayName", "password", "tenant"] and sp["displayName"] == name
    listed = cli.json("role", "assignment", "list", "--assignee", sp["appId"], "--scope", world.rg_path(rg))
    assert [(a["roleDefinitionName"], a["principalType"]) for a in listed] == [("Reader", "ServicePrincipal")]


# ----------------------------------------------------------------------------- directory
def test_sp_list_display_name_is_a_case_insensitive_prefix(cli: Cli) -> None:
    prefix = unique("Parity-Prefix")
    sp = cli.json("ad", "sp", "create-for-rbac", "-n", f"{prefix}-one")
    found = cli.json("ad", "sp", "list", "--display-name", prefix.lower())
    assert [s["appId"] for s in found] == [sp["appId"]]
    assert cli.json("ad", "app", "list", "--display-name", prefix.upper(), "--query", "[].appId") == [sp["appId"]]
    assert cli.json("ad", "sp", "list", "--display-name", f"{prefix}-two") == []
    table = cli.ok("ad", "sp", "list", "--display-name", prefix, "-o", "table")
    assert _headers(table)[:3] == ["DisplayName", "Id", "AppId"]  # az's layout shows the Graph id
    # Other filters stay refused, naming the clause.
    err = cli.fails("ad", "user", "list", "--filter", "endswith(displayName,'x')")
    assert "endswith(displayName,'x')" in err and err.startswith("ERROR: Unsupported or invalid query filter")


def test_user_update(cli: Cli, world: World, tmp_path: Path) -> None:
    upn = f"{unique('parity-user')}@cielo.local"
    cli.json("ad", "user", "create", "--display-name", "Before", "--user-principal-name", upn,
             "--password", "First-Passw0rd!1")
    assert cli.ok("ad", "user", "update", "--id", upn, "--display-name", "After") == ""
    assert cli.json("ad", "user", "show", "--id", upn)["displayName"] == "After"
    assert cli.ok("ad", "user", "update", "--id", upn, "--password", NEW_PASSWORD,
                  "--force-change-password-next-sign-in", "false") == ""
    err = cli.fails("ad", "user", "update", "--id", upn, "--password", NEW_PASSWORD,
                    "--force-change-password-next-sign-in", "true")
    assert "forceChangePasswordNextSignIn" in err
    assert "must be false" in cli.fails("ad", "user", "create", "--display-name", "X", "--user-principal-name",
                                        f"x-{upn}", "--password", NEW_PASSWORD,
                                        "--force-change-password-next-sign-in", "true")
    assert "complexity" in cli.fails("ad", "user", "update", "--id", upn, "--password", "short")
    assert cli.fails("ad", "user", "update", "--id", upn).startswith("ERROR: usage error: give at least one")
    with cli_in(world, tmp_path / "user-home") as as_user:
        assert as_user.fails("login", "-u", upn, "-p", "First-Passw0rd!1").startswith("ERROR: AADSTS50126")
        as_user.ok("login", "-u", upn, "-p", NEW_PASSWORD, "--allow-no-subscriptions", "-o", "none")
    assert cli.ok("ad", "user", "update", "--id", upn, "--account-enabled", "false") == ""
    assert cli.json("ad", "user", "show", "--id", upn)["accountEnabled"] is False
    with cli_in(world, tmp_path / "disabled-home") as as_user:
        as_user.fails("login", "-u", upn, "-p", NEW_PASSWORD, "--allow-no-subscriptions")
    assert "your own account" in cli.fails("ad", "user", "update", "--id", ADMIN, "--account-enabled", "false")


def test_credential_reset_takes_a_certificate_as_az_does(cli: Cli, tmp_path: Path) -> None:
    app = cli.json("ad", "app", "create", "--display-name", unique("parity-cert"))
    pem = _certificate("parity").public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(pem)
    der = base64.b64encode(x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)).decode()
    for given in (f"@{tmp_path / 'cert.pem'}", pem.decode(), der):
        result = cli.json("ad", "app", "credential", "reset", "--id", app["appId"], "--cert", given)
        assert result["appId"] == app["appId"] and result["password"] is None
    assert len(cli.json("ad", "app", "credential", "list", "--id", app["appId"], "--cert")) == 1
    assert cli.fails("ad", "app", "credential", "reset", "--id", app["appId"], "--cert", "@/no/such.pem") \
        .startswith("ERROR: cannot read --cert /no/such.pem")
    assert cli.fails("ad", "app", "credential", "reset", "--id", app["appId"], "--cert", "not a certificate") == \
        "ERROR: --cert holds no PEM or base64 DER certificate\n"


# ----------------------------------------------------------------------------- offline reset
def test_admin_reset_password_offline(cli: Cli, world: World, tmp_path: Path) -> None:
    upn = f"{unique('parity-reset')}@cielo.local"
    cli.json("ad", "user", "create", "--display-name", "Reset", "--user-principal-name", upn,
             "--password", "First-Passw0rd!1")
    (tmp_path / "pw").write_text(NEW_PASSWORD + "\n")
    data = ["--data-dir", str(world.data_dir), "--user", upn]
    out = cli.json("admin", "reset-password", *data, "--password-file", str(tmp_path / "pw"))
    assert out["userPrincipalName"] == upn and "password" not in out and NEW_PASSWORD not in json.dumps(out)
    stored = world.services.directory.repo.find_user(upn)
    assert stored is not None and stored.password_hash.startswith("$argon2")
    with cli_in(world, tmp_path / "user-home") as as_user:
        as_user.ok("login", "-u", upn, "-p", NEW_PASSWORD, "--allow-no-subscriptions", "-o", "none")
    generated = cli.json("admin", "reset-password", *data, "--generate")["password"]
    with cli_in(world, tmp_path / "user-home-2") as as_user:
        as_user.ok("login", "-u", upn, "-p", generated, "--allow-no-subscriptions", "-o", "none")
    assert cli.fails("admin", "reset-password", *data).startswith("ERROR: usage error: give the new password")
    assert cli.fails("admin", "reset-password", "--data-dir", str(world.data_dir), "--user", "nobody@cielo.local",
                     "--generate").startswith("ERROR: There is no user 'nobody@cielo.local'")
    if "CIELO_DATABASE_URL" not in os.environ:  # the PostgreSQL pass (docs/testing.md): the URL names the database
        assert "no Cielo data" in cli.fails("admin", "reset-password", "--data-dir", str(tmp_path / "empty"),
                                            "--user", upn, "--generate")


# ----------------------------------------------------------------------------- trust and targeting
def test_ca_bundle_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    files = {name: tmp_path / f"{name}.pem" for name in ("flag", "cielo", "requests", "ssl")}
    for path in files.values():
        path.write_text("x")
    data_dir = tmp_path / "data"
    (data_dir / "tls").mkdir(parents=True)
    (data_dir / "tls" / "bundle.pem").write_text("x")
    monkeypatch.setenv("CIELO_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CIELO_CA_BUNDLE", str(files["cielo"]))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(files["requests"]))
    monkeypatch.setenv("SSL_CERT_FILE", str(files["ssl"]))
    assert ca_bundle_choice(str(files["flag"])) == (str(files["flag"]), "--ca-bundle")
    assert ca_bundle_choice(None) == (str(files["cielo"]), "CIELO_CA_BUNDLE")
    monkeypatch.delenv("CIELO_CA_BUNDLE")
    assert ca_bundle_choice(None) == (str(files["requests"]), "REQUESTS_CA_BUNDLE")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    assert ca_bundle_choice(None) == (str(files["ssl"]), "SSL_CERT_FILE")
    monkeypatch.delenv("SSL_CERT_FILE")
    assert ca_bundle_choice(None) == (str(data_dir / "tls" / "bundle.pem"), "data directory")
    monkeypatch.setenv("CIELO_DATA_DIR", str(tmp_path / "none"))
    assert ca_bundle_choice(None) == (True, "system")


def _certificate(name: str) -> x509.Certificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    import ipaddress

    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                              critical=False))
    cert = builder.sign(key, hashes.SHA256())
    _certificate.keys[cert.serial_number] = key  # type: ignore[attr-defined]
    return cert


_certificate.keys = {}  # type: ignore[attr-defined]


@pytest.fixture()
def tls_server(tmp_path: Path) -> Iterator[tuple[int, x509.Certificate]]:
    """A loopback TLS server (one certificate, self-signed) that completes handshakes until the test ends."""
    cert = _certificate("other-cielo")
    key = _certificate.keys[cert.serial_number]  # type: ignore[attr-defined]
    (tmp_path / "server.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + cert.public_bytes(serialization.Encoding.PEM))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], cert
    finally:
        stop.set()
        thread.join()
        listener.close()


def _data_dir(root: Path, port: int, bundle: bytes) -> Path:
    (root / "tls").mkdir(parents=True)
    (root / "tls" / "bundle.pem").write_bytes(bundle)
    (root / "server.json").write_text(json.dumps({"base_url": f"https://127.0.0.1:{port}", "pid": 1}))
    return root


def test_env_says_which_server_it_describes(tls_server: tuple[int, x509.Certificate], tmp_path: Path) -> None:
    port, cert = tls_server
    other = _data_dir(tmp_path / "other", port, _certificate("unrelated").public_bytes(serialization.Encoding.PEM))
    mine = _data_dir(tmp_path / "mine", port, cert.public_bytes(serialization.Encoding.PEM))
    runner = CliRunner()
    wrong = runner.invoke(cielo, ["env", "--data-dir", str(other)])
    assert wrong.exit_code == 0 and wrong.stdout.startswith("export REQUESTS_CA_BUNDLE=")
    assert f"the Cielo of the data directory {other}, at https://127.0.0.1:{port}" in wrong.stderr
    assert f"WARNING: the server answering at https://127.0.0.1:{port} is not the one of {other}" in wrong.stderr
    right = runner.invoke(cielo, ["env", "--data-dir", str(mine)])
    assert right.exit_code == 0 and "WARNING" not in right.stderr
    default = runner.invoke(cielo, ["env"], env={"CIELO_DATA_DIR": str(mine)})
    assert "give --data-dir or CIELO_DATA_DIR for another" not in default.stderr  # CIELO_DATA_DIR names it
    free = socket.create_server(("127.0.0.1", 0))
    free_port = free.getsockname()[1]
    free.close()
    idle = _data_dir(tmp_path / "idle", free_port, cert.public_bytes(serialization.Encoding.PEM))
    assert "nothing answers" in runner.invoke(cielo, ["env", "--data-dir", str(idle)]).stderr


def test_cloud_show_says_which_bundle_is_trusted(cli: Cli, tmp_path: Path) -> None:
    bundle = tmp_path / "mine.pem"
    bundle.write_text("x")
    result = CliRunner().invoke(cielo, ["cloud", "show"], env={"CIELO_CONFIG_DIR": str(cli.home),
                                                                "CIELO_CA_BUNDLE": str(bundle)})
    shown = json.loads(result.stdout)
    assert (shown["trustedCaBundle"], shown["trustedCaBundleSource"]) == (str(bundle), "CIELO_CA_BUNDLE")


# ----------------------------------------------------------------------------- help and completion
def _groups(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _groups(command, (*path, name))


def test_every_command_group_has_examples() -> None:
    runner = CliRunner()
    groups = list(_groups(cielo))
    assert ("ad", "sp") in groups and ("role", "assignment") in groups and len(groups) > 20
    for path in groups:
        result = runner.invoke(cielo, [*path, "--help"])
        assert result.exit_code == 0 and "Examples:" in result.stdout, path


def test_command_lines_that_do_not_parse_fail_as_azs() -> None:
    runner = CliRunner()
    unknown = runner.invoke(cielo, ["role", "asignment"])
    assert (unknown.exit_code, unknown.stdout) == (2, "")
    assert unknown.stderr.startswith("ERROR: 'asignment' is misspelled or not recognized by the system.\n")
    alone = runner.invoke(cielo, ["role"])  # a group alone prints its help, exit 0, as az does
    assert alone.exit_code == 0 and alone.stdout.startswith("Usage: ") and "Examples:" in alone.stdout
    assert runner.invoke(cielo, []).exit_code == 0


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell: str) -> None:
    result = CliRunner().invoke(cielo, ["completion", shell])
    assert result.exit_code == 0 and "_CIELO_COMPLETE" in result.stdout
    completed = CliRunner().invoke(cielo, [], prog_name="cielo", env={
        "_CIELO_COMPLETE": "bash_complete", "COMP_WORDS": "cielo role assig", "COMP_CWORD": "2"})
    assert "assignment" in completed.stdout
    assert CliRunner().invoke(cielo, ["completion", "powershell"]).exit_code == 2


# ----------------------------------------------------------------------------- the Graph side az talks to
async def test_graph_filters_and_user_patch_as_az_sends_them(client: httpx.AsyncClient, world: World) -> None:
    name = unique("Graph-Parity")
    app = (await client.post("/v1.0/applications", headers=world.graph, json={"displayName": name})).json()
    assert (await client.post("/v1.0/servicePrincipals", headers=world.graph,
                              json={"appId": app["appId"]})).status_code == 201

    async def sps(flt: str) -> list[str]:
        answer = await client.get("/v1.0/servicePrincipals", params={"$filter": flt}, headers=world.graph)
        assert answer.status_code == 200, answer.text
        return [s["appId"] for s in answer.json()["value"]]

    assert await sps(f"startswith(displayName,'{name.upper()}')") == [app["appId"]]
    assert await sps(f"startsWith(displayName, '{name[:-2]}') and appId eq '{app['appId']}'") == [app["appId"]]
    assert await sps(f"startswith(appId,'{app['appId'][:8]}')") == [app["appId"]]
    assert await sps(f"startswith(displayName,'{name}') and appId eq '00000000-0000-0000-0000-000000000000'") == []
    assert await sps("startswith(displayName,'it''s and more')") == []  # a quoted `and` is part of the value
    refused = await client.get("/v1.0/servicePrincipals", params={"$filter": "startswith(homepage,'x')"},
                               headers=world.graph)
    assert "'homepage'" in error_of(refused, 400, "Request_UnsupportedQuery")["message"]

    upn = f"{unique('graph-patch')}@cielo.local"
    user = (await client.post("/v1.0/users", headers=world.graph, json={
        "userPrincipalName": upn, "displayName": "Patch", "passwordProfile": {"password": NEW_PASSWORD}})).json()
    patched = await client.patch(f"/v1.0/users/{user['id']}", headers=world.graph, json={"displayName": "Patched"})
    assert (patched.status_code, patched.content) == (204, b"")
    for bad, named in (({"jobTitle": "x"}, "jobTitle"), ({"accountEnabled": "no"}, "accountEnabled"),
                       ({"passwordProfile": {"password": NEW_PASSWORD, "forceChangePasswordNextSignIn": True}},
                        "forceChangePasswordNextSignIn")):
        answer = await client.patch(f"/v1.0/users/{user['id']}", headers=world.graph, json=bad)
        assert named in error_of(answer, 400, "Request_BadRequest")["message"]
