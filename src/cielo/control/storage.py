"""Storage accounts (`Microsoft.Storage/storageAccounts`) and App Service plans (`Microsoft.Web/serverfarms`) as
records, in Azure's shapes (Azure/azure-rest-api-specs: specification/storage/…/Microsoft.Storage/stable/2023-05-01
`StorageAccount`, specification/web/…/Microsoft.Web/stable/2024-04-01 `AppServicePlan`).

Cielo runs no code and serves no blob, queue or table data: a storage account is the record and the two shared
keys that a function app's settings name (`az functionapp create` builds `AzureWebJobsStorage` from `listKeys`), and
a plan is the record a site's `serverFarmId` points at. Their keys are generated here, stored sealed (with their
hashes) as Cognitive Services account keys are, and shown only by `listKeys`. A property Cielo would not honour is
refused naming it; the ones it keeps are echoed as sent.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import secrets
import uuid
from typing import Any

from cielo.control.naming import normalize_location
from cielo.control.resources import ResourceService, ResourceWriter
from cielo.core.arm_ids import ResourceId
from cielo.core.clock import Clock
from cielo.core.ids import sha256_hex
from cielo.errors import (
    BadRequest,
    Conflict,
    InvalidRequestContent,
    InvalidResourceName,
    InvalidSkuName,
    InvalidTag,
    NotFound,
    ResourceTypeMismatch,
    StorageAccountAlreadyTaken,
)
from cielo.store.resources import AccountKeys, Resource

STORAGE_TYPE = "Microsoft.Storage/storageAccounts"
SITE_CONFIG_TYPE = "Microsoft.Web/sites/config"
PLAN_TYPE = "Microsoft.Web/serverfarms"

_STORAGE_NAME = re.compile(r"^[a-z0-9]{3,24}$")
_PLAN_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]{0,58}$")
STORAGE_KINDS = ("StorageV2", "Storage", "BlobStorage", "BlockBlobStorage", "FileStorage")
# specification/storage/…/storage.json `SkuName`; the tier is the part before `_`.
STORAGE_SKUS = ("Standard_LRS", "Standard_GRS", "Standard_RAGRS", "Standard_ZRS", "Premium_LRS", "Premium_ZRS",
                "Standard_GZRS", "Standard_RAGZRS")
# Settings a storage account keeps and echoes: none has an effect, as Cielo serves no storage data (Azure's
# `listKeys` answers whatever `allowSharedKeyAccess` says, too).
STORAGE_SETTINGS = ("accessTier", "allowBlobPublicAccess", "allowSharedKeyAccess", "minimumTlsVersion",
                    "publicNetworkAccess", "supportsHttpsTrafficOnly")
# App Service plan SKUs by tier (learn.microsoft.com/azure/app-service/overview-hosting-plans and the Functions
# hosting plans): the name az's `--sku` takes, and its tier.
PLAN_TIERS = {
    "F1": "Free", "D1": "Shared", "B1": "Basic", "B2": "Basic", "B3": "Basic", "S1": "Standard", "S2": "Standard",
    "S3": "Standard", "P1V2": "PremiumV2", "P2V2": "PremiumV2", "P3V2": "PremiumV2", "P0V3": "PremiumV3",
    "P1V3": "PremiumV3", "P2V3": "PremiumV3", "P3V3": "PremiumV3", "EP1": "ElasticPremium", "EP2": "ElasticPremium",
    "EP3": "ElasticPremium", "Y1": "Dynamic", "FC1": "FlexConsumption",
}
# Plan properties kept and echoed (what az's `appservice plan create` / `functionapp plan create` send).
PLAN_SETTINGS = ("reserved", "perSiteScaling", "maximumElasticWorkerCount", "zoneRedundant", "elasticScaleEnabled",
                 "targetWorkerCount", "targetWorkerSizeId", "isXenon", "hyperV", "isSpot")


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def _tags(body: dict[str, Any], existing: Resource | None) -> dict[str, str] | None:
    if "tags" not in body:
        return existing.tags if existing else None
    tags = body["tags"]
    if tags is None:
        return None
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise InvalidTag("Tags must be an object of string values.")
    return dict(tags)


def _properties(body: dict[str, Any], type_: str, allowed: tuple[str, ...], ignored: tuple[str, ...] = ()
                ) -> dict[str, Any]:
    """The body's `properties` that a type keeps; a property it does not keep is refused, naming it. `ignored`
    are read-only properties a client sends back after a GET (Cielo sets them)."""
    props = body.get("properties")
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise InvalidRequestContent(f"The {type_} property 'properties' must be an object.")
    out: dict[str, Any] = {}
    for key, value in props.items():
        if key in ignored:
            continue
        if key not in allowed:
            raise InvalidRequestContent(
                f"The {type_} property 'properties.{key}' is not served by this Cielo (it keeps "
                f"{', '.join(allowed)}). Send the resource without it.")
        if value is not None:
            out[key] = value
    return out


def _sku(body: dict[str, Any], existing: Resource | None, type_: str) -> str | None:
    sku = body.get("sku")
    if sku is None:
        return str(existing.sku["name"]) if existing and existing.sku else None
    if not isinstance(sku, dict) or not isinstance(sku.get("name"), str):
        raise InvalidRequestContent(f"The {type_} property 'sku.name' must be a string.")
    return str(sku["name"])


class StorageService:
    """Storage accounts and App Service plans; authorization happened in the API layer."""

    def __init__(self, resources: ResourceService, clock: Clock) -> None:
        self._resources = resources
        self._clock = clock

    # ----------------------------------------------------------------- any of them
    def get(self, rid: ResourceId, type_: str) -> Resource:
        found = self._resources.find(rid)
        if found is None or found.type != type_:
            assert rid.resource_group is not None
            self._resources.get_group(rid.subscription, rid.resource_group)  # ARM names the missing group first
            raise NotFound(f"The Resource '{type_}/{rid.name}' under resource group '{rid.resource_group}' was not "
                           "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix")
        return found

    def list_of(self, subscription: str, resource_group: str | None, type_: str) -> list[Resource]:
        return self._resources.list_resources(subscription_id=subscription, resource_group=resource_group,
                                              type_=type_)

    def delete(self, rid: ResourceId, type_: str) -> bool:
        found = self._resources.find(rid)
        if found is None or found.type != type_:
            return False
        if type_ == PLAN_TYPE:
            sites = self._sites_of(found)
            if sites:
                raise Conflict(f"Server farm '{found.name}' cannot be deleted because it has web app(s) "
                               f"{', '.join(sites)} assigned to it.")
        self._resources.delete_tree(found.key)
        return True

    def _existing(self, rid: ResourceId, type_: str) -> Resource | None:
        assert rid.resource_group is not None
        self._resources.get_group(rid.subscription, rid.resource_group)
        existing = self._resources.find(rid)
        if existing is not None and existing.type != type_:
            raise ResourceTypeMismatch(f"A resource of another type exists at '{rid.id}'.")
        return existing

    def _system_data(self, writer: ResourceWriter, existing: Resource | None) -> dict[str, Any]:
        now = _iso(self._clock.now())
        created = (existing.system_data or {}) if existing else {}
        return {"createdAt": created.get("createdAt", now), "createdBy": created.get("createdBy", writer.name),
                "createdByType": created.get("createdByType", writer.kind), "lastModifiedAt": now,
                "lastModifiedBy": writer.name, "lastModifiedByType": writer.kind}

    def _location(self, body: dict[str, Any], existing: Resource | None) -> str:
        if existing is not None and body.get("location") is None:
            return str(existing.location)
        location = normalize_location(body.get("location"))
        if existing is not None and existing.location != location:
            raise BadRequest(f"The location of '{existing.name}' is '{existing.location}'; it cannot be changed.",
                             code="LocationNotAvailableForResourceType")
        return location

    # ----------------------------------------------------------------- storage accounts
    def put_storage(self, rid: ResourceId, body: dict[str, Any], writer: ResourceWriter, *, patch: bool = False
                    ) -> tuple[Resource, bool]:
        if not _STORAGE_NAME.match(rid.name):
            raise InvalidResourceName(
                f"{rid.name} is not a valid storage account name. Storage account name must be between 3 and 24 "
                "characters in length and use numbers and lower-case letters only.", code="AccountNameInvalid")
        existing = self._existing(rid, STORAGE_TYPE)
        if existing is None:
            for other in self._resources.list_resources(type_=STORAGE_TYPE):
                if other.name == rid.name:  # the name is its endpoints' host name: one in the whole Cielo
                    raise StorageAccountAlreadyTaken(f"The storage account named {rid.name} is already taken.")
        kind = body.get("kind") if body.get("kind") is not None else (existing.kind if existing else None)
        if kind not in STORAGE_KINDS:
            raise InvalidRequestContent(f"The storage account kind '{kind}' is not valid; use one of "
                                        f"{', '.join(STORAGE_KINDS)}." if kind else
                                        "The property 'kind' is required: " + ", ".join(STORAGE_KINDS) + ".")
        sku = _sku(body, existing, STORAGE_TYPE)
        if sku not in STORAGE_SKUS:
            raise InvalidSkuName(f"The SKU '{sku}' is not valid for a storage account; use one of "
                                 f"{', '.join(STORAGE_SKUS)}." if sku else "The property 'sku.name' is required.")
        location = self._location(body, existing)
        settings = _properties(body, STORAGE_TYPE, STORAGE_SETTINGS, ignored=_STORAGE_READ_ONLY)
        encryption = (body.get("properties") or {}).get("encryption")
        if encryption is not None:
            if (not isinstance(encryption, dict)
                    or encryption.get("keySource", "Microsoft.Storage") != "Microsoft.Storage"
                    or encryption.get("keyvaultproperties") or encryption.get("identity")):
                raise InvalidRequestContent(
                    "The Microsoft.Storage/storageAccounts property 'properties.encryption' is served only with "
                    "keySource Microsoft.Storage: Cielo keeps no customer-managed keys.")
            settings["encryption"] = encryption
        acls = (body.get("properties") or {}).get("networkAcls")
        if acls is not None and (not isinstance(acls, dict) or acls.get("defaultAction", "Allow") != "Allow"
                                 or acls.get("ipRules") or acls.get("virtualNetworkRules")):
            raise InvalidRequestContent(
                "The Microsoft.Storage/storageAccounts property 'properties.networkAcls' is served only as "
                "defaultAction Allow without rules: Cielo serves no storage data to restrict.")
        kept = {k: v for k, v in (existing.properties if existing else {}).items()
                if k in (*STORAGE_SETTINGS, "encryption")}
        settings = {**kept, **settings} if patch or existing else settings
        created_at = existing.properties["creationTime"] if existing else _iso(self._clock.now())
        host = rid.name
        properties = {
            "provisioningState": "Succeeded", "creationTime": created_at, "primaryLocation": location,
            "statusOfPrimary": "available",
            "primaryEndpoints": {s: f"https://{host}.{s}.local/" for s in ("blob", "queue", "table", "file", "dfs",
                                                                            "web")},
            "networkAcls": {"bypass": "AzureServices", "defaultAction": "Allow", "ipRules": [],
                            "virtualNetworkRules": []},
            "publicNetworkAccess": "Enabled", "supportsHttpsTrafficOnly": True, "minimumTlsVersion": "TLS1_2",
            "allowBlobPublicAccess": False,
            **settings,
        }
        resource = Resource(
            id=existing.id if existing else rid.id, subscription_id=rid.subscription,
            resource_group=rid.resource_group, parent_key=None, type=STORAGE_TYPE, name=existing.name if existing
            else rid.name, location=location, kind=str(kind), sku={"name": sku, "tier": sku.split("_")[0]},
            tags=_tags(body, existing), properties=properties, identity=None,
            system_data=self._system_data(writer, existing), etag=uuid.uuid4().hex)
        created = self._resources.store(resource)
        if existing is None:
            self._new_keys(resource.key, ("key1", "key2"))
        return resource, created

    def check_storage_name(self, name: object) -> dict[str, Any]:
        """`checkNameAvailability`: Azure's `CheckNameAvailabilityResult` for a storage account name."""
        if not isinstance(name, str):
            raise InvalidRequestContent("The property 'name' is required and must be a string.")
        if not _STORAGE_NAME.match(name):
            return {"nameAvailable": False, "reason": "AccountNameInvalid",
                    "message": f"{name} is not a valid storage account name. Storage account name must be between 3 "
                               "and 24 characters in length and use numbers and lower-case letters only."}
        if any(other.name == name for other in self._resources.list_resources(type_=STORAGE_TYPE)):
            return {"nameAvailable": False, "reason": "AlreadyExists",
                    "message": f"The storage account named {name} is already taken."}
        return {"nameAvailable": True}

    def _new_keys(self, resource_key: str, which: tuple[str, ...]) -> None:
        """Storage keys as Azure's look (64 random bytes, base64), sealed, with their hashes."""
        current = self._resources.repo.get_keys(resource_key)
        values: dict[str, str] = {}
        for name in ("key1", "key2"):
            if name in which or current is None:
                key = base64.b64encode(secrets.token_bytes(64)).decode()
                values[f"{name}_hash"] = sha256_hex(key)
                values[f"{name}_encrypted"] = self._resources.seal(key)
            else:
                values[f"{name}_hash"] = getattr(current, f"{name}_hash")
                values[f"{name}_encrypted"] = getattr(current, f"{name}_encrypted")
        self._resources.repo.set_keys(resource_key, AccountKeys(**values))

    def storage_keys(self, account: Resource) -> dict[str, Any]:
        """`listKeys`: Azure's `StorageAccountListKeysResult`."""
        keys = self._resources.repo.get_keys(account.key)
        if keys is None:
            raise NotFound("The storage account has no keys.")
        created = account.properties.get("creationTime")
        return {"keys": [
            {"keyName": "key1", "value": self._resources.unseal(keys.key1_encrypted), "permissions": "FULL",
             "creationTime": created},
            {"keyName": "key2", "value": self._resources.unseal(keys.key2_encrypted), "permissions": "FULL",
             "creationTime": created},
        ]}

    def regenerate_storage_key(self, account: Resource, key_name: object) -> dict[str, Any]:
        if not isinstance(key_name, str) or key_name.lower() not in ("key1", "key2"):
            raise InvalidRequestContent("keyName must be key1 or key2.")
        self.storage_keys(account)  # refused the same way when shared keys are off
        self._new_keys(account.key, (key_name.lower(),))
        return self.storage_keys(account)

    # ----------------------------------------------------------------- App Service plans
    def put_plan(self, rid: ResourceId, body: dict[str, Any], writer: ResourceWriter, *, patch: bool = False
                 ) -> tuple[Resource, bool]:
        if not _PLAN_NAME.match(rid.name):
            raise InvalidResourceName(f"The App Service plan name '{rid.name}' is not valid: 1 to 60 letters, digits "
                                      "and hyphens, starting with a letter or digit.")
        existing = self._existing(rid, PLAN_TYPE)
        sku = _sku(body, existing, PLAN_TYPE) or "B1"
        tier = next((t for n, t in PLAN_TIERS.items() if n.lower() == sku.lower()), None)
        if tier is None:
            raise InvalidSkuName(f"The App Service plan SKU '{sku}' is not valid; use one of "
                                 f"{', '.join(PLAN_TIERS)}.")
        sku = next(n for n in PLAN_TIERS if n.lower() == sku.lower())
        kind = body.get("kind") if body.get("kind") is not None else (existing.kind if existing else "app")
        if not isinstance(kind, str):
            raise InvalidRequestContent(f"The {PLAN_TYPE} property 'kind' must be a string.")
        location = self._location(body, existing)
        settings = _properties(body, PLAN_TYPE, PLAN_SETTINGS, ignored=_PLAN_READ_ONLY)
        kept = {k: v for k, v in (existing.properties if existing else {}).items() if k in PLAN_SETTINGS}
        settings = {**kept, **settings} if patch or existing else settings
        capacity = (body.get("sku") or {}).get("capacity") if isinstance(body.get("sku"), dict) else None
        resource = Resource(
            id=existing.id if existing else rid.id, subscription_id=rid.subscription,
            resource_group=rid.resource_group, parent_key=None, type=PLAN_TYPE,
            name=existing.name if existing else rid.name, location=location, kind=kind,
            sku={"name": sku, "tier": tier, "size": sku, "family": re.sub(r"\d.*", "", sku),
                 "capacity": capacity if isinstance(capacity, int) else 1},
            tags=_tags(body, existing),
            properties={"provisioningState": "Succeeded", "status": "Ready", "reserved": False,
                        "perSiteScaling": False, "zoneRedundant": False, "maximumNumberOfWorkers": 1,
                        "numberOfSites": 0, **settings},
            identity=None, system_data=self._system_data(writer, existing), etag=uuid.uuid4().hex)
        return resource, self._resources.store(resource)

    def _sites_of(self, plan: Resource) -> list[str]:
        """The names of the sites on a plan (their `config/web` names it: control/site_config.py)."""
        return [c.id.split("/")[-3] for c in self._resources.list_resources(subscription_id=plan.subscription_id,
                                                                            type_=SITE_CONFIG_TYPE)
                if str(c.properties.get("serverFarmId") or "").lower() == plan.key]

    def plan_json(self, plan: Resource) -> dict[str, Any]:
        sites = self._sites_of(plan)
        return {**storage_json(plan), "properties": {**plan.properties, "numberOfSites": len(sites)}}


# Read-only properties a client may send back (Cielo sets them).
_STORAGE_READ_ONLY = ("encryption", "provisioningState", "creationTime", "primaryLocation", "statusOfPrimary",
                      "primaryEndpoints", "networkAcls")
_PLAN_READ_ONLY = ("provisioningState", "status", "maximumNumberOfWorkers", "numberOfSites", "geoRegion",
                   "resourceGroup", "subscription")


def storage_json(resource: Resource) -> dict[str, Any]:
    """The ARM representation of a storage account or a plan (what GET returns)."""
    return {"id": resource.id, "name": resource.name, "type": resource.type, "location": resource.location,
            "kind": resource.kind, "sku": resource.sku, "tags": resource.tags or {},
            "properties": resource.properties, "systemData": resource.system_data}
