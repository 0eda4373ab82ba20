"""The in-process API tier (tests/api): the real app, built by `create_app`, with its real services on a temporary
SQLite data directory, a frozen clock and the test-only mock model, called through `httpx.ASGITransport`. One app
per session; tests use unique names, and a test that moves the clock puts it back (`moved_clock`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from inproc import (
    ACCOUNT,
    ADMIN,
    ARM_RESOURCE,
    CLI_CLIENT_ID,
    COG_RESOURCE,
    GRAPH_RESOURCE,
    MOCK_DEPLOYMENT,
    PASSWORD,
    RG,
    World,
)

import postgres.database as postgres
from cielo.api.app import build_services, create_app
from cielo.bootstrap import bootstrap
from cielo.control.resources import ResourceWriter
from cielo.core.arm_ids import ResourceId
from cielo.core.clock import FrozenClock
from cielo.settings import Settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/api/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.inproc)


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashes(cheap_password_hashes: object) -> None:
    """Passwords hashed in-process cost argon2's minimum here (tests/conftest.py says why)."""


@pytest.fixture(scope="session")
def database_url() -> Iterator[str | None]:
    """None: SQLite in the data directory. `CIELO_TEST_DATABASE=postgresql`: a new PostgreSQL database for the
    session, dropped at its end (tests/postgres/database.py; skipped, saying why, where none answers)."""
    if not postgres.API_PASS:
        yield None
        return
    with postgres.temporary_database("cielo_api") as url:
        yield url


@pytest.fixture(autouse=True)
def _database_url_env(database_url: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL, offline commands (`cielo admin reset-password --data-dir`) find the database as an operator's
    environment would tell them: CIELO_DATABASE_URL."""
    if database_url is not None:
        monkeypatch.setenv("CIELO_DATABASE_URL", database_url)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory, database_url: str | None, _cheap_password_hashes: None) -> World:
    data_dir = tmp_path_factory.mktemp("inproc") / "data"
    # The embedded models (SmolLM2, e5) are never loaded here: every data-plane call names the mock deployment.
    settings = Settings(data_dir=data_dir, enable_mock_model=True, signin_throttle_failures=10_000,
                        **postgres.settings_for(database_url))
    clock = FrozenClock()
    services = build_services(settings, clock)
    result = bootstrap(services, ADMIN, PASSWORD)
    assert result.subscription is not None
    account = ResourceId(result.subscription.id, RG, "Microsoft.CognitiveServices", ("accounts",), (ACCOUNT,))
    services.resources.put_deployment(account.child("deployments", MOCK_DEPLOYMENT), {
        "sku": {"name": "Standard", "capacity": 100},
        "properties": {"model": {"format": "Cielo", "name": "mock", "version": "1"}}}, ResourceWriter(ADMIN, "User"))
    api_key = services.resources.list_keys(services.resources.get_account(account))["key1"]
    admin = services.directory.repo.find_user(ADMIN)
    assert admin is not None
    app = create_app(settings, services)

    async def tokens() -> dict[str, str]:
        out = {}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://127.0.0.1:8443") as c:
            for resource in (ARM_RESOURCE, GRAPH_RESOURCE, COG_RESOURCE):
                answer = await c.post(f"/{result.tenant.id}/oauth2/token", data={
                    "client_id": CLI_CLIENT_ID, "grant_type": "password", "username": ADMIN,
                    "password": PASSWORD, "resource": resource})
                assert answer.status_code == 200, answer.text
                out[resource] = answer.json()["access_token"]
        return out

    admin_tokens = asyncio.run(tokens())
    return World(app, services, clock, data_dir, result.tenant.id, result.subscription.id, api_key,
                 admin.object_id, admin_tokens)


@pytest.fixture()
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with world.client() as c:
        yield c


@pytest.fixture()
def moved_clock(world: World) -> Iterator[FrozenClock]:
    """The session's frozen clock, put back where it was when the test ends."""
    start = world.clock.now()
    yield world.clock
    world.clock.advance(start - world.clock.now())
