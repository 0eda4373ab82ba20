"""The ARM reads deployment tools and SDKs look up (locations, providers, resources, an account's skus, usages and
models, a location's usages, the subscription's user-assigned identities), the headers of every ARM answer, `tags`
as `{}`, and api-versions served per resource type (docs/resource-manager.md)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from inproc import RG, World, arm_call, arm_error, bearer, new_principal, sp_token, unique

from cielo.api.arm_versions import COGNITIVE_SERVICES, RESOURCES

CHAT_MODEL = {"format": "HuggingFace", "name": "SmolLM2-135M-Instruct", "version": "1"}
USAGE = "OpenAI.Standard.SmolLM2-135M-Instruct"


def _location() -> str:
    """A location no other test uses, so the quota counted there is this test's alone."""
    return "loc" + uuid.uuid4().hex[:10]


async def _group(client: httpx.AsyncClient, world: World, location: str = "local") -> str:
    name = unique("rg")
    answer = await arm_call(client, world, "PUT", world.rg_path(name), {"location": location})
    assert answer.status_code == 201, answer.text
    return name


async def _account(client: httpx.AsyncClient, world: World, rg: str, location: str = "local") -> str:
    name = unique("acct")
    answer = await arm_call(client, world, "PUT", world.account_path(name, rg),
                            {"location": location, "kind": "OpenAI", "sku": {"name": "S0"}})
    assert answer.status_code == 201, answer.text
    return name


async def _deploy(client: httpx.AsyncClient, world: World, account: str, rg: str, capacity: int) -> httpx.Response:
    return await arm_call(client, world, "PUT", f"{world.account_path(account, rg)}/deployments/{unique('d')}",
                          {"sku": {"name": "Standard", "capacity": capacity}, "properties": {"model": CHAT_MODEL}})


async def _stranger(client: httpx.AsyncClient, world: World) -> dict[str, str]:
    """A service principal with no role anywhere."""
    principal = await new_principal(client, world)
    return bearer(await sp_token(client, world, principal, "https://management.azure.com/"))


def _is_guid(value: str | None) -> bool:
    try:
        return value is not None and str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


# ----------------------------------------------------------------------------- headers
async def test_every_answer_carries_request_and_correlation_ids(client: httpx.AsyncClient, world: World) -> None:
    ok = await arm_call(client, world, "GET", world.sub_path)
    again = await arm_call(client, world, "GET", world.sub_path)
    missing = await arm_call(client, world, "GET", world.rg_path(unique("none")))
    arm_error(missing, 404, "ResourceGroupNotFound")
    for answer in (ok, again, missing):
        assert _is_guid(answer.headers.get("x-ms-request-id")), answer.headers
        assert _is_guid(answer.headers.get("x-ms-correlation-request-id")), answer.headers
    assert ok.headers["x-ms-request-id"] != again.headers["x-ms-request-id"]
    assert ok.headers["x-ms-correlation-request-id"] != again.headers["x-ms-correlation-request-id"]
    mine = str(uuid.uuid4())
    for path in (world.sub_path, world.rg_path(unique("none"))):
        echoed = await arm_call(client, world, "GET", path, headers={**world.arm, "x-ms-correlation-request-id": mine})
        assert echoed.headers["x-ms-correlation-request-id"] == mine
        assert echoed.headers["x-ms-request-id"] != mine
    # A denial keeps the request id the server logged its reason under; errors before the route have both too.
    denied = await arm_call(client, world, "GET", world.rg_path(RG), headers=await _stranger(client, world))
    arm_error(denied, 403, "AuthorizationFailed")
    unauthenticated = await arm_call(client, world, "GET", world.sub_path, headers={})
    no_version = await arm_call(client, world, "GET", world.sub_path, api_version=None)
    for answer in (denied, unauthenticated, no_version):
        assert _is_guid(answer.headers.get("x-ms-request-id")), answer.headers
        assert _is_guid(answer.headers.get("x-ms-correlation-request-id")), answer.headers


async def test_etag_header_is_the_body_etag_of_a_single_resource(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    name = unique("acct")
    put = await arm_call(client, world, "PUT", world.account_path(name, rg),
                         {"location": "local", "kind": "OpenAI", "sku": {"name": "S0"}})
    assert put.status_code == 201 and put.headers["etag"] == put.json()["etag"]
    got = await arm_call(client, world, "GET", world.account_path(name, rg))
    assert got.headers["etag"] == got.json()["etag"] == put.json()["etag"]
    deployment = await _deploy(client, world, name, rg, 1)
    assert deployment.status_code == 201 and deployment.headers["etag"] == deployment.json()["etag"]
    listed = await arm_call(client, world, "GET", f"{world.rg_path(rg)}/providers/Microsoft.CognitiveServices/accounts")
    assert listed.status_code == 200 and "etag" not in listed.headers  # a list has no ETag
    group = await arm_call(client, world, "GET", world.rg_path(rg))
    assert "etag" not in group.json() and "etag" not in group.headers  # ARM's group carries none


async def test_tags_are_an_empty_object_when_none_were_given(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    account = await _account(client, world, rg)
    deployment = await _deploy(client, world, account, rg, 1)
    assert (await arm_call(client, world, "GET", world.rg_path(rg))).json()["tags"] == {}
    assert (await arm_call(client, world, "GET", world.account_path(account, rg))).json()["tags"] == {}
    assert deployment.json()["tags"] == {}
    listed = (await arm_call(client, world, "GET", f"{world.rg_path(rg)}/resources")).json()["value"]
    assert [r["tags"] for r in listed] == [{}]


# ----------------------------------------------------------------------------- locations and providers
async def test_locations_list_cielos_location_and_those_in_use(client: httpx.AsyncClient, world: World) -> None:
    where = _location()
    await _group(client, world, where)
    answer = await arm_call(client, world, "GET", f"{world.sub_path}/locations")
    assert answer.status_code == 200, answer.text
    by_name = {loc["name"]: loc for loc in answer.json()["value"]}
    local = by_name["local"]
    assert local["id"] == f"{world.sub_path}/locations/local" and local["type"] == "Region"
    assert local["displayName"] == "Local" and local["metadata"]["regionType"] == "Physical"
    assert {"regionCategory", "geographyGroup", "longitude", "latitude", "pairedRegion"} <= set(local["metadata"])
    assert where in by_name
    arm_error(await arm_call(client, world, "GET", f"{world.sub_path}/locations",
                             headers=await _stranger(client, world)), 403, "AuthorizationFailed")


async def test_providers_list_what_the_route_table_serves(client: httpx.AsyncClient, world: World) -> None:
    answer = await arm_call(client, world, "GET", f"{world.sub_path}/providers")
    assert answer.status_code == 200, answer.text
    providers = {p["namespace"]: p for p in answer.json()["value"]}
    cognitive = providers["Microsoft.CognitiveServices"]
    assert cognitive["id"] == f"{world.sub_path}/providers/Microsoft.CognitiveServices"
    assert cognitive["registrationState"] == "Registered"
    types = {t["resourceType"]: t for t in cognitive["resourceTypes"]}
    assert set(types) == {"accounts", "accounts/deployments"}
    assert "Local" in types["accounts"]["locations"]
    assert types["accounts"]["apiVersions"][0] >= "2025" and "2024-10-01" in types["accounts"]["apiVersions"]
    assert set(types["accounts"]["apiVersions"]) == COGNITIVE_SERVICES
    compute = {t["resourceType"] for t in providers["Microsoft.Compute"]["resourceTypes"]}
    assert compute == {"virtualMachines", "virtualMachineScaleSets"}
    identity_types = {t["resourceType"] for t in providers["Microsoft.ManagedIdentity"]["resourceTypes"]}
    assert identity_types == {"userAssignedIdentities"}
    assert {"sites", "serverfarms"} == {t["resourceType"] for t in providers["Microsoft.Web"]["resourceTypes"]}
    assert {"storageAccounts"} == {t["resourceType"] for t in providers["Microsoft.Storage"]["resourceTypes"]}
    resources = {t["resourceType"] for t in providers["Microsoft.Resources"]["resourceTypes"]}
    assert {"resourceGroups", "deployments", "locations", "providers", "resources"} <= resources
    assert {"roleAssignments", "roleDefinitions"} <= {
        t["resourceType"] for t in providers["Microsoft.Authorization"]["resourceTypes"]}
    one = await arm_call(client, world, "GET", f"{world.sub_path}/providers/microsoft.cognitiveservices")
    assert one.status_code == 200 and one.json() == cognitive
    arm_error(await arm_call(client, world, "GET", f"{world.sub_path}/providers/Microsoft.Nope"), 404,
              "InvalidResourceNamespace")
    tenant = await arm_call(client, world, "GET", "/providers/Microsoft.CognitiveServices")
    assert tenant.status_code == 200 and tenant.json()["id"] == "/providers/Microsoft.CognitiveServices"
    assert "registrationState" not in tenant.json()
    assert "Microsoft.CognitiveServices" in {p["namespace"] for p in
                                             (await arm_call(client, world, "GET", "/providers")).json()["value"]}


# ----------------------------------------------------------------------------- resources
async def test_resource_listings_show_top_level_resources_only(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    account = await _account(client, world, rg)
    assert (await _deploy(client, world, account, rg, 1)).status_code == 201
    uami = unique("uami")
    made = await arm_call(client, world, "PUT",
                          f"{world.rg_path(rg)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{uami}", {})
    assert made.status_code == 201, made.text
    in_group = (await arm_call(client, world, "GET", f"{world.rg_path(rg)}/resources")).json()["value"]
    assert sorted(r["type"] for r in in_group) == ["Microsoft.CognitiveServices/accounts",
                                                   "Microsoft.ManagedIdentity/userAssignedIdentities"]
    listed = next(r for r in in_group if r["name"] == account)
    assert listed == {"id": world.account_path(account, rg), "name": account,
                      "type": "Microsoft.CognitiveServices/accounts", "location": "local", "tags": {},
                      "kind": "OpenAI", "sku": {"name": "S0"}}
    everywhere = await arm_call(client, world, "GET", f"{world.sub_path}/resources")
    assert everywhere.status_code == 200, everywhere.text
    ids = {r["id"] for r in everywhere.json()["value"]}
    assert world.account_path(account, rg) in ids and not any("/deployments/" in i for i in ids)
    filtered = await arm_call(client, world, "GET", f"{world.sub_path}/resources?$filter=resourceType eq "
                              "'Microsoft.ManagedIdentity/userAssignedIdentities'")
    assert filtered.status_code == 200 and filtered.json()["value"]
    assert {r["type"] for r in filtered.json()["value"]} == {"Microsoft.ManagedIdentity/userAssignedIdentities"}
    in_group_filtered = await arm_call(client, world, "GET", f"{world.rg_path(rg)}/resources?$filter=resourceType "
                                       "eq 'microsoft.cognitiveservices/accounts'")
    assert [r["name"] for r in in_group_filtered.json()["value"]] == [account]
    # What `az resource list -g RG --resource-type T` sends.
    by_group = await arm_call(client, world, "GET", f"{world.sub_path}/resources?$filter=resourceGroup eq "
                              f"'{rg.upper()}' and resourceType eq 'Microsoft.CognitiveServices/accounts'")
    assert [r["name"] for r in by_group.json()["value"]] == [account]
    for refused in ("tagName eq 'x'", "name ne 'x'", "substringof('a', name)", "name eq 'x' or name eq 'y'"):
        arm_error(await arm_call(client, world, "GET", f"{world.sub_path}/resources?$filter={refused}"), 400,
                  "InvalidFilterInQueryString")
    arm_error(await arm_call(client, world, "GET", f"{world.sub_path}/resources",
                             headers=await _stranger(client, world)), 403, "AuthorizationFailed")
    identities = await arm_call(client, world, "GET",
                                f"{world.sub_path}/providers/Microsoft.ManagedIdentity/userAssignedIdentities",
                                api_version="2023-01-31")
    assert identities.status_code == 200, identities.text
    assert uami in {i["name"] for i in identities.json()["value"]}
    assert all(i["properties"]["principalId"] for i in identities.json()["value"])


# ----------------------------------------------------------------------------- what an account offers
async def test_account_skus_models_and_usages(client: httpx.AsyncClient, world: World) -> None:
    where = _location()
    rg = await _group(client, world, where)
    account = await _account(client, world, rg, where)
    path = world.account_path(account, rg)
    skus = await arm_call(client, world, "GET", f"{path}/skus", api_version="2024-10-01")
    assert skus.status_code == 200, skus.text
    assert {"resourceType": "Microsoft.CognitiveServices/accounts", "sku": {"name": "S0", "tier": "Standard"}} \
        in skus.json()["value"]
    models = (await arm_call(client, world, "GET", f"{path}/models", api_version="2024-10-01")).json()["value"]
    smol = next(m for m in models if m["name"] == "SmolLM2-135M-Instruct")
    assert (smol["format"], smol["version"], smol["maxCapacity"]) == ("HuggingFace", "1", 1000)
    assert smol["capabilities"]["chatCompletion"] == "true"
    assert {s["name"] for s in smol["skus"]} >= {"Standard", "GlobalStandard"}
    assert all(s["usageName"] == USAGE and s["capacity"]["maximum"] == 1000 for s in smol["skus"])

    async def used() -> dict[str, Any]:
        answer = await arm_call(client, world, "GET", f"{path}/usages", api_version="2024-10-01")
        assert answer.status_code == 200, answer.text
        usage: dict[str, Any] = next(u for u in answer.json()["value"] if u["name"]["value"] == USAGE)
        return usage

    before = await used()
    assert before["currentValue"] == 0 and before["limit"] == 1000 and before["unit"] == "Count"
    assert before["name"]["localizedValue"] == "Tokens Per Minute (thousands) - SmolLM2-135M-Instruct"
    assert (await _deploy(client, world, account, rg, 7)).status_code == 201
    assert (await used())["currentValue"] == 7
    # The location's usages count every account of the subscription there.
    other = await _account(client, world, rg, where)
    assert (await _deploy(client, world, other, rg, 3)).status_code == 201
    at_location = await arm_call(client, world, "GET", f"{world.sub_path}/providers/Microsoft.CognitiveServices/"
                                 f"locations/{where}/usages", api_version="2024-10-01")
    assert at_location.status_code == 200, at_location.text
    assert next(u for u in at_location.json()["value"] if u["name"]["value"] == USAGE)["currentValue"] == 10
    # What usages show is what put_deployment enforces: 990 left.
    arm_error(await _deploy(client, world, account, rg, 991), 400, "InsufficientQuota")
    assert (await _deploy(client, world, account, rg, 990)).status_code == 201
    assert (await used())["currentValue"] == 1000
    arm_error(await arm_call(client, world, "GET", f"{world.account_path(unique('none'), rg)}/skus"), 404,
              "ResourceNotFound")
    arm_error(await arm_call(client, world, "GET", f"{path}/models", headers=await _stranger(client, world)), 403,
              "AuthorizationFailed")


# ----------------------------------------------------------------------------- api-versions
async def test_api_versions_are_validated_per_resource_type(client: httpx.AsyncClient, world: World) -> None:
    rg = await _group(client, world)
    account = world.account_path(await _account(client, world, rg), rg)
    # 2026-05-15-preview: what azure-cli 2.91 sends (azure-mgmt-cognitiveservices 15.0.0b4's default); 2023-05-01:
    # what cielo sends.
    for version in ("2026-05-15-preview", "2023-05-01", "2024-10-01", "2025-06-01", "2022-12-01"):
        assert (await arm_call(client, world, "GET", account, api_version=version)).status_code == 200, version
    for version in ("2024-11-01", "2022-12-01", "2022-09-01"):  # az 2.91, the tests, cielo
        for read in ("locations", "providers", "resources"):
            answer = await arm_call(client, world, "GET", f"{world.sub_path}/{read}", api_version=version)
            assert answer.status_code == 200, (read, version, answer.text)
    refused = arm_error(await arm_call(client, world, "GET", account, api_version="2099-01-01"), 400,
                        "InvalidApiVersionParameter")
    assert refused["message"].startswith("The api-version '2099-01-01' is invalid. The supported versions are "
                                         "'2026-05-15-preview,2026-03-15-preview,")
    assert "2024-10-01" in refused["message"] and refused["message"].endswith("'.")
    locations_refused = arm_error(await arm_call(client, world, "GET", f"{world.sub_path}/locations",
                                                 api_version="2024-10-21"), 400, "InvalidApiVersionParameter")
    assert "2024-11-01" in locations_refused["message"]
    arm_error(await arm_call(client, world, "GET", f"{account}/usages", api_version="2024-11-01"), 400,
              "InvalidApiVersionParameter")
    # A refused version changes nothing.
    refused_put = world.account_path(unique("v"), rg)
    arm_error(await arm_call(client, world, "PUT", refused_put, {"location": "local", "kind": "OpenAI",
                                                                 "sku": {"name": "S0"}}, api_version="2099-01-01"),
              400, "InvalidApiVersionParameter")
    arm_error(await arm_call(client, world, "GET", refused_put), 404, "ResourceNotFound")
    # Tenants, subscriptions and resource groups serve Microsoft.Resources' versions: what az 2.91 sends (2024-11-01
    # for groups, 2022-12-01 for subscriptions and tenants), cielo's 2022-09-01, 2021-04-01; Microsoft.Authorization's
    # 2022-04-01 is not one of them, as in Azure.
    paths = ("/tenants", "/subscriptions", world.sub_path, f"{world.sub_path}/resourcegroups", world.rg_path(rg),
             f"{world.rg_path(rg)}/resources")
    for path in paths:
        for version in ("2024-11-01", "2022-12-01", "2022-09-01", "2021-04-01"):
            assert (await arm_call(client, world, "GET", path, api_version=version)).status_code == 200, path
        for version in ("2022-04-01", "2099-01-01"):
            wrong = arm_error(await arm_call(client, world, "GET", path, api_version=version), 400,
                              "InvalidApiVersionParameter")
            assert wrong["message"].startswith(f"The api-version '{version}' is invalid. The supported versions are "
                                               "'2025-04-01,2025-03-01,"), wrong
    new_group = world.rg_path(unique("rgv"))
    arm_error(await arm_call(client, world, "PUT", new_group, {"location": "local"}, api_version="2022-04-01"), 400,
              "InvalidApiVersionParameter")
    arm_error(await arm_call(client, world, "GET", new_group), 404, "ResourceGroupNotFound")
    # Routes that declare no versions keep accepting any date-shaped one (compute, identities).
    uami = f"{world.rg_path(rg)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{unique('u')}"
    assert (await arm_call(client, world, "PUT", uami, {}, api_version="2099-01-01")).status_code == 201
    assert {"2024-11-01", "2022-12-01", "2022-09-01"} <= RESOURCES
