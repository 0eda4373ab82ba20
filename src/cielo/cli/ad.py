"""`cielo ad …`: users, groups, applications and service principals, mirroring `az ad`.

Like az, these talk to a Microsoft Graph-compatible API (here Cielo's `/v1.0/…`) with a token for
`https://graph.microsoft.com` of the signed-in account.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import click

from cielo.cli.auth import current_account, get_access_token, open_client, prog_name
from cielo.cli.common import CliError, global_options, warn
from cielo.client.http import ApiError

GRAPH = "https://graph.microsoft.com"


def _graph(method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
    token = get_access_token(resource=GRAPH)["accessToken"]
    client = open_client()
    try:
        return client.request(method, "/v1.0" + path, token, body, params)
    except ApiError as exc:
        raise CliError(exc.message) from exc
    finally:
        client.close()


def _tenant() -> str:
    entry, _, _ = current_account()
    return str(entry["tenantId"])


def _quote(value: str) -> str:
    return value.replace("'", "''")


def _list(path: str, odata_filter: str | None, **equals: str | None) -> list[Any]:
    """A Graph collection, filtered like az's list commands: the first given `field eq 'value'`, else --filter."""
    params = {}
    chosen = next(((field, value) for field, value in equals.items() if value), None)
    if chosen is not None:
        params["$filter"] = f"{chosen[0]} eq '{_quote(chosen[1])}'"
    elif odata_filter:
        params["$filter"] = odata_filter
    values: list[Any] = _graph("GET", path, params=params)["value"]
    return values


def _end_after(years: int) -> str:
    end = dt.datetime.now(dt.UTC) + dt.timedelta(days=365 * years)
    return end.strftime("%Y-%m-%dT%H:%M:%SZ")


@click.group("ad")
def ad() -> None:
    """Manage the directory: users, groups, applications and service principals."""


# ----------------------------------------------------------------------------- users
@ad.group("user")
def user() -> None:
    """Manage users."""


@user.command("create")
@click.option("--display-name", required=True, help="The user's display name.")
@click.option("--password", required=True, help="The user's password.")
@click.option("--user-principal-name", required=True, help="The sign-in name, e.g. ada@cielo.local.")
@click.option("--mail-nickname", default=None, help="Mail alias (default: the UPN's local part).")
@click.option("--force-change-password-next-sign-in", type=bool, default=False,
              help="Accepted for az compatibility; Cielo does not force password changes.")
@global_options
def user_create(display_name: str, password: str, user_principal_name: str, mail_nickname: str | None,
                force_change_password_next_sign_in: bool) -> Any:
    """Create a user."""
    return _graph("POST", "/users", {
        "accountEnabled": True, "displayName": display_name,
        "mailNickname": mail_nickname or user_principal_name.split("@")[0],
        "userPrincipalName": user_principal_name,
        "passwordProfile": {"password": password,
                            "forceChangePasswordNextSignIn": force_change_password_next_sign_in},
    })


@user.command("list")
@click.option("--upn", default=None, help="Only the user with this user principal name.")
@click.option("--display-name", default=None, help="Only users with this display name.")
@click.option("--filter", "odata_filter", default=None, help="OData filter, e.g. \"displayName eq 'Ada'\".")
@global_options
def user_list(upn: str | None, display_name: str | None, odata_filter: str | None) -> Any:
    """List users."""
    return _list("/users", odata_filter, userPrincipalName=upn, displayName=display_name)


@user.command("show")
@click.option("--id", "user_id", required=True, help="The user's object id or user principal name.")
@global_options
def user_show(user_id: str) -> Any:
    """Show a user."""
    return _graph("GET", f"/users/{user_id}")


@user.command("delete")
@click.option("--id", "user_id", required=True, help="The user's object id or user principal name.")
@global_options
def user_delete(user_id: str) -> None:
    """Delete a user (their refresh tokens stop working at once)."""
    _graph("DELETE", f"/users/{user_id}")


@ad.group("signed-in-user")
def signed_in_user() -> None:
    """The signed-in user."""


@signed_in_user.command("show")
@global_options
def signed_in_user_show() -> Any:
    """Show the signed-in user."""
    return _graph("GET", "/me")


# ----------------------------------------------------------------------------- groups
@ad.group("group")
def group() -> None:
    """Manage groups."""


@group.command("create")
@click.option("--display-name", required=True, help="The group's display name.")
@click.option("--mail-nickname", required=True, help="The group's mail alias.")
@click.option("--description", default=None, help="A description.")
@global_options
def group_create(display_name: str, mail_nickname: str, description: str | None) -> Any:
    """Create a security group."""
    return _graph("POST", "/groups", {"displayName": display_name, "mailNickname": mail_nickname,
                                      "description": description, "mailEnabled": False,
                                      "securityEnabled": True})


@group.command("list")
@click.option("--display-name", default=None, help="Only groups with this display name.")
@click.option("--filter", "odata_filter", default=None, help="OData filter.")
@global_options
def group_list(display_name: str | None, odata_filter: str | None) -> Any:
    """List groups."""
    return _list("/groups", odata_filter, displayName=display_name)


@group.command("show")
@click.option("-g", "--group", "group_id", required=True, help="Group object id or display name.")
@global_options
def group_show(group_id: str) -> Any:
    """Show a group."""
    return _graph("GET", f"/groups/{group_id}")


@group.command("delete")
@click.option("-g", "--group", "group_id", required=True, help="Group object id or display name.")
@global_options
def group_delete(group_id: str) -> None:
    """Delete a group."""
    _graph("DELETE", f"/groups/{group_id}")


@group.group("member")
def member() -> None:
    """Manage group members."""


@member.command("add")
@click.option("-g", "--group", "group_id", required=True, help="Group object id or display name.")
@click.option("--member-id", required=True, help="Object id of the user, group or service principal.")
@global_options
def member_add(group_id: str, member_id: str) -> None:
    """Add a member to a group."""
    _graph("POST", f"/groups/{group_id}/members/$ref",
           {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{member_id}"})


@member.command("remove")
@click.option("-g", "--group", "group_id", required=True, help="Group object id or display name.")
@click.option("--member-id", required=True, help="Object id of the member.")
@global_options
def member_remove(group_id: str, member_id: str) -> None:
    """Remove a member from a group."""
    _graph("DELETE", f"/groups/{group_id}/members/{member_id}/$ref")


@member.command("list")
@click.option("-g", "--group", "group_id", required=True, help="Group object id or display name.")
@global_options
def member_list(group_id: str) -> Any:
    """List a group's direct members."""
    return _graph("GET", f"/groups/{group_id}/members")["value"]


@member.command("check")
@click.option("-g", "--group", "group_id", required=True, help="Group object id or display name.")
@click.option("--member-id", required=True, help="Object id of the possible member.")
@global_options
def member_check(group_id: str, member_id: str) -> Any:
    """Check whether an object is a direct member of a group."""
    members = _graph("GET", f"/groups/{group_id}/members")["value"]
    return {"value": any(m["id"] == member_id.lower() for m in members)}


# ----------------------------------------------------------------------------- applications
def _find_app(app_id: str) -> dict[str, Any]:
    found: dict[str, Any] = _graph("GET", f"/applications(appId='{app_id}')") if len(app_id) == 36 else {}
    return found


def _new_certificate(name: str, years: int) -> tuple[bytes, bytes]:
    """A self-signed certificate and its key, as az's --create-cert makes (PEM with both)."""
    # Imported here, as in auth: only certificate commands need cryptography.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from cielo.core.certs import self_signed_certificate

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = self_signed_certificate(key, "CLI-Login", dt.datetime.now(dt.UTC), dt.timedelta(days=365 * years))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    return key_pem + cert.public_bytes(serialization.Encoding.PEM), cert.public_bytes(serialization.Encoding.DER)


def _write_cert_file(name: str, pem: bytes) -> str:
    import os

    path = Path.home() / f"tmp{name.replace(' ', '')}{os.urandom(4).hex()}.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return str(path)


def _warn_credentials(result: dict[str, Any]) -> None:
    """az's warnings next to printed credentials (silenced by --only-show-errors)."""
    if result.get("fileWithCertAndPrivateKey"):
        warn(f"Please copy {result['fileWithCertAndPrivateKey']} to a safe place. When you run "
             f"'{prog_name()} login', provide the file path in the --password argument")
    if result.get("password"):
        warn("The output includes credentials that you must protect. Be sure that you do not include these "
             "credentials in your code or check the credentials into your source control.")


def _reset_credential(app: dict[str, Any], *, append: bool, years: int, display_name: str | None,
                      create_cert: bool, cert: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {"appId": app["appId"], "tenant": _tenant()}
    if create_cert or cert:
        if create_cert:
            pem, der = _new_certificate(app["displayName"], years)
            result["fileWithCertAndPrivateKey"] = _write_cert_file(app["displayName"], pem)
        else:
            assert cert is not None
            from cryptography import x509
            from cryptography.hazmat.primitives import serialization

            data = Path(cert).read_bytes()
            try:
                der = x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
            except ValueError as exc:
                raise CliError(f"{cert} holds no PEM certificate") from exc
        _graph("PATCH", f"/applications/{app['id']}", {"keyCredentials": [
            {"type": "AsymmetricX509Cert", "usage": "Verify", "key": base64.b64encode(der).decode(),
             "displayName": display_name}]})
        result["password"] = None
        return result
    secret = _graph("POST", f"/applications/{app['id']}/addPassword", {
        "passwordCredential": {"displayName": display_name, "endDateTime": _end_after(years)},
        "replace": not append,
    })
    result["password"] = secret["secretText"]
    return result


@ad.group("app")
def app() -> None:
    """Manage application registrations."""


@app.command("create")
@click.option("--display-name", required=True, help="The application's display name.")
@click.option("--is-fallback-public-client", type=bool, default=False, help="Allow public client flows.")
@click.option("--public-client-redirect-uris", multiple=True, help="Redirect URIs of a public client.")
@click.option("--web-redirect-uris", multiple=True, help="Redirect URIs of a web app.")
@click.option("--identifier-uris", multiple=True, help="Application ID URIs, e.g. api://my-api.")
@click.option("--requested-access-token-version", type=click.Choice(["1", "2"]), default=None,
              help="Token version issued when this app is the resource.")
@global_options
def app_create(display_name: str, is_fallback_public_client: bool, public_client_redirect_uris: tuple[str, ...],
               web_redirect_uris: tuple[str, ...], identifier_uris: tuple[str, ...],
               requested_access_token_version: str | None) -> Any:
    """Create an application registration."""
    body: dict[str, Any] = {"displayName": display_name, "isFallbackPublicClient": is_fallback_public_client,
                            "publicClient": {"redirectUris": list(public_client_redirect_uris)},
                            "web": {"redirectUris": list(web_redirect_uris)},
                            "identifierUris": list(identifier_uris)}
    if requested_access_token_version:
        body["api"] = {"requestedAccessTokenVersion": int(requested_access_token_version)}
    return _graph("POST", "/applications", body)


@app.command("list")
@click.option("--display-name", default=None, help="Only apps with this display name.")
@click.option("--app-id", default=None, help="Only the app with this application id.")
@click.option("--filter", "odata_filter", default=None, help="OData filter.")
@global_options
def app_list(display_name: str | None, app_id: str | None, odata_filter: str | None) -> Any:
    """List application registrations."""
    return _list("/applications", odata_filter, appId=app_id, displayName=display_name)


@app.command("show")
@click.option("--id", "app_id", required=True, help="Application id or object id.")
@global_options
def app_show(app_id: str) -> Any:
    """Show an application registration."""
    return _graph("GET", f"/applications/{app_id}")


@app.command("delete")
@click.option("--id", "app_id", required=True, help="Application id or object id.")
@global_options
def app_delete(app_id: str) -> None:
    """Delete an application registration and its service principal."""
    _graph("DELETE", f"/applications/{app_id}")


@app.group("credential")
def credential() -> None:
    """Manage an application's secrets and certificates."""


@credential.command("reset")
@click.option("--id", "app_id", required=True, help="Application id or object id.")
@click.option("--append", is_flag=True, help="Keep the existing credentials.")
@click.option("--years", type=click.IntRange(1, 100), default=1, help="Years the credential is valid.")
@click.option("--display-name", default=None, help="A name for the credential.")
@click.option("--create-cert", is_flag=True, help="Create a self-signed certificate instead of a secret.")
@click.option("--cert", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Register this PEM certificate instead of a secret.")
@global_options
def credential_reset(app_id: str, append: bool, years: int, display_name: str | None, create_cert: bool,
                     cert: str | None) -> Any:
    """Add a new secret (shown once) or certificate; without --append, others are removed."""
    found = _graph("GET", f"/applications/{app_id}")
    result = _reset_credential(found, append=append, years=years, display_name=display_name,
                               create_cert=create_cert, cert=cert)
    _warn_credentials(result)
    return result


@credential.command("list")
@click.option("--id", "app_id", required=True, help="Application id or object id.")
@click.option("--cert", is_flag=True, help="List certificates instead of secrets.")
@global_options
def credential_list(app_id: str, cert: bool) -> Any:
    """List an application's secrets (hints only) or certificates."""
    found = _graph("GET", f"/applications/{app_id}")
    return found["keyCredentials"] if cert else found["passwordCredentials"]


@app.group("federated-credential")
def federated_credential() -> None:
    """Manage federated identity credentials (workload identity federation)."""


@federated_credential.command("create")
@click.option("--id", "app_id", required=True, help="Application id or object id.")
@click.option("--parameters", required=True,
              help="JSON (or @file) with name, issuer, subject, audiences, description.")
@global_options
def fic_create(app_id: str, parameters: str) -> Any:
    """Trust tokens of an external issuer for this application."""
    text = Path(parameters[1:]).read_text() if parameters.startswith("@") else parameters
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise CliError(f"--parameters is not valid JSON: {exc}") from exc
    return _graph("POST", f"/applications/{app_id}/federatedIdentityCredentials", body)


@federated_credential.command("list")
@click.option("--id", "app_id", required=True, help="Application id or object id.")
@global_options
def fic_list(app_id: str) -> Any:
    """List federated identity credentials."""
    return _graph("GET", f"/applications/{app_id}/federatedIdentityCredentials")["value"]


@federated_credential.command("delete")
@click.option("--id", "app_id", required=True, help="Application id or object id.")
@click.option("--federated-credential-id", required=True, help="Credential id or name.")
@global_options
def fic_delete(app_id: str, federated_credential_id: str) -> None:
    """Delete a federated identity credential."""
    _graph("DELETE", f"/applications/{app_id}/federatedIdentityCredentials/{federated_credential_id}")


# ----------------------------------------------------------------------------- service principals
@ad.group("sp")
def sp() -> None:
    """Manage service principals."""


@sp.command("create-for-rbac")
@click.option("-n", "--name", "display_name", default=None, help="Display name (default azure-cli-<time>).")
@click.option("--years", type=click.IntRange(1, 100), default=1, help="Years the credential is valid.")
@click.option("--create-cert", is_flag=True, help="Create a self-signed certificate instead of a secret.")
@click.option("--cert", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Register this PEM certificate instead of a secret.")
@click.option("--role", default=None, help="Role to assign (needs the resource manager; not yet in Cielo).")
@click.option("--scopes", default=None, multiple=True, help="Scopes for --role.")
@global_options
def sp_create_for_rbac(display_name: str | None, years: int, create_cert: bool, cert: str | None,
                       role: str | None, scopes: tuple[str, ...]) -> Any:
    """Create an application, its service principal and a credential; prints appId, password, tenant."""
    if role or scopes:
        raise CliError("--role/--scopes need role assignments, which this Cielo does not serve yet.")
    name = display_name or "azure-cli-" + dt.datetime.now(dt.UTC).strftime("%Y-%m-%d-%H-%M-%S")
    created = _graph("POST", "/applications", {"displayName": name})
    _graph("POST", "/servicePrincipals", {"appId": created["appId"]})
    result = _reset_credential(created, append=False, years=years, display_name="rbac",
                               create_cert=create_cert, cert=cert)
    ordered = {"appId": result["appId"], "displayName": name}
    if "fileWithCertAndPrivateKey" in result:
        ordered["fileWithCertAndPrivateKey"] = result["fileWithCertAndPrivateKey"]
    ordered["password"] = result["password"]
    ordered["tenant"] = result["tenant"]
    _warn_credentials(ordered)
    return ordered


@sp.command("create")
@click.option("--id", "app_id", required=True, help="The application id.")
@global_options
def sp_create(app_id: str) -> Any:
    """Create the service principal of an application."""
    return _graph("POST", "/servicePrincipals", {"appId": app_id})


@sp.command("list")
@click.option("--display-name", default=None, help="Only service principals with this display name.")
@click.option("--filter", "odata_filter", default=None, help="OData filter.")
@click.option("--all", "show_all", is_flag=True, help="List all (az lists the first 100 by default).")
@global_options
def sp_list(display_name: str | None, odata_filter: str | None, show_all: bool) -> Any:
    """List service principals."""
    values = _list("/servicePrincipals", odata_filter, displayName=display_name)
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
