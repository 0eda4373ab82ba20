"""ARM ids as the portal shows them: their parts, a breadcrumb, a label per type, and each resource's blades.

A portal URL is `/portal/resource{ARM id}/{blade}`: ARM ids have an even number of segments, so the last one of
an odd number is the blade.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ACCOUNT = "microsoft.cognitiveservices/accounts"
DEPLOYMENT = "microsoft.cognitiveservices/accounts/deployments"
VM = "microsoft.compute/virtualmachines"
VMSS = "microsoft.compute/virtualmachinescalesets"
SITE = "microsoft.web/sites"
UAMI = "microsoft.managedidentity/userassignedidentities"

TYPES: dict[str, tuple[str, str]] = {  # lower-case type -> (label, api)
    ACCOUNT: ("Azure OpenAI", "cognitiveservices"),
    DEPLOYMENT: ("Model deployment", "cognitiveservices"),
    VM: ("Virtual machine", "compute"),
    VMSS: ("Virtual machine scale set", "compute"),
    SITE: ("App Service", "web"),
    UAMI: ("Managed Identity", "msi"),
}
WITH_IDENTITY = {VM, VMSS, SITE, ACCOUNT}


@dataclass(frozen=True)
class Scope:
    id: str
    subscription: str | None
    group: str | None
    type: str | None  # lower-case, e.g. microsoft.compute/virtualmachines; None for a subscription or group
    name: str | None

    @property
    def kind(self) -> str:
        if self.type:
            return self.type
        return "group" if self.group else "subscription" if self.subscription else "root"

    @property
    def api(self) -> str:
        return TYPES.get(self.type or "", ("", "resources"))[1]


def parse(arm_id: str) -> Scope:
    parts = [p for p in arm_id.split("/") if p]
    sub = parts[1] if len(parts) >= 2 and parts[0].lower() == "subscriptions" else None
    group = parts[3] if len(parts) >= 4 and parts[2].lower() == "resourcegroups" else None
    type_, name = None, None
    if len(parts) >= 8 and parts[4].lower() == "providers":
        names = parts[5:]
        namespace, rest = names[0], names[1:]
        type_ = "/".join([namespace, *rest[0::2]]).lower()
        name = rest[-1]
    return Scope("/" + "/".join(parts), sub, group, type_, name)


def split_blade(path: str) -> tuple[str, str]:
    """`/subscriptions/s/overview` -> (`/subscriptions/s`, `overview`)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) % 2 == 1:
        return "/" + "/".join(parts[:-1]), parts[-1]
    return "/" + "/".join(parts), "overview"


def type_label(arm_type: str, kind: str | None = None) -> str:
    label = TYPES.get(arm_type.lower(), (arm_type, ""))[0]
    if arm_type.lower() == SITE and kind and "functionapp" in kind:
        return "Function App"
    return label


def url(arm_id: str, blade: str = "overview") -> str:
    return f"/portal/resource{arm_id}/{blade}"


def crumbs_for(arm_id: str) -> list[tuple[str, str]]:
    scope = parse(arm_id)
    out = [("Home", "/")]
    if scope.subscription:
        out.append((f"Subscription {scope.subscription[:8]}…", url(f"/subscriptions/{scope.subscription}")))
    if scope.group:
        out.append((scope.group, url(f"/subscriptions/{scope.subscription}/resourceGroups/{scope.group}")))
    if scope.type:
        parts = [p for p in scope.id.split("/") if p]
        for end in range(8, len(parts) + 1, 2):
            out.append((parts[end - 1], url("/" + "/".join(parts[:end]))))
    return out


def blades_for(arm_id: str, resource: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """The resource menu: (blade, label)."""
    scope = parse(arm_id)
    out = [("overview", "Overview"), ("activity", "Activity log"), ("iam", "Access control (IAM)")]
    if scope.type in WITH_IDENTITY:
        out.append(("identity", "Identity"))
    if scope.type == ACCOUNT:
        out += [("keys", "Keys and Endpoint"), ("deployments", "Model deployments"), ("playground", "Chat playground"),
                ("usage", "Quotas")]
    if scope.kind == "subscription":
        out.append(("roles", "Roles"))
    return out
