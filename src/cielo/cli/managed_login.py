"""`cielo login --identity`: tokens from the managed-identity endpoint of this host, as `az login --identity`.

App Service (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`) when set, else IMDS at
`AZURE_POD_IDENTITY_AUTHORITY_HOST` or http://169.254.169.254 (what `cielo agent` serves).
A user-assigned identity is named by its client id or, as az also accepts, its resource id
(sent as `mi_res_id` to App Service and `msi_res_id` to IMDS).
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from cielo.cli.common import CliError


def _selector(identity: str | None, resource_id_param: str) -> dict[str, str]:
    if not identity:
        return {}
    return {resource_id_param: identity} if identity.startswith("/") else {"client_id": identity}


def managed_identity_token(resource: str, client_id: str | None) -> dict[str, Any]:
    """`client_id`: a user-assigned identity's client id or resource id; None for the system-assigned one."""
    resource = resource.removesuffix("/.default")
    endpoint, header = os.environ.get("IDENTITY_ENDPOINT"), os.environ.get("IDENTITY_HEADER")
    try:
        if endpoint and header:
            params = {"api-version": "2019-08-01", "resource": resource, **_selector(client_id, "mi_res_id")}
            response = httpx.get(endpoint, params=params, headers={"X-IDENTITY-HEADER": header}, timeout=30)
        else:
            host = os.environ.get("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://169.254.169.254").rstrip("/")
            params = {"api-version": "2018-02-01", "resource": resource, **_selector(client_id, "msi_res_id")}
            response = httpx.get(f"{host}/metadata/identity/oauth2/token", params=params,
                                 headers={"Metadata": "true"}, timeout=30)
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
