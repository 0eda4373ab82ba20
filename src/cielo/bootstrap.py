"""First start: a default tenant, subscription and directory administrator, who holds Owner on the
subscription; a default resource group with an Azure OpenAI account and one deployment of the
embedded chat model. Later starts change nothing (but grant the first administrator Owner if a
data directory from before role assignments existed has no assignment at all)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cielo.control.resources import ResourceWriter
from cielo.core.arm_ids import ResourceId
from cielo.core.ids import new_guid, new_password
from cielo.dataplane.catalogue import DEFAULT_CHAT_MODEL, DEFAULT_EMBEDDING_MODEL
from cielo.identity.directory import _check_password as check_password
from cielo.rbac.roles import OWNER
from cielo.store.models import Subscription, Tenant
from cielo.store.resources import StoredAssignment

if TYPE_CHECKING:
    from cielo.api.app import Services

DEFAULT_DOMAIN = "cielo.local"
DEFAULT_RESOURCE_GROUP = "cielo-rg"
DEFAULT_ACCOUNT = "cielo-openai"
DEFAULT_DEPLOYMENT = "smollm2"
DEFAULT_EMBEDDING_DEPLOYMENT = "e5-small"
DEFAULT_LOCATION = "local"
# 50,000 tokens and 50 requests per 10 s for each bootstrap deployment: one person, or a framework's default calls
# (chat without max_tokens reserves the model's context while it runs, then gives back what it did not use),
# is never throttled, and the SmolLM2 model keeps 950 of its 1,000 capacity per subscription for more deployments.
BOOTSTRAP_CAPACITY = 50


@dataclass(frozen=True)
class BootstrapResult:
    created: bool
    tenant: Tenant
    subscription: Subscription | None
    admin_user: str | None
    admin_password: str | None  # only when generated now; shown once, never stored in plaintext
    password_generated: bool
    account_endpoint: str | None = None


def bootstrap(services: Services, admin_user: str | None, admin_password: str | None, *,
              ask_password: Callable[[], str] | None = None) -> BootstrapResult:
    """First start: everything above, the administrator's password `admin_password`, else `ask_password()`'s
    answer, else a generated one (shown once). Later starts: nothing is asked."""
    repo = services.directory.repo
    tenants = repo.list_tenants()
    if tenants:
        subs = repo.list_subscriptions(tenants[0].id)
        _ensure_owner(services, tenants[0], subs[0] if subs else None)
        endpoint = _account_endpoint(services, subs[0]) if subs else None
        return BootstrapResult(False, tenants[0], subs[0] if subs else None, None, None, False, endpoint)
    if admin_password is None and ask_password is not None:
        admin_password = ask_password()
    if admin_password is not None:
        check_password(admin_password)  # before anything is stored: a refused password must leave no tenant behind
    clock = services.clock
    tenant = Tenant(new_guid(), "Cielo", DEFAULT_DOMAIN, clock.now())
    repo.create_tenant(tenant)
    subscription = Subscription(new_guid(), tenant.id, "Cielo Subscription", "Enabled")
    repo.create_subscription(subscription)
    upn = admin_user or f"admin@{DEFAULT_DOMAIN}"
    generated = admin_password is None
    password = admin_password or new_password()
    admin = services.directory.create_user(tenant, upn, "Cielo Administrator", password, is_admin=True)
    _grant_owner(services, tenant, subscription, admin.object_id)
    caller = ResourceWriter(upn, "User")
    resources = services.resources
    resources.put_group(subscription.id, DEFAULT_RESOURCE_GROUP, {"location": DEFAULT_LOCATION}, caller)
    account_id = ResourceId(subscription.id, DEFAULT_RESOURCE_GROUP, "Microsoft.CognitiveServices", ("accounts",),
                            (DEFAULT_ACCOUNT,))
    account, _ = resources.put_account(account_id, {
        "location": DEFAULT_LOCATION, "kind": "OpenAI", "sku": {"name": "S0"},
        "properties": {"customSubDomainName": DEFAULT_ACCOUNT},
    }, caller)
    model = DEFAULT_CHAT_MODEL
    resources.put_deployment(account_id.child("deployments", DEFAULT_DEPLOYMENT), {
        "sku": {"name": "Standard", "capacity": BOOTSTRAP_CAPACITY},
        "properties": {"model": {"format": model.format, "name": model.name, "version": model.version}},
    }, caller)
    embedding = DEFAULT_EMBEDDING_MODEL
    resources.put_deployment(account_id.child("deployments", DEFAULT_EMBEDDING_DEPLOYMENT), {
        "sku": {"name": "Standard", "capacity": BOOTSTRAP_CAPACITY},
        "properties": {"model": {"format": embedding.format, "name": embedding.name, "version": embedding.version}},
    }, caller)
    return BootstrapResult(True, tenant, subscription, upn, password, generated, account.properties["endpoint"])


def _grant_owner(services: Services, tenant: Tenant, subscription: Subscription, principal_id: str) -> None:
    now = services.clock.now()
    services.access.add_assignment(StoredAssignment(
        name=str(uuid.uuid4()), scope=f"/subscriptions/{subscription.id}", tenant_id=tenant.id,
        role_definition_name=OWNER.id, principal_id=principal_id, principal_type="User", description=None,
        condition=None, condition_version=None, created_on=now, updated_on=now, created_by=None, updated_by=None,
    ))


def _ensure_owner(services: Services, tenant: Tenant, subscription: Subscription | None) -> None:
    if subscription is None or services.resources.repo.list_assignments(tenant.id):
        return
    admins = [u for u in services.directory.repo.list_users(tenant.id) if u.is_admin]
    if admins:
        first = min(admins, key=lambda u: u.created_at)
        _grant_owner(services, tenant, subscription, first.object_id)


def _account_endpoint(services: Services, subscription: Subscription) -> str | None:
    account = services.resources.repo.get(ResourceId(
        subscription.id, DEFAULT_RESOURCE_GROUP, "Microsoft.CognitiveServices", ("accounts",), (DEFAULT_ACCOUNT,)).key)
    return str(account.properties.get("endpoint")) if account else None
