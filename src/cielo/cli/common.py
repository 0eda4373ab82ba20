"""What every `cielo` command shares: az's global options, error output and exit codes.

Exit codes are az's: 1 for an error, 2 for a command line click cannot parse, 3 when the resource manager
answers 404 (az's `ResourceNotFoundError`)."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cielo.cli.output import OUTPUT_FORMATS, OutputError, TableTransformer, compile_query, emit

if TYPE_CHECKING:
    import httpx

F = TypeVar("F", bound=Callable[..., Any])


def prog_name() -> str:
    return "az" if Path(sys.argv[0]).name == "az" else "cielo"


class CliError(click.ClickException):
    """An error printed as az prints them: `ERROR: message` on stderr, exit code 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"ERROR: {self.message}", err=True)


class ServiceError(CliError):
    """An error answer of the resource manager, printed as az prints azure-core's `HttpResponseError`:
    `(Code) Message`, then `Code: …` and `Message: …` lines; a 404 exits 3, as az's `ResourceNotFoundError`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"({code}) {message}\nCode: {code}\nMessage: {message}")
        self.status = status
        self.code = code

    @classmethod
    def of(cls, status: int, code: str, message: str) -> ServiceError:
        return (ResourceNotFound if status == 404 else cls)(status, code, message)


class ResourceNotFound(ServiceError):
    """A 404 of the resource manager: az's `ResourceNotFoundError`, exit code 3."""

    exit_code = 3


class SpaceListCommand(click.Command):
    """A command that takes az's space-separated lists: each value after one of `LIST_OPTIONS`, up to the next
    option, counts as one more use of it (`--identities [system] myId`, `--parameters a=1 b=2`). A negative
    number is a value, not an option."""

    LIST_OPTIONS: tuple[str, ...] = ()

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        expanded: list[str] = []
        current: str | None = None
        taken = 0
        for arg in args:
            if arg.startswith("-") and not arg.lstrip("-").isdigit():
                name, has_value, _ = arg.partition("=")
                current = name if name in self.LIST_OPTIONS else None
                taken = 1 if has_value else 0
                expanded.append(arg)
            elif current is not None:
                if taken:
                    expanded.append(current)
                expanded.append(arg)
                taken += 1
            else:
                expanded.append(arg)
        return super().parse_args(ctx, expanded)


def table_layout(transformer: TableTransformer) -> Callable[[F], F]:
    """The command's table layout (az's `table_transformer`): the columns `-o table` shows, in az's order.
    Put it below `@global_options`."""

    def mark(func: F) -> F:
        func.__dict__["cielo_table_transformer"] = transformer
        return func

    return mark


def _unreachable(exc: httpx.HTTPError) -> CliError:
    """A transport failure, naming the endpoint and what to check (az names the host too)."""
    try:
        url = exc.request.url
        where = f" at {url.scheme}://{url.netloc.decode()}"
    except RuntimeError:  # an error raised before any request was made
        where = ""
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return CliError(f"cannot reach Cielo{where}: certificate verification failed ({text}). Trust its CA with "
                        "--ca-bundle of `cielo cloud set`, CIELO_CA_BUNDLE, REQUESTS_CA_BUNDLE or SSL_CERT_FILE "
                        "(`cielo env --data-dir DIR` prints the exports for a server's data directory).")
    return CliError(f"cannot reach Cielo{where}: {text}. Is the server running (`cielo up`)? `cielo cloud show` "
                    "says which endpoint the CLI uses; change it with `cielo cloud set --endpoint URL` or "
                    "CIELO_ENDPOINT.")


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
            import logging

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
        except Exception as exc:
            # httpx is imported by the commands that talk to a server, not here: a process that has not
            # imported it cannot have raised one of its errors.
            loaded = sys.modules.get("httpx")
            if loaded is not None and isinstance(exc, loaded.HTTPError):
                raise _unreachable(exc) from exc
            raise
        fmt = (output or _default_output()).lower()
        try:
            emit(result, fmt, query, table_transformer=func.__dict__.get("cielo_table_transformer"))
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
