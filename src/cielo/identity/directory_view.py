"""Read-through caches of the directory for the hot path, dropped whenever anything is written."""

from __future__ import annotations

import threading
from typing import Any

from cielo.store.directory import DirectoryRepo
from cielo.store.generation import ChangeMarker
from cielo.store.models import Application, ServicePrincipal, Tenant, User

_MISSING = object()


class DirectoryView:
    def __init__(self, repo: DirectoryRepo, generation: ChangeMarker) -> None:
        self.repo = repo
        self._generation = generation
        self._seen = generation.token()
        self._cache: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def _get(self, kind: str, key: str, load: Any) -> Any:
        token = self._generation.token()
        if token != self._seen:
            with self._lock:
                self._cache.clear()
                self._seen = token
        value = self._cache.get((kind, key), _MISSING)
        if value is _MISSING:
            value = load()
            self._cache[(kind, key)] = value
        return value

    def tenant(self, id_or_domain: str) -> Tenant | None:
        key = id_or_domain.lower()
        result: Tenant | None = self._get("tenant", key, lambda: self.repo.find_tenant(key))
        return result

    def tenant_exists(self, tenant_id: str) -> bool:
        return self.tenant(tenant_id) is not None

    def application(self, app_id: str) -> Application | None:
        key = app_id.lower()
        result: Application | None = self._get("app", key, lambda: self.repo.get_application_by_app_id(key))
        return result

    def service_principal(self, tenant_id: str, app_id: str) -> ServicePrincipal | None:
        key = f"{tenant_id}/{app_id.lower()}"
        result: ServicePrincipal | None = self._get(
            "sp", key, lambda: self.repo.get_service_principal_for_app(tenant_id, app_id)
        )
        return result

    def user(self, object_id: str) -> User | None:
        key = object_id.lower()
        result: User | None = self._get("user", key, lambda: self.repo.get_user(key))
        return result

    def service_principal_by_id(self, object_id: str) -> ServicePrincipal | None:
        key = object_id.lower()
        found: ServicePrincipal | None = self._get("sp-id", key, lambda: self.repo.find_service_principal(key))
        return found if found is not None and found.object_id == key else None

    def generation_token(self) -> tuple[int, int]:
        """Changes whenever the directory changes (callers key their own caches by it)."""
        return self._generation.token()
