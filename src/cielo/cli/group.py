"""`cielo group …`: resource groups, mirroring `az group`."""

from __future__ import annotations

from typing import Any

import click

from cielo.cli.armcall import arm, group_path, subscription_id, with_resource_group
from cielo.cli.common import CliError, global_options, table_layout


def _tags(values: tuple[str, ...]) -> dict[str, str] | None:
    if not values:
        return None
    tags: dict[str, str] = {}
    for item in values:
        key, _, value = item.partition("=")
        if not key:
            raise CliError(f"invalid tag '{item}'; use KEY=VALUE")
        tags[key] = value
    return tags


@click.group("group")
def group() -> None:
    """Manage resource groups.

    \b
    Examples:
      cielo group create -n my-rg -l local
      cielo group show -g cielo-rg --query id -o tsv
      cielo group list -o table
      cielo group delete -n my-rg --yes"""


@group.command("create")
@click.option("-n", "-g", "--name", "--resource-group", "name", required=True, help="Resource group name.")
@click.option("-l", "--location", required=True, help="Location, e.g. local or eastus.")
@click.option("--tags", multiple=True, help="Tags as KEY=VALUE (repeatable).")
@click.option("--subscription", default=None, help="Subscription name or id.")
@global_options
def group_create(name: str, location: str, tags: tuple[str, ...], subscription: str | None) -> Any:
    """Create (or update) a resource group."""
    return with_resource_group(arm("PUT", group_path(name, subscription), {"location": location, "tags": _tags(tags)}))


@group.command("show")
@click.option("-n", "-g", "--name", "--resource-group", "name", required=True, help="Resource group name.")
@click.option("--subscription", default=None, help="Subscription name or id.")
@global_options
def group_show(name: str, subscription: str | None) -> Any:
    """Show a resource group (its `id` is the scope for role assignments)."""
    return arm("GET", group_path(name, subscription))


@group.command("list")
@click.option("--subscription", default=None, help="Subscription name or id.")
@global_options
@table_layout(lambda result: [{"Name": r["name"], "Location": r["location"],
                               "Status": (r.get("properties") or {}).get("provisioningState")} for r in result])
def group_list(subscription: str | None) -> Any:
    """List resource groups."""
    return arm("GET", f"/subscriptions/{subscription_id(subscription)}/resourcegroups")["value"]


@group.command("exists")
@click.option("-n", "-g", "--name", "--resource-group", "name", required=True, help="Resource group name.")
@click.option("--subscription", default=None, help="Subscription name or id.")
@global_options
def group_exists(name: str, subscription: str | None) -> Any:
    """Print true or false."""
    try:
        arm("GET", group_path(name, subscription))
    except CliError as exc:
        if "ResourceGroupNotFound" in exc.message:
            return False
        raise
    return True


@group.command("delete")
@click.option("-n", "-g", "--name", "--resource-group", "name", required=True, help="Resource group name.")
@click.option("-y", "--yes", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--subscription", default=None, help="Subscription name or id.")
@global_options
def group_delete(name: str, yes: bool, subscription: str | None) -> None:
    """Delete a resource group and everything in it."""
    if not yes and not click.confirm(f"Are you sure you want to perform this operation? ({name})", err=True):
        return None
    arm("DELETE", group_path(name, subscription))
    return None
