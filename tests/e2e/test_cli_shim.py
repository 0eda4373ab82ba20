"""`cielo az-shim install`: azure-identity's AzureCliCredential and DefaultAzureCredential, unmodified,
get their tokens from Cielo's CLI through an `az` launcher on PATH (AzureCliCredential runs
whichever `az` comes first on PATH)."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import AzureCliCredential, CredentialUnavailableError, DefaultAzureCredential

from e2e.cli_helpers import COGNITIVE, Cli, make_cli, verify_token
from support.server import ADMIN_USER, CieloServer

SCOPE = f"{COGNITIVE}/.default"
ONLY_CLI = {f"exclude_{name}_credential": True for name in (
    "environment", "workload_identity", "managed_identity", "shared_token_cache", "visual_studio_code",
    "powershell", "developer_cli")}


@pytest.fixture()
def cli(cielo_server: CieloServer, client_env: dict[str, str], tmp_path: Path) -> Cli:
    return make_cli(cielo_server, client_env, tmp_path)


@pytest.fixture()
def shim(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`cielo az-shim install --dir D`, with D first on PATH for this process (and so for azure-identity)."""
    directory = tmp_path / "shim-bin"
    result = cli.run("az-shim", "install", "--dir", str(directory))
    assert str(directory / "az") in result.stdout
    monkeypatch.setenv("PATH", f"{directory}:{cli.env['PATH']}")
    monkeypatch.setenv("HOME", str(cli.home))
    assert shutil.which("az") == str(directory / "az")
    return directory / "az"


def _az(shim: Path, cli: Cli, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(shim), *args], env={**cli.env, "AZURE_CORE_NO_COLOR": "true"}, cwd="/",
                          capture_output=True, text=True, timeout=60)


def test_the_shim_is_opt_in(cli: Cli, tmp_path: Path) -> None:
    """Nothing but `cielo az-shim install` writes an `az`: not the package, not login."""
    scripts = {ep.name for ep in importlib.metadata.distribution("cielo").entry_points
               if ep.group == "console_scripts"}
    assert scripts == {"cielo"}
    cli.login_admin()
    assert shutil.which("az", path=str(Path(sys.executable).parent)) is None
    assert not any(path.name == "az" for path in cli.home.rglob("*"))
    assert not any(path.name == "az" for path in cli.config_dir.rglob("*"))

    # It never overwrites an existing az, nor removes one it did not write.
    directory = tmp_path / "bin"
    directory.mkdir()
    (directory / "az").write_text("#!/bin/sh\necho the real az\n")
    assert "--force" in cli.fails("az-shim", "install", "--dir", str(directory)).stderr
    assert "not written by cielo" in cli.fails("az-shim", "uninstall", "--dir", str(directory)).stderr
    assert (directory / "az").read_text() == "#!/bin/sh\necho the real az\n"
    cli.run("az-shim", "install", "--dir", str(directory), "--force")
    cli.run("az-shim", "uninstall", "--dir", str(directory))
    assert not (directory / "az").exists()


def test_azure_cli_credential_through_the_shim(cli: Cli, cielo_server: CieloServer, shim: Path) -> None:
    cli.login_admin()
    # What AzureCliCredential runs, by hand (no shell, another cwd).
    ran = _az(shim, cli, "account", "get-access-token", "--output", "json", "--resource", COGNITIVE)
    assert ran.returncode == 0, ran.stderr
    assert verify_token(cielo_server, json.loads(ran.stdout)["accessToken"], COGNITIVE)["upn"] == ADMIN_USER
    assert _az(shim, cli, "--help").stdout.startswith("Usage: az ")

    token = AzureCliCredential().get_token(SCOPE)
    claims = verify_token(cielo_server, token.token, COGNITIVE)
    assert claims["upn"] == ADMIN_USER
    assert claims["exp"] - 10 <= token.expires_on <= claims["exp"]
    # The CLI's cache answers the second call: the same token.
    assert AzureCliCredential().get_token(SCOPE).token == token.token
    # With a tenant (AzureCliCredential passes --tenant).
    tenant_token = AzureCliCredential(tenant_id=cielo_server.tenant_id).get_token(SCOPE)
    assert verify_token(cielo_server, tenant_token.token, COGNITIVE)["tid"] == cielo_server.tenant_id


def test_default_azure_credential_lands_on_the_cli(cli: Cli, cielo_server: CieloServer, shim: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cli.login_admin()
    token = DefaultAzureCredential(**ONLY_CLI).get_token(SCOPE)
    assert verify_token(cielo_server, token.token, COGNITIVE)["upn"] == ADMIN_USER
    # No code change at all: the environment picks the CLI credential.
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "AzureCliCredential")
    token = DefaultAzureCredential().get_token(SCOPE)
    assert verify_token(cielo_server, token.token, COGNITIVE)["upn"] == ADMIN_USER


def test_not_signed_in_is_credential_unavailable(cli: Cli, shim: Path) -> None:
    # Run as az, the CLI says what az says, which is what AzureCliCredential looks for.
    ran = _az(shim, cli, "account", "get-access-token", "--output", "json", "--resource", COGNITIVE)
    assert ran.returncode == 1 and ran.stdout == ""
    assert ran.stderr.startswith("ERROR: Please run 'az login' to setup account.")
    # Run as cielo, it says cielo.
    assert "Please run 'cielo login'" in cli.fails("account", "get-access-token").stderr
    with pytest.raises(CredentialUnavailableError, match="az login"):
        AzureCliCredential().get_token(SCOPE)
    with pytest.raises(ClientAuthenticationError, match="AzureCliCredential: Please run 'az login'"):
        DefaultAzureCredential(**ONLY_CLI).get_token(SCOPE)
