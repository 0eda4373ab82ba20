"""`cielo cloud set|show` in-process (click's CliRunner, no server): which Cielo the CLI talks to and which CA bundle
it trusts for it, kept in the config directory; CIELO_ENDPOINT wins over the setting."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from cielo.cli.main import cli

CLEAR = {name: None for name in ("CIELO_ENDPOINT", "CIELO_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE",
                                 "CIELO_DATA_DIR")}


def run(home: Path, *args: str, **env: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={**CLEAR, "CIELO_CONFIG_DIR": str(home),
                                                    "HOME": str(home.parent), **env}, prog_name="cielo")


def test_cloud_set_then_show(tmp_path: Path) -> None:
    home = tmp_path / "config"
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("pem")
    shown = json.loads(run(home, "cloud", "show", "-o", "json").stdout)
    assert (shown["endpoint"], shown["caBundle"], shown["trustedCaBundleSource"]) == (
        "https://127.0.0.1:8443", None, "system")
    result = run(home, "cloud", "set", "--endpoint", "https://cielo.example:9443/", "--ca-bundle", str(bundle),
                 "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"endpoint": "https://cielo.example:9443", "caBundle": str(bundle)}
    shown = json.loads(run(home, "cloud", "show", "-o", "json").stdout)
    assert (shown["endpoint"], shown["trustedCaBundle"], shown["trustedCaBundleSource"],
            shown["endpointFromEnvironment"]) == ("https://cielo.example:9443", str(bundle), "--ca-bundle", False)
    env = json.loads(run(home, "cloud", "show", "-o", "json", CIELO_ENDPOINT="https://other.example").stdout)
    assert (env["endpoint"], env["endpointFromEnvironment"]) == ("https://other.example", True)


def test_cloud_set_refuses_plain_http(tmp_path: Path) -> None:
    result = run(tmp_path / "config", "cloud", "set", "--endpoint", "http://cielo.example")
    assert (result.exit_code, result.stderr) == (1, "ERROR: the endpoint must be an https URL\n")
    assert not (tmp_path / "config" / "config.json").exists()
