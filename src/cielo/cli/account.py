"""`cielo login`, `logout`, `account …` and `cloud …`, mirroring az."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from cielo.cli.auth import (
    ARM_RESOURCE,
    get_access_token,
    jwt_claims,
    open_client,
    request_token,
    resource_scope,
    user_login_form,
)
from cielo.cli.common import CliError, global_options, table_layout
from cielo.cli.profile import CliConfig, Profile, TokenCache, token_lock
from cielo.client.http import ApiError, CieloClient
from cielo.core.resources import AZURE_CLI_CLIENT_ID


def _device_login(client: CieloClient, tenant: str, scope: str) -> dict[str, Any]:
    full_scope = f"{scope} offline_access openid profile"
    try:
        flow = client.device_code(tenant, AZURE_CLI_CLIENT_ID, full_scope)
    except ApiError as exc:
        raise CliError(exc.message) from exc
    click.echo(flow["message"], err=True)
    deadline = time.time() + int(flow["expires_in"])
    interval = max(1, int(flow.get("interval", 5)))
    while time.time() < deadline:
        time.sleep(interval)
        try:
            return client.token(tenant, {
                "client_id": AZURE_CLI_CLIENT_ID, "device_code": flow["device_code"], "client_info": "1",
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            })
        except ApiError as exc:
            if exc.code == "authorization_pending":
                continue
            if exc.code == "slow_down":
                interval += 5
                continue
            raise CliError(exc.message) from exc
    raise CliError("The device code expired before sign-in completed.")


def _subscriptions(client: CieloClient, token: str) -> list[dict[str, Any]]:
    try:
        body = client.request("GET", "/subscriptions", token, params={"api-version": "2022-12-01"})
    except ApiError as exc:
        raise CliError(exc.message) from exc
    return list(body.get("value", []))


def _tenant_info(client: CieloClient, token: str) -> dict[str, Any]:
    try:
        body = client.request("GET", "/tenants", token, params={"api-version": "2022-12-01"})
    except ApiError:
        return {}
    values = body.get("value", []) if isinstance(body, dict) else []
    return values[0] if values else {}


def _entries(client: CieloClient, arm_token: str, user_name: str, user_type: str, tenant_id: str,
             allow_no_subscriptions: bool) -> list[dict[str, Any]]:
    subs = _subscriptions(client, arm_token)
    info = _tenant_info(client, arm_token)
    base: dict[str, Any] = {"environmentName": "Cielo", "homeTenantId": tenant_id, "managedByTenants": [],
            "user": {"name": user_name, "type": user_type},
            "tenantDefaultDomain": info.get("defaultDomain"), "tenantDisplayName": info.get("displayName")}
    entries = [
        {**base, "id": s["subscriptionId"], "name": s["displayName"], "state": s["state"],
         "tenantId": s["tenantId"], "isDefault": False}
        for s in subs
    ]
    if not entries:
        if not allow_no_subscriptions:
            raise CliError(f"No subscriptions found for {user_name}.")
        entries = [{**base, "id": tenant_id, "name": "N/A(tenant level account)", "state": "Enabled",
                    "tenantId": tenant_id, "isDefault": False}]
    return entries


@click.command("login")
@click.option("-u", "--username", default=None, help="User name, or the app id with --service-principal.")
@click.option("-p", "--password", default=None,
              help="Password, or with --service-principal a client secret or a PEM file with key and certificate.")
@click.option("--service-principal", is_flag=True, help="Sign in with a service principal.")
@click.option("--identity", is_flag=True,
              help="Sign in with this host's managed identity (--username CLIENT_ID for a user-assigned one).")
@click.option("--certificate", default=None, type=click.Path(dir_okay=False),
              help="With --service-principal: a PEM file holding the private key and certificate.")
@click.option("--federated-token", default=None,
              help="With --service-principal: a federated token (workload identity).")
@click.option("-t", "--tenant", default=None, help="The tenant (id or domain). Required for service principals.")
@click.option("--use-device-code", is_flag=True, help="Use the device code flow even where a browser is available.")
@click.option("--allow-no-subscriptions", is_flag=True, help="Sign in even without access to any subscription.")
@click.option("--scope", default=None, help="Scope to consent to while signing in (default: the resource manager).")
@global_options
def login(username: str | None, password: str | None, service_principal: bool, identity: bool, certificate: str | None,
          federated_token: str | None, tenant: str | None, use_device_code: bool,
          allow_no_subscriptions: bool, scope: str | None) -> list[dict[str, Any]]:
    """Sign in to Cielo: device code (default without a browser), browser, user name and password,
    or service principal (secret, certificate or federated token)."""
    config = CliConfig.load()
    client = open_client(config)
    arm_scope = scope or resource_scope(ARM_RESOURCE)
    account: dict[str, Any]
    try:
        if identity:
            from cielo.cli.managed_login import managed_identity_token

            body = managed_identity_token(ARM_RESOURCE, username)
            claims = jwt_claims(body["access_token"])
            tenant_id = claims["tid"]
            user_name = "userAssignedIdentity" if username else "systemAssignedIdentity"
            user_type = "servicePrincipal"
            account = {"kind": "managedIdentity", "client_id": (username or "").lower(), "tenant": tenant_id}
        elif service_principal:
            if not username or not tenant:
                raise CliError("--service-principal needs --username APP_ID and --tenant TENANT.")
            account = {"kind": "servicePrincipal", "client_id": username.lower()}
            if federated_token:
                account["federated_token"] = federated_token
            elif certificate or (password and Path(password).is_file()):
                account["certificate"] = str(Path(certificate or password or "").resolve())
            elif password:
                account["secret"] = password
            else:
                raise CliError("--service-principal needs --password, --certificate or --federated-token.")
            body = request_token(client, account, arm_scope, tenant)
            claims = jwt_claims(body["access_token"])
            tenant_id = claims["tid"]
            account["tenant"] = tenant_id
            user_name, user_type = username.lower(), "servicePrincipal"
        else:
            login_tenant = tenant or "organizations"
            if username:
                secret = password or click.prompt("Password", hide_input=True, err=True)
                try:
                    body = client.token(login_tenant, user_login_form(username, secret, arm_scope))
                except ApiError as exc:
                    raise CliError(exc.message) from exc
            else:
                # http.server and webbrowser: imported only by the login that may open a browser
                from cielo.cli.browser_login import browser_available, browser_login

                if use_device_code or not browser_available():
                    body = _device_login(client, login_tenant, arm_scope)
                else:
                    body = browser_login(client, login_tenant, arm_scope)
            claims = jwt_claims(body["access_token"])
            tenant_id = claims["tid"]
            name = claims.get("upn") or claims.get("unique_name") or claims.get("preferred_username")
            if not name:
                raise CliError("the token service returned a token that names no user")
            user_name, user_type = str(name), "user"
            account = {"kind": "user", "client_id": AZURE_CLI_CLIENT_ID, "tenant": tenant_id,
                       "refresh_token": body.get("refresh_token", "")}
        entries = _entries(client, body["access_token"], user_name, user_type, tenant_id,
                           allow_no_subscriptions)
        if identity:
            # az's labels: MSI, MSIClient-{clientId}, MSIResource-{resourceId}.
            info = ("MSI" if not username else f"MSIResource-{username}" if username.startswith("/")
                    else f"MSIClient-{username}")
            for entry in entries:
                entry["user"]["assignedIdentityInfo"] = info
    finally:
        client.close()
    with token_lock():
        cache = TokenCache()
        cache.forget(user_name)
        cache.accounts[user_name] = account
        cache.access_tokens[f"{user_name}|{tenant_id}|{arm_scope}"] = {
            "accessToken": body["access_token"],
            "expires_on": int(body.get("expires_on") or time.time() + int(body["expires_in"])),
        }
        cache.save()
        profile = Profile.load()
        profile.replace_account(user_name, entries)
        profile.save()
    return _listed(entries)


def _listed(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """az's `login` and `account list` print `cloudName` where the profile and `account show` have
    `environmentName`."""
    return [{("cloudName" if key == "environmentName" else key): value for key, value in entry.items()}
            for entry in entries]


@click.command("logout")
@click.option("-u", "--username", default=None, help="The account to sign out (default: the current one).")
@global_options
def logout(username: str | None) -> None:
    """Sign out: forget the account's credentials and tokens."""
    profile = Profile.load()
    current = profile.default()
    name = username or (current["user"]["name"] if current else None)
    if name is None:
        raise CliError("There are no active accounts.")
    with token_lock():
        cache = TokenCache()
        cache.forget(name)
        cache.save()
        profile = Profile.load()
        profile.subscriptions = [s for s in profile.subscriptions if s["user"]["name"] != name]
        if profile.subscriptions and not any(s.get("isDefault") for s in profile.subscriptions):
            profile.subscriptions[0]["isDefault"] = True
        profile.save()
    return None


@click.group("account")
def account() -> None:
    """Manage the signed-in accounts and their subscriptions.

    \b
    Examples:
      cielo account show --query user.name -o tsv
      cielo account list -o table
      cielo account set -s SUBSCRIPTION_NAME_OR_ID
      cielo account get-access-token --resource https://cognitiveservices.azure.com --query accessToken -o tsv"""


@account.command("show")
@click.option("-s", "--subscription", "--name", "-n", "subscription", default=None,
              help="Subscription name or id (default: the current one).")
@global_options
def account_show(subscription: str | None) -> dict[str, Any]:
    """Show the current (or given) subscription and the account signed in to it."""
    profile = Profile.load()
    if subscription:
        key = subscription.lower()
        entry = next((s for s in profile.subscriptions if key in (s["id"].lower(), s["name"].lower())), None)
        if entry is None:
            raise CliError(f"Subscription '{subscription}' not found. Check the spelling and casing and try again.")
        return entry
    entry = profile.default()
    if entry is None:
        from cielo.cli.auth import login_hint

        raise CliError(login_hint())
    return entry


def _account_rows(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """az's `account list -o table` (the profile module's `transform_account_list`)."""
    return [{"Name": r["name"], "CloudName": r["cloudName"], "SubscriptionId": r["id"], "TenantId": r["tenantId"],
             "State": r.get("state"), "IsDefault": r["isDefault"]} for r in result]


@account.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also list disabled subscriptions.")
@global_options
@table_layout(_account_rows)
def account_list(show_all: bool) -> list[dict[str, Any]]:
    """List the subscriptions of every signed-in account."""
    subs = Profile.load().subscriptions
    return _listed(subs if show_all else [s for s in subs if s.get("state") == "Enabled"])


@account.command("set")
@click.option("-s", "--subscription", "--name", "-n", "subscription", required=True,
              help="Subscription name or id.")
@global_options
def account_set(subscription: str) -> None:
    """Make a subscription the current one."""
    profile = Profile.load()
    if profile.set_default(subscription) is None:
        raise CliError(f"The subscription of '{subscription}' doesn't exist in cloud 'Cielo'.")
    profile.save()
    return None


@account.command("get-access-token")
@click.option("--resource", default=None, help="Resource to get a token for (default: the resource manager).")
@click.option("--scope", default=None, help="Scopes, space separated (instead of --resource).")
@click.option("-t", "--tenant", default=None, help="Tenant to get the token in.")
@click.option("-s", "--subscription", default=None, help="Subscription whose account and tenant to use.")
@click.option("--resource-type", default=None,
              type=click.Choice(["aad-graph", "arm", "batch", "data-lake", "media", "ms-graph", "oss-rdbms"]),
              help="A resource by its type.")
@global_options
def account_get_access_token(resource: str | None, scope: str | None, tenant: str | None,
                             subscription: str | None, resource_type: str | None) -> dict[str, Any]:
    """Get an access token, as `az account get-access-token` prints it."""
    if resource and scope:
        raise CliError("usage error: --resource and --scope can't be used together.")
    if resource_type:
        resource = {"arm": ARM_RESOURCE, "ms-graph": "https://graph.microsoft.com/"}.get(resource_type)
        if resource is None:
            raise CliError(f"resource type {resource_type} is not served by Cielo")
    return get_access_token(resource, scope, tenant, subscription)


@click.group("cloud")
def cloud() -> None:
    """Choose which Cielo the CLI talks to, and which CA it trusts for it.

    The CA bundle is the first of: `--ca-bundle` of `cloud set`, CIELO_CA_BUNDLE, REQUESTS_CA_BUNDLE or
    SSL_CERT_FILE, the bundle in the data directory (CIELO_DATA_DIR, default ~/.local/share/cielo).

    \b
    Examples:
      cielo cloud set --endpoint https://cielo.example:8443 --ca-bundle ./bundle.pem
      cielo cloud show"""


@cloud.command("set")
@click.option("--endpoint", required=True, help="Cielo's base URL, e.g. https://cielo.example:8443.")
@click.option("--ca-bundle", default=None, type=click.Path(exists=True, dir_okay=False),
              help="PEM bundle to trust for it (default: CIELO_CA_BUNDLE, else REQUESTS_CA_BUNDLE or "
                   "SSL_CERT_FILE, else the local data directory's).")
@global_options
def cloud_set(endpoint: str, ca_bundle: str | None) -> dict[str, Any]:
    """Point the CLI at a Cielo (also: env CIELO_ENDPOINT)."""
    if not endpoint.startswith("https://"):
        raise CliError("the endpoint must be an https URL")
    config = CliConfig.load()
    config.endpoint_setting = endpoint.rstrip("/")
    if ca_bundle:
        config.ca_bundle = os.path.abspath(ca_bundle)
    config.save()
    return {"endpoint": config.endpoint, "caBundle": config.ca_bundle}


@cloud.command("show")
@global_options
def cloud_show() -> dict[str, Any]:
    """Show the Cielo the CLI talks to."""
    from cielo.client.http import ca_bundle_choice

    config = CliConfig.load()
    trusted, source = ca_bundle_choice(config.ca_bundle)
    return {"name": "Cielo", "endpoint": config.endpoint, "caBundle": config.ca_bundle,
            "endpointFromEnvironment": bool(os.environ.get("CIELO_ENDPOINT")),
            "trustedCaBundle": trusted if isinstance(trusted, str) else None, "trustedCaBundleSource": source,
            "python": sys.executable}
