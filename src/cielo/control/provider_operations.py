"""Microsoft.Authorization/providerOperations: the operations (RBAC actions and data actions) of the resource
providers Cielo serves, in ARM's `ProviderOperationsMetadata` shape (Azure/azure-rest-api-specs,
specification/authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/
authorization-ProviderOperationsCalls.json).

The data is Azure's own (`az provider operation show --namespace …`), vendored in
`control/data/provider_operations.json`; its `source` names the public archive and commit, and
scripts/build_role_catalogue.py rebuilds it. Each operation's `properties` (metric and log specifications) is
left out and answered as null. Only the providers Cielo serves are listed, where Azure lists every provider.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any, NamedTuple

from cielo.errors import InvalidQueryParameterValue, InvalidResourceNamespace
from cielo.rbac.actions import PatternSet, normalize_action
from cielo.rbac.errors import InvalidAction
from cielo.rbac.scopes import fold

PROVIDER_OPERATIONS_TYPE = "Microsoft.Authorization/providerOperations"
EXPAND_RESOURCE_TYPES = "resourceTypes"  # the spec's default for $expand


class Operation(NamedTuple):
    name: str
    display_name: str
    description: str
    is_data_action: bool
    origin: str | None

    def to_arm(self) -> dict[str, Any]:
        return {"name": self.name, "displayName": self.display_name, "description": self.description,
                "origin": self.origin, "isDataAction": self.is_data_action, "properties": None}


def _operations(rows: Iterable[list[Any]]) -> tuple[Operation, ...]:
    return tuple(Operation(name, display, description, bool(data), origin)
                 for name, display, description, data, origin in rows)


class Provider(NamedTuple):
    name: str
    display_name: str
    operations: tuple[Operation, ...]
    resource_types: tuple[tuple[str, str, tuple[Operation, ...]], ...]  # (name, displayName, operations)

    def all_operations(self) -> Iterable[Operation]:
        yield from self.operations
        for _, _, operations in self.resource_types:
            yield from operations

    def to_arm(self, expand: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": f"/providers/Microsoft.Authorization/providerOperations/{self.name}",
            "name": self.name,
            "type": PROVIDER_OPERATIONS_TYPE,
            "displayName": self.display_name,
        }
        if expand:
            body["resourceTypes"] = [{"name": name, "displayName": display, "operations": [o.to_arm() for o in ops]}
                                     for name, display, ops in self.resource_types]
        body["operations"] = [o.to_arm() for o in self.operations]
        return body


class ProviderOperations:
    """The vendored catalogue, with look-ups by namespace (case-insensitive) and by action."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.source: dict[str, str] = raw["source"]
        self.providers: dict[str, Provider] = {}
        for p in raw["providers"]:
            types = tuple((t["name"], t["displayName"], _operations(t["operations"])) for t in p["resourceTypes"])
            self.providers[fold(p["name"])] = Provider(p["name"], p["displayName"], _operations(p["operations"]), types)
        # Normalised action names, control plane and data plane apart (a few of Azure's names, such as
        # `…/analyzers:analyze/action`, are outside the action grammar and can never be asked of Cielo).
        control: set[str] = set()
        data: set[str] = set()
        for provider in self.providers.values():
            for op in provider.all_operations():
                try:
                    (data if op.is_data_action else control).add(normalize_action(op.name))
                except InvalidAction:
                    continue
        self._names: tuple[frozenset[str], frozenset[str]] = (frozenset(control), frozenset(data))

    @staticmethod
    def expand_of(raw: str | None) -> bool:
        """`$expand`: absent or `resourceTypes` (the spec's default) lists resource types; anything else is refused
        rather than ignored."""
        if raw is None or raw.lower() == EXPAND_RESOURCE_TYPES.lower():
            return True
        raise InvalidQueryParameterValue(f"The value '{raw[:100]}' of query parameter '$expand' is not supported; "
                                         f"the only value is '{EXPAND_RESOURCE_TYPES}'.")

    def list_providers(self, expand: bool) -> list[dict[str, Any]]:
        return [p.to_arm(expand) for p in sorted(self.providers.values(), key=lambda p: fold(p.name))]

    def get(self, namespace: str, expand: bool) -> dict[str, Any]:
        provider = self.providers.get(fold(namespace))
        if provider is None:
            raise InvalidResourceNamespace(
                f"The resource provider namespace '{namespace[:200]}' is not one this Cielo serves "
                f"({', '.join(p.name for p in self.providers.values())}).")
        return provider.to_arm(expand)

    def matches_any(self, pattern: str, data_action: bool) -> bool:
        """Does the permission `pattern` cover at least one operation of the providers Cielo serves?"""
        compiled = PatternSet((pattern,), strict=False)
        return any(compiled.matches(name) for name in self._names[data_action])

    def unknown_patterns(self, patterns: Iterable[str], data_action: bool) -> list[str]:
        return [p for p in patterns if not self.matches_any(p, data_action)]


@cache
def catalogue() -> ProviderOperations:
    """Loaded once per process, on first use."""
    raw = json.loads(resources.files("cielo.control").joinpath("data/provider_operations.json").read_bytes())
    return ProviderOperations(raw)
