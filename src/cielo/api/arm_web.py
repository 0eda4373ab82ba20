"""ARM routes for what `az functionapp create` reads and writes besides the site: where Functions may run
(`Microsoft.Web/geoRegions`), which language stacks they offer (`/providers/Microsoft.Web/functionAppStacks`),
App Service plans (`Microsoft.Web/serverfarms`) and storage accounts (`Microsoft.Storage/storageAccounts`, with
`listKeys` and `regenerateKey`). Shapes from Azure/azure-rest-api-specs (specification/web/…/Microsoft.Web/stable/
2024-04-01: GeoRegion, FunctionAppStack, AppServicePlan; specification/storage/…/stable/2023-05-01: StorageAccount,
StorageAccountListKeysResult). Plans and storage accounts are records (control/storage.py); each route names its
real RBAC action, checked at the resource (a list shows what the caller may read).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from starlette.responses import JSONResponse, Response

from cielo.api.arm_context import ArmCall, read_json_body
from cielo.api.arm_routes import Route, Unserved
from cielo.api.arm_versions import STORAGE, WEB
from cielo.api.arm_web_stacks import function_app_stacks
from cielo.bootstrap import DEFAULT_LOCATION
from cielo.control.manager import writer_of
from cielo.control.storage import PLAN_TYPE, STORAGE_TYPE, StorageService, storage_json
from cielo.core.arm_ids import ResourceId
from cielo.errors import InvalidRequestContent, InvalidResourceType

Prepare = tuple[Callable[[ArmCall], None], ...]

STORAGE_ACCOUNTS = "/providers/{namespace:Microsoft.Storage}/{resourceType:storageAccounts}"
SERVERFARMS = "/providers/{namespace:Microsoft.Web}/{resourceType:serverfarms}"
_TYPES = {"storageaccounts": STORAGE_TYPE, "serverfarms": PLAN_TYPE}


def _service(call: ArmCall) -> StorageService:
    state = call.request.app.state
    return StorageService(state.resource_service, state.services.clock)


def _type(call: ArmCall) -> str:
    return _TYPES[call.params["resourceType"].lower()]


def _rid(call: ArmCall) -> ResourceId:
    return ResourceId(call.sub.id, call.params["resourceGroupName"], call.params["namespace"],
                      (call.params["resourceType"],), (call.params["resourceName"],))


def _scope(call: ArmCall) -> str:
    return _rid(call).id


def _json(call: ArmCall, resource: Any) -> dict[str, Any]:
    return _service(call).plan_json(resource) if resource.type == PLAN_TYPE else storage_json(resource)


# ----------------------------------------------------------------------------- geoRegions, functionAppStacks
async def list_geo_regions(call: ArmCall) -> Response:
    """Where Functions may run (`az functionapp list-consumption-locations`, and `functionapp create
    --consumption-plan-location`, which must name one): Cielo's locations. Any `sku` filter gets the same list."""
    names = [DEFAULT_LOCATION, *sorted({g.location for g in call.manager.list_groups(call.sub.id)
                                        if g.location and g.location != DEFAULT_LOCATION})]
    return JSONResponse({"value": [
        {"id": f"/subscriptions/{call.sub.id}/providers/Microsoft.Web/geoRegions/{name}", "name": name,
         "type": "Microsoft.Web/geoRegions",
         "properties": {"name": name, "displayName": name, "description": None, "orgDomain": "PUBLIC"}}
        for name in names], "nextLink": None})


async def list_function_app_stacks(call: ArmCall) -> Response:
    """The stacks a function app may name (any signed-in caller, as in Azure); `stackOsType` filters them."""
    os_type = call.request.query_params.get("stackOsType")
    if os_type is not None and os_type.lower() not in ("windows", "linux", "all"):
        raise InvalidRequestContent(f"The stackOsType '{os_type}' is not valid; use Windows, Linux or All.")
    return JSONResponse({"value": function_app_stacks(os_type), "nextLink": None})


# ----------------------------------------------------------------------------- plans and storage accounts
async def list_in_subscription(call: ArmCall) -> Response:
    return _list(call, None)


async def list_in_group(call: ArmCall) -> Response:
    return _list(call, call.params["resourceGroupName"])


def _list(call: ArmCall, group: str | None) -> Response:
    type_ = _type(call)
    scope = f"/subscriptions/{call.sub.id}" + (f"/resourceGroups/{group}" if group else "")
    if group is not None:
        call.manager.group(call.sub.id, group)
    items = [r for r in _service(call).list_of(call.sub.id, group, type_) if call.ctx.allowed(f"{type_}/read", r.id)]
    if not items:
        call.ctx.require(f"{type_}/read", scope)
    return JSONResponse({"value": [_json(call, r) for r in items]})


async def get_one(call: ArmCall) -> Response:
    return JSONResponse(_json(call, _service(call).get(_rid(call), _type(call))))


async def put_one(call: ArmCall) -> Response:
    body = await read_json_body(call.request)
    svc, patch = _service(call), call.request.method == "PATCH"
    if patch:
        svc.get(_rid(call), _type(call))
    writer = writer_of(call.ctx.caller)
    if _type(call) == STORAGE_TYPE:
        resource, _ = svc.put_storage(_rid(call), body, writer, patch=patch)
    else:
        resource, _ = svc.put_plan(_rid(call), body, writer, patch=patch)
    # A storage account's and a plan's create answer 200 (their specs have 200 and 202; az's pollers take no 201).
    return JSONResponse(_json(call, resource))


async def delete_one(call: ArmCall) -> Response:
    return Response(status_code=200 if _service(call).delete(_rid(call), _type(call)) else 204)


async def list_storage_keys(call: ArmCall) -> Response:
    svc = _service(call)
    return JSONResponse(svc.storage_keys(svc.get(_rid(call), STORAGE_TYPE)))


async def regenerate_storage_key(call: ArmCall) -> Response:
    svc = _service(call)
    account = svc.get(_rid(call), STORAGE_TYPE)  # a missing account is named before the body is read
    body = await read_json_body(call.request, 16 * 1024)
    return JSONResponse(svc.regenerate_storage_key(account, body.get("keyName")))


async def check_storage_name(call: ArmCall) -> Response:
    body = await read_json_body(call.request, 16 * 1024)
    if body.get("type", STORAGE_TYPE) != STORAGE_TYPE:
        raise InvalidRequestContent(f"The property 'type' must be '{STORAGE_TYPE}'.")
    return JSONResponse(_service(call).check_storage_name(body.get("name")))


def _subscription(call: ArmCall) -> str:
    return f"/subscriptions/{call.sub.id}"


def routes(sub: str, rg: str, in_subscription: Prepare) -> list[Route[ArmCall, Response]]:
    out: list[Route[ArmCall, Response]] = [
        Route("GET", f"{sub}/providers/Microsoft.Web/geoRegions", list_geo_regions, prepare=in_subscription),
        Route("GET", "/providers/Microsoft.Web/functionAppStacks", list_function_app_stacks),
        Route("POST", f"{sub}/providers/Microsoft.Storage/checkNameAvailability", check_storage_name,
              "Microsoft.Storage/checknameavailability/read", _subscription, prepare=in_subscription,
              other_methods_unserved=True),
    ]
    for base, type_ in ((SERVERFARMS, PLAN_TYPE), (STORAGE_ACCOUNTS, STORAGE_TYPE)):
        item = f"{rg}{base}/{{resourceName}}"
        out += [
            Route("GET", f"{sub}{base}", list_in_subscription, prepare=in_subscription),
            Route("GET", f"{rg}{base}", list_in_group, prepare=in_subscription),
            Route("GET", item, get_one, f"{type_}/read", _scope, prepare=in_subscription),
            Route("PUT", item, put_one, f"{type_}/write", _scope, prepare=in_subscription),
            Route("PATCH", item, put_one, f"{type_}/write", _scope, prepare=in_subscription),
            Route("DELETE", item, delete_one, f"{type_}/delete", _scope, prepare=in_subscription),
        ]
    out += [
        Route("POST", f"{rg}{STORAGE_ACCOUNTS}/{{resourceName}}/listKeys", list_storage_keys,
              f"{STORAGE_TYPE}/listkeys/action", _scope, prepare=in_subscription, other_methods_unserved=True),
        Route("POST", f"{rg}{STORAGE_ACCOUNTS}/{{resourceName}}/regenerateKey", regenerate_storage_key,
              f"{STORAGE_TYPE}/regeneratekey/action", _scope, prepare=in_subscription, other_methods_unserved=True),
    ]
    versions = {id(r): (STORAGE if "Microsoft.Storage" in r.pattern else WEB) for r in out}
    return [dataclasses.replace(r, api_versions=versions[id(r)]) for r in out]


def unserved(sub: str, rg: str, in_subscription: Prepare) -> list[Unserved[ArmCall]]:
    """Paths under a storage account or plan, and the other Microsoft.Storage types: a 404 naming them."""
    def under(call: ArmCall) -> Exception:
        return InvalidResourceType(f"The path '{call.params['rest']}' under '{call.params['resourceName']}' is not "
                                   "served by this Cielo.")

    def storage_type(call: ArmCall) -> Exception:
        return InvalidResourceType(f"The resource type 'Microsoft.Storage/{call.params['resourceType']}' is not "
                                   "served by this Cielo.")

    return [
        Unserved(f"{rg}{STORAGE_ACCOUNTS}/{{resourceName}}/{{rest*}}", under, prepare=in_subscription),
        Unserved(f"{rg}{SERVERFARMS}/{{resourceName}}/{{rest*}}", under, prepare=in_subscription),
        Unserved(f"{rg}/providers/Microsoft.Storage/{{resourceType}}/{{rest*}}", storage_type,
                 prepare=in_subscription),
        Unserved(f"{sub}/providers/Microsoft.Storage/{{resourceType}}/{{rest*}}", storage_type,
                 prepare=in_subscription),
    ]
