"""What every `cielo` command shares: az's global options, error output and exit codes."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import httpx

from cielo.cli.output import OUTPUT_FORMATS, OutputError, compile_query, emit

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """An error printed as az prints them: `ERROR: message` on stderr, exit code 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"ERROR: {self.message}", err=True)


def global_options(func: F) -> F:
    """Add az's global options to a command, and print its return value in the chosen format."""

    @click.option("-o", "--output", "output", type=click.Choice(OUTPUT_FORMATS, case_sensitive=False),
                  default=None, help="Output format: json, jsonc, table, tsv, yaml or none.")
    @click.option("--query", "query", default=None, help="JMESPath query string applied to the output.")
    @click.option("--debug", "debug", is_flag=True, default=False, help="Show all debug logs.")
    @click.option("--only-show-errors", "only_show_errors", is_flag=True, default=False,
                  help="Only show errors, suppressing warnings.")
    @functools.wraps(func)
    def wrapper(*args: Any, output: str | None, query: str | None, debug: bool, only_show_errors: bool,
                **kwargs: Any) -> None:
        if debug:
            from cielo.logging_setup import install_redaction

            logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
            install_redaction()
        if query is not None:
            try:
                compile_query(query)  # before the command runs: a typo must not cost a side effect
            except OutputError as exc:
                raise CliError(str(exc)) from exc
        ctx = click.get_current_context()
        ctx.meta["only_show_errors"] = only_show_errors
        try:
            result = func(*args, **kwargs)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach Cielo: {exc}") from exc
        fmt = (output or _default_output()).lower()
        try:
            emit(result, fmt, query)
        except OutputError as exc:
            raise CliError(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def _default_output() -> str:
    from cielo.cli.profile import CliConfig

    return CliConfig.load().output


def warn(message: str) -> None:
    if not click.get_current_context().meta.get("only_show_errors"):
        click.echo(f"WARNING: {message}", err=True)


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2)
