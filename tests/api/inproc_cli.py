"""The `cielo` CLI run in-process (click's `CliRunner`) against the in-process app.

The CLI's client is sync httpx; `SyncASGITransport` runs the ASGI app on a private event loop for each request,
and `cielo.client.http.use_transport` hands it to every client the CLI opens. Each test gets its own
CIELO_CONFIG_DIR: a copy of one that signed in once per session (ROPC costs an argon2 hash), with the access
tokens the tests need already cached.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from fastapi import FastAPI
from inproc import ADMIN, BASE_URL, PASSWORD, World

from cielo.cli.main import cli
from cielo.client.http import use_transport


class SyncASGITransport(httpx.BaseTransport):
    """A sync httpx transport that runs the request through `httpx.ASGITransport` on its own event loop."""

    def __init__(self, app: FastAPI) -> None:
        self._asgi = httpx.ASGITransport(app=app)
        self._loop = asyncio.new_event_loop()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def send() -> httpx.Response:
            response = await self._asgi.handle_async_request(request)
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
            return httpx.Response(response.status_code, headers=response.headers, stream=httpx.ByteStream(raw),
                                  extensions=response.extensions)

        return self._loop.run_until_complete(send())

    def close(self) -> None:
        """Every CLI client closes its transport when done; this one lives until `shutdown`."""

    def shutdown(self) -> None:
        self._loop.close()


@dataclass
class Cli:
    """`cielo …` as a user runs it: arguments in; exit code, stdout and stderr out."""

    home: Path
    transport: SyncASGITransport

    def __call__(self, *args: str, input: str | None = None) -> Result:
        env = {"CIELO_CONFIG_DIR": str(self.home), "CIELO_ENDPOINT": BASE_URL}
        with use_transport(self.transport):
            return CliRunner().invoke(cli, list(args), env=env, input=input, prog_name="cielo")

    def ok(self, *args: str) -> str:
        result = self(*args)
        assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "-o", "json"))

    def fails(self, *args: str, code: int = 1) -> str:
        """The command fails as az's do: exit code, nothing on stdout, and stderr's `ERROR: …` line."""
        result = self(*args)
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
        assert result.stdout == "", result.stdout
        return result.stderr


_signed_in: dict[int, Path] = {}
# `cielo ad` asks for the first, `--resource-type ms-graph` for the second (az appends `/.default` as given).
GRAPH_RESOURCES = ("https://graph.microsoft.com", "https://graph.microsoft.com/")


def signed_in_home(world: World, factory: pytest.TempPathFactory) -> Path:
    """A config dir where the administrator signed in with user name and password (once per session)."""
    if id(world) not in _signed_in:
        home = factory.mktemp("cli-signed-in")
        transport = SyncASGITransport(world.app)
        try:
            runner = Cli(home, transport)
            runner.ok("login", "-u", ADMIN, "-p", PASSWORD, "-o", "none")
            # Refresh tokens rotate, and a redeemed one presented again revokes its whole family: tests that each
            # start from a copy of this dir must find every token they need in the cache, never redeem it.
            for resource in GRAPH_RESOURCES:
                runner.ok("account", "get-access-token", "--resource", resource, "-o", "none")
        finally:
            transport.shutdown()
        _signed_in[id(world)] = home
    return _signed_in[id(world)]


@contextmanager
def cli_in(world: World, home: Path) -> Iterator[Cli]:
    transport = SyncASGITransport(world.app)
    try:
        yield Cli(home, transport)
    finally:
        transport.shutdown()


@contextmanager
def signed_in_cli(world: World, factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Cli]:
    home = tmp_path / "cielo-config"
    shutil.copytree(signed_in_home(world, factory), home)
    with cli_in(world, home) as runner:
        yield runner
