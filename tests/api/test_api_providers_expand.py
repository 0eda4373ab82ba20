"""`$expand` and `$top` on the providers reads (Microsoft.Resources Providers_List / Providers_Get, in the
azure-mgmt-resource SDK's 2021-01-01 and 2024-11-01 operations): honoured, or refused by name, never ignored."""

from __future__ import annotations

import httpx
import pytest
from inproc import World, arm_call, arm_error

PATHS = ["/providers", "{sub}/providers"]


@pytest.mark.parametrize("path", PATHS)
async def test_top_limits_the_number_of_providers(client: httpx.AsyncClient, world: World, path: str) -> None:
    path = path.format(sub=world.sub_path)
    every = (await arm_call(client, world, "GET", path)).json()["value"]
    assert len(every) > 2
    two = await arm_call(client, world, "GET", f"{path}?$top=2")
    assert two.status_code == 200, two.text
    assert two.json()["value"] == every[:2]
    many = await arm_call(client, world, "GET", f"{path}?$top=1000")
    assert many.json()["value"] == every
    for bad in ("0", "-1", "x", ""):
        error = arm_error(await arm_call(client, world, "GET", f"{path}?$top={bad}"), 400,
                          "InvalidQueryParameterValue")
        assert "$top" in error["message"]


@pytest.mark.parametrize("path", [*PATHS, "/providers/Microsoft.CognitiveServices",
                                  "{sub}/providers/Microsoft.CognitiveServices"])
async def test_expand_aliases_adds_empty_aliases_and_other_values_are_refused(client: httpx.AsyncClient,
                                                                              world: World, path: str) -> None:
    path = path.format(sub=world.sub_path)
    plain = (await arm_call(client, world, "GET", path)).json()
    expanded = await arm_call(client, world, "GET", f"{path}?$expand=resourceTypes/aliases")
    assert expanded.status_code == 200, expanded.text
    body = expanded.json()
    providers = body.get("value", [body])
    plain_providers = plain.get("value", [plain])
    assert providers and all(t["aliases"] == [] for p in providers for t in p["resourceTypes"])
    # Nothing else changes.
    for p in providers:
        for t in p["resourceTypes"]:
            del t["aliases"]
    assert providers == plain_providers
    assert all("aliases" not in t for p in plain_providers for t in p["resourceTypes"])
    # Case-insensitive, as ARM's query values.
    assert (await arm_call(client, world, "GET", f"{path}?$expand=RESOURCETYPES/ALIASES")).status_code == 200
    for bad in ("metadata", "resourceTypes/zoneMappings", "resourceTypes/aliases,metadata"):
        error = arm_error(await arm_call(client, world, "GET", f"{path}?$expand={bad}"), 400,
                          "InvalidQueryParameterValue")
        assert "$expand" in error["message"] and "resourceTypes/aliases" in error["message"]


async def test_top_on_one_provider_is_refused(client: httpx.AsyncClient, world: World) -> None:
    error = arm_error(await arm_call(client, world, "GET", f"{world.sub_path}/providers/Microsoft.Resources?$top=1"),
                      400, "InvalidQueryParameterValue")
    assert "$top" in error["message"]


async def test_top_and_expand_together(client: httpx.AsyncClient, world: World) -> None:
    answer = await arm_call(client, world, "GET", f"{world.sub_path}/providers?$top=1&$expand=resourceTypes/aliases")
    assert answer.status_code == 200, answer.text
    [one] = answer.json()["value"]
    assert all(t["aliases"] == [] for t in one["resourceTypes"])
