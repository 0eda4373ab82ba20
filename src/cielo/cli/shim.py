"""`cielo az-shim install`: an opt-in `az` launcher that runs Cielo's CLI.

For people without the real Azure CLI: azure-identity's AzureCliCredential (and so
DefaultAzureCredential) runs `az account get-access-token --output json --resource R` from PATH
(azure-identity's _credentials/azure_cli.py: `shutil.which("az")`, so any executable named `az` first on
PATH will do). A launcher named `az` that runs `cielo` answers it the same way.
Nothing is installed unless this command is run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from cielo.cli.common import CliError

# The CLI answers as az (`Please run 'az login' ...`, which AzureCliCredential looks for) when its
# argv[0] is named az; `python -m` would make argv[0] the path of main.py.
LAUNCHER = """#!/bin/sh
# Written by `cielo az-shim install`: runs Cielo's CLI when `az` is called.
exec "{python}" -c 'import sys; sys.argv[0] = "az"; from cielo.cli.main import main; main()' "$@"
"""


@click.group("az-shim")
def az_shim() -> None:
    """Let `az` on PATH run Cielo's CLI (opt-in; for AzureCliCredential without the real az).

    \b
    Examples:
      cielo az-shim install --dir ~/.cielo/bin && export PATH=~/.cielo/bin:$PATH
      cielo az-shim uninstall --dir ~/.cielo/bin"""


@az_shim.command("install")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write the `az` launcher into (put it first on PATH).")
@click.option("--force", is_flag=True, help="Overwrite an existing file named az.")
def install(directory: Path, force: bool) -> None:
    """Write an `az` launcher into DIR."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "az"
    if target.exists() and not force:
        raise CliError(f"{target} exists; pass --force to overwrite it")
    target.write_text(LAUNCHER.format(python=sys.executable))
    os.chmod(target, 0o755)  # noqa: S103 - a launcher on PATH is executable by all, as az itself is
    click.echo(f"Wrote {target}. Put {directory} first on PATH to use it:")
    click.echo(f'  export PATH="{directory}:$PATH"')


@az_shim.command("uninstall")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory holding the launcher.")
def uninstall(directory: Path) -> None:
    """Remove an `az` launcher written by install (and only such a launcher)."""
    target = directory / "az"
    if not target.exists():
        raise CliError(f"{target} does not exist")
    if "cielo az-shim install" not in target.read_text(errors="replace"):
        raise CliError(f"{target} was not written by cielo az-shim; leaving it alone")
    target.unlink()
    click.echo(f"Removed {target}.")
