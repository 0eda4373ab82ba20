"""ARM reads that deployment tools and SDKs look up before they write: the subscription's `locations`, the
resource `providers` (at the subscription and the tenant), the subscription's `resources`, an account's `skus`,
`usages` and `models`, a location's Cognitive Services `usages`. (The subscription's user-assigned identities,
VMs, scale sets and sites are listed by `cielo.api.arm_compute`.)

Shapes are Azure's (Azure/azure-rest-api-specs: Microsoft.Resources `Location`, `Provider`,
`GenericResourceExpanded`; Microsoft.CognitiveServices 2024-10-01 `AccountSkuListResult`, `UsageListResult`,
`AccountModelListResult`). The providers listing is derived from the route table itself (each PUT route names a
resource type), so it stays true as routes are added.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from starlette.responses import JSONResponse, Response

from cielo.api import arm_versions
from cielo.api.arm_context import ArmCall
from cielo.api.arm_routes import Route
from cielo.bootstrap import DEFAULT_LOCATION
from cielo.control import account_reads
from cielo.control.resources import ResourceService
from cielo.core.arm_ids import RG_TYPE, ResourceId
from cielo.errors import InvalidFilterInQueryString, InvalidQueryParameterValue, InvalidResourceNamespace


class Resource(Protocol):
    """What a resources listing reads of a stored resource (the router does not import the store)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def location(self) -> str | None: ...
    @property
    def parent_key(self) -> str | None: ...
    @property
    def resource_group(self) -> str | None: ...
    @property
    def kind(self) -> str | None: ...
    @property
    def tags(self) -> dict[str, str] | None: ...
    @property
    def sku(self) -> dict[str, Any] | None: ...
    @property
    def identity(self) -> dict[str, Any] | None: ...


Prepare = tuple[Callable[[ArmCall], None], ...]
R = TypeVar("R", bound=Resource)
RouteList = Callable[[], Sequence[Route[ArmCall, Response]]]

SUB_READ = "Microsoft.Resources/subscriptions/read"
RESOURCES_READ = "Microsoft.Resources/subscriptions/resources/read"
ACCOUNT = "Microsoft.CognitiveServices/accounts"
TEMPLATE_DEPLOYMENT_TYPE = "Microsoft.Resources/deployments"
# Read-only types of Microsoft.Resources this Cielo serves, besides the ones its PUT routes name.
RESOURCES_READ_ONLY_TYPES = ("subscriptions", "tenants", "locations", "providers", "resources")
# The api-versions advertised for types whose routes accept any date-shaped version (they name no list): the
# versions azure-cli 2.91 and the azure-mgmt SDKs send, newest stable first (what `az resource show` picks).
ADVERTISED = {
    "microsoft.compute": frozenset({"2024-07-01", "2024-03-01", "2023-09-01", "2023-07-01", "2023-03-01",
                                    "2022-11-01", "2022-08-01", "2022-03-01", "2021-11-01", "2021-07-01"}),
    "microsoft.web": frozenset({"2024-04-01", "2023-12-01", "2023-01-01", "2022-09-01", "2022-03-01", "2021-03-01"}),
    "microsoft.authorization": frozenset({"2022-04-01", "2022-05-01-preview", "2020-10-01-preview",
                                          "2020-04-01-preview", "2018-09-01-preview", "2015-07-01"}),
}
_BY_NAMESPACE = {"microsoft.resources": arm_versions.RESOURCES,
                 "microsoft.cognitiveservices": arm_versions.COGNITIVE_SERVICES,
                 "microsoft.managedidentity": arm_versions.MANAGED_IDENTITY, **ADVERTISED}


def api_versions_of(namespace: str) -> frozenset[str]:
    """The api-versions advertised for a provider's types whose routes name no list of their own."""
    return _BY_NAMESPACE.get(namespace.lower(), frozenset())


def _ok(body: Any) -> JSONResponse:
    return JSONResponse(body)


def _resources(call: ArmCall) -> ResourceService:
    service: ResourceService = call.request.app.state.resource_service
    return service


def require_subscription_read(call: ArmCall) -> None:
    """As `GET /subscriptions/{id}`: a caller with a role anywhere in the subscription may read what it offers."""
    scope = f"/subscriptions/{call.sub.id}"
    if not call.ctx.allowed(SUB_READ, scope) and call.sub.id not in {
            s.id for s in call.manager.visible_subscriptions(call.ctx.caller)}:
        call.ctx.require(SUB_READ, scope)


# ----------------------------------------------------------------------------- locations
def _display(location: str) -> str:
    return location[:1].upper() + location[1:]


def _locations(call: ArmCall) -> list[str]:
    """The location Cielo's bootstrap uses, and every location a resource group of the subscription is in (Cielo
    accepts any location name, so those are served too)."""
    used = {g.location for g in call.manager.list_groups(call.sub.id) if g.location}
    return [DEFAULT_LOCATION, *sorted(used - {DEFAULT_LOCATION})]


def location_json(subscription: str, name: str) -> dict[str, Any]:
    display = _display(name)
    return {
        "id": f"/subscriptions/{subscription}/locations/{name}", "name": name, "type": "Region",
        "displayName": display, "regionalDisplayName": f"({display}) {display}",
        "metadata": {"regionType": "Physical", "regionCategory": "Recommended", "geography": display,
                     "geographyGroup": display, "longitude": "0", "latitude": "0", "physicalLocation": display,
                     "pairedRegion": []},
    }


async def list_locations(call: ArmCall) -> Response:
    require_subscription_read(call)
    return _ok({"value": [location_json(call.sub.id, name) for name in _locations(call)]})


# ----------------------------------------------------------------------------- providers
def _choice(segment: str) -> str:
    """A pattern segment's text: a literal, or the single choice of `{name:Choice}`."""
    if segment.startswith("{") and segment.endswith("}"):
        _, _, choices = segment[1:-1].partition(":")
        return choices if choices and "|" not in choices else ""
    return segment


def served_types(routes: Sequence[Route[ArmCall, Response]]) -> dict[str, dict[str, frozenset[str] | None]]:
    """Namespace -> resource type -> the api-versions its PUT route names (None: any), read from the route table."""
    found: dict[str, dict[str, frozenset[str] | None]] = {}
    for route in routes:
        if route.method != "PUT":
            continue
        parts = [p for p in route.pattern.split("/") if p]
        lowered = [p.lower() for p in parts]
        if "providers" not in lowered:
            if lowered[-2:-1] == ["resourcegroups"]:
                found.setdefault("Microsoft.Resources", {})["resourceGroups"] = route.api_versions
            continue
        at = len(lowered) - 1 - lowered[::-1].index("providers")
        namespace = _choice(parts[at + 1]) if at + 1 < len(parts) else ""
        types = [_choice(p) for p in parts[at + 2::2]]
        if namespace and types and all(types):
            found.setdefault(namespace, {})["/".join(types)] = route.api_versions
    for type_ in RESOURCES_READ_ONLY_TYPES:
        found.setdefault("Microsoft.Resources", {})[type_] = arm_versions.RESOURCES
    return found


def provider_json(namespace: str, types: dict[str, frozenset[str] | None], locations: list[str],
                  subscription: str | None) -> dict[str, Any]:
    default = _BY_NAMESPACE.get(namespace.lower(), frozenset())
    resource_types = [{"resourceType": t, "locations": locations,
                       "apiVersions": arm_versions.newest_first(versions if versions is not None else default),
                       "capabilities": "None"} for t, versions in sorted(types.items())]
    out: dict[str, Any] = {"id": f"/subscriptions/{subscription}/providers/{namespace}" if subscription
                           else f"/providers/{namespace}", "namespace": namespace}
    if subscription:
        out.update({"registrationState": "Registered", "registrationPolicy": "RegistrationRequired"})
    return {**out, "resourceTypes": resource_types}


# The `$expand` values a providers read serves (Microsoft.Resources' Providers_List/Get: "To include property
# aliases in response, use $expand=resourceTypes/aliases"). Cielo defines no policy aliases, so each resource type
# gets an empty `aliases` list; any other value (`metadata`, `resourceTypes/zoneMappings`, …) is refused by name.
EXPANDS = ("resourceTypes/aliases",)


def provider_expand(call: ArmCall) -> bool:
    """Whether `$expand=resourceTypes/aliases` was asked; another value is 400 InvalidQueryParameterValue."""
    text = call.request.query_params.get("$expand")
    if text is None:
        return False
    asked = [v.strip() for v in text.split(",") if v.strip()]
    unserved = [v for v in asked if v.lower() not in {e.lower() for e in EXPANDS}]
    if unserved or not asked:
        raise InvalidQueryParameterValue(
            f"The value '{text}' of the query parameter '$expand' is not supported by this Cielo: only "
            f"{', '.join(EXPANDS)} is (its aliases are empty: Cielo defines no policy aliases).")
    return True


def provider_top(call: ArmCall) -> int | None:
    """`$top` of a providers listing (Providers_List up to api-version 2021-01-01: "The number of results to
    return"): a positive integer; anything else is 400 InvalidQueryParameterValue naming it."""
    text = call.request.query_params.get("$top")
    if text is None:
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise InvalidQueryParameterValue(f"The value '{text}' of the query parameter '$top' is not valid: it must "
                                         "be a positive integer.")
    return int(text)


def _providers(call: ArmCall, table: RouteList) -> list[dict[str, Any]]:
    aliases = provider_expand(call)
    subscription = call.subscription.id if call.subscription is not None else None
    if call.subscription is not None:
        require_subscription_read(call)
        locations = [_display(n) for n in _locations(call)]
    else:
        locations = [_display(DEFAULT_LOCATION)]
    found = [provider_json(ns, types, locations, subscription) for ns, types in sorted(served_types(table()).items())]
    if aliases:
        for provider in found:
            for resource_type in provider["resourceTypes"]:
                resource_type["aliases"] = []
    return found


def _provider(call: ArmCall, table: RouteList) -> dict[str, Any]:
    if call.request.query_params.get("$top") is not None:
        raise InvalidQueryParameterValue("The query parameter '$top' is not supported when reading one provider "
                                         "(it limits a providers listing).")
    wanted = call.params["resourceProviderNamespace"]
    for provider in _providers(call, table):
        if provider["namespace"].lower() == wanted.lower():
            return provider
    raise InvalidResourceNamespace(f"The resource namespace '{wanted}' is invalid.")


# ----------------------------------------------------------------------------- resources
def listed_json(resource: Resource) -> dict[str, Any]:
    """`GenericResourceExpanded`: what a resources listing shows of each (absent fields are left out, as in ARM)."""
    out: dict[str, Any] = {"id": resource.id, "name": resource.name, "type": resource.type,
                           "location": resource.location, "tags": resource.tags or {}}
    for key, value in (("kind", resource.kind), ("sku", resource.sku), ("identity", resource.identity)):
        if value is not None:
            out[key] = value
    return out


# The `$filter` fields a resources listing serves (what `az resource list` sends for -g, --resource-type, -n and
# -l, joined by `and`), each to the resource's attribute it compares (case-insensitively, as ARM does).
_FILTER_FIELDS = {"resourcetype": "type", "resourcegroup": "resource_group", "name": "name", "location": "location"}
# `field eq 'value'`, a quote inside the value doubled (OData).
_CLAUSE = re.compile(r"(\w+)\s+eq\s+'((?:[^']|'')*)'", re.IGNORECASE)


def resource_filter(call: ArmCall) -> dict[str, str]:
    """`$filter=resourceType eq 'X' and resourceGroup eq 'Y'` as {attribute: lower-cased value}; a filter with any
    other field or operator is refused, never ignored."""
    text = call.request.query_params.get("$filter")
    if text is None:
        return {}
    wanted: dict[str, str] = {}
    for clause in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        found = _CLAUSE.fullmatch(clause.strip())
        attribute = _FILTER_FIELDS.get(found.group(1).lower()) if found else None
        if found is None or attribute is None:
            raise InvalidFilterInQueryString(
                f"The $filter '{text}' is not supported by this Cielo: only resourceType, resourceGroup, name and "
                "location compared with eq '{value}', joined by and, are.")
        wanted[attribute] = found.group(2).replace("''", "'").lower()
    return wanted


def top_level(resources: Sequence[R], wanted: dict[str, str]) -> list[R]:
    """What ARM's resources listings show: top-level resources (no child such as an account's deployments, no
    group, no template deployment) that match the filter's fields."""
    return [r for r in resources if r.parent_key is None and r.type not in (RG_TYPE, TEMPLATE_DEPLOYMENT_TYPE)
            and all(str(getattr(r, attribute) or "").lower() == value for attribute, value in wanted.items())]


async def list_resources(call: ArmCall) -> Response:
    wanted = resource_filter(call)
    items = top_level(_resources(call).list_resources(subscription_id=call.sub.id), wanted)
    visible = [r for r in items if call.ctx.allowed(f"{r.type}/read", r.id)]
    if not visible:
        call.ctx.require(RESOURCES_READ, f"/subscriptions/{call.sub.id}")
    return _ok({"value": [listed_json(r) for r in visible]})


# ----------------------------------------------------------------------------- what an account offers
def account_id(call: ArmCall) -> ResourceId:
    return ResourceId(call.sub.id, call.params["resourceGroupName"], "Microsoft.CognitiveServices", ("accounts",),
                      (call.params["accountName"],))


def account_scope(call: ArmCall) -> str:
    return account_id(call).id


async def account_skus(call: ArmCall) -> Response:
    call.manager.account(account_id(call))  # 404 for a missing account (or group)
    return _ok(account_reads.account_skus())


async def account_usages(call: ArmCall) -> Response:
    account = call.manager.account(account_id(call))
    return _ok(account_reads.usages(_resources(call), call.sub.id, account.location or ""))


async def account_models(call: ArmCall) -> Response:
    call.manager.account(account_id(call))
    return _ok(account_reads.models(_resources(call)))


async def location_usages(call: ArmCall) -> Response:
    location = call.params["location"].replace(" ", "").lower()
    return _ok(account_reads.usages(_resources(call), call.sub.id, location))


def subscription_scope(call: ArmCall) -> str:
    return f"/subscriptions/{call.sub.id}"


def routes(sub: str, rg: str, in_subscription: Prepare, table: RouteList) -> list[Route[ArmCall, Response]]:
    """The rows for `cielo.api.arm.ROUTES`; `table` gives the whole table (read when a providers list is asked)."""
    async def list_providers(call: ArmCall) -> Response:
        top = provider_top(call)
        return _ok({"value": _providers(call, table)[:top]})

    async def get_provider(call: ArmCall) -> Response:
        return _ok(_provider(call, table))

    resources, cognitive = arm_versions.RESOURCES, arm_versions.COGNITIVE_SERVICES
    account = f"{rg}/providers/Microsoft.CognitiveServices/accounts/{{accountName}}"
    return [
        Route("GET", f"{sub}/locations", list_locations, prepare=in_subscription, api_versions=resources),
        Route("GET", f"{sub}/providers", list_providers, prepare=in_subscription, api_versions=resources),
        Route("GET", f"{sub}/providers/{{resourceProviderNamespace}}", get_provider, prepare=in_subscription,
              api_versions=resources),
        Route("GET", "/providers", list_providers, api_versions=resources),
        Route("GET", "/providers/{resourceProviderNamespace}", get_provider, api_versions=resources),
        Route("GET", f"{sub}/resources", list_resources, prepare=in_subscription, api_versions=resources),
        Route("GET", f"{account}/skus", account_skus, f"{ACCOUNT}/skus/read", account_scope, prepare=in_subscription,
              api_versions=cognitive),
        Route("GET", f"{account}/usages", account_usages, f"{ACCOUNT}/usages/read", account_scope,
              prepare=in_subscription, api_versions=cognitive),
        Route("GET", f"{account}/models", account_models, f"{ACCOUNT}/models/read", account_scope,
              prepare=in_subscription, api_versions=cognitive),
        Route("GET", f"{sub}/providers/Microsoft.CognitiveServices/locations/{{location}}/usages", location_usages,
              "Microsoft.CognitiveServices/locations/usages/read", subscription_scope, prepare=in_subscription,
              api_versions=cognitive),
    ]
