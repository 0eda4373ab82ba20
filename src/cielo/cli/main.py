"""The `cielo` command: run Cielo and use it the way az uses Azure."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

import click

from cielo.cli.common import prog_name

# Where each top-level command is defined: "module:attribute" under cielo.cli. Every `cielo` command is a new
# process, so a command's module (and what it imports: httpx, yaml, pydantic, ...) is imported only when that
# command is looked up: when it runs, when the root help lists it, or for shell completion.
_COMMANDS: dict[str, str] = {
    "up": "up:up",
    "env": "up:env",
    "keys": "up:keys",
    "admin": "up:admin",
    "migrate": "migrate:migrate",
    "export": "transfer:export",
    "import": "transfer:import_",
    "login": "account:login",
    "logout": "account:logout",
    "account": "account:account",
    "cloud": "account:cloud",
    "ad": "ad:ad",
    "az-shim": "shim:az_shim",
    "group": "group:group",
    "deployment": "deployment:deployment",
    "role": "role:role",
    "cognitiveservices": "cognitiveservices:cognitiveservices",
    "vm": "compute:vm",
    "vmss": "compute:vmss",
    "webapp": "compute:webapp",
    "functionapp": "functionapp:functionapp",
    "identity": "compute:identity",
    "agent": "agent:agent",
    "monitor": "monitor:monitor",
}


def _load(name: str) -> click.Command:
    module, _, attribute = _COMMANDS[name].partition(":")
    command: click.Command = getattr(importlib.import_module(f"cielo.cli.{module}"), attribute)
    if name == "ad":
        from cielo.cli.ad_sp import sp

        if isinstance(command, click.Group) and "sp" not in command.commands:
            command.add_command(sp)
    return command


class _LazyCommands(MutableMapping[str, click.Command]):
    """A group's commands by name, each imported by `load` the first time it is looked up (`get`, `[]`,
    `items()`); the names (what `list_commands` and click's "no such command" need) cost nothing."""

    def __init__(self, names: Iterable[str], load: Callable[[str], click.Command]) -> None:
        self._lazy = dict.fromkeys(names)
        self._load = load
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            if name not in self._lazy:
                raise KeyError(name)
            self._loaded[name] = self._load(name)
            del self._lazy[name]
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._lazy.pop(name, None)
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        if name in self._loaded:
            del self._loaded[name]
        else:
            del self._lazy[name]

    def __contains__(self, name: object) -> bool:
        return name in self._loaded or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter([*self._loaded, *self._lazy])

    def __len__(self) -> int:
        return len(self._loaded) + len(self._lazy)


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


cli.commands = _LazyCommands(_COMMANDS, _load)
cli.add_command(completion)


def main() -> None:
    # `import httpx` also imports httpx's own command-line tool (httpx._main: click's and rich's consoles, pygments),
    # about half of what importing httpx costs, and a `cielo` process never runs it. A None in sys.modules makes
    # that one import fail, which httpx expects (without its `cli` extra) and answers with a stub `httpx.main`.
    # Only here, in the `cielo` process itself: importing cielo.cli or cielo.client elsewhere changes nothing.
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    cli(prog_name=prog_name())


if __name__ == "__main__":
    main()
    sys.exit(0)
