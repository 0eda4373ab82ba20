"""First start: a default tenant, a subscription and a directory administrator."""

from __future__ import annotations

from dataclasses import dataclass

from cielo.core.clock import Clock
from cielo.core.ids import new_guid, new_password
from cielo.identity.directory import DirectoryService
from cielo.store.models import Subscription, Tenant

DEFAULT_DOMAIN = "cielo.local"


@dataclass(frozen=True)
class BootstrapResult:
    created: bool
    tenant: Tenant
    subscription: Subscription | None
    admin_user: str | None
    admin_password: str | None  # only when generated now; shown once, never stored in plaintext
    password_generated: bool


def bootstrap(
    directory: DirectoryService, clock: Clock, admin_user: str | None, admin_password: str | None
) -> BootstrapResult:
    repo = directory.repo
    tenants = repo.list_tenants()
    if tenants:
        subs = repo.list_subscriptions(tenants[0].id)
        return BootstrapResult(False, tenants[0], subs[0] if subs else None, None, None, False)
    tenant = Tenant(new_guid(), "Cielo", DEFAULT_DOMAIN, clock.now())
    repo.create_tenant(tenant)
    subscription = Subscription(new_guid(), tenant.id, "Cielo Subscription", "Enabled")
    repo.create_subscription(subscription)
    upn = admin_user or f"admin@{DEFAULT_DOMAIN}"
    generated = admin_password is None
    password = admin_password or new_password()
    directory.create_user(tenant, upn, "Cielo Administrator", password, is_admin=True)
    return BootstrapResult(True, tenant, subscription, upn, password, generated)
