"""ARM resource ids: parsing and building `/subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{type}/{name}`.

ARM ids are case-insensitive; Cielo stores them with their case preserved and compares them by
their lower-case `key`.
"""

from __future__ import annotations

from dataclasses import dataclass

RG_TYPE = "Microsoft.Resources/resourceGroups"


class InvalidResourceId(ValueError):
    pass


@dataclass(frozen=True)
class ResourceId:
    subscription: str
    resource_group: str | None = None
    namespace: str | None = None
    types: tuple[str, ...] = ()
    names: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        out = f"/subscriptions/{self.subscription}"
        if self.resource_group is not None:
            out += f"/resourceGroups/{self.resource_group}"
        if self.namespace is not None:
            out += f"/providers/{self.namespace}"
            for type_, name in zip(self.types, self.names, strict=True):
                out += f"/{type_}/{name}"
        return out

    @property
    def key(self) -> str:
        return self.id.lower()

    @property
    def type(self) -> str:
        if self.namespace is None:
            return RG_TYPE if self.resource_group is not None else "Microsoft.Resources/subscriptions"
        return "/".join((self.namespace, *self.types))

    @property
    def name(self) -> str:
        if self.names:
            return self.names[-1]
        return self.resource_group if self.resource_group is not None else self.subscription

    def child(self, type_: str, name: str, namespace: str | None = None) -> ResourceId:
        if self.namespace is None:
            if namespace is None:
                raise InvalidResourceId("a top-level resource needs a provider namespace")
            return ResourceId(self.subscription, self.resource_group, namespace, (type_,), (name,))
        return ResourceId(self.subscription, self.resource_group, self.namespace, (*self.types, type_),
                          (*self.names, name))

    @property
    def parent(self) -> ResourceId | None:
        if len(self.types) > 1:
            return ResourceId(self.subscription, self.resource_group, self.namespace, self.types[:-1],
                              self.names[:-1])
        if self.namespace is not None:
            return ResourceId(self.subscription, self.resource_group)
        if self.resource_group is not None:
            return ResourceId(self.subscription)
        return None


def parse(resource_id: str) -> ResourceId:
    """Parse a full ARM id (case-insensitive keywords, case kept in names)."""
    parts = resource_id.strip("/").split("/")
    if len(parts) < 2 or parts[0].lower() != "subscriptions" or not parts[1]:
        raise InvalidResourceId(f"'{resource_id}' is not a valid resource id")
    subscription = parts[1]
    rest = parts[2:]
    resource_group = None
    if rest[:1] and rest[0].lower() == "resourcegroups":
        if len(rest) < 2 or not rest[1]:
            raise InvalidResourceId(f"'{resource_id}' is not a valid resource id")
        resource_group, rest = rest[1], rest[2:]
    if not rest:
        return ResourceId(subscription, resource_group)
    if rest[0].lower() != "providers" or len(rest) < 4 or len(rest) % 2 != 0:
        raise InvalidResourceId(f"'{resource_id}' is not a valid resource id")
    namespace = rest[1]
    pairs = rest[2:]
    if any(not p for p in pairs):
        raise InvalidResourceId(f"'{resource_id}' is not a valid resource id")
    return ResourceId(subscription, resource_group, namespace, tuple(pairs[0::2]), tuple(pairs[1::2]))
