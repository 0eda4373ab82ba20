"""`cielo` side by side with the real az 2.91 on one Cielo: the same commands, the same output.

Both sign in as the administrator (a user, so Graph answers az's directory look-ups) and run the how-to's
commands; each comparison is of what a user sees: JSON, `-o table` and `-o tsv` text, exit codes and the
`ERROR:`/`Code:`/`Message:` lines. az is installed as in test_az_cli.py (its `az_exe` fixture) and is slow
(about a second a call), so each test makes few calls. tests/api/test_api_cli_parity.py checks the rest
in-process.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import test_az_cli
from cli_helpers import Cli, make_cli
from test_az_cli import Az, AzResult, make_az

from support.browser import device_login
from support.server import ADMIN_PASSWORD, ADMIN_USER, CLI_CLIENT_ID, CieloServer, start_server

pytestmark = pytest.mark.e2e

az_exe = test_az_cli.az_exe  # the real az, installed once into the test cache
RG = "cielo-rg"
NEW_PASSWORD = "Parity-Passw0rd!9"


@dataclass
class Both:
    server: CieloServer
    az: Az
    cielo: Cli

    @property
    def rg_id(self) -> str:
        return f"/subscriptions/{self.server.subscription_id}/resourceGroups/{RG}"

    def one(self, tool: str, *args: str) -> AzResult:
        """`az ARGS` or `cielo ARGS` (as the AzResult shape, for one assertion style)."""
        if tool == "az":
            return self.az.run(*args)
        done = self.cielo.run(*args, ok=None)
        return AzResult(args, done.returncode, done.stdout, done.stderr)

    def run(self, *args: str) -> tuple[AzResult, AzResult]:
        """The same command line through az and through cielo."""
        return self.one("az", *args), self.one("cielo", *args)

    def same(self, *args: str) -> str:
        """Run with both; both succeed and print the same text. Returns it."""
        az, cielo = self.run(*args)
        assert az.returncode == 0, str(az)
        assert cielo.returncode == 0, str(cielo)
        assert cielo.stdout == az.stdout, f"{az}\n\n{cielo}"
        return az.stdout


@pytest.fixture(scope="module")
def both(az_exe: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Both]:
    root = tmp_path_factory.mktemp("az-parity")
    server = start_server(root / "data")
    try:
        az = make_az(az_exe, server, root / "az-config")
        az.hidden.append(ADMIN_PASSWORD)
        # Named as cielo names its cloud, so `environmentName`/`cloudName` agree.
        az.ok("cloud", "register", "--name", "Cielo", "--endpoint-resource-manager", f"{server.base_url}/")
        az.ok("cloud", "set", "--name", "Cielo")
        _az_device_login(az, server)
        cielo = make_cli(server, server.client_env(), root, name="cielo")
        cielo.login_admin()
        yield Both(server, az, cielo)
    finally:
        server.stop()


def _az_device_login(az: Az, server: CieloServer) -> None:
    """`az login --use-device-code` as the administrator, the browser side done by the test. (`az login -u -p`
    cannot reach a Cielo off port 443: MSAL's user-realm look-up drops the authority's port.)"""
    process = subprocess.Popen([str(az.exe), "login", "--use-device-code", "--output", "json"], env=az.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    timer = threading.Timer(180, process.kill)
    timer.start()
    try:
        assert process.stderr is not None
        seen = []
        for line in process.stderr:
            seen.append(line)
            found = re.search(r"enter the code (\S+) to authenticate", line)
            if found:
                answer = device_login(server.base_url, server.bundle, found.group(1), ADMIN_USER, ADMIN_PASSWORD)
                assert answer.status_code == 200, answer.text
                break
        out, err = process.communicate()
    finally:
        timer.cancel()
    assert process.returncode == 0, "".join(seen) + err + out


def _error_lines(result: AzResult) -> list[str]:
    """The `ERROR:` line and the `Code:`/`Message:` lines after it (az may add hints of its own below)."""
    lines = result.stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ERROR: "))
    return lines[start:start + 3]


def test_account_show_and_list(both: Both) -> None:
    for args in (("account", "show"), ("account", "list")):
        for output in ("json", "table", "tsv"):
            both.same(*args, "-o", output)
    table = both.same("account", "list", "-o", "table")
    assert table.splitlines()[0].split() == ["Name", "CloudName", "SubscriptionId", "TenantId", "State",
                                             "IsDefault"]


def test_group_show_and_list(both: Both) -> None:
    for args in (("group", "show", "-g", RG), ("group", "list")):
        for output in ("json", "table", "tsv"):
            both.same(*args, "-o", output)
    assert both.same("group", "list", "-o", "table").splitlines()[0].split() == ["Name", "Location", "Status"]
    az, cielo = both.run("group", "show", "-g", f"missing-{secrets.token_hex(3)}")
    assert (az.returncode, cielo.returncode) == (3, 3), f"{az}\n\n{cielo}"
    assert _error_lines(cielo) == _error_lines(az), f"{az}\n\n{cielo}"
    assert _error_lines(cielo)[1] == "Code: ResourceGroupNotFound"


def test_role_assignment_create_twice_and_list(both: Both) -> None:
    users = [both.server.graph("POST", "/users", {
        "userPrincipalName": f"parity-{who}-{secrets.token_hex(3)}@cielo.local", "displayName": f"parity {who}",
        "passwordProfile": {"password": NEW_PASSWORD}}) for who in ("az", "cielo")]
    made: list[list[dict[str, Any]]] = []
    for tool, user in zip(("az", "cielo"), users, strict=True):
        runs = []
        for _ in range(2):  # az's create is idempotent: the second prints the existing assignment, exit 0
            result = both.one(tool, "role", "assignment", "create", "--role", "Reader", "--assignee",
                              user["userPrincipalName"], "--scope", both.rg_id, "-o", "json")
            assert result.returncode == 0, str(result)
            runs.append(result.json())
        assert runs[1]["id"] == runs[0]["id"]
        made.append(runs)
    (az_first, az_again), (cielo_first, cielo_again) = made
    assert sorted(cielo_first) == sorted(az_first), sorted(set(cielo_first) ^ set(az_first))
    assert sorted(cielo_again) == sorted(az_again), sorted(set(cielo_again) ^ set(az_again))
    assert cielo_again["principalName"] == users[1]["userPrincipalName"]

    for output in ("json", "table", "tsv"):
        both.same("role", "assignment", "list", "--scope", both.rg_id, "-o", output)
    assert both.same("role", "assignment", "list", "--scope", both.rg_id, "-o", "table").splitlines()[0].split() \
        == ["Principal", "Role", "Scope"]

    az, cielo = both.run("role", "assignment", "create", "--role", "Reader", "--assignee", ADMIN_USER)
    assert (az.returncode, cielo.returncode) == (2, 2), f"{az}\n\n{cielo}"  # --scope is required
    assert "--scope" in az.stderr and "--scope" in cielo.stderr


def test_create_for_rbac_and_sp_list_by_display_name(both: Both) -> None:
    prefix = f"parity-rbac-{secrets.token_hex(3)}"
    created = []
    for tool in ("az", "cielo"):
        result = both.one(tool, "ad", "sp", "create-for-rbac", "-n", f"{prefix}-{tool}", "--role", "Reader",
                          "--scopes", both.rg_id, "-o", "json")
        assert result.returncode == 0, str(result)
        assert f"Creating 'Reader' role assignment under scope '{both.rg_id}'" in result.stderr, str(result)
        created.append(result.json())
        both.az.hidden.append(created[-1]["password"])
    assert [sorted(c) for c in created] == [["appId", "displayName", "password", "tenant"]] * 2

    listed = both.same("ad", "sp", "list", "--display-name", prefix, "--query", "[].appId", "-o", "tsv")
    assert sorted(listed.split()) == sorted(c["appId"] for c in created)
    both.same("ad", "sp", "list", "--display-name", prefix, "-o", "table")
    both.same("role", "assignment", "list", "--scope", both.rg_id, "--query",
              f"[?starts_with(principalName, '{created[0]['appId'][:8]}')].roleDefinitionName", "-o", "tsv")


def test_ad_user_update(both: Both) -> None:
    upns = []
    for tool in ("az", "cielo"):
        upn = f"parity-update-{tool}-{secrets.token_hex(3)}@cielo.local"
        both.server.graph("POST", "/users", {"userPrincipalName": upn, "displayName": "before",
                                             "passwordProfile": {"password": "First-Passw0rd!1"}})
        upns.append(upn)
    for tool, upn in zip(("az", "cielo"), upns, strict=True):
        result = both.one(tool, "ad", "user", "update", "--id", upn, "--display-name", "after",
                          "--password", NEW_PASSWORD)
        assert (result.returncode, result.stdout) == (0, ""), str(result)
        assert both.server.graph("GET", f"/users/{upn}")["displayName"] == "after"
        token = both.server.token({"client_id": CLI_CLIENT_ID, "grant_type": "password",
                                   "username": upn, "password": NEW_PASSWORD,
                                   "scope": "https://management.core.windows.net//.default"})
        assert token.get("access_token"), token
    az, cielo = both.run("ad", "user", "update", "--id", upns[0], "--force-change-password-next-sign-in", "true")
    assert (az.returncode, cielo.returncode) == (1, 1), f"{az}\n\n{cielo}"
    assert _error_lines(cielo)[0] == _error_lines(az)[0], f"{az}\n\n{cielo}"


def test_two_cielos_on_one_machine(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The CLI trusts the CA the shell was set up for (REQUESTS_CA_BUNDLE) before the bundle of another Cielo's
    data directory on the same machine, and `cielo env` says when its data directory is not the answering
    server's. (No az here: this is the CLI's own targeting.)"""
    root = tmp_path_factory.mktemp("two-cielos")
    first = start_server(root / "first")
    try:
        second = start_server(root / "second")
        try:
            # The first Cielo's data is the local one; the shell is set up for the second.
            cli = make_cli(second, {**second.client_env(), "CIELO_DATA_DIR": str(first.data_dir)}, root)
            cli.login_admin()
            shown = cli.json("cloud", "show")
            assert (shown["trustedCaBundle"], shown["trustedCaBundleSource"]) == (second.bundle, "REQUESTS_CA_BUNDLE")
            assert cli.json("group", "show", "-g", RG)["id"].startswith(f"/subscriptions/{second.subscription_id}/")

            wrong = cli.run("env", "--port", str(second.port))
            assert wrong.stdout.startswith(f"export REQUESTS_CA_BUNDLE={first.bundle}\n")
            assert f"the Cielo of the data directory {first.data_dir}, at {second.base_url}" in wrong.stderr
            assert f"WARNING: the server answering at {second.base_url} is not the one of {first.data_dir}" \
                in wrong.stderr
            right = cli.run("env", "--data-dir", str(second.data_dir))
            assert right.stdout.startswith(f"export REQUESTS_CA_BUNDLE={second.bundle}\n")
            assert "WARNING" not in right.stderr
        finally:
            second.stop()
    finally:
        first.stop()
