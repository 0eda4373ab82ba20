"""The tier's fixture itself: a healthy app, a frozen clock, and the administrator's tokens accepted."""

from __future__ import annotations

import httpx
from inproc import ARM_API, World


async def test_health_and_admin_token(client: httpx.AsyncClient, world: World) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    answer = await client.get(f"/subscriptions?api-version={ARM_API}", headers=world.arm)
    assert answer.status_code == 200, answer.text
    assert [s["subscriptionId"] for s in answer.json()["value"]] == [world.sub]
