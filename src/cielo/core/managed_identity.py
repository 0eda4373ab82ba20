"""Where and how a workload asks this host for a managed-identity token, as azure-identity looks for it.

App Service protocol (2019-08-01) when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set, else IMDS at
`AZURE_POD_IDENTITY_AUTHORITY_HOST` (default http://169.254.169.254) — what `cielo agent` serves. A
user-assigned identity is named by its client id or its resource id (sent as `mi_res_id` to App Service
and `msi_res_id` to IMDS).
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def token_request(resource: str, identity: str | None = None,
                  environ: Mapping[str, str] | None = None) -> tuple[str, dict[str, str], dict[str, str]]:
    """(url, query parameters, headers) of the token request for `resource` (a trailing `/.default` is dropped)."""
    env = os.environ if environ is None else environ
    params = {"resource": resource.removesuffix("/.default")}
    endpoint, header = env.get("IDENTITY_ENDPOINT"), env.get("IDENTITY_HEADER")
    if endpoint and header:
        if identity:
            params["mi_res_id" if identity.startswith("/") else "client_id"] = identity
        return endpoint, {"api-version": "2019-08-01", **params}, {"X-IDENTITY-HEADER": header}
    if identity:
        params["msi_res_id" if identity.startswith("/") else "client_id"] = identity
    host = env.get("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://169.254.169.254").rstrip("/")
    return f"{host}/metadata/identity/oauth2/token", {"api-version": "2018-02-01", **params}, {"Metadata": "true"}
