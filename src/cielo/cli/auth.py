"""Signing in and getting tokens for the CLI, the way az does it against Entra.

Users sign in as the first-party Azure CLI public client; their refresh token is kept in the
token cache and renewed silently (it rotates on every use). Service principals keep the
credential they signed in with, as az does, in the same 0600 file.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from cielo.cli.common import CliError
from cielo.cli.common import prog_name as prog_name  # its home is common, which `cielo` itself loads first
from cielo.cli.profile import CliConfig, Profile, TokenCache, token_lock
from cielo.client.http import ApiError, CieloClient, default_verify
from cielo.core.ids import b64url, b64url_decode, b64url_json
from cielo.core.resources import AZURE_CLI_CLIENT_ID

ARM_RESOURCE = "https://management.core.windows.net/"
RENEW_BEFORE_S = 300


def open_client(config: CliConfig | None = None) -> CieloClient:
    config = config or CliConfig.load()
    return CieloClient(config.endpoint, default_verify(config.ca_bundle))


def resource_scope(resource: str) -> str:
    """az appends `/.default` to the resource as given, so ARM's becomes `https://management.core.windows.net//.default`."""
    return f"{resource}/.default"


def jwt_claims(token: str) -> dict[str, Any]:
    """Read a token's claims without verifying it (the client only needs tid/oid/upn for display)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(b64url_decode(payload))
    except (IndexError, ValueError) as exc:
        raise CliError("the token service returned a malformed token") from exc
    if not isinstance(claims, dict):
        raise CliError("the token service returned a malformed token")
    return claims


def certificate_assertion(pem_path: str, client_id: str, audience: str) -> str:
    """A client assertion signed with the certificate's key (RFC 7523; RS256 with x5t, as MSAL sends)."""
    from cryptography import x509  # imported here: most commands never need it, and az starts often
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        data = Path(pem_path).read_bytes()
        key = serialization.load_pem_private_key(data, password=None)
        cert = x509.load_pem_x509_certificate(data)
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read a private key and certificate from {pem_path}: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CliError("the certificate's key must be an RSA key")
    thumbprint = hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).digest()  # noqa: S324 - x5t is SHA-1
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "x5t": b64url(thumbprint)}
    claims = {"aud": audience, "iss": client_id, "sub": client_id, "jti": str(uuid.uuid4()),
              "nbf": now, "iat": now, "exp": now + 600}
    signing_input = (b64url_json(header) + "." + b64url_json(claims)).encode()
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return signing_input.decode() + "." + b64url(signature)


def login_hint() -> str:
    return f"Please run '{prog_name()} login' to setup account."


def _raise_api(exc: ApiError) -> CliError:
    if exc.code in ("invalid_grant", "interaction_required"):
        return CliError(f"{exc.message}\n{login_hint()}")
    return CliError(exc.message)


def request_token(client: CieloClient, account: dict[str, Any], scope: str, tenant: str) -> dict[str, Any]:
    """One token request with the account's own credential. Rotated refresh tokens are stored back."""
    kind = account["kind"]
    form: dict[str, str] = {"scope": scope, "client_id": account["client_id"], "client_info": "1"}
    if kind == "user":
        form.update({"grant_type": "refresh_token", "refresh_token": account["refresh_token"]})
        form["scope"] = f"{scope} offline_access openid profile"
    elif kind == "managedIdentity":
        from cielo.cli.managed_login import managed_identity_token

        return managed_identity_token(scope, account.get("client_id") or None)
    elif kind == "servicePrincipal":
        form["grant_type"] = "client_credentials"
        if account.get("secret"):
            form["client_secret"] = account["secret"]
        elif account.get("certificate"):
            audience = f"{client.endpoint}/{tenant}/oauth2/v2.0/token"
            form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            form["client_assertion"] = certificate_assertion(account["certificate"], account["client_id"], audience)
        elif account.get("federated_token"):
            form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            form["client_assertion"] = account["federated_token"]
        else:
            raise CliError(f"the stored service principal has no credential. {login_hint()}")
    else:
        raise CliError(f"unknown account kind {kind!r}. {login_hint()}")
    try:
        body = client.token(tenant, form)
    except ApiError as exc:
        raise _raise_api(exc) from exc
    if kind == "user" and body.get("refresh_token"):
        account["refresh_token"] = body["refresh_token"]
    return body


def current_account(subscription: str | None = None) -> tuple[dict[str, Any], dict[str, Any], TokenCache]:
    """(profile entry, credential record, cache) for the chosen or default subscription."""
    profile = Profile.load()
    entry = profile.default()
    if subscription:
        key = subscription.lower()
        entry = next((s for s in profile.subscriptions if key in (s["id"].lower(), s["name"].lower())), None)
        if entry is None:
            raise CliError(f"Subscription '{subscription}' not found. Check the spelling and casing and try again.")
    if entry is None:
        raise CliError(login_hint())
    cache = TokenCache()
    account = cache.accounts.get(entry["user"]["name"])
    if account is None:
        raise CliError(login_hint())
    return entry, account, cache


def get_access_token(resource: str | None = None, scope: str | None = None, tenant: str | None = None,
                     subscription: str | None = None) -> dict[str, Any]:
    """What `az account get-access-token` prints, using the cache when the token has 5+ minutes left.

    With --tenant the token is tenant-level, and az prints no subscription."""
    with token_lock():
        entry, account, cache = current_account(subscription)
        tenant_id = tenant or entry["tenantId"]
        wanted = scope or resource_scope(resource or ARM_RESOURCE)
        key = f"{entry['user']['name']}|{tenant_id}|{wanted}"
        cached = cache.access_tokens.get(key)
        now = time.time()
        if cached is None or cached["expires_on"] - RENEW_BEFORE_S < now:
            client = open_client()
            try:
                body = request_token(client, account, wanted, tenant_id)
            finally:
                client.close()
            expires_on = int(body.get("expires_on") or now + int(body["expires_in"]))
            cached = {"accessToken": body["access_token"], "expires_on": expires_on}
            cache.access_tokens[key] = cached
            cache.save()
    from cielo.cli.output import format_az_datetime

    result: dict[str, Any] = {
        "accessToken": cached["accessToken"],
        "expiresOn": format_az_datetime(cached["expires_on"]),
        "expires_on": int(cached["expires_on"]),
    }
    if tenant is None:
        result["subscription"] = entry["id"]
    result.update({"tenant": tenant_id, "tokenType": "Bearer"})
    return result


def user_login_form(username: str, password: str, scope: str) -> dict[str, str]:
    return {"client_id": AZURE_CLI_CLIENT_ID, "grant_type": "password", "username": username,
            "password": password, "scope": f"{scope} offline_access openid profile", "client_info": "1"}


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")
