"""What the data plane needs on every request, served from memory: accounts by endpoint name,
their deployments, tenants and API-key hashes. Rebuilt when the resource manager writes anything
(the source's `version()` changes), so a new deployment or a regenerated key applies at once.

The index reads through `AccountSource`, a narrow protocol the app factory implements over the store
(api/app.py): the data plane never imports the resource manager or the store.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cielo.dataplane.catalogue import ModelCatalogue, ModelEntry


@dataclass(frozen=True)
class DeploymentRecord:
    """A deployment as stored: its model named by format, name and version (matched against the catalogue)."""

    name: str
    key: str
    model_format: str | None
    model_name: str
    model_version: str | None
    rate_limits: list[dict[str, Any]]
    created_at: str


@dataclass(frozen=True)
class AccountRecord:
    id: str
    name: str
    subdomain: str
    tenant_id: str
    kind: str
    disable_local_auth: bool
    key_hashes: frozenset[str]
    deployments: tuple[DeploymentRecord, ...]


class AccountSource(Protocol):
    def version(self) -> Hashable:
        """Changes whenever anything `accounts()` returns may have changed (in any worker); cheap to call."""
        ...

    def accounts(self) -> Iterable[AccountRecord]: ...


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
    def __init__(self, source: AccountSource, catalogue: ModelCatalogue) -> None:
        self._source = source
        self._catalogue = catalogue
        self._seen: Hashable = object()
        self._accounts: dict[str, Account] = {}
        self._lock = threading.Lock()

    def account(self, subdomain: str) -> Account | None:
        version = self._source.version()
        if version != self._seen:
            with self._lock:
                if version != self._seen:
                    self._accounts = self._load()
                    self._seen = version
        return self._accounts.get(subdomain.lower())

    def _load(self) -> dict[str, Account]:
        accounts: dict[str, Account] = {}
        for record in self._source.accounts():
            deployments: dict[str, Deployment] = {}
            for dep in record.deployments:
                entry = self._catalogue.find(dep.model_format, dep.model_name, dep.model_version)
                if entry is None:
                    continue
                deployments[dep.name.lower()] = Deployment(dep.name, dep.key, entry, dep.rate_limits, dep.created_at)
            accounts[record.subdomain.lower()] = Account(
                record.id, record.name, record.subdomain, record.tenant_id, record.kind, record.disable_local_auth,
                record.key_hashes, deployments)
        return accounts
