"""ARM routes for managed identities: user-assigned identities, and VMs, scale sets and web apps (function apps
are web apps of `kind` functionapp, as in Azure) with their `identity` blocks, plus Cielo's host-credential actions
for the host agent.

Their rows of the route table come from `routes()`: the same operations for each type, each authorized with
the type's own `read|write|delete` action at the resource. Each type is listed by resource group and by
subscription (`az functionapp list` without `-g` lists the subscription's sites and keeps those whose kind says
functionapp).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

from starlette.responses import JSONResponse, Response

from cielo.api.arm_context import ArmCall, read_json_body
from cielo.api.arm_routes import Route, Unserved
from cielo.control.identities import SITE_TYPE, UAMI_TYPE, VM_TYPE, VMSS_TYPE, compute_json
from cielo.control.site_config import SiteConfigService, split_site_body
from cielo.control.storage import PLAN_TYPE
from cielo.core.arm_ids import ResourceId
from cielo.errors import InvalidResourceType

# (namespace, type) -> full type
TYPES = {
    ("microsoft.compute", "virtualmachines"): VM_TYPE,
    ("microsoft.compute", "virtualmachinescalesets"): VMSS_TYPE,
    ("microsoft.web", "sites"): SITE_TYPE,
    ("microsoft.managedidentity", "userassignedidentities"): UAMI_TYPE,
}
NAMESPACES = {ns for ns, _ in TYPES}
_NAMESPACE_CHOICES = "|".join(sorted({t.split("/")[0] for t in TYPES.values()}))

Prepare = tuple[Callable[[ArmCall], None], ...]


def _type_of(call: ArmCall) -> str:
    return TYPES[(call.params["namespace"].lower(), call.params["resourceType"].lower())]


def in_group(call: ArmCall) -> None:
    """A compute resource's group must exist: ARM says so before it looks at the method or the caller's rights."""
    call.group = call.manager.group(call.sub.id, call.params["resourceGroupName"])


def resource_id(call: ArmCall) -> ResourceId:
    assert call.group is not None
    return ResourceId(call.sub.id, call.group.name, call.params["namespace"], (call.params["resourceType"],),
                      (call.params["resourceName"],))


def resource_scope(call: ArmCall) -> str:
    return resource_id(call).id


def _site_config(call: ArmCall) -> SiteConfigService:
    return SiteConfigService(call.request.app.state.resource_service)


def _json(call: ArmCall, resource: Any) -> dict[str, Any]:
    """A resource's ARM representation; a site's with its App Service properties (control/site_config.py)."""
    out = compute_json(resource)
    return _site_config(call).render(out, resource) if resource.type == SITE_TYPE else out


async def list_typed(call: ArmCall) -> Response:
    type_ = _type_of(call)
    assert call.group is not None
    items = [r for r in call.manager.list_typed(call.sub.id, call.params["resourceGroupName"], type_)
             if call.ctx.allowed(f"{type_}/read", r.id)]
    if not items:
        call.ctx.require(f"{type_}/read", call.group.id)
    return JSONResponse({"value": [_json(call, r) for r in items]})


async def list_typed_in_subscription(call: ArmCall) -> Response:
    """Every group's resources of the type the caller may read; with none, the subscription's read right decides
    between an empty list and a 403, as for one group."""
    type_ = _type_of(call)
    items = [r for g in call.manager.list_groups(call.sub.id)
             for r in call.manager.list_typed(call.sub.id, g.name, type_) if call.ctx.allowed(f"{type_}/read", r.id)]
    if not items:
        call.ctx.require(f"{type_}/read", f"/subscriptions/{call.sub.id}")
    return JSONResponse({"value": [_json(call, r) for r in items]})


async def get_typed(call: ArmCall) -> Response:
    return JSONResponse(_json(call, call.manager.typed(resource_id(call), _type_of(call))))


async def put_typed(call: ArmCall) -> Response:
    """A site's App Service properties (`siteConfig`, `serverFarmId`, …) are checked first (a plan it names must
    exist and be readable by the caller), the site stored, then they are kept under it."""
    body = await read_json_body(call.request)
    type_, plan = _type_of(call), None
    changes: dict[str, Any] = {}
    if type_ == SITE_TYPE:
        body, changes = split_site_body(body)
        plan = _site_config(call).check(resource_id(call), changes)
        if plan is not None:
            call.ctx.require(f"{PLAN_TYPE}/read", plan.id)
    resource, created = call.manager.put_typed(resource_id(call), type_, body, call.ctx.caller, call.guard,
                                               patch=call.request.method == "PATCH")
    if type_ == SITE_TYPE:
        _site_config(call).apply(resource, changes, plan)
        created = False  # Microsoft.Web answers a site's create 200 (its spec: 200, 202; az takes no 201)
    return JSONResponse(_json(call, resource), status_code=201 if created else 200)


async def list_app_settings(call: ArmCall) -> Response:
    """`POST …/sites/{name}/config/appsettings/list` (az's `functionapp config appsettings list`)."""
    return JSONResponse(_site_config(call).app_settings(call.manager.typed(resource_id(call), SITE_TYPE)))


async def delete_typed(call: ArmCall) -> Response:
    return Response(status_code=200 if call.manager.delete_typed(resource_id(call), _type_of(call)) else 204)


async def issue_host_credential(call: ArmCall) -> Response:
    resource, credential = call.manager.issue_host_credential(resource_id(call), _type_of(call))
    return JSONResponse({"credential": credential, "resourceId": resource.id, "tenantId": call.ctx.principal.tenant_id,
                         "endpoint": call.request.app.state.settings.base_url})


async def revoke_host_credentials(call: ArmCall) -> Response:
    return JSONResponse({"revoked": call.manager.revoke_host_credentials(resource_id(call), _type_of(call))})


async def web_config(call: ArmCall) -> Response:
    """`GET …/sites/{name}/config/web` (az's `functionapp show` and `webapp show`)."""
    return JSONResponse(_site_config(call).web_config(call.manager.typed(resource_id(call), SITE_TYPE)))


async def publishing_profile(call: ArmCall) -> Response:
    """`POST …/sites/{name}/publishxml` (az's `functionapp show` and `webapp show` read the FTP address from it).
    Cielo serves no code deployment (FTP, Web Deploy, zip): one profile that says so, with no credential in it,
    so az shows the site without an `ftpPublishingUrl`."""
    site = call.manager.typed(resource_id(call), SITE_TYPE)
    name = escape(site.name, {'"': "&quot;"})
    body = (f'<publishData><publishProfile profileName="{name} - none" publishMethod="None" publishUrl="" '
            f'msdeploySite="{name}" userName="" userPWD="" destinationAppUrl="" webSystem="WebSites" />'
            '</publishData>')
    return Response(body, media_type="application/xml")


async def slot_config_names(call: ArmCall) -> Response:
    """`GET …/config/slotConfigNames` (az's `appsettings list` reads it after the settings): no slot settings, as a
    site here has no deployment slots."""
    site = call.manager.typed(resource_id(call), SITE_TYPE)
    return JSONResponse({"id": f"{site.id}/config/slotConfigNames", "name": "slotConfigNames",
                         "type": "Microsoft.Web/sites/config", "location": site.location,
                         "properties": {"connectionStringNames": None, "appSettingNames": None,
                                        "azureStorageConfigNames": None}})


def routes(rg: str, in_subscription: Prepare) -> list[Route[ArmCall, Response]]:
    prepare = (*in_subscription, in_group)
    sub = rg.split("/resourceGroups/")[0]
    assert sub != rg, rg
    out: list[Route[ArmCall, Response]] = []
    for type_ in TYPES.values():
        namespace, name = type_.split("/")
        base = f"{rg}/providers/{{namespace:{namespace}}}/{{resourceType:{name}}}"
        item = f"{base}/{{resourceName}}"
        out += [
            Route("GET", f"{sub}/providers/{{namespace:{namespace}}}/{{resourceType:{name}}}",
                  list_typed_in_subscription, prepare=in_subscription),
            Route("GET", base, list_typed, prepare=prepare),
            Route("GET", item, get_typed, f"{type_}/read", resource_scope, prepare=prepare),
            Route("PUT", item, put_typed, f"{type_}/write", resource_scope, prepare=prepare),
            Route("PATCH", item, put_typed, f"{type_}/write", resource_scope, prepare=prepare),
            Route("DELETE", item, delete_typed, f"{type_}/delete", resource_scope, prepare=prepare),
        ]
        if type_ != UAMI_TYPE:
            # Cielo's own actions: enroll (or cut off) the host agent of a VM, scale set or web app.
            out += [
                Route("POST", f"{item}/issueHostCredential", issue_host_credential, f"{type_}/write", resource_scope,
                      prepare=prepare, other_methods_unserved=True),
                Route("POST", f"{item}/revokeHostCredentials", revoke_host_credentials, f"{type_}/write",
                      resource_scope, prepare=prepare, other_methods_unserved=True),
            ]
    site = f"{rg}/providers/{{namespace:Microsoft.Web}}/{{resourceType:sites}}/{{resourceName}}"
    out.append(Route("POST", f"{site}/config/appsettings/list", list_app_settings,
                     f"{SITE_TYPE}/config/list/action", resource_scope, prepare=prepare, other_methods_unserved=True))
    out.append(Route("GET", f"{site}/config/slotConfigNames", slot_config_names, f"{SITE_TYPE}/config/read",
                     resource_scope, prepare=prepare))
    out.append(Route("GET", f"{site}/config/web", web_config, f"{SITE_TYPE}/config/read", resource_scope,
                     prepare=prepare))
    out.append(Route("POST", f"{site}/publishxml", publishing_profile, f"{SITE_TYPE}/publishxml/action",
                     resource_scope, prepare=prepare, other_methods_unserved=True))
    return out


def unserved(rg: str, in_subscription: Prepare) -> list[Unserved[ArmCall]]:
    def under(call: ArmCall) -> Exception:
        return InvalidResourceType(f"The path '{call.params['rest']}' under '{call.params['resourceName']}' is not "
                                   "served by this Cielo.")

    def unknown_type(call: ArmCall) -> Exception:
        return InvalidResourceType(f"The resource type '{call.params['namespace']}/{call.params['resourceType']}' "
                                   "is not served by this Cielo.")

    known = [Unserved(f"{rg}/providers/{{namespace:{t.split('/')[0]}}}/{{resourceType:{t.split('/')[1]}}}/"
                      "{resourceName}/{rest*}", under, prepare=(*in_subscription, in_group)) for t in TYPES.values()]
    return [*known, Unserved(f"{rg}/providers/{{namespace:{_NAMESPACE_CHOICES}}}/{{resourceType}}/{{rest*}}",
                             unknown_type, prepare=in_subscription)]
