"""The Identity blade of VMs, scale sets, web and function apps (and OpenAI accounts): system-assigned Status
On/Off with its object id, user-assigned identities added and removed; each a PATCH of the resource's `identity`
block, as `cielo vm identity assign|remove` sends it."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from cielo.web.portal.client import ApiError
from cielo.web.portal.ids import WITH_IDENTITY, Scope, url
from cielo.web.portal.resources import blade
from cielo.web.portal.web import Portal


def identity_body(current: dict[str, Any] | None, *, system: bool | None = None, add: str | None = None,
                  remove: str | None = None) -> dict[str, Any]:
    current = current or {}
    system_now = "systemassigned" in str(current.get("type", "")).lower()
    users: dict[str, Any] = {k: {} for k in (current.get("userAssignedIdentities") or {})}
    if add:
        users[add] = {}
    if remove:
        users = {k: v for k, v in users.items() if k.lower() != remove.lower()}
    on = system_now if system is None else system
    kind = ", ".join(k for k, flag in (("SystemAssigned", on), ("UserAssigned", bool(users))) if flag) or "None"
    body: dict[str, Any] = {"type": kind}
    if users:
        body["userAssignedIdentities"] = users
    return body


@blade("identity")
async def identity(portal: Portal, scope: Scope) -> Response:
    if scope.type not in WITH_IDENTITY:
        return portal.render("portal/problem.html", title="Not found", status=404,
                             message="This resource has no managed identity.")
    error: ApiError | None = None
    if portal.request.method == "POST":
        form = await portal.form()
        current = (await portal.api.arm("GET", scope.id, scope.api)).get("identity")
        action = form.get("action")
        try:
            if action == "system":
                body = identity_body(current, system=form.get("status") == "on")
                message = f"System-assigned identity turned {'on' if form.get('status') == 'on' else 'off'}."
            elif action == "add":
                body = identity_body(current, add=form.get("identity", ""))
                message = "User-assigned identity added."
            elif action == "remove":
                body = identity_body(current, remove=form.get("identity", ""))
                message = "User-assigned identity removed."
            else:
                raise ApiError(400, "InvalidAction", f"Unknown action '{action}'.")
            await portal.api.arm("PATCH", scope.id, scope.api, body={"identity": body})
            return portal.redirect(url(scope.id, "identity") + ("?tab=user" if action != "system" else ""), message)
        except ApiError as exc:
            error = exc
    found = await portal.api.arm("GET", scope.id, scope.api)
    ident = found.get("identity") or {}
    tab = portal.query("tab", "system")
    available: list[dict[str, Any]] = []
    if tab == "user":
        listed, _ = await portal.api.try_arm(
            "GET", f"/subscriptions/{scope.subscription}/providers/Microsoft.ManagedIdentity/userAssignedIdentities",
            "msi")
        attached = {k.lower() for k in (ident.get("userAssignedIdentities") or {})}
        available = [i for i in (listed or {}).get("value", []) if i["id"].lower() not in attached]
    return portal.render("portal/identity.html", title="Identity", subtitle=scope.name or "", scope=scope.id,
                         blade="identity", resource=found, ident=ident, tab=tab, available=available,
                         system_on="systemassigned" in str(ident.get("type", "")).lower(), error=error)
