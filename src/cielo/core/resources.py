"""Resources (audiences) and scopes, as Entra parses them.

v2 requests name scopes (`https://cognitiveservices.azure.com/.default`); v1 requests name a
resource (`resource=https://cognitiveservices.azure.com`). Entra strips `/.default` and keeps the
rest verbatim, so `https://management.core.windows.net//.default` means the resource
`https://management.core.windows.net/` (with its trailing slash). Tokens carry that string as `aud`.
"""

from __future__ import annotations

from dataclasses import dataclass

OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})

# First-party resource applications Cielo knows, by identifier URI (lower-case, no trailing slash):
# their real application ids and the delegated scope that Azure's tokens for them carry.
FIRST_PARTY_RESOURCES: dict[str, tuple[str, str]] = {
    "https://cognitiveservices.azure.com": ("7d312290-28c8-473c-a0ed-8e53749b6d6d", "user_impersonation"),
    "https://management.azure.com": ("797f4846-ba00-4fd7-ba43-dac1f8f63013", "user_impersonation"),
    "https://management.core.windows.net": ("797f4846-ba00-4fd7-ba43-dac1f8f63013", "user_impersonation"),
    "https://graph.microsoft.com": ("00000003-0000-0000-c000-000000000000", "User.Read"),
    "https://ai.azure.com": ("18a66f5f-dbdf-4c17-9dd7-1634712a9cbe", "user_impersonation"),
    # The audience of tokens used as federated credentials (a managed identity or app presenting its own
    # Cielo token to another app: workload identity federation with Cielo as the issuer).
    "api://azureadtokenexchange": ("", "user_impersonation"),
}

# First-party public clients: Azure CLI (also azure-identity's default developer client id) and
# Azure PowerShell. Both exist in every tenant, as in Entra.
FIRST_PARTY_PUBLIC_CLIENTS: dict[str, str] = {
    "04b07795-8ddb-461a-bbee-02f9e1bf7b46": "Microsoft Azure CLI",
    "1950a258-227b-4e31-a9cf-717495945fc2": "Microsoft Azure PowerShell",
    "c44b4083-3bb0-49c1-b47d-974e53cbdf3c": "Azure Portal",
}

# The portal (Azure's own client id) receives codes only at its own page on this server's base URL.
PORTAL_CLIENT_ID = "c44b4083-3bb0-49c1-b47d-974e53cbdf3c"
PORTAL_REDIRECT_PATH = "/portal/signin-oidc"

AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
GRAPH_RESOURCE = "https://graph.microsoft.com"
FEDERATED_AUDIENCE = "api://AzureADTokenExchange"


def normalize_resource(resource: str) -> str:
    """The key a resource is looked up by: lower-case, without trailing slashes."""
    return resource.strip().rstrip("/").lower()


@dataclass(frozen=True)
class ScopeRequest:
    """A parsed `scope` parameter: one resource, the scopes asked of it, and the OIDC scopes."""

    resource: str | None
    resource_scopes: tuple[str, ...]
    oidc: frozenset[str]
    is_default: bool

    @property
    def wants_refresh_token(self) -> bool:
        return "offline_access" in self.oidc

    @property
    def wants_id_token(self) -> bool:
        return "openid" in self.oidc


def parse_oauth_scope(scope: str) -> ScopeRequest:
    """Split an OAuth 2.0 v2 `scope` parameter (not an ARM scope, which rbac.parse_scope reads). Raises
    ValueError when it names more than one resource."""
    resource: str | None = None
    names: list[str] = []
    oidc: set[str] = set()
    is_default = False
    for item in scope.split():
        if item.lower() in OIDC_SCOPES:
            oidc.add(item.lower())
            continue
        if item.endswith("/.default"):
            this_resource, name = item[: -len("/.default")], ".default"
        elif "/" in item.replace("://", ""):
            this_resource, _, name = item.rpartition("/")
        else:
            # A bare scope name (e.g. `User.Read`) means Microsoft Graph, as in Entra.
            this_resource, name = GRAPH_RESOURCE, item
        if resource is not None and normalize_resource(resource) != normalize_resource(this_resource):
            raise ValueError("scope names more than one resource")
        resource = this_resource
        if name == ".default":
            is_default = True
        else:
            names.append(name)
    return ScopeRequest(resource, tuple(names), frozenset(oidc), is_default)
