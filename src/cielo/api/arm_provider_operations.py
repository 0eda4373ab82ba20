"""ARM routes for `Microsoft.Authorization/providerOperations` (api-version 2022-04-01 and the others ARM serves):
the operations of the providers Cielo serves, as `az provider operation list|show` and portals read them.

Any signed-in caller may read them, as in Azure: the routes name no RBAC action (the dispatcher has already
authenticated the caller). The data is `cielo.control.provider_operations`'s vendored catalogue.
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from cielo.api.arm_context import ArmCall
from cielo.api.arm_routes import Route
from cielo.control.provider_operations import catalogue

PROVIDER_OPERATIONS = "/providers/Microsoft.Authorization/providerOperations"


def _expand(call: ArmCall) -> bool:
    return catalogue().expand_of(call.request.query_params.get("$expand"))


async def list_provider_operations(call: ArmCall) -> Response:
    return JSONResponse({"value": catalogue().list_providers(_expand(call))})


async def get_provider_operations(call: ArmCall) -> Response:
    return JSONResponse(catalogue().get(call.params["resourceProviderNamespace"], _expand(call)))


def routes() -> list[Route[ArmCall, Response]]:
    """The rows for `cielo.api.arm.ROUTES` (tenant-level paths: no subscription to check first)."""
    return [
        Route("GET", PROVIDER_OPERATIONS, list_provider_operations),
        Route("GET", f"{PROVIDER_OPERATIONS}/{{resourceProviderNamespace}}", get_provider_operations),
    ]
