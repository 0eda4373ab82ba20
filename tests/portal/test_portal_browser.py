"""The issue's scenario in Chromium on a real `cielo up`: sign in through the portal; create a resource group, an
OpenAI account (with a mock deployment) and a VM; turn on the VM's system-assigned identity; the playground refused
for the administrator (Owner grants no data actions), Check access saying why; add "Cognitive Services User" in the
account's IAM; the playground answering and Check access naming the deciding assignment; the activity log listing
the writes; a Reader sees no Add. Each blade is photographed into .portal-screenshots/."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from support.server import ADMIN_PASSWORD, ADMIN_USER, CieloServer

READER_PASSWORD = "Reader-Passw0rd!x"
CHAT = "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action"


def _reader(server: CieloServer) -> str:
    upn = f"reader-{uuid.uuid4().hex[:6]}@cielo.local"
    user = server.graph("POST", "/users", {
        "accountEnabled": True, "displayName": "Portal Reader", "mailNickname": upn.split("@")[0],
        "userPrincipalName": upn, "passwordProfile": {"password": READER_PASSWORD,
                                                      "forceChangePasswordNextSignIn": False}})
    token = server.admin_token("https://management.azure.com")
    with server.http() as client:
        answer = client.put(
            f"/subscriptions/{server.subscription_id}/providers/Microsoft.Authorization/roleAssignments/"
            f"{uuid.uuid4()}", params={"api-version": "2022-04-01"}, headers={"Authorization": f"Bearer {token}"},
            json={"properties": {"principalId": user["id"], "principalType": "User", "roleDefinitionId":
                                 f"/subscriptions/{server.subscription_id}/providers/Microsoft.Authorization/"
                                 "roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"}})
        answer.raise_for_status()
    return upn


def _sign_in(page: Any, server: CieloServer, username: str, password: str) -> None:
    page.goto(server.base_url + "/")
    page.get_by_label("Email or user name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.base_url + "/")
    assert "code=" not in page.url


def _shot(page: Any, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def _ask(page: Any) -> str:
    page.get_by_label("User message").fill("Say hello")
    page.get_by_role("button", name="Send").click()
    page.wait_for_selector("#answer[data-state=done]")
    return str(page.locator("#answer").inner_text())


def test_the_how_to_in_the_portal(portal_server: CieloServer, browser: Any, shots: Path) -> None:
    server = portal_server
    reader = _reader(server)
    admin_id = server.graph("GET", "/me")["id"]
    rg, account, vm = "portal-rg", "portal-openai", "portal-vm"
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1360, "height": 860})
    page = context.new_page()
    _sign_in(page, server, ADMIN_USER, ADMIN_PASSWORD)
    assert page.get_by_role("heading", name="Subscriptions").is_visible()
    _shot(page, shots, "01-home")

    # A resource group, an OpenAI account with a mock deployment, a VM.
    page.goto(f"{server.base_url}/portal/resource/subscriptions/{server.subscription_id}/overview")
    page.get_by_label("Name", exact=True).fill(rg)
    page.get_by_role("button", name="Create").click()
    page.get_by_text(f"Resource group '{rg}' created.").wait_for()
    page.get_by_label("Type", exact=True).select_option("openai")
    page.get_by_label("Name", exact=True).fill(account)
    page.get_by_role("button", name="Create").click()
    page.get_by_text(f"Azure OpenAI '{account}' created.").wait_for()
    _shot(page, shots, "02-openai-account")
    account_url = page.url.rsplit("/", 1)[0]
    page.goto(account_url + "/deployments")
    page.get_by_label("Deployment name").fill("mock")
    page.get_by_role("button", name="Deploy").click()
    page.get_by_text("Deployment 'mock' created.").wait_for()
    _shot(page, shots, "03-deployments")
    page.goto(account_url + "/keys")
    page.get_by_role("button", name="Copy").first.wait_for()
    _shot(page, shots, "04-keys")

    page.goto(f"{server.base_url}/portal/resource/subscriptions/{server.subscription_id}/resourceGroups/{rg}/overview")
    page.get_by_label("Type", exact=True).select_option("vm")
    page.get_by_label("Name", exact=True).fill(vm)
    page.get_by_role("button", name="Create").click()
    page.get_by_text(f"Virtual machine '{vm}' created.").wait_for()
    page.get_by_role("link", name="Identity").click()
    page.get_by_label("On").check()
    page.get_by_role("button", name="Save").click()
    page.get_by_text("System-assigned identity turned on.").wait_for()
    assert len(page.locator("#principal-id").inner_text()) == 36
    assert page.get_by_role("link", name="Azure role assignments").is_visible()
    _shot(page, shots, "05-vm-identity")

    # The administrator holds Owner: no data actions. The playground is refused, and Check access says why.
    page.goto(account_url + "/playground")
    assert _ask(page).startswith("PermissionDenied (401)")
    _shot(page, shots, "06-playground-refused")
    page.goto(account_url + "/iam?tab=check")
    page.locator("#principal").select_option(f"{admin_id}|User")
    page.get_by_label("Action", exact=True).fill(CHAT)
    page.get_by_role("button", name="Check").click()
    assert page.locator("#decision .tag").inner_text() == "Denied"
    _shot(page, shots, "07-check-access-denied")

    # Access control (IAM): add Cognitive Services User for the administrator, on the account.
    page.goto(account_url + "/iam")
    page.get_by_role("link", name="+ Add role assignment").click()
    page.get_by_placeholder("Filter roles by name or description").fill("Cognitive Services User")
    page.get_by_role("link", name="Cognitive Services User", exact=True).click()
    page.locator("#principal").select_option(f"{admin_id}|User")
    _shot(page, shots, "08-add-role-assignment")
    page.get_by_role("button", name="Review + assign").click()
    page.get_by_text("Added role assignment: Cognitive Services User.").wait_for()
    _shot(page, shots, "09-iam")

    page.goto(account_url + "/playground")
    answer = _ask(page)
    assert answer and "PermissionDenied" not in answer
    _shot(page, shots, "10-playground-answering")
    page.goto(account_url + "/iam?tab=check")
    page.locator("#principal").select_option(f"{admin_id}|User")
    page.get_by_label("Action", exact=True).fill(CHAT)
    page.get_by_role("button", name="Check").click()
    assert page.locator("#decision .tag").inner_text() == "Allowed"
    assert "Cognitive Services User" in page.locator("#decision").inner_text()
    _shot(page, shots, "11-check-access-allowed")

    page.goto(f"{server.base_url}/portal/resource/subscriptions/{server.subscription_id}/resourceGroups/{rg}/activity")
    events = page.locator("#events").inner_text()
    assert "Microsoft.CognitiveServices/accounts/write" in events
    assert "Microsoft.Compute/virtualMachines/write" in events
    _shot(page, shots, "12-activity-log")
    context.close()

    # A Reader sees the assignments but no Add.
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1360, "height": 860})
    page = context.new_page()
    _sign_in(page, server, reader, READER_PASSWORD)
    page.goto(account_url + "/iam")
    assert page.get_by_text("Cognitive Services User").first.is_visible()
    assert page.get_by_role("link", name="+ Add role assignment").count() == 0
    _shot(page, shots, "13-reader-iam")
    context.close()
