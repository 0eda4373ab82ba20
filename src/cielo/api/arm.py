"""The first resource-manager routes: `GET /subscriptions` and `GET /tenants`, as `az login` calls them.

Until the RBAC engine lands (resource manager issue), a subscription is visible to the directory
administrators of its tenant only; other principals see an empty list, as a principal without
role assignments does in Azure.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from cielo.api.auth import ARM_AUDIENCES, bearer_principal
from cielo.errors import NotFound
from cielo.store.directory import DirectoryRepo
from cielo.store.models import Subscription

router = APIRouter()


def subscription_json(sub: Subscription) -> dict[str, object]:
    return {
        "id": f"/subscriptions/{sub.id}",
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": sub.id,
        "tenantId": sub.tenant_id,
        "displayName": sub.display_name,
        "state": sub.state,
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
    }


def _visible(request: Request) -> list[Subscription]:
    principal = bearer_principal(request, ARM_AUDIENCES)
    repo: DirectoryRepo = request.app.state.directory_service.repo
    user = repo.get_user(principal.object_id) if principal.kind == "user" else None
    if user is None or not user.is_admin or not user.account_enabled:
        return []
    return repo.list_subscriptions(principal.tenant_id)


@router.get("/subscriptions")
async def list_subscriptions(request: Request) -> JSONResponse:
    subs = _visible(request)
    return JSONResponse({"value": [subscription_json(s) for s in subs],
                         "count": {"type": "Total", "value": len(subs)}})


@router.get("/subscriptions/{subscription_id}")
async def get_subscription(subscription_id: str, request: Request) -> JSONResponse:
    for sub in _visible(request):
        if sub.id == subscription_id.lower():
            return JSONResponse(subscription_json(sub))
    raise NotFound(f"The subscription '{subscription_id}' could not be found.", code="SubscriptionNotFound")


@router.get("/tenants")
async def list_tenants(request: Request) -> JSONResponse:
    principal = bearer_principal(request, ARM_AUDIENCES)
    repo: DirectoryRepo = request.app.state.directory_service.repo
    tenant = repo.find_tenant(principal.tenant_id)
    items = []
    if tenant is not None:
        items.append({
            "id": f"/tenants/{tenant.id}",
            "tenantId": tenant.id,
            "countryCode": "US",
            "displayName": tenant.display_name,
            "domains": [tenant.default_domain],
            "tenantCategory": "Home",
            "defaultDomain": tenant.default_domain,
            "tenantType": "AAD",
        })
    return JSONResponse({"value": items})
