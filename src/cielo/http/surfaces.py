"""Which surface (and so which error envelope) a request belongs to, decided by its path alone.

Used by api/errors.py's catch-all (the 500 in the surface's envelope) and by http/bodies.py (which
surfaces' bodies are scanned); it lives here, not in api/, because the body reader is shared with web/,
which must not import api/ (pyproject.toml, [tool.importlinter]).
"""

from __future__ import annotations

import enum


class Surface(enum.Enum):
    OAUTH = "oauth"  # token service, discovery, sign-in pages, the managed-identity endpoint
    ARM = "arm"
    GRAPH = "graph"
    DATA_PLANE = "data plane"


_ARM_ROOTS = frozenset({"subscriptions", "providers", "tenants", "metadata"})


def surface_of(path: str) -> Surface:
    """Which envelope a request's failures are rendered in, decided by its path as the routers are mounted:
    `/v1.0/...` Graph, `/accounts/{name}/openai/...` the data plane, `/subscriptions`, `/providers`,
    `/tenants`, `/metadata/endpoints` ARM; everything else is the token service's (`/{tenant}/oauth2/...`,
    discovery, `/common/...`, `/devicelogin`, `/cielo/managed-identity/...`)."""
    parts = path.lstrip("/").split("/", 3)
    first = parts[0].lower()
    if first == "v1.0":
        return Surface.GRAPH
    if first == "accounts" and len(parts) > 2 and parts[2] == "openai":
        return Surface.DATA_PLANE
    if first in _ARM_ROOTS:
        return Surface.ARM
    return Surface.OAUTH
