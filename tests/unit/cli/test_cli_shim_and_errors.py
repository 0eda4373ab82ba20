"""`cielo az-shim install|uninstall` (the opt-in `az` launcher: written executable, never over a file it did not
write unless --force, removed only if it wrote it), and how the CLI reports a Cielo it cannot reach (naming the
endpoint, and what to do about an untrusted certificate). CliRunner in-process; the unreachable server is an httpx
transport that refuses."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from cielo.cli.main import cli
from cielo.client.http import use_transport


def run(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"CIELO_CONFIG_DIR": str(home), "CIELO_ENDPOINT": None},
                              prog_name="cielo")


def test_install_then_uninstall(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    result = run(tmp_path / "config", "az-shim", "install", "--dir", str(bin_dir))
    assert result.exit_code == 0, result.output
    launcher = bin_dir / "az"
    assert result.stdout.splitlines() == [f"Wrote {launcher}. Put {bin_dir} first on PATH to use it:",
                                          f'  export PATH="{bin_dir}:$PATH"']
    text = launcher.read_text()
    assert text.startswith("#!/bin/sh\n") and f'exec "{sys.executable}"' in text and 'sys.argv[0] = "az"' in text
    assert stat.S_IMODE(launcher.stat().st_mode) == 0o755
    again = run(tmp_path / "config", "az-shim", "install", "--dir", str(bin_dir))
    assert (again.exit_code, again.stderr) == (1, f"ERROR: {launcher} exists; pass --force to overwrite it\n")
    assert run(tmp_path / "config", "az-shim", "install", "--dir", str(bin_dir), "--force").exit_code == 0
    removed = run(tmp_path / "config", "az-shim", "uninstall", "--dir", str(bin_dir))
    assert (removed.exit_code, removed.stdout) == (0, f"Removed {launcher}.\n")
    assert not launcher.exists()
    gone = run(tmp_path / "config", "az-shim", "uninstall", "--dir", str(bin_dir))
    assert (gone.exit_code, gone.stderr) == (1, f"ERROR: {launcher} does not exist\n")


def test_uninstall_leaves_an_az_it_did_not_write(tmp_path: Path) -> None:
    real = tmp_path / "bin" / "az"
    real.parent.mkdir()
    real.write_text("#!/bin/sh\n# the real Azure CLI\n")
    result = run(tmp_path / "config", "az-shim", "uninstall", "--dir", str(real.parent))
    assert (result.exit_code, result.stderr) == (
        1, f"ERROR: {real} was not written by cielo az-shim; leaving it alone\n")
    assert real.read_text() == "#!/bin/sh\n# the real Azure CLI\n"


@pytest.mark.parametrize(("failure", "says"), [
    (httpx.ConnectError("[Errno 111] Connection refused"),
     "ERROR: cannot reach Cielo at https://127.0.0.1:8443: [Errno 111] Connection refused. Is the server running "
     "(`cielo up`)?"),
    (httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"),
     "ERROR: cannot reach Cielo at https://127.0.0.1:8443: certificate verification failed ([SSL: "
     "CERTIFICATE_VERIFY_FAILED] certificate verify failed). Trust its CA with --ca-bundle"),
])
def test_an_unreachable_cielo_is_named(tmp_path: Path, failure: httpx.ConnectError, says: str) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        failure.request = request
        raise failure

    with use_transport(httpx.MockTransport(refuse)):
        result = run(tmp_path / "config", "login", "-u", "someone@cielo.local", "-p", "x")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(says), result.stderr
