"""Calling the resource manager (and Graph lookups) with the signed-in account's tokens."""

from __future__ import annotations

from typing import Any

from cielo.cli.auth import ARM_RESOURCE, current_account, get_access_token, open_client
from cielo.cli.common import CliError, ServiceError
from cielo.client.http import ApiError

API_VERSIONS = {
    "resources": "2022-09-01",
    "cognitiveservices": "2023-05-01",
    "authorization": "2022-04-01",
}


def arm(method: str, path: str, body: Any = None, *, api: str = "resources",
        params: dict[str, str] | None = None) -> Any:
    token = get_access_token(resource=ARM_RESOURCE)["accessToken"]
    client = open_client()
    try:
        return client.request(method, path, token, body, {"api-version": API_VERSIONS[api], **(params or {})})
    except ApiError as exc:
        raise ServiceError.of(exc.status, exc.code, exc.message) from exc
    finally:
        client.close()


def graph(method: str, path: str, params: dict[str, str] | None = None) -> Any:
    token = get_access_token(resource="https://graph.microsoft.com")["accessToken"]
    client = open_client()
    try:
        return client.request(method, "/v1.0" + path, token, None, params)
    except ApiError as exc:
        raise CliError(f"({exc.code}) {exc.message}") from exc
    finally:
        client.close()


def graph_or_none(path: str) -> Any:
    try:
        return graph("GET", path)
    except CliError:
        return None


def subscription_id(subscription: str | None = None) -> str:
    entry, _, _ = current_account(subscription)
    return str(entry["id"])


def group_path(resource_group: str, subscription: str | None = None) -> str:
    return f"/subscriptions/{subscription_id(subscription)}/resourceGroups/{resource_group}"


def resource_group_of(resource_id: str) -> str | None:
    parts = resource_id.split("/")
    lower = [p.lower() for p in parts]
    return parts[lower.index("resourcegroups") + 1] if "resourcegroups" in lower else None


def flatten(resource: dict[str, Any]) -> dict[str, Any]:
    """az flattens `properties` of role assignments and definitions and adds `resourceGroup`."""
    out = {k: v for k, v in resource.items() if k != "properties"}
    out.update(resource.get("properties") or {})
    if "type" in (resource.get("properties") or {}):
        out["roleType"] = resource["properties"]["type"]
        out["type"] = resource["type"]
    out["resourceGroup"] = resource_group_of(str(resource.get("id", "")))
    return out


def with_resource_group(resource: dict[str, Any]) -> dict[str, Any]:
    """az adds `resourceGroup` to the resources it shows."""
    return {**resource, "resourceGroup": resource_group_of(str(resource.get("id", "")))}
