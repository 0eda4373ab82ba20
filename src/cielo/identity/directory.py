"""Directory administration: users, groups, applications, service principals and credentials.

These are the operations behind the Graph-compatible API and `cielo ad`. Secrets are returned
once, on creation, and stored only as hashes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cielo.core.clock import Clock
from cielo.core.ids import new_client_secret, new_guid
from cielo.errors import (
    BadRequest,
    DuplicateKey,
    FederatedCredentialExists,
    GraphBadRequest,
    GraphObjectExists,
    GraphResourceNotFound,
)
from cielo.identity.secrets import hash_password, hash_secret
from cielo.store.directory import DirectoryRepo
from cielo.store.models import (
    Application,
    FederatedCredential,
    Group,
    KeyCredential,
    PasswordCredential,
    ServicePrincipal,
    Subscription,
    Tenant,
    User,
)


class UserGrants(Protocol):
    """The token service's stored grants (refresh tokens, consents): `cielo.store.grants.GrantRepo`."""

    def revoke_user(self, user_id: str) -> None: ...


class PrincipalAccess(Protocol):
    """Role assignments and the RBAC index: `cielo.control.access.AccessService`."""

    def remove_principal(self, principal_id: str) -> None: ...


@dataclass(frozen=True)
class PrincipalCleanup:
    """What must go with a deleted principal besides its directory record: its grants and its role assignments
    (removing them refreshes the RBAC index, so the very next request sees the principal hold nothing)."""

    grants: UserGrants
    access: PrincipalAccess


@dataclass(frozen=True)
class NewSecret:
    credential: PasswordCredential
    secret_text: str


def _check_password(password: str) -> None:
    classes = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if len(password) < 8 or len(password) > 256 or classes < 3:
        raise GraphBadRequest(
            "The specified password does not comply with password complexity requirements. Use at least "
            "8 characters with three of: lower case, upper case, digits, symbols.",
        )


def _upn_taken() -> BadRequest:
    """Graph answers a taken userPrincipalName with 400 `Request_BadRequest` (details: ObjectConflict on
    userPrincipalName), whether the other user existed before or was stored a moment earlier by another worker."""
    return GraphBadRequest("Another object with the same value for property userPrincipalName already exists.")


def reset_password_offline(data_dir: Path, db_path: Path, user: str, password: str, clock: Clock,
                           database_url: str | None = None) -> User:
    """`cielo admin reset-password`: a user's new password written straight into a data directory, through the
    store, argon2-hashed, so an administrator who lost theirs need not wipe it. Meant for a stopped server; a
    running one sees the change too (the directory's generation marker tells its caches). The user's refresh
    tokens are revoked, as with a reset through the API."""
    from cielo.store.datadir import open_database
    from cielo.store.generation import Generation
    from cielo.store.grants import GrantRepo

    engine, _ = open_database(data_dir, db_path, database_url)
    try:
        repo = DirectoryRepo(engine, on_change=Generation(data_dir / "generation").bump)
        found = repo.find_user(user)
        tenant = repo.find_tenant(found.tenant_id) if found is not None else None
        if found is None or tenant is None:
            raise GraphResourceNotFound(f"There is no user '{user}' in {data_dir}.")
        return DirectoryService(repo, clock).update_user(tenant, found.object_id, acting_user_id=None,
                                                         grants=GrantRepo(engine), password=password)
    finally:
        engine.dispose()


class DirectoryService:
    def __init__(self, repo: DirectoryRepo, clock: Clock) -> None:
        self.repo = repo
        self._clock = clock

    # ----------------------------------------------------------------- users
    def create_user(
        self, tenant: Tenant, upn: str, display_name: str, password: str, *, is_admin: bool = False
    ) -> User:
        upn = upn.strip()
        if "@" not in upn or upn.startswith("@") or upn.endswith("@") or len(upn) > 113:
            raise GraphBadRequest(
                f"Invalid value specified for property 'userPrincipalName' of resource 'User': {upn!r}.",
            )
        _check_password(password)
        if self.repo.find_user(upn) is not None:
            raise _upn_taken()
        user = User(
            object_id=new_guid(),
            tenant_id=tenant.id,
            upn=upn,
            display_name=display_name.strip() or upn.split("@")[0],
            password_hash=hash_password(password),
            is_admin=is_admin,
            account_enabled=True,
            created_at=self._clock.now(),
        )
        try:
            self.repo.create_user(user)
        except DuplicateKey as exc:  # another worker stored the same UPN a moment ago
            raise _upn_taken() from exc
        return user

    def find_tenant(self, id_or_domain: str) -> Tenant | None:
        return self.repo.find_tenant(id_or_domain)

    def list_subscriptions(self, tenant_id: str | None = None) -> list[Subscription]:
        return self.repo.list_subscriptions(tenant_id)

    def user_by_id(self, object_id: str) -> User | None:
        return self.repo.get_user(object_id)

    def list_users(self, tenant: Tenant) -> list[User]:
        return self.repo.list_users(tenant.id)

    def delete_user(self, tenant: Tenant, id_or_upn: str, *, acting_user_id: str, cleanup: PrincipalCleanup) -> None:
        """Delete a user of `tenant` (not oneself): its record, then its grants, then its role assignments (and
        with them its entries in the RBAC index), in this order and always together."""
        user = self.get_user(tenant, id_or_upn)
        if user.object_id == acting_user_id:
            raise GraphBadRequest("You cannot delete your own account.")
        self.repo.delete_user(user.object_id)
        cleanup.grants.revoke_user(user.object_id)
        cleanup.access.remove_principal(user.object_id)

    def update_user(self, tenant: Tenant, id_or_upn: str, *, acting_user_id: str | None, grants: UserGrants,
                    display_name: str | None = None, password: str | None = None,
                    account_enabled: bool | None = None) -> User:
        """Graph's `PATCH /users/{id}`: a new display name, password or enabled state. A new password or a
        disabled account revokes the user's refresh tokens (as Entra revokes sessions on a reset), so their
        signed-in CLIs must sign in again. `acting_user_id` None is the offline reset of `cielo admin`."""
        user = self.get_user(tenant, id_or_upn)
        fields: dict[str, Any] = {}
        if display_name is not None:
            if not display_name.strip():
                raise GraphBadRequest("Invalid value specified for property 'displayName' of resource 'User'.")
            fields["display_name"] = display_name.strip()
        if password is not None:
            _check_password(password)
            fields["password_hash"] = hash_password(password)
        if account_enabled is not None:
            if not account_enabled and user.object_id == acting_user_id:
                raise GraphBadRequest("You cannot disable your own account.")
            fields["account_enabled"] = account_enabled
        self.repo.update_user(user.object_id, **fields)
        if password is not None or account_enabled is False:
            grants.revoke_user(user.object_id)
        return self.get_user(tenant, user.object_id)

    def get_user(self, tenant: Tenant, id_or_upn: str) -> User:
        user = self.repo.find_user(id_or_upn)
        if user is None or user.tenant_id != tenant.id:
            raise GraphResourceNotFound(
                f"Resource '{id_or_upn}' does not exist or one of its queried reference-property "
                "objects are not present.")
        return user

    # ----------------------------------------------------------------- groups
    def create_group(self, tenant: Tenant, display_name: str, mail_nickname: str, description: str | None
                     ) -> Group:
        if not display_name.strip() or not mail_nickname.strip():
            raise GraphBadRequest("displayName and mailNickname are required.")
        group = Group(new_guid(), tenant.id, display_name.strip(), mail_nickname.strip(), description,
                      self._clock.now())
        self.repo.create_group(group)
        return group

    def get_group(self, tenant: Tenant, id_or_name: str) -> Group:
        group = self.repo.find_group(tenant.id, id_or_name)
        if group is None:
            raise GraphResourceNotFound(
                f"Resource '{id_or_name}' does not exist or one of its queried reference-property "
                "objects are not present.")
        return group

    def list_groups(self, tenant: Tenant) -> list[Group]:
        return self.repo.list_groups(tenant.id)

    def delete_group(self, tenant: Tenant, id_or_name: str, *, cleanup: PrincipalCleanup) -> None:
        """A group and the role assignments held through it."""
        group = self.get_group(tenant, id_or_name)
        self.repo.delete_group(group.object_id)
        cleanup.access.remove_principal(group.object_id)

    def member_ids(self, group: Group) -> list[str]:
        return self.repo.list_member_ids(group.object_id)

    def remove_member(self, tenant: Tenant, group_id: str, member_id: str) -> None:
        group = self.get_group(tenant, group_id)
        if member_id.lower() not in self.repo.list_member_ids(group.object_id):
            raise GraphResourceNotFound(
                f"Resource '{member_id}' does not exist or one of its queried reference-property "
                "objects are not present.")
        self.repo.remove_member(group.object_id, member_id.lower())

    def directory_object(self, tenant: Tenant, object_id: str) -> User | Group | ServicePrincipal | None:
        """A user, group or service principal of `tenant` with this object id (Graph's directoryObjects)."""
        if (user := self.repo.get_user(object_id)) is not None and user.tenant_id == tenant.id:
            return user
        if (group := self.repo.find_group(tenant.id, object_id)) is not None and group.object_id == object_id:
            return group
        sp = self.repo.find_service_principal(object_id)
        if sp is not None and sp.object_id == object_id and sp.tenant_id == tenant.id:
            return sp
        return None

    def add_member(self, tenant: Tenant, group: Group, member_id: str) -> None:
        found = self.repo.directory_objects([member_id.lower()])
        if member_id.lower() not in found:
            raise GraphResourceNotFound(
                f"Resource '{member_id}' does not exist or one of its queried reference-property "
                "objects are not present.")
        taken = GraphBadRequest("One or more added object references already exist for the following modified "
                           "properties: 'members'.")
        if member_id.lower() in self.repo.list_member_ids(group.object_id):
            raise taken
        try:
            self.repo.add_member(group.object_id, member_id.lower())
        except DuplicateKey as exc:
            raise taken from exc

    # ----------------------------------------------------------------- applications
    def create_application(
        self,
        tenant: Tenant,
        display_name: str,
        *,
        public_client: bool = False,
        redirect_uris: Sequence[str] = (),
        identifier_uris: Sequence[str] = (),
        access_token_version: int = 1,
    ) -> Application:
        if not display_name.strip():
            raise GraphBadRequest("displayName is required.")
        if access_token_version not in (1, 2):
            raise GraphBadRequest("requestedAccessTokenVersion must be 1 or 2.")
        app = Application(
            object_id=new_guid(),
            tenant_id=tenant.id,
            app_id=new_guid(),
            display_name=display_name.strip(),
            is_public_client=public_client,
            access_token_version=access_token_version,
            identifier_uris=tuple(identifier_uris),
            redirect_uris=tuple(redirect_uris),
            created_at=self._clock.now(),
        )
        self.repo.create_application(app)
        return app

    def get_application(self, tenant: Tenant, id_or_app_id: str) -> Application:
        app = self.repo.find_application(id_or_app_id)
        if app is None or app.tenant_id != tenant.id:
            raise GraphResourceNotFound(
                f"Resource '{id_or_app_id}' does not exist or one of its queried reference-property "
                "objects are not present.")
        return app

    def list_applications(self, tenant: Tenant) -> list[Application]:
        return self.repo.list_applications(tenant.id)

    def delete_application(self, tenant: Tenant, app: Application, *, cleanup: PrincipalCleanup) -> None:
        """An application, and with it its service principal's role assignments."""
        sp = self.repo.get_service_principal_for_app(tenant.id, app.app_id)
        self.repo.delete_application(app.object_id)
        if sp is not None:
            cleanup.access.remove_principal(sp.object_id)

    def update_application(
        self,
        app: Application,
        *,
        certificates: Sequence[tuple[bytes, str | None]] = (),
        web_redirect_uris: Sequence[str] | None = None,
        public_client_redirect_uris: Sequence[str] | None = None,
        **fields: Any,
    ) -> None:
        """One update of an application (Graph's PATCH): `fields` are its columns; of `certificates` (DER or PEM,
        display name) the first replaces the application's certificates and the others are added; a redirect URI
        list given replaces the URIs that are listed under its kind (`redirect_kind`), the other kind's stay."""
        for index, (certificate, name) in enumerate(certificates):
            self.add_certificate(app, certificate, name, replace=index == 0)
        if web_redirect_uris is not None or public_client_redirect_uris is not None:
            web = [u for u in app.redirect_uris if redirect_kind(u) == "web"]
            public = [u for u in app.redirect_uris if redirect_kind(u) == "publicClient"]
            fields["redirect_uris"] = (
                *(public if public_client_redirect_uris is None else public_client_redirect_uris),
                *(web if web_redirect_uris is None else web_redirect_uris),
            )
        if fields:
            self.repo.update_application(app.object_id, **fields)

    def remove_password(self, app: Application, key_id: str) -> None:
        if all(p.key_id != key_id for p in app.passwords):
            raise GraphResourceNotFound(f"No password credential found with keyId {key_id}.")
        self.repo.remove_password(app.object_id, key_id)

    def remove_federated(self, app: Application, id_or_name: str) -> None:
        if all(f.id != id_or_name and f.name != id_or_name for f in app.federated):
            raise GraphResourceNotFound(f"Federated identity credential '{id_or_name}' not found.")
        self.repo.remove_federated(app.object_id, id_or_name)

    def add_password(
        self, app: Application, display_name: str | None, end: float | None, *, replace: bool
    ) -> NewSecret:
        now = self._clock.now()
        end = end if end is not None else now + 2 * 365 * 86400
        if end <= now:
            raise GraphBadRequest("endDateTime must be in the future.")
        secret = new_client_secret()
        cred = PasswordCredential(new_guid(), display_name, secret[:3], hash_secret(secret), now, end)
        self.repo.add_password(app.object_id, cred, replace=replace)
        return NewSecret(cred, secret)

    def add_certificate(
        self, app: Application, cert_pem_or_der: bytes, display_name: str | None, *, replace: bool
    ) -> KeyCredential:
        try:
            if b"-----BEGIN" in cert_pem_or_der:
                cert = x509.load_pem_x509_certificate(cert_pem_or_der)
            else:
                cert = x509.load_der_x509_certificate(cert_pem_or_der)
        except ValueError as exc:
            raise GraphBadRequest("The certificate is not a valid X.509 certificate.") from exc
        start = cert.not_valid_before_utc.timestamp()
        end = cert.not_valid_after_utc.timestamp()
        cred = KeyCredential(new_guid(), display_name, cert.public_bytes(serialization.Encoding.DER), start, end)
        self.repo.add_key(app.object_id, cred, replace=replace)
        return cred

    def add_federated(
        self, app: Application, name: str, issuer: str, subject: str, audiences: Sequence[str],
        description: str | None,
    ) -> FederatedCredential:
        if not name or not issuer or not subject:
            raise GraphBadRequest("name, issuer and subject are required.")
        if not issuer.startswith("https://"):
            raise GraphBadRequest("The issuer must be an https URL.")
        taken = FederatedCredentialExists(f"A federated identity credential named '{name}' exists already.")
        if any(f.name == name for f in app.federated):
            raise taken
        cred = FederatedCredential(new_guid(), name, issuer, subject,
                                   tuple(audiences) or ("api://AzureADTokenExchange",), description)
        try:
            self.repo.add_federated(app.object_id, cred)
        except DuplicateKey as exc:
            raise taken from exc
        return cred

    # ----------------------------------------------------------------- service principals
    def list_service_principals(self, tenant: Tenant) -> list[ServicePrincipal]:
        return self.repo.list_service_principals(tenant.id)

    def get_service_principal(self, tenant: Tenant, id_or_app_id: str, *, as_asked: str | None = None
                              ) -> ServicePrincipal:
        """`as_asked`: the reference as the client wrote it (`(appId='…')`), which a 404 names."""
        sp = self.repo.find_service_principal(id_or_app_id)
        if sp is None or sp.tenant_id != tenant.id:
            raise GraphResourceNotFound(f"Resource '{as_asked or id_or_app_id}' does not exist or one of its queried "
                           "reference-property objects are not present.")
        return sp

    def delete_service_principal(self, sp: ServicePrincipal, *, cleanup: PrincipalCleanup) -> None:
        """A service principal and its role assignments; a managed identity's goes only with its resource."""
        if sp.sp_type == "ManagedIdentity":
            raise GraphBadRequest("A managed identity's service principal is deleted with its resource.")
        self.repo.delete_service_principal(sp.object_id)
        cleanup.access.remove_principal(sp.object_id)

    def create_service_principal(self, tenant: Tenant, app: Application) -> ServicePrincipal:
        taken = GraphObjectExists("The service principal exists already for this application.")
        if self.repo.get_service_principal_for_app(tenant.id, app.app_id) is not None:
            raise taken
        sp = ServicePrincipal(new_guid(), tenant.id, app.app_id, app.display_name, "Application",
                              self._clock.now())
        try:
            self.repo.create_service_principal(sp)
        except DuplicateKey as exc:
            raise taken from exc
        return sp


def redirect_kind(uri: str) -> str:
    """Where an application's redirect URI is listed: `web` (https) or `publicClient` (any other). Cielo keeps one
    list of redirect URIs per application, so the kind is read from the URI, not stored."""
    return "web" if uri.startswith("https://") else "publicClient"


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
