"""What the data plane needs on every request, served from memory: accounts by endpoint name,
their deployments, tenants and API-key hashes. Rebuilt when the resource manager writes anything
(the `resources.generation` marker), so a new deployment or a regenerated key applies at once."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from cielo.control.models import ModelCatalogue, ModelEntry
from cielo.control.resources import ACCOUNT_TYPE, DEPLOYMENT_TYPE
from cielo.store.directory import DirectoryRepo
from cielo.store.generation import Generation
from cielo.store.resources import ResourceRepo


@dataclass(frozen=True)
class Deployment:
    name: str
    key: str
    model: ModelEntry
    rate_limits: list[dict[str, Any]]
    created_at: str


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    subdomain: str
    tenant_id: str
    kind: str
    disable_local_auth: bool
    key_hashes: frozenset[str]
    deployments: dict[str, Deployment] = field(default_factory=dict)  # lower-case name -> deployment


class DataPlaneIndex:
    def __init__(self, resources: ResourceRepo, directory: DirectoryRepo, catalogue: ModelCatalogue,
                 generation: Generation) -> None:
        self._resources = resources
        self._directory = directory
        self._catalogue = catalogue
        self._generation = generation
        self._seen: tuple[int, int] = (-1, -1)
        self._accounts: dict[str, Account] = {}
        self._lock = threading.Lock()

    def account(self, subdomain: str) -> Account | None:
        token = self._generation.token()
        if token != self._seen:
            with self._lock:
                if token != self._seen:
                    self._accounts = self._load()
                    self._seen = token
        return self._accounts.get(subdomain.lower())

    def _load(self) -> dict[str, Account]:
        tenants = {s.id: s.tenant_id for s in self._directory.list_subscriptions()}
        accounts: dict[str, Account] = {}
        for resource in self._resources.list_resources(type_=ACCOUNT_TYPE):
            keys = self._resources.get_keys(resource.key)
            deployments: dict[str, Deployment] = {}
            for dep in self._resources.list_resources(parent_key=resource.key, type_=DEPLOYMENT_TYPE):
                model = dep.properties.get("model") or {}
                entry = self._catalogue.find(model.get("format"), str(model.get("name", "")), model.get("version"))
                if entry is None:
                    continue
                deployments[dep.name.lower()] = Deployment(
                    dep.name, dep.key, entry, list(dep.properties.get("rateLimits") or []),
                    str((dep.system_data or {}).get("createdAt", "")))
            subdomain = str(resource.properties.get("customSubDomainName") or resource.name)
            accounts[subdomain.lower()] = Account(
                resource.id, resource.name, subdomain, tenants.get(resource.subscription_id, ""),
                resource.kind or "OpenAI", bool(resource.properties.get("disableLocalAuth")),
                frozenset({keys.key1_hash, keys.key2_hash}) if keys else frozenset(), deployments)
        return accounts
