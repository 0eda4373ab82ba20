"""The directory repository: tenants, subscriptions, users, groups, applications and credentials."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, and_, delete, func, insert, or_, select, update

from cielo.store import db
from cielo.store.base import Repo
from cielo.store.jsontext import load_json
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


def _tenant(row: Row[Any]) -> Tenant:
    return Tenant(row.id, row.display_name, row.default_domain, row.created_at)


def _user(row: Row[Any]) -> User:
    return User(
        row.object_id,
        row.tenant_id,
        row.upn,
        row.display_name,
        row.password_hash,
        bool(row.is_admin),
        bool(row.account_enabled),
        row.created_at,
    )


def _group(row: Row[Any]) -> Group:
    return Group(
        row.object_id, row.tenant_id, row.display_name, row.mail_nickname, row.description, row.created_at
    )


def _sp(row: Row[Any]) -> ServicePrincipal:
    return ServicePrincipal(
        row.object_id, row.tenant_id, row.app_id, row.display_name, row.sp_type, row.created_at
    )


class DirectoryRepo(Repo):
    """All directory reads and writes. Each write calls `on_change` so caches drop what they hold."""

    # ----------------------------------------------------------------- tenants and subscriptions
    def create_tenant(self, tenant: Tenant) -> None:
        self._write(insert(db.tenants).values(**tenant.__dict__))

    def list_tenants(self) -> list[Tenant]:
        with self._engine.connect() as conn:
            return [_tenant(r) for r in conn.execute(select(db.tenants).order_by(db.tenants.c.created_at))]

    def find_tenant(self, id_or_domain: str) -> Tenant | None:
        key = id_or_domain.lower()
        with self._engine.connect() as conn:
            row = conn.execute(
                select(db.tenants).where(
                    or_(db.tenants.c.id == key, func.lower(db.tenants.c.default_domain) == key)
                )
            ).first()
        return _tenant(row) if row else None

    def create_subscription(self, subscription: Subscription) -> None:
        self._write(insert(db.subscriptions).values(**subscription.__dict__))

    def list_subscriptions(self, tenant_id: str | None = None) -> list[Subscription]:
        query = select(db.subscriptions)
        if tenant_id is not None:
            query = query.where(db.subscriptions.c.tenant_id == tenant_id)
        with self._engine.connect() as conn:
            return [Subscription(r.id, r.tenant_id, r.display_name, r.state) for r in conn.execute(query)]

    # ----------------------------------------------------------------- users
    def create_user(self, user: User) -> None:
        self._write(insert(db.users).values(**user.__dict__, upn_lower=user.upn.lower()))

    def get_user(self, object_id: str) -> User | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(db.users).where(db.users.c.object_id == object_id.lower())).first()
        return _user(row) if row else None

    def find_user(self, id_or_upn: str) -> User | None:
        key = id_or_upn.lower()
        with self._engine.connect() as conn:
            row = conn.execute(
                select(db.users).where(or_(db.users.c.object_id == key, db.users.c.upn_lower == key))
            ).first()
        return _user(row) if row else None

    def list_users(self, tenant_id: str) -> list[User]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(db.users).where(db.users.c.tenant_id == tenant_id).order_by(db.users.c.upn_lower)
            )
            return [_user(r) for r in rows]

    def update_user(self, object_id: str, **fields: Any) -> None:
        """Change some of `display_name`, `password_hash`, `account_enabled` (the columns a Graph PATCH may set)."""
        allowed = {"display_name", "password_hash", "account_enabled"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"users have no updatable field {sorted(unknown)}")
        if fields:
            self._write(update(db.users).where(db.users.c.object_id == object_id).values(**fields))

    def delete_user(self, object_id: str) -> None:
        self._write(
            delete(db.group_members).where(db.group_members.c.member_id == object_id),
            delete(db.users).where(db.users.c.object_id == object_id),
        )

    # ----------------------------------------------------------------- groups
    def create_group(self, group: Group) -> None:
        self._write(insert(db.groups).values(**group.__dict__))

    def find_group(self, tenant_id: str, id_or_name: str) -> Group | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(db.groups).where(
                    and_(
                        db.groups.c.tenant_id == tenant_id,
                        or_(
                            db.groups.c.object_id == id_or_name.lower(),
                            func.lower(db.groups.c.display_name) == id_or_name.lower(),
                        ),
                    )
                )
            ).first()
        return _group(row) if row else None

    def list_groups(self, tenant_id: str) -> list[Group]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(db.groups).where(db.groups.c.tenant_id == tenant_id))
            return [_group(r) for r in rows]

    def delete_group(self, object_id: str) -> None:
        self._write(
            delete(db.group_members).where(
                or_(db.group_members.c.group_id == object_id, db.group_members.c.member_id == object_id)
            ),
            delete(db.groups).where(db.groups.c.object_id == object_id),
        )

    def add_member(self, group_id: str, member_id: str) -> None:
        self._write(insert(db.group_members).values(group_id=group_id, member_id=member_id))

    def remove_member(self, group_id: str, member_id: str) -> None:
        self._write(
            delete(db.group_members).where(
                and_(db.group_members.c.group_id == group_id, db.group_members.c.member_id == member_id)
            )
        )

    def list_member_ids(self, group_id: str) -> list[str]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(db.group_members.c.member_id).where(db.group_members.c.group_id == group_id)
            )
            return [r.member_id for r in rows]

    def all_memberships(self) -> list[tuple[str, str]]:
        """(group_id, member_id) pairs; callers compute transitive membership from them."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(db.group_members.c.group_id, db.group_members.c.member_id))
            return [(r.group_id, r.member_id) for r in rows]

    # ----------------------------------------------------------------- applications
    def create_application(self, app: Application) -> None:
        values = {
            "object_id": app.object_id,
            "tenant_id": app.tenant_id,
            "app_id": app.app_id,
            "display_name": app.display_name,
            "is_public_client": app.is_public_client,
            "access_token_version": app.access_token_version,
            "identifier_uris": json.dumps(list(app.identifier_uris)),
            "redirect_uris": json.dumps(list(app.redirect_uris)),
            "created_at": app.created_at,
        }
        self._write(insert(db.applications).values(**values))

    def update_application(self, object_id: str, **fields: Any) -> None:
        for name in ("identifier_uris", "redirect_uris"):
            if name in fields:
                fields[name] = json.dumps(list(fields[name]))
        self._write(update(db.applications).where(db.applications.c.object_id == object_id).values(**fields))

    def _load_app(self, conn: Any, row: Row[Any]) -> Application:
        pw = db.password_credentials
        kc = db.key_credentials
        fc = db.federated_credentials
        passwords = tuple(
            PasswordCredential(r.key_id, r.display_name, r.hint, r.secret_hash, r.start, r.end)
            for r in conn.execute(select(pw).where(pw.c.app_object_id == row.object_id))
        )
        keys = tuple(
            KeyCredential(r.key_id, r.display_name, r.cert_der, r.start, r.end)
            for r in conn.execute(select(kc).where(kc.c.app_object_id == row.object_id))
        )
        federated = tuple(
            FederatedCredential(
                r.id, r.name, r.issuer, r.subject, tuple(load_json(r.audiences)), r.description
            )
            for r in conn.execute(select(fc).where(fc.c.app_object_id == row.object_id))
        )
        return Application(
            row.object_id,
            row.tenant_id,
            row.app_id,
            row.display_name,
            bool(row.is_public_client),
            row.access_token_version,
            tuple(load_json(row.identifier_uris)),
            tuple(load_json(row.redirect_uris)),
            row.created_at,
            passwords,
            keys,
            federated,
        )

    def _find_app(self, condition: Any) -> Application | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(db.applications).where(condition)).first()
            return self._load_app(conn, row) if row else None

    def get_application_by_app_id(self, app_id: str) -> Application | None:
        return self._find_app(db.applications.c.app_id == app_id.lower())

    def find_application(self, id_or_app_id: str) -> Application | None:
        key = id_or_app_id.lower()
        return self._find_app(or_(db.applications.c.app_id == key, db.applications.c.object_id == key))

    def list_applications(self, tenant_id: str) -> list[Application]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(db.applications).where(db.applications.c.tenant_id == tenant_id))
            return [self._load_app(conn, r) for r in rows.fetchall()]

    def delete_application(self, object_id: str) -> None:
        app = self.find_application(object_id)
        if app is None:
            return
        self._write(
            delete(db.password_credentials).where(db.password_credentials.c.app_object_id == object_id),
            delete(db.key_credentials).where(db.key_credentials.c.app_object_id == object_id),
            delete(db.federated_credentials).where(db.federated_credentials.c.app_object_id == object_id),
            delete(db.service_principals).where(db.service_principals.c.app_id == app.app_id),
            delete(db.applications).where(db.applications.c.object_id == object_id),
        )

    def add_password(self, app_object_id: str, cred: PasswordCredential, *, replace: bool) -> None:
        statements: list[Any] = []
        if replace:
            statements.append(
                delete(db.password_credentials).where(db.password_credentials.c.app_object_id == app_object_id)
            )
        statements.append(insert(db.password_credentials).values(app_object_id=app_object_id, **cred.__dict__))
        self._write(*statements)

    def remove_password(self, app_object_id: str, key_id: str) -> None:
        pw = db.password_credentials
        self._write(delete(pw).where(and_(pw.c.app_object_id == app_object_id, pw.c.key_id == key_id)))

    def add_key(self, app_object_id: str, cred: KeyCredential, *, replace: bool) -> None:
        statements: list[Any] = []
        if replace:
            statements.append(
                delete(db.key_credentials).where(db.key_credentials.c.app_object_id == app_object_id)
            )
        statements.append(insert(db.key_credentials).values(app_object_id=app_object_id, **cred.__dict__))
        self._write(*statements)

    def add_federated(self, app_object_id: str, cred: FederatedCredential) -> None:
        values = dict(cred.__dict__)
        values["audiences"] = json.dumps(list(cred.audiences))
        self._write(insert(db.federated_credentials).values(app_object_id=app_object_id, **values))

    def remove_federated(self, app_object_id: str, id_or_name: str) -> None:
        fc = db.federated_credentials
        self._write(
            delete(fc).where(
                and_(fc.c.app_object_id == app_object_id, or_(fc.c.id == id_or_name, fc.c.name == id_or_name))
            )
        )

    # ----------------------------------------------------------------- service principals
    def create_service_principal(self, sp: ServicePrincipal) -> None:
        self._write(insert(db.service_principals).values(**sp.__dict__))

    def find_service_principal(self, id_or_app_id: str) -> ServicePrincipal | None:
        key = id_or_app_id.lower()
        sps = db.service_principals
        with self._engine.connect() as conn:
            row = conn.execute(select(sps).where(or_(sps.c.object_id == key, sps.c.app_id == key))).first()
        return _sp(row) if row else None

    def get_service_principal_for_app(self, tenant_id: str, app_id: str) -> ServicePrincipal | None:
        sps = db.service_principals
        with self._engine.connect() as conn:
            row = conn.execute(
                select(sps).where(and_(sps.c.tenant_id == tenant_id, sps.c.app_id == app_id.lower()))
            ).first()
        return _sp(row) if row else None

    def list_service_principals(self, tenant_id: str) -> list[ServicePrincipal]:
        sps = db.service_principals
        with self._engine.connect() as conn:
            return [_sp(r) for r in conn.execute(select(sps).where(sps.c.tenant_id == tenant_id))]

    def delete_service_principal(self, object_id: str) -> None:
        self._write(
            delete(db.group_members).where(db.group_members.c.member_id == object_id),
            delete(db.service_principals).where(db.service_principals.c.object_id == object_id),
        )

    def directory_objects(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Map object ids to (kind, display name) for users, groups and service principals."""
        found: dict[str, tuple[str, str]] = {}
        with self._engine.connect() as conn:
            for table, kind, name_col in (
                (db.users, "user", "display_name"),
                (db.groups, "group", "display_name"),
                (db.service_principals, "servicePrincipal", "display_name"),
            ):
                for row in conn.execute(select(table).where(table.c.object_id.in_(list(ids)))):
                    found[row.object_id] = (kind, getattr(row, name_col))
        return found
