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
from cielo.cli.common import CliError, global_options, table_layout, warn
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


def _list(path: str, odata_filter: str | None, equals: dict[str, str | None] | None = None,
          starts: dict[str, str | None] | None = None) -> list[Any]:
    """A Graph collection, filtered as az's list commands filter: --filter, then `field eq 'value'` for exact
    options (--upn, --app-id) and `startswith(field,'value')` for --display-name, all joined with `and`."""
    clauses = [odata_filter] if odata_filter else []
    clauses += [f"{field} eq '{_quote(value)}'" for field, value in (equals or {}).items() if value]
    clauses += [f"startswith({field},'{_quote(value)}')" for field, value in (starts or {}).items() if value]
    params = {"$filter": " and ".join(clauses)} if clauses else {}
    values: list[Any] = _graph("GET", path, params=params)["value"]
    return values


def _graph_object_rows(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """az's `ad app list` / `ad sp list` table: DisplayName, Id, AppId, CreatedDateTime, by display name."""
    return [{"DisplayName": r.get("displayName"), "Id": r.get("id"), "AppId": r.get("appId"),
             "CreatedDateTime": r.get("createdDateTime")}
            for r in sorted(result, key=lambda item: str(item.get("displayName") or ""))]


def _end_after(years: int) -> str:
    end = dt.datetime.now(dt.UTC) + dt.timedelta(days=365 * years)
    return end.strftime("%Y-%m-%dT%H:%M:%SZ")


@click.group("ad")
def ad() -> None:
    """Manage the directory: users, groups, applications and service principals.

    \b
    Examples:
      cielo ad signed-in-user show --query userPrincipalName -o tsv
      cielo ad user create --display-name Ada --user-principal-name ada@cielo.local --password "$PASSWORD"
      cielo ad sp create-for-rbac -n my-app --role "Cognitive Services User" --scopes "$RESOURCE_ID"
      cielo ad sp list --display-name my-app -o table"""


# ----------------------------------------------------------------------------- users
@ad.group("user")
def user() -> None:
    """Manage users.

    \b
    Examples:
      cielo ad user create --display-name Ada --user-principal-name ada@cielo.local --password "$PASSWORD"
      cielo ad user list --display-name Ada --query "[].userPrincipalName" -o tsv
      cielo ad user update --id ada@cielo.local --password "$NEW_PASSWORD"
      cielo ad user delete --id ada@cielo.local"""


@user.command("create")
@click.option("--display-name", required=True, help="The user's display name.")
@click.option("--password", required=True, help="The user's password.")
@click.option("--user-principal-name", required=True, help="The sign-in name, e.g. ada@cielo.local.")
@click.option("--mail-nickname", default=None, help="Mail alias (default: the UPN's local part).")
@click.option("--force-change-password-next-sign-in", type=bool, default=False,
              help="Only false: Cielo does not make users change their password at sign-in (true is refused).")
@global_options
def user_create(display_name: str, password: str, user_principal_name: str, mail_nickname: str | None,
                force_change_password_next_sign_in: bool) -> Any:
    """Create a user."""
    if force_change_password_next_sign_in:
        raise CliError("Cielo does not make users change their password at sign-in: "
                       "--force-change-password-next-sign-in must be false.")
    return _graph("POST", "/users", {
        "accountEnabled": True, "displayName": display_name,
        "mailNickname": mail_nickname or user_principal_name.split("@")[0],
        "userPrincipalName": user_principal_name,
        "passwordProfile": {"password": password,
                            "forceChangePasswordNextSignIn": force_change_password_next_sign_in},
    })


@user.command("list")
@click.option("--upn", default=None, help="Only the user with this user principal name.")
@click.option("--display-name", default=None, help="Only users whose display name starts with this.")
@click.option("--filter", "odata_filter", default=None, help="OData filter, e.g. \"displayName eq 'Ada'\".")
@global_options
def user_list(upn: str | None, display_name: str | None, odata_filter: str | None) -> Any:
    """List users."""
    return _list("/users", odata_filter, {"userPrincipalName": upn}, {"displayName": display_name})


@user.command("show")
@click.option("--id", "user_id", required=True, help="The user's object id or user principal name.")
@global_options
def user_show(user_id: str) -> Any:
    """Show a user."""
    return _graph("GET", f"/users/{user_id}")


@user.command("update")
@click.option("--id", "user_id", required=True, help="The user's object id or user principal name.")
@click.option("--display-name", default=None, help="A new display name.")
@click.option("--password", default=None, help="A new password (the user's refresh tokens stop working).")
@click.option("--force-change-password-next-sign-in", type=bool, default=None,
              help="Only false: Cielo does not make users change their password at sign-in (true is refused).")
@click.option("--account-enabled", type=bool, default=None,
              help="false disables the account (its refresh tokens stop working), true enables it.")
@global_options
def user_update(user_id: str, display_name: str | None, password: str | None,
                force_change_password_next_sign_in: bool | None, account_enabled: bool | None) -> None:
    """Update a user, as `az ad user update` (prints nothing).

    \b
    Examples:
      cielo ad user update --id ada@cielo.local --display-name "Ada L."
      cielo ad user update --id ada@cielo.local --password "$NEW_PASSWORD"
      cielo ad user update --id ada@cielo.local --account-enabled false
    The administrator's password can also be reset with the server stopped: `cielo admin reset-password`."""
    body: dict[str, Any] = {}
    if account_enabled is not None:
        body["accountEnabled"] = account_enabled
    if display_name is not None:
        body["displayName"] = display_name
    if password is not None:
        body["passwordProfile"] = {"forceChangePasswordNextSignIn": force_change_password_next_sign_in,
                                   "password": password}
    elif force_change_password_next_sign_in is not None:
        body["passwordProfile"] = {"forceChangePasswordNextSignIn": force_change_password_next_sign_in}
    if not body:
        raise CliError("usage error: give at least one of --display-name, --password, "
                       "--force-change-password-next-sign-in, --account-enabled")
    _graph("PATCH", f"/users/{user_id}", body)


@user.command("delete")
@click.option("--id", "user_id", required=True, help="The user's object id or user principal name.")
@global_options
def user_delete(user_id: str) -> None:
    """Delete a user (their refresh tokens stop working at once)."""
    _graph("DELETE", f"/users/{user_id}")


@ad.group("signed-in-user")
def signed_in_user() -> None:
    """The signed-in user.

    \b
    Examples:
      cielo ad signed-in-user show --query id -o tsv"""


@signed_in_user.command("show")
@global_options
def signed_in_user_show() -> Any:
    """Show the signed-in user."""
    return _graph("GET", "/me")


# ----------------------------------------------------------------------------- groups
@ad.group("group")
def group() -> None:
    """Manage groups.

    \b
    Examples:
      cielo ad group create --display-name ml-team --mail-nickname ml-team
      cielo ad group member add -g ml-team --member-id "$(cielo ad user show --id ada@cielo.local --query id -o tsv)"
      cielo ad group member list -g ml-team -o table"""


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
@click.option("--display-name", default=None, help="Only groups whose display name starts with this.")
@click.option("--filter", "odata_filter", default=None, help="OData filter.")
@global_options
def group_list(display_name: str | None, odata_filter: str | None) -> Any:
    """List groups."""
    return _list("/groups", odata_filter, starts={"displayName": display_name})


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
    """Manage group members.

    \b
    Examples:
      cielo ad group member add -g ml-team --member-id OBJECT_ID
      cielo ad group member check -g ml-team --member-id OBJECT_ID"""


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


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a PEM or base64 string is no usable path (too long, NUL, ...)
        return False


def _certificate_der(cert: str) -> bytes:
    """A certificate given as az takes `--cert`: `@FILE`, a PEM string, or base64 DER (and, as before, a path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    where = "--cert"
    if cert.startswith("@") or ("-----BEGIN" not in cert and _is_file(cert)):
        path = Path(cert[1:] if cert.startswith("@") else cert).expanduser()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read --cert {path}: {exc.strerror or exc}") from exc
        where = str(path)
    else:
        data = cert.encode()
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
        der = base64.b64decode(b"".join(data.split()), validate=True)
        return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.DER)
    except ValueError as exc:  # binascii.Error is a ValueError too
        raise CliError(f"{where} holds no PEM or base64 DER certificate") from exc


def _reset_credential(app: dict[str, Any], *, append: bool, years: int, display_name: str | None,
                      create_cert: bool, cert: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {"appId": app["appId"], "tenant": _tenant()}
    if create_cert or cert:
        if create_cert:
            pem, der = _new_certificate(app["displayName"], years)
            result["fileWithCertAndPrivateKey"] = _write_cert_file(app["displayName"], pem)
        else:
            assert cert is not None
            der = _certificate_der(cert)
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
    """Manage application registrations.

    \b
    Examples:
      cielo ad app create --display-name my-api --identifier-uris api://my-api
      cielo ad app list --display-name my -o table
      cielo ad app credential reset --id APP_ID --append"""


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
@click.option("--display-name", default=None, help="Only apps whose display name starts with this.")
@click.option("--app-id", default=None, help="Only the app with this application id.")
@click.option("--filter", "odata_filter", default=None, help="OData filter.")
@global_options
@table_layout(_graph_object_rows)
def app_list(display_name: str | None, app_id: str | None, odata_filter: str | None) -> Any:
    """List application registrations."""
    return _list("/applications", odata_filter, {"appId": app_id}, {"displayName": display_name})


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
    """Manage an application's secrets and certificates.

    \b
    Examples:
      cielo ad app credential reset --id APP_ID --append --years 2
      cielo ad app credential reset --id APP_ID --cert @cert.pem
      cielo ad app credential list --id APP_ID --cert"""


@credential.command("reset")
@click.option("--id", "app_id", required=True, help="Application id or object id.")
@click.option("--append", is_flag=True, help="Keep the existing credentials.")
@click.option("--years", type=click.IntRange(1, 100), default=1, help="Years the credential is valid.")
@click.option("--display-name", default=None, help="A name for the credential.")
@click.option("--create-cert", is_flag=True, help="Create a self-signed certificate instead of a secret.")
@click.option("--cert", default=None,
              help="Register this certificate instead of a secret: @FILE (PEM), a PEM string or base64 DER.")
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
    """Manage federated identity credentials (workload identity federation).

    \b
    Examples:
      cielo ad app federated-credential create --id APP_ID --parameters @fic.json
      cielo ad app federated-credential list --id APP_ID"""


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
