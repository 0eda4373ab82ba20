"""The `cielo` command: run Cielo and use it the way az uses Azure."""

from __future__ import annotations

import re
import sys
from typing import Any

import click

from cielo.cli import (
    account,
    ad,
    ad_sp,
    agent,
    cognitiveservices,
    compute,
    deployment,
    functionapp,
    group,
    monitor,
    role,
    shim,
)
from cielo.cli.auth import prog_name
from cielo.cli.migrate import migrate
from cielo.cli.transfer import export, import_
from cielo.cli.up import admin, env, keys, up


class AzUsageError(click.UsageError):
    """A command line that cannot be parsed, printed as az (argparse) prints it: `ERROR: the following arguments
    are required: --scope`, `ERROR: unrecognized arguments: -g`, exit code 2; then where to find help."""

    def __init__(self, original: click.UsageError) -> None:
        super().__init__(self._az_message(original), original.ctx)

    @staticmethod
    def _az_message(error: click.UsageError) -> str:
        if isinstance(error, click.MissingParameter) and error.param is not None:
            names = getattr(error.param, "opts", None) or [error.param.name or ""]
            return f"the following arguments are required: {max(names, key=len)}"
        if isinstance(error, click.NoSuchOption):
            return f"unrecognized arguments: {error.option_name}"
        unknown = re.fullmatch(r"No such command '(.*)'\.", error.message)
        if unknown:
            return f"'{unknown.group(1)}' is misspelled or not recognized by the system."
        return error.format_message()

    def show(self, file: Any = None) -> None:
        click.echo(f"ERROR: {self.message}", err=True)
        if self.ctx is not None:
            click.echo(f"Try '{self.ctx.command_path} -h' for help.", err=True)


class _CieloGroup(click.Group):
    """The top-level group: every command line below it that click cannot parse fails as az's do."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:  # `cielo` alone prints its help and exits 0, as `az` does
            click.echo(ctx.get_help())
            ctx.exit(0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError as exc:  # so does a group alone (`cielo ad`), as az's do
            click.echo((exc.ctx or ctx).get_help())
            return None
        except click.UsageError as exc:
            if isinstance(exc, AzUsageError):
                raise
            raise AzUsageError(exc) from exc


@click.group(cls=_CieloGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cielo")
def cli() -> None:
    """Cielo: a self-hosted Azure OpenAI Service with its Entra ID side.

    `cielo up` runs the server; the other commands mirror the Azure CLI (az) against any Cielo.

    \b
    Examples:
      cielo up
      eval "$(cielo env)"
      cielo login --username admin@cielo.local
      cielo group show -g cielo-rg --query id -o tsv
      eval "$(cielo completion bash)"
    """


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the script that makes SHELL complete `cielo` commands and options (click's shell completion).

    \b
    Examples:
      eval "$(cielo completion bash)"                          # this shell; or add it to ~/.bashrc
      cielo completion zsh > "${fpath[1]}/_cielo"              # zsh
      cielo completion fish > ~/.config/fish/completions/cielo.fish"""
    from click.shell_completion import get_completion_class

    name = prog_name()
    completer = get_completion_class(shell)
    assert completer is not None  # click ships bash, zsh and fish
    # The variable click's own `main` answers completion requests on: _CIELO_COMPLETE for `cielo`.
    variable = f"_{name.replace('-', '_').upper()}_COMPLETE"
    click.echo(completer(cli, {}, name, variable).source())


cli.add_command(up)
cli.add_command(env)
cli.add_command(keys)
cli.add_command(admin)
cli.add_command(migrate)
cli.add_command(export)
cli.add_command(import_)
cli.add_command(account.login)
cli.add_command(account.logout)
cli.add_command(account.account)
cli.add_command(account.cloud)
cli.add_command(ad.ad)
ad.ad.add_command(ad_sp.sp)
cli.add_command(shim.az_shim)
cli.add_command(group.group)
cli.add_command(deployment.deployment)
cli.add_command(role.role)
cli.add_command(cognitiveservices.cognitiveservices)
cli.add_command(compute.vm)
cli.add_command(compute.vmss)
cli.add_command(compute.webapp)
cli.add_command(functionapp.functionapp)
cli.add_command(compute.identity)
cli.add_command(agent.agent)
cli.add_command(monitor.monitor)
cli.add_command(completion)


def main() -> None:
    cli(prog_name=prog_name())


if __name__ == "__main__":
    main()
    sys.exit(0)
