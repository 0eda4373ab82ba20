"""Resource groups, Cognitive Services accounts (+ keys) and deployments, in ARM's shapes.

Authorization happens in the API layer before these are called; these enforce ARM's rules on
names, bodies and existence, and keep a failed write from changing anything.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Callable
from typing import Any

from cielo.control import arm_bodies
from cielo.control.naming import check_account, check_deployment, check_resource_group, normalize_location
from cielo.core.arm_ids import RG_TYPE, ResourceId
from cielo.core.clock import Clock
from cielo.core.ids import sha256_hex
from cielo.core.sealing import Sealer
from cielo.dataplane.catalogue import ModelCatalogue
from cielo.errors import (
    BadRequest,
    CustomDomainInUse,
    CustomSubDomainNameCannotBeChanged,
    DeploymentModelNotSupported,
    DuplicateKey,
    InsufficientQuota,
    InvalidKind,
    InvalidRequestContent,
    InvalidResourceGroupLocation,
    InvalidResourceLocation,
    InvalidSkuName,
    KindRequired,
    NotFound,
    ResourceGroupNotFound,
)
from cielo.store.resources import AccountKeys, Resource, ResourceRepo

ACCOUNT_TYPE = "Microsoft.CognitiveServices/accounts"
DEPLOYMENT_TYPE = "Microsoft.CognitiveServices/accounts/deployments"
ACCOUNT_KINDS = {"openai": "OpenAI", "cognitiveservices": "CognitiveServices", "aiservices": "AIServices"}
ACCOUNT_SKUS = {"s0": "S0", "f0": "F0"}
DEPLOYMENT_SKUS = {"standard": "Standard", "globalstandard": "GlobalStandard", "datazonestandard": "DataZoneStandard"}
QUOTA_CAPACITY_PER_MODEL = 1000  # thousands of TPM per subscription, region and model


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


class ResourceWriter:
    """Who makes a write, for a resource's systemData (createdBy, createdByType)."""

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.kind = kind  # "User" | "Application" | "ManagedIdentity"



class ResourceService:
    def __init__(self, repo: ResourceRepo, sealer: Sealer, clock: Clock, base_url: str,
                 catalogue: ModelCatalogue | None = None) -> None:
        self.repo = repo
        self.catalogue = catalogue or ModelCatalogue()
        self._sealer = sealer
        self._clock = clock
        self._base_url = base_url

    def _system_data(self, writer: ResourceWriter, existing: Resource | None) -> dict[str, Any]:
        now = _iso(self._clock.now())
        created = (existing.system_data or {}) if existing else {}
        return {
            "createdAt": created.get("createdAt", now), "createdBy": created.get("createdBy", writer.name),
            "createdByType": created.get("createdByType", writer.kind), "lastModifiedAt": now,
            "lastModifiedBy": writer.name, "lastModifiedByType": writer.kind,
        }

    # ----------------------------------------------------------------- any resource
    def find(self, rid: ResourceId) -> Resource | None:
        return self.repo.get(rid.key)

    def get_by_key(self, key: str) -> Resource | None:
        return self.repo.get(key)

    def store(self, resource: Resource) -> bool:
        """Create or replace; True when this call created it."""
        return self.repo.put(resource)

    def delete_tree(self, key: str) -> None:
        """A resource, everything under it, and the role assignments at those scopes (in the store: the caller
        reloads RBAC)."""
        self.repo.delete_tree(key)

    def list_resources(self, *, subscription_id: str | None = None, resource_group: str | None = None,
                       type_: str | None = None, parent_key: str | None = None) -> list[Resource]:
        return self.repo.list_resources(subscription_id=subscription_id, resource_group=resource_group, type_=type_,
                                        parent_key=parent_key)

    def seal(self, secret: str) -> str:
        """A secret of another resource type (a storage account's key) as the store keeps it."""
        return self._sealer.seal(secret)

    def unseal(self, sealed: str) -> str:
        return self._sealer.open(sealed)

    # ----------------------------------------------------------------- resource groups
    def get_group(self, subscription: str, name: str) -> Resource:
        found = self.repo.get(ResourceId(subscription, name).key)
        if found is None:
            raise ResourceGroupNotFound(f"Resource group '{name}' could not be found.")
        return found

    def put_group(self, subscription: str, name: str, body: dict[str, Any],
                  writer: ResourceWriter) -> tuple[Resource, bool]:
        check_resource_group(name)
        sent = arm_bodies.parse(arm_bodies.ResourceGroupBody, body)
        rid = ResourceId(subscription, name)
        existing = self.repo.get(rid.key)
        location = normalize_location(sent.location)
        if existing and existing.location != location:
            raise InvalidResourceGroupLocation(
                f"Invalid resource group location '{location}'. The Resource group already exists in location "
                f"'{existing.location}'.")
        resource = Resource(
            id=existing.id if existing else rid.id, subscription_id=subscription, resource_group=name,
            parent_key=None, type=RG_TYPE, name=existing.name if existing else name, location=location, kind=None,
            sku=None, tags=sent.tags, properties={"provisioningState": "Succeeded"}, identity=None,
            system_data=self._system_data(writer, existing), etag=uuid.uuid4().hex,
        )
        created = self.repo.put(resource)  # False when another request created it a moment ago
        return resource, created

    def delete_group(self, subscription: str, name: str) -> bool:
        rid = ResourceId(subscription, name)
        if self.repo.get(rid.key) is None:
            return False
        self.repo.delete_tree(rid.key)
        return True

    # ----------------------------------------------------------------- accounts
    def endpoint_for(self, subdomain: str) -> str:
        return f"{self._base_url}/accounts/{subdomain}/"

    def get_account(self, rid: ResourceId) -> Resource:
        found = self.repo.get(rid.key)
        if found is None or found.type != ACCOUNT_TYPE:
            assert rid.resource_group is not None
            self.get_group(rid.subscription, rid.resource_group)  # ARM names the missing group first
            raise NotFound(
                f"The Resource '{ACCOUNT_TYPE}/{rid.name}' under resource group '{rid.resource_group}' was not "
                "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix")
        return found

    def find_account_by_subdomain(self, subdomain: str) -> Resource | None:
        wanted = subdomain.lower()
        for account in self.repo.list_resources(type_=ACCOUNT_TYPE):
            if str(account.properties.get("customSubDomainName", "")).lower() == wanted:
                return account
        return None

    def put_account(self, rid: ResourceId, body: dict[str, Any], writer: ResourceWriter, *,
                    identity: Callable[[Resource | None], dict[str, Any] | None] | None = None,
                    ) -> tuple[Resource, bool]:
        """`identity` computes the account's identity block from the existing account (IdentityService's, which
        may create or delete a principal): called once the rest of the body is accepted. Without it the account
        keeps the block it has, and a body that sends one is refused."""
        check_account(rid.name)
        assert rid.resource_group is not None
        self.get_group(rid.subscription, rid.resource_group)
        sent = arm_bodies.parse(arm_bodies.AccountBody, body)
        existing = self.repo.get(rid.key)
        kind_text = sent.kind or (existing.kind if existing else None)
        kind = ACCOUNT_KINDS.get(str(kind_text).lower()) if kind_text else None
        if kind is None:
            refusal = InvalidKind if kind_text else KindRequired
            raise refusal(f"The kind '{kind_text}' is not supported; use OpenAI, AIServices or CognitiveServices.")
        old_sku = (existing.sku or {}) if existing else {}
        sku_name = str((sent.sku.name if sent.sku else None) or old_sku.get("name") or "")
        sku = ACCOUNT_SKUS.get(sku_name.lower())
        if sku is None:
            raise InvalidSkuName(f"The SKU '{sku_name}' is not supported; use S0.")
        location = normalize_location(sent.location or (existing.location if existing else None))
        if existing and existing.location != location:
            # Its deployments (and their quota) stay in the account's location: ARM refuses a move by PUT.
            raise InvalidResourceLocation(
                f"The resource '{existing.name}' already exists in location '{existing.location}' in resource group "
                f"'{rid.resource_group}'. A resource with the same name cannot be created in location '{location}'. "
                "Please select a new resource name.")
        props_in = sent.properties or arm_bodies.AccountProperties()
        old = existing.properties if existing else {}
        subdomain = str(props_in.custom_sub_domain_name or old.get("customSubDomainName") or rid.name)
        if existing and old.get("customSubDomainName") and subdomain.lower() != str(old["customSubDomainName"]).lower():
            raise CustomSubDomainNameCannotBeChanged("The customSubDomainName of an account cannot be changed.")
        holder = self.find_account_by_subdomain(subdomain)
        if holder is not None and holder.key != rid.key:
            raise CustomDomainInUse(f"The subdomain name '{subdomain}' is not available as it's already used by a "
                           "resource.")
        # Left out: the account keeps its value.
        disable_local = (props_in.disable_local_auth if props_in.sent("disable_local_auth")
                         else bool(old.get("disableLocalAuth", False)))
        network = (props_in.public_network_access if props_in.sent("public_network_access")
                   else old.get("publicNetworkAccess", "Enabled"))
        created = old.get("dateCreated") or _iso(self._clock.now())
        properties = {
            "endpoint": self.endpoint_for(subdomain),
            "endpoints": {"OpenAI Language Model Instance API": self.endpoint_for(subdomain)},
            "customSubDomainName": subdomain,
            "disableLocalAuth": disable_local,
            "publicNetworkAccess": network,
            "provisioningState": "Succeeded",
            "dateCreated": created,
            "internalId": old.get("internalId") or uuid.uuid4().hex,
            "capabilities": [{"name": "VirtualNetworks"}, {"name": "CustomerManagedKey"}],
            "networkAcls": {"defaultAction": "Allow", "ipRules": [], "virtualNetworkRules": []},
            "privateEndpointConnections": [],
        }
        if identity is None and sent.identity is not None:
            raise InvalidRequestContent("The property 'identity' is not served on this path.")
        block = identity(existing) if identity is not None else (existing.identity if existing else None)
        resource = Resource(
            id=existing.id if existing else rid.id, subscription_id=rid.subscription,
            resource_group=rid.resource_group, parent_key=None, type=ACCOUNT_TYPE,
            name=existing.name if existing else rid.name, location=location, kind=kind, sku={"name": sku},
            tags=sent.tags, properties=properties, identity=block,
            system_data=self._system_data(writer, existing), etag=f'"{uuid.uuid4()}"',
        )
        try:
            created = self.repo.put(resource)  # False when another request created it a moment ago
        except DuplicateKey as exc:  # another account took the subdomain a moment ago
            raise CustomDomainInUse(f"The subdomain name '{subdomain}' is not available as it's already used by a "
                           "resource.") from exc
        if created:
            try:
                self._new_keys(resource.key, which=("key1", "key2"))
            except Exception:
                # Never leave an account without keys behind a failed request: undo the create, then fail.
                self.repo.delete_tree(resource.key)
                raise
        return resource, created

    def _new_keys(self, resource_key: str, which: tuple[str, ...]) -> None:
        current = self.repo.get_keys(resource_key)
        values: dict[str, str] = {}
        for name in ("key1", "key2"):
            if name in which or current is None:
                key = secrets.token_hex(16)
                values[f"{name}_hash"] = sha256_hex(key)
                values[f"{name}_encrypted"] = self._sealer.seal(key)
            else:
                values[f"{name}_hash"] = getattr(current, f"{name}_hash")
                values[f"{name}_encrypted"] = getattr(current, f"{name}_encrypted")
        self.repo.set_keys(resource_key, AccountKeys(**values))

    def list_keys(self, account: Resource) -> dict[str, str]:
        if account.properties.get("disableLocalAuth"):
            # Azure refuses listKeys with 400 when local auth is disabled (as public reports show, e.g.
            # Azure/azure-cli#25686).
            raise BadRequest("Failed to list key. disableLocalAuth is set to be true")
        keys = self.repo.get_keys(account.key)
        if keys is None:
            raise NotFound("The account has no keys.")
        return {"key1": self._sealer.open(keys.key1_encrypted), "key2": self._sealer.open(keys.key2_encrypted)}

    def regenerate_key(self, account: Resource, body: dict[str, Any]) -> dict[str, str]:
        """`body` is regenerateKey's (`{"keyName": "Key1"}`)."""
        key_name = arm_bodies.parse(arm_bodies.RegenerateKeyBody, body).key_name
        if account.properties.get("disableLocalAuth"):
            raise BadRequest("Failed to regenerate key. disableLocalAuth is set to be true")
        self._new_keys(account.key, which=(key_name.lower(),))
        return self.list_keys(account)

    def delete_account(self, rid: ResourceId) -> bool:
        found = self.repo.get(rid.key)
        if found is None or found.type != ACCOUNT_TYPE:
            return False
        self.repo.delete_tree(rid.key)
        return True

    # ----------------------------------------------------------------- deployments
    def get_deployment(self, rid: ResourceId) -> Resource:
        found = self.repo.get(rid.key)
        if found is None or found.type != DEPLOYMENT_TYPE:
            assert rid.resource_group is not None
            self.get_group(rid.subscription, rid.resource_group)
            raise NotFound(
                f"The Resource '{DEPLOYMENT_TYPE}/{rid.names[0]}/{rid.name}' under resource group "
                f"'{rid.resource_group}' was not found.")
        return found

    def put_deployment(self, rid: ResourceId, body: dict[str, Any], writer: ResourceWriter) -> tuple[Resource, bool]:
        check_deployment(rid.name)
        parent = rid.parent
        assert parent is not None
        account = self.get_account(parent)
        sent = arm_bodies.parse(arm_bodies.DeploymentBody, body)
        existing = self.repo.get(rid.key)
        props_in = sent.properties or arm_bodies.DeploymentProperties()
        model_in = props_in.model or (_current_model(existing) if existing else None)
        if model_in is None:
            raise InvalidRequestContent("The property 'properties.model.name' is required.")
        fmt, name, version = model_in.format, model_in.name, model_in.version
        entry = self.catalogue.find(fmt, name, version)
        if entry is None:
            asked = " ".join(p for p in (fmt, name, version) if p)
            raise DeploymentModelNotSupported(
                f"The model '{asked}' is not supported by this Cielo. Supported: "
                + ", ".join(f"{m.format} {m.name} {m.version}" for m in self.catalogue.entries))
        sku_in = sent.sku or (_current_sku(existing) if existing else arm_bodies.DeploymentSku())
        sku_name = DEPLOYMENT_SKUS.get(sku_in.name.lower())
        capacity = sku_in.capacity
        if sku_name is None:
            raise InvalidSkuName(f"The SKU '{sku_in.name}' is not supported; use Standard or GlobalStandard.")
        properties = {
            "model": {"format": entry.format, "name": entry.name, "version": entry.version},
            "versionUpgradeOption": props_in.version_upgrade_option,
            "capabilities": dict(entry.capabilities),
            "raiPolicyName": props_in.rai_policy_name,
            "provisioningState": "Succeeded",
            "rateLimits": rate_limits(capacity),
        }
        resource = Resource(
            id=existing.id if existing else rid.id, subscription_id=rid.subscription,
            resource_group=rid.resource_group, parent_key=account.key, type=DEPLOYMENT_TYPE,
            name=existing.name if existing else rid.name, location=account.location, kind=None,
            sku={"name": sku_name, "capacity": capacity}, tags=sent.tags, properties=properties, identity=None,
            system_data=self._system_data(writer, existing), etag=f'"{uuid.uuid4()}"',
        )
        # The quota check and the write under one lock per subscription and location (threads, workers,
        # replicas): two PUTs racing would otherwise both pass the check and together exceed the quota.
        with self.repo.capacity_lock(rid.subscription, account.location or ""):
            used = self.capacity_used(rid.subscription, account.location or "", exclude_key=rid.key).get(
                entry.name.lower(), 0)
            if used + capacity > QUOTA_CAPACITY_PER_MODEL:
                raise InsufficientQuota(
                    f"This operation require {capacity} new capacity in quota Tokens Per Minute (thousands) - "
                    f"{entry.name}, which is bigger than the current available capacity "
                    f"{QUOTA_CAPACITY_PER_MODEL - used}. The current quota usage is {used} and the quota limit is "
                    f"{QUOTA_CAPACITY_PER_MODEL} for quota Tokens Per Minute (thousands) - {entry.name}.")
            created = self.repo.put(resource)  # False when another request created it a moment ago
        return resource, created

    def capacity_used(self, subscription: str, location: str, exclude_key: str | None = None) -> dict[str, int]:
        """The capacity (thousands of TPM) the deployments of a subscription hold in a location, per lower-cased
        model name: what the quota (QUOTA_CAPACITY_PER_MODEL, whatever the deployment's SKU) is counted on."""
        used: dict[str, int] = {}
        for d in self.repo.list_resources(subscription_id=subscription, type_=DEPLOYMENT_TYPE):
            if d.key == exclude_key or d.location != location:
                continue
            model = str((d.properties.get("model") or {}).get("name", "")).lower()
            used[model] = used.get(model, 0) + int((d.sku or {}).get("capacity", 0))
        return used

    def delete_deployment(self, rid: ResourceId) -> bool:
        found = self.repo.get(rid.key)
        if found is None or found.type != DEPLOYMENT_TYPE:
            return False
        self.repo.delete_tree(rid.key)
        return True


def _current_model(deployment: Resource) -> arm_bodies.DeploymentModel | None:
    """The model a deployment holds, for an update that does not name one."""
    held = deployment.properties.get("model")
    return arm_bodies.DeploymentModel.model_validate(held) if held else None


def _current_sku(deployment: Resource) -> arm_bodies.DeploymentSku:
    return arm_bodies.DeploymentSku.model_validate(deployment.sku or {})


def rate_limits(capacity: int) -> list[dict[str, int | str]]:
    """ARM's two throttling rules for a Standard deployment
    (learn.microsoft.com/azure/ai-services/openai/how-to/quota): 6 RPM per 1,000 TPM,
    expressed per 10 s (small capacities round up to 2), and capacity * 1,000 tokens per 60 s."""
    return [
        {"key": "request", "renewalPeriod": 10, "count": max(2, capacity)},
        {"key": "token", "renewalPeriod": 60, "count": capacity * 1000},
    ]


def resource_json(resource: Resource) -> dict[str, Any]:
    """The ARM representation (what GET returns)."""
    out: dict[str, Any] = {"id": resource.id, "name": resource.name, "type": resource.type}
    # A resource without tags has `{}`, as ARM answers (never null: SDKs and templates index into it).
    tags = resource.tags or {}
    if resource.type == RG_TYPE:
        return {**out, "location": resource.location, "managedBy": None, "properties": resource.properties,
                "tags": tags}
    if resource.type == DEPLOYMENT_TYPE:
        return {**out, "sku": resource.sku, "properties": resource.properties, "systemData": resource.system_data,
                "etag": resource.etag, "tags": tags}
    return {**out, "etag": resource.etag, "identity": resource.identity, "kind": resource.kind,
            "location": resource.location, "properties": resource.properties, "sku": resource.sku,
            "systemData": resource.system_data, "tags": tags}
