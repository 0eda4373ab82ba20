"""Cognitive Services accounts with managed identities: the `identity` block of an account (SystemAssigned,
UserAssigned, both, None) comes back with its principal and tenant as a VM's does; the system-assigned principal is a
ManagedIdentity service principal in the directory that lives as long as the identity (kept by PUT and PATCH, deleted
with its role assignments when the identity, the account or its resource group goes), and bad identity bodies are
refused with ARM's errors, changing nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from inproc import World, arm_call, arm_error, assign, new_principal, sp_token, unique

COG_API = "2024-10-01"
UAMI = "Microsoft.ManagedIdentity/userAssignedIdentities"
UAMI_API = "2023-01-31"
RG_OF_WORLD = "cielo-rg"  # the bootstrap's group, which outlives every test


def _account(world: World, group: str, name: str) -> str:
    return f"{world.rg_path(group)}/providers/Microsoft.CognitiveServices/accounts/{name}"


def _body(**extra: Any) -> dict[str, Any]:
    return {"kind": "OpenAI", "sku": {"name": "S0"}, "location": "local", **extra}


async def _ok(client: httpx.AsyncClient, world: World, method: str, path: str, body: Any = None,
              status: int = 200, api_version: str = COG_API) -> dict[str, Any]:
    answer = await arm_call(client, world, method, path, body, api_version=api_version)
    assert answer.status_code == status, answer.text
    out: dict[str, Any] = answer.json()
    return out


def _principal(world: World, object_id: str) -> Any:
    return world.services.directory.repo.find_service_principal(object_id)


def _assignments_of(world: World, object_id: str) -> list[Any]:
    return [a for a in world.services.access.index.list_assignments() if a.principal_id == object_id]


@pytest.fixture()
async def group(client: httpx.AsyncClient, world: World) -> Any:
    name = unique("acct-mi")
    created = await arm_call(client, world, "PUT", world.rg_path(name), {"location": "local"})
    assert created.status_code == 201, created.text
    yield name
    answer = await arm_call(client, world, "DELETE", world.rg_path(name))
    assert answer.status_code in (200, 202, 404), answer.text


async def _uami(client: httpx.AsyncClient, world: World, group: str, name: str) -> dict[str, Any]:
    return await _ok(client, world, "PUT", f"{world.rg_path(group)}/providers/{UAMI}/{name}", {"location": "local"},
                     201, UAMI_API)


async def test_a_system_assigned_identity_gets_a_principal_that_put_and_patch_keep(
        client: httpx.AsyncClient, world: World, group: str) -> None:
    path = _account(world, group, unique("mi-acct"))
    created = await _ok(client, world, "PUT", path, _body(identity={"type": "SystemAssigned"}), 201)
    principal = created["identity"]["principalId"]
    assert created["identity"] == {"type": "SystemAssigned", "principalId": principal, "tenantId": world.tenant}
    sp = _principal(world, principal)
    assert sp is not None and sp.sp_type == "ManagedIdentity" and sp.tenant_id == world.tenant
    assert (await _ok(client, world, "GET", path))["identity"]["principalId"] == principal
    # A PATCH without identity, one repeating it, and a PUT again all keep the same principal.
    patched = await _ok(client, world, "PATCH", path, {"tags": {"team": "a"}})
    assert (patched["identity"]["principalId"], patched["tags"]) == (principal, {"team": "a"})
    again = await _ok(client, world, "PATCH", path, {"identity": {"type": "SystemAssigned"}})
    assert again["identity"]["principalId"] == principal
    put_again = await _ok(client, world, "PUT", path, _body(identity={"type": "SystemAssigned"}))
    assert put_again["identity"] == created["identity"] and _principal(world, principal) is not None


async def test_the_accounts_identity_holds_roles_and_gets_tokens_as_a_service_principal(
        client: httpx.AsyncClient, world: World, group: str) -> None:
    path = _account(world, group, unique("mi-role"))
    created = await _ok(client, world, "PUT", path, _body(identity={"type": "SystemAssigned"}), 201)
    principal = created["identity"]["principalId"]
    await assign(client, world, "Reader", principal, world.rg_path(group))
    assert len(_assignments_of(world, principal)) == 1
    # Removing the identity deletes the principal and its role assignments.
    none = await _ok(client, world, "PATCH", path, {"identity": {"type": "None"}})
    assert none["identity"] is None
    assert _principal(world, principal) is None and _assignments_of(world, principal) == []


async def test_every_identity_block_on_an_account(client: httpx.AsyncClient, world: World, group: str) -> None:
    uami = await _uami(client, world, group, "acct-uami")
    user_entry = {uami["id"]: {"principalId": uami["properties"]["principalId"],
                               "clientId": uami["properties"]["clientId"]}}
    path = _account(world, group, unique("mi-ids"))
    user_only = await _ok(client, world, "PUT", path, _body(identity={
        "type": "UserAssigned", "userAssignedIdentities": {uami["id"]: {}}}), 201)
    assert user_only["identity"] == {"type": "UserAssigned", "userAssignedIdentities": user_entry}
    both = await _ok(client, world, "PATCH", path, {"identity": {"type": "SystemAssigned, UserAssigned"}})
    system = both["identity"]["principalId"]
    assert both["identity"] == {"type": "SystemAssigned, UserAssigned", "principalId": system,
                                "tenantId": world.tenant, "userAssignedIdentities": user_entry}
    only_system = await _ok(client, world, "PATCH", path, {"identity": {
        "type": "SystemAssigned", "userAssignedIdentities": {uami["id"]: None}}})
    assert only_system["identity"] == {"type": "SystemAssigned", "principalId": system, "tenantId": world.tenant}
    # Both at once by PUT; deleting the user-assigned identity detaches it from the account.
    await _ok(client, world, "PUT", path, _body(identity={"type": "SystemAssigned, UserAssigned",
                                                          "userAssignedIdentities": {uami["id"]: {}}}))
    deleted = await arm_call(client, world, "DELETE", f"{world.rg_path(group)}/providers/{UAMI}/acct-uami",
                             api_version=UAMI_API)
    assert deleted.status_code == 200, deleted.text
    left = await _ok(client, world, "GET", path)
    assert left["identity"] == {"type": "SystemAssigned", "principalId": system, "tenantId": world.tenant}


async def test_deleting_the_account_deletes_its_principal(client: httpx.AsyncClient, world: World,
                                                          group: str) -> None:
    path = _account(world, group, unique("mi-del"))
    created = await _ok(client, world, "PUT", path, _body(identity={"type": "SystemAssigned"}), 201)
    principal = created["identity"]["principalId"]
    await assign(client, world, "Reader", principal, world.rg_path(group))
    assert (await arm_call(client, world, "DELETE", path, api_version=COG_API)).status_code == 200
    assert _principal(world, principal) is None and _assignments_of(world, principal) == []
    assert (await arm_call(client, world, "DELETE", path, api_version=COG_API)).status_code == 204


async def test_deleting_the_resource_group_deletes_its_accounts_principals(client: httpx.AsyncClient,
                                                                           world: World) -> None:
    name = unique("acct-mi-rg")
    created = await arm_call(client, world, "PUT", world.rg_path(name), {"location": "local"})
    assert created.status_code == 201, created.text
    account = await _ok(client, world, "PUT", _account(world, name, unique("mi-rg")),
                        _body(identity={"type": "SystemAssigned"}), 201)
    principal = account["identity"]["principalId"]
    await assign(client, world, "Reader", principal, world.rg_path(RG_OF_WORLD))
    assert (await arm_call(client, world, "DELETE", world.rg_path(name))).status_code in (200, 202)
    assert _principal(world, principal) is None and _assignments_of(world, principal) == []


@pytest.mark.parametrize(("identity", "code", "named"), [
    ("SystemAssigned", "InvalidIdentity", "object"),
    ({}, "InvalidIdentityType", "identity.type"),
    ({"type": 1}, "InvalidIdentityType", "string"),
    ({"type": "Magic"}, "InvalidIdentityType", "Magic"),
    ({"type": "UserAssigned"}, "InvalidIdentity", "at least one"),
    ({"type": "UserAssigned", "userAssignedIdentities": []}, "InvalidIdentity", "object"),
    ({"type": "UserAssigned", "userAssignedIdentities": {"not-an-id": {}}}, "BadRequest",  # as for a VM
     "not-an-id"),
])
async def test_a_bad_identity_block_is_refused_and_changes_nothing(client: httpx.AsyncClient, world: World,
                                                                   group: str, identity: Any, code: str,
                                                                   named: str) -> None:
    path = _account(world, group, unique("mi-bad"))
    before = len(world.services.directory.repo.list_service_principals(world.tenant))
    answer = await arm_call(client, world, "PUT", path, _body(identity=identity), api_version=COG_API)
    assert named in arm_error(answer, 400, code)["message"]
    arm_error(await arm_call(client, world, "GET", path, api_version=COG_API), 404, "ResourceNotFound")
    assert len(world.services.directory.repo.list_service_principals(world.tenant)) == before


async def test_a_missing_user_assigned_identity_or_a_refused_account_leaves_no_principal(
        client: httpx.AsyncClient, world: World, group: str) -> None:
    path = _account(world, group, unique("mi-missing"))
    missing = f"{world.rg_path(group)}/providers/{UAMI}/nobody"
    before = len(world.services.directory.repo.list_service_principals(world.tenant))
    answer = await arm_call(client, world, "PUT", path, _body(identity={
        "type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {missing: {}}}), api_version=COG_API)
    assert "nobody" in arm_error(answer, 400, "FailedIdentityOperation")["message"]
    # An account refused for another reason (its SKU) gets no principal either.
    answer = await arm_call(client, world, "PUT", path, _body(sku={"name": "P9"}, identity={"type": "SystemAssigned"}),
                            api_version=COG_API)
    arm_error(answer, 400, "InvalidSkuName")
    assert len(world.services.directory.repo.list_service_principals(world.tenant)) == before


async def test_attaching_a_user_assigned_identity_needs_its_assign_action(client: httpx.AsyncClient, world: World,
                                                                          group: str) -> None:
    uami = await _uami(client, world, group, "acct-uami-guarded")
    other = unique("acct-mi-other")
    assert (await arm_call(client, world, "PUT", world.rg_path(other), {"location": "local"})).status_code == 201
    try:
        writer = await new_principal(client, world)
        # Contributor on the account's group only: may write accounts there, may not assign an identity held in
        # another group.
        await assign(client, world, "Contributor", writer.sp_id, world.rg_path(other))
        token = await sp_token(client, world, writer, "https://management.azure.com/")
        headers = {"Authorization": f"Bearer {token}"}
        path = _account(world, other, unique("mi-guard"))
        answer = await arm_call(client, world, "PUT", path, _body(identity={
            "type": "UserAssigned", "userAssignedIdentities": {uami["id"]: {}}}), headers=headers, api_version=COG_API)
        assert "assign/action" in arm_error(answer, 403, "AuthorizationFailed")["message"]
        # The same writer may give the account a system-assigned identity.
        answer = await arm_call(client, world, "PUT", path, _body(identity={"type": "SystemAssigned"}),
                                headers=headers, api_version=COG_API)
        assert answer.status_code == 201, answer.text
    finally:
        await arm_call(client, world, "DELETE", world.rg_path(other))
