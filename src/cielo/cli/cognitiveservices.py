"""`cielo cognitiveservices …`: accounts, keys and deployments, mirroring `az cognitiveservices`."""

from __future__ import annotations

from typing import Any

import click

from cielo.cli.armcall import arm, group_path, subscription_id, with_resource_group
from cielo.cli.common import global_options

PROVIDER = "providers/Microsoft.CognitiveServices/accounts"


def _account_path(resource_group: str, name: str, subscription: str | None) -> str:
    return f"{group_path(resource_group, subscription)}/{PROVIDER}/{name}"


def _call(method: str, path: str, body: Any = None) -> Any:
    return arm(method, path, body, api="cognitiveservices")


@click.group("cognitiveservices")
def cognitiveservices() -> None:
    """Manage Azure OpenAI (Cognitive Services) accounts.

    \b
    Examples:
      cielo cognitiveservices account show -n cielo-openai -g cielo-rg --query properties.endpoint -o tsv
      cielo cognitiveservices account deployment list -n cielo-openai -g cielo-rg -o table"""


@cognitiveservices.group("account")
def account() -> None:
    """Manage accounts.

    \b
    Examples:
      cielo cognitiveservices account create -n my-oai -g my-rg -l local --kind OpenAI --sku S0 --yes
      cielo cognitiveservices account list -g my-rg -o table"""


_RG = click.option("-g", "--resource-group", required=True, help="Resource group name.")
_NAME = click.option("-n", "--name", required=True, help="Account name.")
_SUB = click.option("--subscription", default=None, help="Subscription name or id.")


@account.command("create")
@_NAME
@_RG
@click.option("-l", "--location", required=True, help="Location.")
@click.option("--kind", default="OpenAI", show_default=True, help="OpenAI, AIServices or CognitiveServices.")
@click.option("--sku", "--sku-name", "sku", default="S0", show_default=True, help="Pricing tier.")
@click.option("--custom-domain", default=None, help="Custom subdomain; the endpoint is built from it.")
@click.option("--disable-local-auth", type=bool, default=None, help="Refuse API keys (Entra ID only).")
@click.option("--yes", is_flag=True, help="Accepted for az compatibility (no terms to accept).")
@_SUB
@global_options
def account_create(name: str, resource_group: str, location: str, kind: str, sku: str, custom_domain: str | None,
                   disable_local_auth: bool | None, yes: bool, subscription: str | None) -> Any:
    """Create an account."""
    properties: dict[str, Any] = {}
    if custom_domain:
        properties["customSubDomainName"] = custom_domain
    if disable_local_auth is not None:
        properties["disableLocalAuth"] = disable_local_auth
    body = {"location": location, "kind": kind, "sku": {"name": sku}, "properties": properties}
    return with_resource_group(_call("PUT", _account_path(resource_group, name, subscription), body))


@account.command("update")
@_NAME
@_RG
@click.option("--disable-local-auth", type=bool, default=None, help="Refuse API keys (Entra ID only).")
@_SUB
@global_options
def account_update(name: str, resource_group: str, disable_local_auth: bool | None, subscription: str | None) -> Any:
    """Update an account."""
    properties: dict[str, Any] = {}
    if disable_local_auth is not None:
        properties["disableLocalAuth"] = disable_local_auth
    return with_resource_group(_call("PATCH", _account_path(resource_group, name, subscription),
                                     {"properties": properties}))


@account.command("show")
@_NAME
@_RG
@_SUB
@global_options
def account_show(name: str, resource_group: str, subscription: str | None) -> Any:
    """Show an account (`--query properties.endpoint` gives its endpoint)."""
    return with_resource_group(_call("GET", _account_path(resource_group, name, subscription)))


@account.command("list")
@click.option("-g", "--resource-group", default=None, help="Resource group name (default: all).")
@_SUB
@global_options
def account_list(resource_group: str | None, subscription: str | None) -> Any:
    """List accounts."""
    if resource_group:
        path = f"{group_path(resource_group, subscription)}/{PROVIDER}"
    else:
        path = f"/subscriptions/{subscription_id(subscription)}/{PROVIDER}"
    return [with_resource_group(a) for a in _call("GET", path)["value"]]


@account.command("delete")
@_NAME
@_RG
@_SUB
@global_options
def account_delete(name: str, resource_group: str, subscription: str | None) -> None:
    """Delete an account and its deployments."""
    _call("DELETE", _account_path(resource_group, name, subscription))


@account.group("keys")
def keys() -> None:
    """Manage an account's API keys.

    \b
    Examples:
      cielo cognitiveservices account keys list -n cielo-openai -g cielo-rg --query key1 -o tsv
      cielo cognitiveservices account keys regenerate -n cielo-openai -g cielo-rg --key-name key2"""


@keys.command("list")
@_NAME
@_RG
@_SUB
@global_options
def keys_list(name: str, resource_group: str, subscription: str | None) -> Any:
    """List the account's keys."""
    return _call("POST", f"{_account_path(resource_group, name, subscription)}/listKeys")


@keys.command("regenerate")
@_NAME
@_RG
@click.option("--key-name", required=True, type=click.Choice(["key1", "key2"], case_sensitive=False))
@_SUB
@global_options
def keys_regenerate(name: str, resource_group: str, key_name: str, subscription: str | None) -> Any:
    """Regenerate one key; the other keeps working."""
    return _call("POST", f"{_account_path(resource_group, name, subscription)}/regenerateKey",
                 {"keyName": "Key1" if key_name.lower() == "key1" else "Key2"})


@account.group("deployment")
def deployment() -> None:
    """Manage model deployments.

    \b
    Examples:
      cielo cognitiveservices account deployment create -n my-oai -g my-rg --deployment-name chat \\
          --model-name smollm2 --model-version 1 --model-format Cielo --sku-capacity 10
      cielo cognitiveservices account deployment list -n my-oai -g my-rg --query "[].name\""""


_DEPLOYMENT = click.option("--deployment-name", required=True, help="Deployment name.")


@deployment.command("create")
@_NAME
@_RG
@_DEPLOYMENT
@click.option("--model-name", required=True, help="Model name, e.g. SmolLM2-135M-Instruct.")
@click.option("--model-version", default=None, help="Model version.")
@click.option("--model-format", default=None, help="Model format, e.g. HuggingFace or OpenAI.")
@click.option("--sku-capacity", "--capacity", "capacity", type=int, default=1, show_default=True,
              help="Capacity in thousands of tokens per minute.")
@click.option("--sku-name", "--sku", "sku_name", default="Standard", show_default=True, help="Deployment SKU.")
@_SUB
@global_options
def deployment_create(name: str, resource_group: str, deployment_name: str, model_name: str,
                      model_version: str | None, model_format: str | None, capacity: int, sku_name: str,
                      subscription: str | None) -> Any:
    """Create (or update) a deployment."""
    model = {"name": model_name, "version": model_version, "format": model_format}
    body = {"sku": {"name": sku_name, "capacity": capacity},
            "properties": {"model": {k: v for k, v in model.items() if v}}}
    path = f"{_account_path(resource_group, name, subscription)}/deployments/{deployment_name}"
    return with_resource_group(_call("PUT", path, body))


@deployment.command("show")
@_NAME
@_RG
@_DEPLOYMENT
@_SUB
@global_options
def deployment_show(name: str, resource_group: str, deployment_name: str, subscription: str | None) -> Any:
    """Show a deployment."""
    path = f"{_account_path(resource_group, name, subscription)}/deployments/{deployment_name}"
    return with_resource_group(_call("GET", path))


@deployment.command("list")
@_NAME
@_RG
@_SUB
@global_options
def deployment_list(name: str, resource_group: str, subscription: str | None) -> Any:
    """List an account's deployments."""
    path = f"{_account_path(resource_group, name, subscription)}/deployments"
    return [with_resource_group(d) for d in _call("GET", path)["value"]]


@deployment.command("delete")
@_NAME
@_RG
@_DEPLOYMENT
@_SUB
@global_options
def deployment_delete(name: str, resource_group: str, deployment_name: str, subscription: str | None) -> None:
    """Delete a deployment."""
    _call("DELETE", f"{_account_path(resource_group, name, subscription)}/deployments/{deployment_name}")
