"""Microsoft Entra ID, read through Graph as the signed-in user: users, groups, app registrations (with their
credentials' metadata) and enterprise applications (service principals, managed identities among them)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from cielo.web.portal.client import ApiError
from cielo.web.portal.web import Portal, page

TABS = {"users": "/users", "groups": "/groups", "apps": "/applications", "sps": "/servicePrincipals"}
LABELS = {"users": "Users", "groups": "Groups", "apps": "App registrations", "sps": "Enterprise applications"}


@page("/portal/entra")
async def entra(portal: Portal) -> Response:
    tab = portal.query("tab", "users")
    tab = tab if tab in TABS else "users"
    rows: list[dict[str, Any]] = []
    error: ApiError | None = None
    try:
        rows = list((await portal.api.graph("GET", TABS[tab])).get("value", []))
    except ApiError as exc:
        error = exc
    rows.sort(key=lambda r: str(r.get("displayName") or "").lower())
    return portal.render("portal/entra.html", title="Microsoft Entra ID", subtitle=LABELS[tab], nav="entra",
                         tab=tab, tabs=LABELS, rows=rows, error=error,
                         crumbs=[("Home", "/"), ("Microsoft Entra ID", "/portal/entra")])
