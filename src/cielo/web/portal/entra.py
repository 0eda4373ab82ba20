"""Microsoft Entra ID through Graph as the signed-in user: users (create with an initial password, delete), groups
(create, delete, members added and removed), app registrations (create, delete; client secrets shown once,
certificates uploaded, federated credentials added and removed) and enterprise applications (service principals
created for an app, deleted). Every write is Graph's own call; a refusal shows Graph's error with its status.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from typing import Any

from starlette.responses import Response

from cielo.web.portal.client import ApiError
from cielo.web.portal.iam import principals
from cielo.web.portal.web import Portal, page

TABS = {"users": "/users", "groups": "/groups", "apps": "/applications", "sps": "/servicePrincipals"}
LABELS = {"users": "Users", "groups": "Groups", "apps": "App registrations", "sps": "Enterprise applications"}
GRAPH_OBJECTS = "https://graph.microsoft.com/v1.0/directoryObjects/"
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
SECRET_MONTHS = {"3": 3, "6": 6, "12": 12, "24": 24}
_ID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")
CRUMBS = [("Home", "/"), ("Microsoft Entra ID", "/portal/entra")]


def object_id(value: str) -> str:
    """An object id from a form or a path: a GUID, so it cannot reach another Graph path."""
    if not _ID.fullmatch(value or ""):
        raise ApiError(400, "Request_BadRequest", f"Invalid object identifier '{value[:60]}'.")
    return value.lower()


def _need(form: dict[str, str], *names: str) -> list[str]:
    values = [form.get(name, "").strip() for name in names]
    for name, value in zip(names, values, strict=True):
        if not value:
            raise ApiError(400, "Request_BadRequest", f"'{name}' is required.")
    return values


def _nickname(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "", text.split("@", 1)[0]) or "group"


# ----------------------------------------------------------------------------- the lists
async def _list_action(portal: Portal, tab: str, form: dict[str, str]) -> Response:
    action, graph = form.get("action", ""), portal.api.graph
    if tab == "users" and action == "create":
        name, upn, password = _need(form, "displayName", "userPrincipalName", "password")
        await graph("POST", "/users", {"accountEnabled": True, "displayName": name, "mailNickname": _nickname(upn),
                                       "userPrincipalName": upn, "passwordProfile": {
                                           "password": password, "forceChangePasswordNextSignIn": False}})
        return portal.redirect("/portal/entra?tab=users", f"User {upn} created.")
    if tab == "groups" and action == "create":
        name, = _need(form, "displayName")
        await graph("POST", "/groups", {"displayName": name, "mailNickname": _nickname(name), "mailEnabled": False,
                                        "securityEnabled": True, "description": form.get("description") or None})
        return portal.redirect("/portal/entra?tab=groups", f"Group {name} created.")
    if tab == "apps" and action == "create":
        name, = _need(form, "displayName")
        made = await graph("POST", "/applications", {"displayName": name})
        return portal.redirect(f"/portal/entra/apps/{made['id']}", f"App registration {name} created.")
    if tab == "sps" and action == "create":
        app_id, = _need(form, "appId")
        made = await graph("POST", "/servicePrincipals", {"appId": app_id})
        return portal.redirect("/portal/entra?tab=sps", f"Service principal {made.get('displayName', '')} created.")
    if action == "delete":
        target = object_id(form.get("id", ""))
        await graph("DELETE", f"{TABS[tab]}/{target}")
        return portal.redirect(f"/portal/entra?tab={tab}", f"{LABELS[tab].rstrip('s')} {form.get('name', target)} "
                                                           "deleted.")
    raise ApiError(400, "Request_BadRequest", f"Unknown action '{action[:40]}' here.")


@page("/portal/entra", methods=("GET", "POST"))
async def entra(portal: Portal) -> Response:
    tab = portal.query("tab", "users")
    tab = tab if tab in TABS else "users"
    rows: list[dict[str, Any]] = []
    error: ApiError | None = None
    if portal.request.method == "POST":
        form = await portal.form()
        try:
            return await _list_action(portal, tab, form)
        except ApiError as exc:
            error = exc
    list_error: ApiError | None = None
    try:
        rows = list((await portal.api.graph("GET", TABS[tab])).get("value", []))
    except ApiError as exc:
        list_error = exc
    rows.sort(key=lambda r: str(r.get("displayName") or "").lower())
    return portal.render("portal/entra.html", title="Microsoft Entra ID", subtitle=LABELS[tab], nav="entra",
                         tab=tab, tabs=LABELS, rows=rows, error=error or list_error, crumbs=CRUMBS)


# ----------------------------------------------------------------------------- a group and its members
@page("/portal/entra/groups/{group_id}", methods=("GET", "POST"))
async def group(portal: Portal) -> Response:
    group_id = object_id(portal.request.path_params["group_id"])
    error: ApiError | None = None
    if portal.request.method == "POST":
        form = await portal.form()
        try:
            if form.get("action") == "add":
                member = object_id(form.get("principal", "").partition("|")[0])
                await portal.api.graph("POST", f"/groups/{group_id}/members/$ref",
                                       {"@odata.id": GRAPH_OBJECTS + member})
                return portal.redirect(f"/portal/entra/groups/{group_id}", "Member added.")
            if form.get("action") == "remove":
                member = object_id(form.get("id", ""))
                await portal.api.graph("DELETE", f"/groups/{group_id}/members/{member}/$ref")
                return portal.redirect(f"/portal/entra/groups/{group_id}", "Member removed.")
            raise ApiError(400, "Request_BadRequest", "Unknown action here.")
        except ApiError as exc:
            error = exc
    found = await portal.api.graph("GET", f"/groups/{group_id}")
    members = list((await portal.api.graph("GET", f"/groups/{group_id}/members")).get("value", []))
    members.sort(key=lambda m: str(m.get("displayName") or "").lower())
    people = await principals(portal.api)
    return portal.render("portal/entra_group.html", title=str(found.get("displayName") or group_id),
                         subtitle="Group", nav="entra", group=found, members=members, people=people, error=error,
                         crumbs=[*CRUMBS, ("Groups", "/portal/entra?tab=groups")])


# ----------------------------------------------------------------------------- an app registration
def certificate_key(text: str) -> str:
    """The `key` of a keyCredential from what was pasted or read from a file: a PEM certificate, or base64 of a
    DER one (a .cer file, which the page's script reads as base64). Graph checks it is a certificate."""
    text = text.strip()
    pem = _PEM.search(text)
    if pem:
        return base64.b64encode(pem.group(0).encode()).decode()
    compact = re.sub(r"\s+", "", text)
    try:
        base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "Request_BadRequest", "Paste a PEM certificate (-----BEGIN CERTIFICATE-----) or "
                                                  "choose a .pem, .crt or .cer file.") from None
    return compact


async def _app_action(portal: Portal, app_id: str, app: dict[str, Any], form: dict[str, str]
                      ) -> tuple[Response | None, dict[str, Any] | None]:
    """A redirect after a change, or (for a new secret) the secret to show on this answer only."""
    action, graph, here = form.get("action", ""), portal.api.graph, f"/portal/entra/apps/{app_id}"
    if action == "add_secret":
        months = SECRET_MONTHS.get(form.get("months", "6"), 6)
        end = dt.datetime.now(dt.UTC) + dt.timedelta(days=30 * months)
        made = await graph("POST", f"/applications/{app_id}/addPassword", {"passwordCredential": {
            "displayName": form.get("description", "").strip() or None,
            "endDateTime": end.strftime("%Y-%m-%dT%H:%M:%SZ")}})
        return None, made
    if action == "remove_secret":
        key_id = object_id(form.get("keyId", ""))
        await graph("POST", f"/applications/{app_id}/removePassword", {"keyId": key_id})
        return portal.redirect(here, "Client secret deleted."), None
    if action == "upload_cert":
        key = certificate_key(form.get("certificate", ""))
        credential: dict[str, Any] = {"type": "AsymmetricX509Cert", "usage": "Verify", "key": key}
        if form.get("description", "").strip():
            credential["displayName"] = form["description"].strip()
        await graph("PATCH", f"/applications/{app_id}", {"keyCredentials": [credential]})
        return portal.redirect(here, "Certificate uploaded."), None
    if action == "add_fic":
        name, issuer, subject = _need(form, "name", "issuer", "subject")
        audiences = [a.strip() for a in (form.get("audiences") or EXCHANGE_AUDIENCE).split(",") if a.strip()]
        await graph("POST", f"/applications/{app_id}/federatedIdentityCredentials", {
            "name": name, "issuer": issuer, "subject": subject, "audiences": audiences,
            "description": form.get("description", "").strip() or None})
        return portal.redirect(here, f"Federated credential {name} added."), None
    if action == "remove_fic":
        fic = object_id(form.get("id", ""))
        await graph("DELETE", f"/applications/{app_id}/federatedIdentityCredentials/{fic}")
        return portal.redirect(here, "Federated credential deleted."), None
    if action == "create_sp":
        await graph("POST", "/servicePrincipals", {"appId": app["appId"]})
        return portal.redirect(here, "Service principal created."), None
    raise ApiError(400, "Request_BadRequest", f"Unknown action '{action[:40]}' here.")


@page("/portal/entra/apps/{app_id}", methods=("GET", "POST"))
async def application(portal: Portal) -> Response:
    app_id = object_id(portal.request.path_params["app_id"])
    app = await portal.api.graph("GET", f"/applications/{app_id}")
    error: ApiError | None = None
    new_secret: dict[str, Any] | None = None
    if portal.request.method == "POST":
        form = await portal.form()
        try:
            done, new_secret = await _app_action(portal, app_id, app, form)
            if done is not None:
                return done
            app = await portal.api.graph("GET", f"/applications/{app_id}")
        except ApiError as exc:
            error = exc
    fics = list((await portal.api.graph("GET", f"/applications/{app_id}/federatedIdentityCredentials"))
                .get("value", []))
    sps = await portal.api.graph("GET", "/servicePrincipals", params={"$filter": f"appId eq '{app['appId']}'"})
    return portal.render("portal/entra_app.html", title=str(app.get("displayName") or app_id),
                         subtitle="App registration", nav="entra", app=app, fics=fics,
                         sp=next(iter(sps.get("value", [])), None), new_secret=new_secret, error=error,
                         exchange=EXCHANGE_AUDIENCE, months=list(SECRET_MONTHS),
                         crumbs=[*CRUMBS, ("App registrations", "/portal/entra?tab=apps")])
