"""`cielo ad sp …`: service principals, mirroring `az ad sp` (create-for-rbac with its role assignments)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from cielo.cli.ad import _graph, _graph_object_rows, _list, _reset_credential, _warn_credentials
from cielo.cli.common import CliError, global_options, table_layout, warn


# ----------------------------------------------------------------------------- service principals
@click.group("sp")
def sp() -> None:
    """Manage service principals.

    \b
    Examples:
      cielo ad sp create-for-rbac -n my-app --role "Cognitive Services User" --scopes "$RESOURCE_ID"
      cielo ad sp list --display-name my-app --query "[].appId" -o tsv
      cielo ad sp show --id APP_ID"""


@sp.command("create-for-rbac")
@click.option("-n", "--name", "display_name", default=None, help="Display name (default azure-cli-<time>).")
@click.option("--years", type=click.IntRange(1, 100), default=1, help="Years the credential is valid.")
@click.option("--create-cert", is_flag=True, help="Create a self-signed certificate instead of a secret.")
@click.option("--cert", default=None,
              help="Register this certificate instead of a secret: @FILE (PEM), a PEM string or base64 DER.")
@click.option("--role", default=None, help="Role to assign to the new service principal (with --scopes).")
@click.option("--scopes", default=None, multiple=True,
              help="Scopes to assign --role at, space separated or repeated (with --role).")
@global_options
def sp_create_for_rbac(display_name: str | None, years: int, create_cert: bool, cert: str | None,
                       role: str | None, scopes: tuple[str, ...]) -> Any:
    """Create an application, its service principal and a credential; prints appId, password, tenant."""
    at = [scope for value in scopes for scope in value.split()]
    if bool(role) != bool(at):
        raise CliError("Usage error: To create role assignments, specify both --role and --scopes.")
    name = display_name or "azure-cli-" + dt.datetime.now(dt.UTC).strftime("%Y-%m-%d-%H-%M-%S")
    created = _graph("POST", "/applications", {"displayName": name})
    principal = _graph("POST", "/servicePrincipals", {"appId": created["appId"]})
    if role:
        _assign(role, principal["id"], at)
    result = _reset_credential(created, append=False, years=years, display_name="rbac",
                               create_cert=create_cert, cert=cert)
    ordered = {"appId": result["appId"], "displayName": name}
    if "fileWithCertAndPrivateKey" in result:
        ordered["fileWithCertAndPrivateKey"] = result["fileWithCertAndPrivateKey"]
    ordered["password"] = result["password"]
    ordered["tenant"] = result["tenant"]
    _warn_credentials(ordered)
    return ordered


def _assign(role: str, principal_id: str, scopes: list[str]) -> None:
    """az's role assignments of create-for-rbac: a warning per scope; one that exists already is fine."""
    from cielo.cli.common import ServiceError
    from cielo.cli.role import create_assignment

    for scope in scopes:
        warn(f"Creating '{role}' role assignment under scope '{scope}'")
        try:
            create_assignment(role, principal_id, "ServicePrincipal", scope)
        except ServiceError as exc:
            if exc.code != "RoleAssignmentExists":
                warn("  Role assignment creation failed.\n")
                raise
            warn("  Role assignment already exists.\n")


@sp.command("create")
@click.option("--id", "app_id", required=True, help="The application id.")
@global_options
def sp_create(app_id: str) -> Any:
    """Create the service principal of an application."""
    return _graph("POST", "/servicePrincipals", {"appId": app_id})


@sp.command("list")
@click.option("--display-name", default=None, help="Only service principals whose display name starts with this.")
@click.option("--filter", "odata_filter", default=None, help="OData filter.")
@click.option("--all", "show_all", is_flag=True, help="List all (az lists the first 100 by default).")
@global_options
@table_layout(_graph_object_rows)
def sp_list(display_name: str | None, odata_filter: str | None, show_all: bool) -> Any:
    """List service principals."""
    values = _list("/servicePrincipals", odata_filter, starts={"displayName": display_name})
    return values if show_all else values[:100]


@sp.command("show")
@click.option("--id", "sp_id", required=True, help="Object id or application id.")
@global_options
def sp_show(sp_id: str) -> Any:
    """Show a service principal."""
    return _graph("GET", f"/servicePrincipals/{sp_id}")


@sp.command("delete")
@click.option("--id", "sp_id", required=True, help="Object id or application id.")
@global_options
def sp_delete(sp_id: str) -> None:
    """Delete a service principal."""
    found = _graph("GET", f"/servicePrincipals/{sp_id}")
    _graph("DELETE", f"/servicePrincipals/{found['id']}")
