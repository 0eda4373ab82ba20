"""The portal's resource blades in-process: a VM's Identity (system-assigned On/Off, user-assigned add/remove), an
OpenAI account's keys, deployments, quotas and the chat playground as the signed-in user (refused before a data role,
answering after)."""

from __future__ import annotations

import re

from inproc import MOCK_DEPLOYMENT, RG, World, assign, unique
from test_api_portal import csrf_of, portal_client, sign_in
from test_api_portal_iam import USER_PASSWORD, new_user


async def test_vm_identity_on_off_and_user_assigned(world: World) -> None:
    vm, uami = unique("portal-vm"), unique("portal-id")
    group = f"/portal/resource{world.rg_path(RG)}/overview"
    async with portal_client(world) as browser:
        page = await sign_in(browser, start=group)
        for kind, name in (("vm", vm), ("identity", uami)):
            made = await browser.post(group, data={"action": "create", "type": kind, "name": name,
                                                   "csrf_token": csrf_of(page)})
            assert made.status_code == 303, made.text
        vm_id = f"{world.rg_path(RG)}/providers/Microsoft.Compute/virtualMachines/{vm}"
        blade = f"/portal/resource{vm_id}/identity"
        off = await browser.get(blade)
        assert off.status_code == 200 and 'value="off" checked' in off.text
        on = await browser.post(blade, data={"action": "system", "status": "on", "csrf_token": csrf_of(off)})
        assert on.status_code == 303, on.text
        shown = await browser.get(on.headers["location"])
        principal = re.search(r'<code id="principal-id">([0-9a-f-]{36})</code>', shown.text)
        assert principal and "Azure role assignments" in shown.text
        user_tab = await browser.get(blade + "?tab=user")
        assert uami in user_tab.text
        uami_id = f"{world.rg_path(RG)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{uami}"
        added = await browser.post(blade, data={"action": "add", "identity": uami_id, "csrf_token": csrf_of(user_tab)})
        assert added.status_code == 303, added.text
        listed = await browser.get(added.headers["location"])
        assert "User-assigned identity added." in listed.text
        async with world.client() as client:
            arm = await client.get(vm_id + "?api-version=2023-09-01", headers=world.arm)
            ident = arm.json()["identity"]
            assert ident["type"] == "SystemAssigned, UserAssigned" and ident["principalId"] == principal.group(1)
        off_again = await browser.post(blade, data={"action": "system", "status": "off", "csrf_token": csrf_of(listed)})
        assert off_again.status_code == 303
        async with world.client() as client:
            arm = await client.get(vm_id + "?api-version=2023-09-01", headers=world.arm)
            assert arm.json()["identity"]["type"] == "UserAssigned"


async def test_keys_deployments_and_quota(world: World) -> None:
    account = f"/portal/resource{world.account_path()}"
    async with portal_client(world) as browser:
        keys = await sign_in(browser, start=account + "/keys")
        assert keys.status_code == 200 and "KEY 1" in keys.text and world.api_key in keys.text
        deps = await browser.get(account + "/deployments")
        assert MOCK_DEPLOYMENT in deps.text and 'value="Cielo|mock|1"' in deps.text
        name = unique("dep")
        made = await browser.post(account + "/deployments", data={
            "action": "create", "name": name, "model": "Cielo|mock|1", "sku": "Standard", "capacity": "2",
            "csrf_token": csrf_of(deps)})
        assert made.status_code == 303, made.text
        usage = await browser.get(account + "/usage")
        assert "Tokens Per Minute (thousands) - mock" in usage.text
        listed = await browser.get(account + "/deployments")
        gone = await browser.post(account + "/deployments", data={"action": "delete", "name": name,
                                                                  "csrf_token": csrf_of(listed)})
        assert gone.status_code == 303


async def test_playground_is_refused_until_the_user_holds_a_data_role(world: World) -> None:
    upn, user_id = await new_user(world)
    async with world.client() as client:
        await assign(client, world, "Reader", user_id, world.sub_path, "User")
    playground = f"/portal/resource{world.account_path()}/playground"
    async with portal_client(world) as browser:
        page = await sign_in(browser, upn, USER_PASSWORD, start=playground)
        assert page.status_code == 200 and MOCK_DEPLOYMENT in page.text
        ask = {"deployment": MOCK_DEPLOYMENT, "system": "Be brief.", "message": "Say hello", "max_tokens": "16",
               "stream": "1", "csrf_token": csrf_of(page)}
        refused = await browser.post(playground, data=ask)
        assert refused.status_code == 200 and refused.text.startswith("PermissionDenied (401)"), refused.text
        keys = await browser.get(f"/portal/resource{world.account_path()}/keys")
        assert "AuthorizationFailed" in keys.text and world.api_key not in keys.text  # a Reader lists no keys
        async with world.client() as client:
            await assign(client, world, "Cognitive Services User", user_id, world.account_path(), "User")
        answered = await browser.post(playground, data=ask)
        assert answered.status_code == 200 and answered.text and "PermissionDenied" not in answered.text
        no_js = await browser.post(playground, data={**ask, "stream": "0"})
        assert no_js.status_code == 200 and '<div id="answer" class="chat" aria-live="polite"></div>' not in no_js.text


async def test_activity_log_lists_the_portal_writes(world: World) -> None:
    group = f"/portal/resource{world.rg_path(RG)}/overview"
    name = unique("portal-act")
    async with portal_client(world) as browser:
        page = await sign_in(browser, start=group)
        made = await browser.post(group, data={"action": "create", "type": "identity", "name": name,
                                               "csrf_token": csrf_of(page)})
        assert made.status_code == 303, made.text
        log = await browser.get(f"/portal/resource{world.rg_path(RG)}/activity?span=30d")
        assert log.status_code == 200, log.text
        assert f"userAssignedIdentities/{name}</code>" in log.text and "admin@cielo.local" in log.text


async def test_entra_id_lists_users_groups_apps_and_service_principals(world: World) -> None:
    async with portal_client(world) as browser:
        users = await sign_in(browser, start="/portal/entra")
        assert users.status_code == 200 and "admin@cielo.local" in users.text
        for tab in ("groups", "apps", "sps"):
            page = await browser.get(f"/portal/entra?tab={tab}")
            assert page.status_code == 200, page.text
        sps = await browser.get("/portal/entra?tab=sps")
        assert "ManagedIdentity" in sps.text or "Application" in sps.text
