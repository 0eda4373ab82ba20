"""`cielo login --identity`: tokens from the managed-identity endpoint of this host, as `az login --identity`.

App Service (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`) when set, else IMDS at
`AZURE_POD_IDENTITY_AUTHORITY_HOST` or http://169.254.169.254 (what `cielo agent` serves).
A user-assigned identity is named by its client id or, as az also accepts, its resource id
(sent as `mi_res_id` to App Service and `msi_res_id` to IMDS).
"""

from __future__ import annotations

from typing import Any

import httpx

from cielo.cli.common import CliError
from cielo.core.managed_identity import token_request


def managed_identity_token(resource: str, client_id: str | None) -> dict[str, Any]:
    """`client_id`: a user-assigned identity's client id or resource id; None for the system-assigned one."""
    url, params, headers = token_request(resource, client_id)
    try:
        response = httpx.get(url, params=params, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise CliError(f"Failed to connect to the managed identity endpoint: {exc}. Is a host agent running "
                       "(`cielo agent`)?") from exc
    try:
        body: dict[str, Any] = response.json()
    except ValueError as exc:
        raise CliError(f"The managed identity endpoint answered {response.status_code} without JSON.") from exc
    if response.status_code != 200:
        message = body.get("error_description") or body.get("message") or body.get("error") or body
        raise CliError(f"Failed to get a managed identity token: {message}")
    return {"access_token": body["access_token"], "expires_on": int(body["expires_on"])}
