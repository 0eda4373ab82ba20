"""What a Cognitive Services account offers, in the shapes of Microsoft.CognitiveServices 2024-10-01
(Azure/azure-rest-api-specs, specification/cognitiveservices/…/stable/2024-10-01/cognitiveservices.json): the
account SKUs (`AccountSkuListResult`), the quota usages (`UsageListResult`) and the deployable models
(`AccountModelListResult`).

Everything is derived from what Cielo enforces, so the reads stay true: the SKUs `put_account` accepts, the
models of the catalogue `put_deployment` accepts, and the per-model capacity quota it checks
(`QUOTA_CAPACITY_PER_MODEL` thousands of TPM per subscription, region and model, whatever the deployment's SKU).
"""

from __future__ import annotations

from typing import Any

from cielo.control.resources import (
    ACCOUNT_SKUS,
    ACCOUNT_TYPE,
    DEPLOYMENT_SKUS,
    QUOTA_CAPACITY_PER_MODEL,
    ResourceService,
)

# Azure names an Azure OpenAI quota `OpenAI.{Sku}.{model}`, its display "Tokens Per Minute (thousands) - {model}"
# (the wording of the InsufficientQuota message). Cielo's quota is one per model, shared by every deployment SKU:
# it is reported once, under the Standard name.
_QUOTA_SKU = "Standard"


def usage_name(model: str) -> str:
    return f"OpenAI.{_QUOTA_SKU}.{model}"


def account_skus() -> dict[str, Any]:
    """`GET …/accounts/{name}/skus`: the SKUs an account may be given (`sku.name` of a PUT)."""
    return {"value": [{"resourceType": ACCOUNT_TYPE, "sku": {"name": name, "tier": "Free" if name == "F0" else
                                                             "Standard"}}
                      for name in ACCOUNT_SKUS.values()]}


def usages(resources: ResourceService, subscription: str, location: str) -> dict[str, Any]:
    """The quota of each deployable model in a subscription's location: its limit and what deployments hold."""
    used = resources.capacity_used(subscription, location)
    seen: set[str] = set()
    value = []
    for entry in resources.catalogue.entries:
        if entry.name.lower() in seen:
            continue
        seen.add(entry.name.lower())
        value.append({
            "unit": "Count", "name": {"value": usage_name(entry.name),
                                      "localizedValue": f"Tokens Per Minute (thousands) - {entry.name}"},
            "quotaPeriod": "", "limit": QUOTA_CAPACITY_PER_MODEL, "currentValue": used.get(entry.name.lower(), 0),
            "nextResetTime": "", "status": "Included",
        })
    return {"value": value, "nextLink": None}


def models(resources: ResourceService) -> dict[str, Any]:
    """`GET …/accounts/{name}/models`: the models a deployment of this Cielo may name, with their SKUs and the
    capacity range `put_deployment` accepts (1 to the quota)."""
    value = []
    for entry in resources.catalogue.entries:
        skus = [{"name": sku, "usageName": usage_name(entry.name),
                 "capacity": {"minimum": 1, "maximum": QUOTA_CAPACITY_PER_MODEL, "step": 1, "default": 1}}
                for sku in DEPLOYMENT_SKUS.values()]
        value.append({
            "format": entry.format, "name": entry.name, "version": entry.version,
            "capabilities": dict(entry.capabilities), "skus": skus, "maxCapacity": QUOTA_CAPACITY_PER_MODEL,
            "isDefaultVersion": True, "lifecycleStatus": "GenerallyAvailable", "deprecation": {},
        })
    return {"value": value, "nextLink": None}
