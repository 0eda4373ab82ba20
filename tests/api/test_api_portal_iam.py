"""The portal's IAM blade in-process: assignments here and inherited, add and remove as the signed-in user, Check
access explaining a decision, and a Reader who sees no Add and is refused by ARM when posting one anyway."""

from __future__ import annotations

import re

import httpx
from inproc import World, assign, unique
from test_api_portal import csrf_of, portal_client, sign_in

USER_PASSWORD = "Portal-Passw0rd!x"
COG_USER = "a97b65f3-24c7-4388-baec-2e87135dc908"
CHAT = "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action"


async def new_user(world: World) -> tuple[str, str]:
    async with world.client() as client:
        name = unique("portal-user")
        upn = f"{name}@cielo.local"
        made = await client.post("/v1.0/users", headers=world.graph, json={
            "accountEnabled": True, "displayName": name, "mailNickname": name, "userPrincipalName": upn,
            "passwordProfile": {"password": USER_PASSWORD, "forceChangePasswordNextSignIn": False}})
        assert made.status_code == 201, made.text
        return upn, str(made.json()["id"])


async def test_add_check_and_remove_a_role_assignment(world: World) -> None:
    upn, user_id = await new_user(world)
    iam = f"/portal/resource{world.account_path()}/iam"
    async with portal_client(world) as browser:
        await sign_in(browser)
        page = await browser.get(iam)
        assert page.status_code == 200, page.text
        assert "Owner" in page.text and "Subscription (inherited)" in page.text
        assert "+ Add role assignment" in page.text
        # Check access before: denied, and said why.
        before = await browser.post(iam, data={"action": "check", "principal": f"{user_id}|User",
                                               "check_action": CHAT, "data_action": "on",
                                               "csrf_token": csrf_of(page)})
        assert before.status_code == 200, before.text
        assert "Denied" in before.text
        chooser = await browser.get(iam + f"?tab=add&role={COG_USER}")
        assert "Cognitive Services User" in chooser.text and "Microsoft.CognitiveServices/*/read" in chooser.text
        assert upn in chooser.text
        added = await browser.post(iam, data={"action": "add", "role": COG_USER, "principal": f"{user_id}|User",
                                              "csrf_token": csrf_of(chooser)})
        assert added.status_code == 303, added.text
        listed = await browser.get(added.headers["location"])
        assert "Added role assignment: Cognitive Services User." in listed.text
        assert upn in listed.text
        after = await browser.post(iam, data={"action": "check", "principal": f"{user_id}|User",
                                              "check_action": CHAT, "data_action": "on",
                                              "csrf_token": csrf_of(listed)})
        assert "Allowed" in after.text and "Cognitive Services User" in after.text
        assert "This resource" in after.text
        # Remove it again: the row's form.
        assignment = re.search(r'name="id" value="([^"]+)"><button class="small" type="submit" '
                               r'data-confirm="Remove Cognitive Services User for ' + upn.split("@")[0], listed.text)
        assert assignment
        removed = await browser.post(iam, data={"action": "remove", "id": assignment.group(1),
                                                "csrf_token": csrf_of(listed)})
        assert removed.status_code == 303
        gone = await browser.get(iam)
        assert upn not in gone.text


async def test_a_reader_sees_no_add_and_arm_refuses_the_post(world: World) -> None:
    upn, user_id = await new_user(world)
    async with world.client() as client:
        await assign(client, world, "Reader", user_id, world.sub_path, "User")
    iam = f"/portal/resource{world.account_path()}/iam"
    async with portal_client(world) as browser:
        home = await sign_in(browser, upn, USER_PASSWORD)
        assert home.status_code == 200 and world.sub in home.text
        page = await browser.get(iam)
        assert page.status_code == 200, page.text
        assert "+ Add role assignment" not in page.text and "do not have permission" in page.text
        refused = await browser.post(iam, data={"action": "add", "role": COG_USER, "principal": f"{user_id}|User",
                                                "csrf_token": csrf_of(page)})
        assert refused.status_code == 403, refused.text
        assert "AuthorizationFailed" in refused.text and upn in refused.text


async def test_role_definitions_list_and_detail(world: World) -> None:
    async with portal_client(world) as browser:
        await sign_in(browser)
        page = await browser.get(f"/portal/resource{world.sub_path}/roles?role={COG_USER}")
        assert page.status_code == 200
        assert "Cognitive Services OpenAI User" in page.text
        assert "Microsoft.CognitiveServices/accounts/OpenAI/*" in page.text or "DataActions" in page.text


async def test_identity_pages_are_refused_without_a_session(world: World) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=world.app), base_url="https://127.0.0.1:8443") as c:
        answer = await c.post(f"/portal/resource{world.account_path()}/iam", data={"action": "add"})
        assert answer.status_code == 303 and answer.headers["location"].startswith("/portal/signin")
