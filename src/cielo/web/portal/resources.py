"""Home and resources: subscriptions, resource groups, resources; create and delete where ARM allows. Every resource
page is `/portal/resource{ARM id}/{blade}`, dispatched here to the blade's module."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import Response

from cielo.web.portal import ids
from cielo.web.portal.client import ApiError
from cielo.web.portal.ids import Scope
from cielo.web.portal.web import Portal, page

Blade = Callable[[Portal, Scope], Awaitable[Response]]
BLADES: dict[str, Blade] = {}

CREATABLE: dict[str, tuple[str, str, str, dict[str, Any]]] = {  # form value -> (label, provider path, api, body extras)
    "openai": ("Azure OpenAI", "Microsoft.CognitiveServices/accounts", "cognitiveservices",
               {"kind": "OpenAI", "sku": {"name": "S0"}}),
    "vm": ("Virtual machine", "Microsoft.Compute/virtualMachines", "compute", {}),
    "vmss": ("Virtual machine scale set", "Microsoft.Compute/virtualMachineScaleSets", "compute", {}),
    "webapp": ("Web App", "Microsoft.Web/sites", "web", {"kind": "app"}),
    "functionapp": ("Function App", "Microsoft.Web/sites", "web", {"kind": "functionapp,linux"}),
    "identity": ("User-assigned managed identity", "Microsoft.ManagedIdentity/userAssignedIdentities", "msi", {}),
}


def blade(name: str) -> Callable[[Blade], Blade]:
    def register(handler: Blade) -> Blade:
        BLADES[name] = handler
        return handler
    return register


async def subscriptions(portal: Portal) -> list[dict[str, Any]]:
    found = await portal.api.call("arm", "GET", "/subscriptions", params={"api-version": "2022-12-01"})
    return list(found.get("value", []))


@page("/")
async def home(portal: Portal) -> Response:
    subs = await subscriptions(portal)
    groups: list[dict[str, Any]] = []
    errors = []
    for sub in subs:
        found, err = await portal.api.try_arm("GET", f"/subscriptions/{sub['subscriptionId']}/resourcegroups")
        groups += [{**g, "subscriptionId": sub["subscriptionId"]} for g in (found or {}).get("value", [])]
        if err:
            errors.append(err)
    return portal.render("portal/home.html", title="Home", nav="home", subs=subs, groups=groups, errors=errors)


@page("/portal/resources")
async def all_resources(portal: Portal) -> Response:
    subs = await subscriptions(portal)
    rows: list[dict[str, Any]] = []
    errors = []
    for sub in subs:
        found, err = await portal.api.try_arm("GET", f"/subscriptions/{sub['subscriptionId']}/resources")
        rows += (found or {}).get("value", [])
        if err:
            errors.append(err)
    return portal.render("portal/resources.html", title="All resources", nav="resources", rows=rows, errors=errors)


@page("/portal/resource/{path:path}", ("GET", "POST"))
async def resource(portal: Portal) -> Response:
    arm_id, name = ids.split_blade(portal.request.path_params["path"])
    handler = BLADES.get(name)
    scope = ids.parse(arm_id)
    if handler is None or scope.subscription is None:
        return portal.render("portal/problem.html", title="Not found", status=404,
                             message=f"The portal has no page '{name}' for '{arm_id}'.")
    return await handler(portal, scope)


@blade("overview")
async def overview(portal: Portal, scope: Scope) -> Response:
    if scope.kind == "subscription":
        return await _subscription(portal, scope)
    if scope.kind == "group":
        return await _group(portal, scope)
    return await _resource(portal, scope)


async def _subscription(portal: Portal, scope: Scope) -> Response:
    error = None
    if portal.request.method == "POST":
        form = await portal.form()
        name, location = form.get("name", "").strip(), form.get("location", "").strip() or "eastus"
        try:
            await portal.api.arm("PUT", f"{scope.id}/resourcegroups/{name}", body={"location": location})
            return portal.redirect(ids.url(f"{scope.id}/resourceGroups/{name}"), f"Resource group '{name}' created.")
        except ApiError as exc:
            error = exc
    sub = await portal.api.call("arm", "GET", scope.id, params={"api-version": "2022-12-01"})
    groups, groups_error = await portal.api.try_arm("GET", f"{scope.id}/resourcegroups")
    return portal.render("portal/subscription.html", title=str(sub.get("displayName") or scope.subscription),
                         subtitle="Subscription", scope=scope.id, blade="overview", sub=sub,
                         groups=(groups or {}).get("value", []), groups_error=groups_error, error=error)


async def _group(portal: Portal, scope: Scope) -> Response:
    error = None
    if portal.request.method == "POST":
        form = await portal.form()
        try:
            if form.get("action") == "delete":
                if form.get("confirm", "") != scope.group:
                    raise ApiError(400, "ConfirmationRequired", "Type the resource group's name to delete it.")
                await portal.api.arm("DELETE", scope.id)
                return portal.redirect(ids.url(f"/subscriptions/{scope.subscription}"),
                                       f"Resource group '{scope.group}' deleted.")
            return await _create(portal, scope, form)
        except ApiError as exc:
            error = exc
    group = await portal.api.arm("GET", scope.id)
    rows, rows_error = await portal.api.try_arm("GET", f"{scope.id}/resources")
    return portal.render("portal/group.html", title=scope.group or "", subtitle="Resource group", scope=scope.id,
                         blade="overview", group=group, rows=(rows or {}).get("value", []), rows_error=rows_error,
                         creatable=CREATABLE, error=error)


async def _create(portal: Portal, scope: Scope, form: dict[str, str]) -> Response:
    kind, name = form.get("type", ""), form.get("name", "").strip()
    if kind not in CREATABLE:
        raise ApiError(400, "InvalidResourceType", f"The portal cannot create '{kind}'.")
    label, provider, api, extras = CREATABLE[kind]
    group = await portal.api.arm("GET", scope.id)
    body: dict[str, Any] = {"location": group.get("location") or "eastus", **extras}
    if kind == "openai":
        body["properties"] = {"customSubDomainName": name}
    arm_id = f"{scope.id}/providers/{provider}/{name}"
    await portal.api.arm("PUT", arm_id, api, body=body)
    return portal.redirect(ids.url(arm_id), f"{label} '{name}' created.")


async def _resource(portal: Portal, scope: Scope) -> Response:
    error = None
    if portal.request.method == "POST":
        form = await portal.form()
        try:
            if form.get("action") == "delete":
                await portal.api.arm("DELETE", scope.id, scope.api)
                parent = scope.id.rsplit("/", 2)[0] if scope.type == ids.DEPLOYMENT else \
                    f"/subscriptions/{scope.subscription}/resourceGroups/{scope.group}"
                return portal.redirect(ids.url(parent), f"'{scope.name}' deleted.")
        except ApiError as exc:
            error = exc
    found = await portal.api.arm("GET", scope.id, scope.api)
    return portal.render("portal/resource.html", title=scope.name or "", subtitle=ids.type_label(
        str(found.get("type", "")), found.get("kind")), scope=scope.id, blade="overview", resource=found,
        error=error)
