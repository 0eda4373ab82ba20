"""The resource manager's repository: resources (by lower-case ARM id), account keys, role
assignments and custom role definitions."""

from __future__ import annotations

import contextlib
import json
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Row, Table, and_, delete, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from cielo.core.file_lock import exclusive_file_lock
from cielo.errors import AnotherOperationInProgress, DuplicateKey
from cielo.store import db
from cielo.store.base import Repo
from cielo.store.integrity import translated
from cielo.store.jsontext import load_json


@dataclass(frozen=True)
class Resource:
    id: str
    subscription_id: str
    resource_group: str | None
    parent_key: str | None
    type: str
    name: str
    location: str | None
    kind: str | None
    sku: dict[str, Any] | None
    tags: dict[str, str] | None
    properties: dict[str, Any]
    identity: dict[str, Any] | None
    system_data: dict[str, Any] | None
    etag: str

    @property
    def key(self) -> str:
        return self.id.lower()


@dataclass(frozen=True)
class AccountKeys:
    key1_hash: str
    key2_hash: str
    key1_encrypted: str
    key2_encrypted: str


@dataclass(frozen=True)
class StoredAssignment:
    name: str
    scope: str
    tenant_id: str
    role_definition_name: str
    principal_id: str
    principal_type: str
    description: str | None
    condition: str | None
    condition_version: str | None
    created_on: float
    updated_on: float
    created_by: str | None
    updated_by: str | None


@dataclass(frozen=True)
class StoredRole:
    name: str
    tenant_id: str
    role_name: str
    description: str | None
    permissions: list[dict[str, list[str]]] = field(default_factory=list)
    assignable_scopes: list[str] = field(default_factory=list)
    created_on: float = 0.0
    updated_on: float = 0.0
    created_by: str | None = None


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _load(value: str | None) -> Any:
    return None if value is None else load_json(value)


def _resource(row: Row[Any]) -> Resource:
    return Resource(
        row.id, row.subscription_id, row.resource_group, row.parent_key, row.type, row.name, row.location,
        row.kind, _load(row.sku), _load(row.tags), load_json(row.properties), _load(row.identity),
        _load(row.system_data), row.etag,
    )


# The capacity locks of this process's threads, per engine and lock name: taken before the lock other processes see,
# so the threads sharing an engine hold at most one connection (or lock file descriptor) per name at a time.
_THREAD_LOCKS: weakref.WeakKeyDictionary[Engine, dict[str, threading.Lock]] = weakref.WeakKeyDictionary()
_THREAD_LOCKS_GUARD = threading.Lock()
# How long a PUT waits for another replica's capacity check and write before it fails (it writes nothing then).
CAPACITY_LOCK_TIMEOUT_MS = 30_000


def _thread_lock(engine: Engine, name: str) -> threading.Lock:
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(engine, {}).setdefault(name, threading.Lock())


def sqlite_lock_path(engine: Engine) -> Path | None:
    """The file whose exclusive flock serializes capacity checks between the processes on one SQLite database (the
    workers of a server): beside the database file. None for an in-memory database (one process only)."""
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    if database.startswith("file:"):  # a URI filename (`?uri=true`)
        if "mode=memory" in str(engine.url) or database.startswith("file::memory:"):
            return None
        database = database[len("file:"):].split("?", 1)[0]
    path = Path(database)
    return path.with_name(f"{path.name}-capacity.lock")


class ResourceRepo(Repo):
    """Resources, account keys, role assignments and custom roles. Each write calls `on_change`."""

    # ----------------------------------------------------------------- capacity
    @contextlib.contextmanager
    def capacity_lock(self, subscription: str, location: str) -> Iterator[None]:
        """Held while a deployment's capacity is checked against the quota and written: one holder at a time per
        subscription and location, across this process's threads, the workers on one SQLite file (an exclusive
        flock on a lock file beside it, one for the whole database: SQLite writes one transaction at a time anyway)
        and the replicas on one PostgreSQL database (a transaction-level advisory lock on a connection of its own,
        released when that transaction ends, however it ends; waiting at most CAPACITY_LOCK_TIMEOUT_MS). Fails
        closed: a lock that cannot be taken raises, and the caller writes nothing."""
        name = f"cielo.capacity:{subscription.lower()}:{location.lower()}"
        with _thread_lock(self._engine, name):
            if self._engine.dialect.name == "postgresql":
                with self._engine.begin() as conn:
                    conn.execute(text(f"SET LOCAL lock_timeout = {int(CAPACITY_LOCK_TIMEOUT_MS)}"))
                    try:
                        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
                    except OperationalError as exc:
                        if "lock timeout" not in str(exc):
                            raise
                        raise AnotherOperationInProgress(
                            "Another operation is changing the deployments' capacity in this subscription and "
                            f"location ({location}); retry in a few seconds.") from exc
                    yield
            elif self._engine.dialect.name == "sqlite":
                path = sqlite_lock_path(self._engine)
                if path is None:
                    yield
                    return
                with exclusive_file_lock(path):  # the kernel drops it if this process dies
                    yield
            else:
                raise NotImplementedError(f"no capacity lock for {self._engine.dialect.name}")

    # ----------------------------------------------------------------- resources
    def get(self, key: str) -> Resource | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(db.resources).where(db.resources.c.key == key.lower())).first()
        return _resource(row) if row else None

    def list_resources(self, *, subscription_id: str | None = None, resource_group: str | None = None,
             type_: str | None = None, parent_key: str | None = None) -> list[Resource]:
        t = db.resources
        query = select(t)
        if subscription_id is not None:
            query = query.where(t.c.subscription_id == subscription_id.lower())
        if resource_group is not None:
            query = query.where(t.c.resource_group == resource_group.lower())
        if type_ is not None:
            query = query.where(t.c.type == type_)
        if parent_key is not None:
            query = query.where(t.c.parent_key == parent_key.lower())
        with self._engine.connect() as conn:
            return [_resource(r) for r in conn.execute(query.order_by(t.c.key))]

    def put(self, resource: Resource) -> bool:
        """Create or replace a resource; True when this call created it (another worker may have created it a
        moment before: then it is replaced). Raises `DuplicateKey` for a customSubDomainName another account
        holds."""
        subdomain = resource.properties.get("customSubDomainName")
        values = {
            "key": resource.key, "id": resource.id, "subscription_id": resource.subscription_id.lower(),
            "resource_group": resource.resource_group.lower() if resource.resource_group else None,
            "parent_key": resource.parent_key.lower() if resource.parent_key else None,
            "type": resource.type, "name": resource.name, "location": resource.location, "kind": resource.kind,
            "sku": _json(resource.sku), "tags": _json(resource.tags), "properties": json.dumps(resource.properties),
            "identity": _json(resource.identity), "system_data": _json(resource.system_data), "etag": resource.etag,
            "subdomain_key": subdomain.lower() if isinstance(subdomain, str) and subdomain else None,
        }
        created = self._upsert(db.resources, db.resources.c.key == resource.key, values)
        self._on_change()
        return created

    def _upsert(self, table: Table, where: Any, values: dict[str, Any]) -> bool:
        """UPDATE, else INSERT; True when inserted. Two workers inserting the same key at once: the one that loses
        the race finds the row on its retry and updates it. Other unique violations raise `DuplicateKey` (the
        retry meets them again: SQLite may name any violated constraint first, the primary key or another)."""
        for attempt in (1, 2):
            try:
                with self._engine.begin() as conn:
                    if conn.execute(update(table).where(where).values(**values)).rowcount:
                        return False
                    conn.execute(insert(table).values(**values))
                    return True
            except IntegrityError as exc:
                error = translated(exc)
                if attempt == 2 or not isinstance(error, DuplicateKey):
                    raise error from exc
        raise AssertionError("unreachable")

    def delete_tree(self, key: str) -> list[str]:
        """Delete a resource and everything under it (ids starting with `key/`), its keys and the role
        assignments at those scopes. Returns the deleted keys. One transaction: all or nothing."""
        key = key.lower()
        t = db.resources
        under = or_(t.c.key == key, t.c.key.startswith(key + "/", autoescape=True))
        ra = db.role_assignments
        ra_under = or_(ra.c.scope_key == key, ra.c.scope_key.startswith(key + "/", autoescape=True))
        ak = db.account_keys
        ak_under = or_(ak.c.resource_key == key, ak.c.resource_key.startswith(key + "/", autoescape=True))
        with self._engine.begin() as conn:
            keys = [r.key for r in conn.execute(select(t.c.key).where(under))]
            conn.execute(delete(ak).where(ak_under))
            conn.execute(delete(ra).where(ra_under))
            conn.execute(delete(t).where(under))
        self._on_change()
        return keys

    # ----------------------------------------------------------------- account keys
    def get_keys(self, resource_key: str) -> AccountKeys | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(db.account_keys).where(db.account_keys.c.resource_key == resource_key)).first()
        return AccountKeys(row.key1_hash, row.key2_hash, row.key1_encrypted, row.key2_encrypted) if row else None

    def set_keys(self, resource_key: str, keys: AccountKeys) -> None:
        values = {"resource_key": resource_key, "key1_hash": keys.key1_hash, "key2_hash": keys.key2_hash,
                  "key1_encrypted": keys.key1_encrypted, "key2_encrypted": keys.key2_encrypted}
        t = db.account_keys
        self._upsert(t, t.c.resource_key == resource_key, values)
        self._on_change()

    # ----------------------------------------------------------------- role assignments
    def add_assignment(self, assignment: StoredAssignment) -> None:
        """Raises `DuplicateKey` for a name that exists (ROLE_ASSIGNMENT_NAME) or for another assignment of the same
        principal, role and scope (ROLE_ASSIGNMENT_PRINCIPAL_ROLE_SCOPE)."""
        self._write(insert(db.role_assignments).values(**assignment.__dict__, scope_key=assignment.scope.lower()))

    def find_assignment(self, principal_id: str, role_definition_name: str, scope: str) -> StoredAssignment | None:
        """The assignment of this principal and role at this scope (compared case-insensitively), if any."""
        ra = db.role_assignments
        with self._engine.connect() as conn:
            row = conn.execute(select(ra).where(and_(
                ra.c.principal_id == principal_id.lower(), ra.c.role_definition_name == role_definition_name.lower(),
                ra.c.scope_key == scope.lower()))).first()
        return _assignment(row) if row else None

    def get_assignment(self, name: str) -> StoredAssignment | None:
        ra = db.role_assignments
        with self._engine.connect() as conn:
            row = conn.execute(select(ra).where(ra.c.name == name.lower())).first()
        return _assignment(row) if row else None

    def list_assignments(self, tenant_id: str | None = None) -> list[StoredAssignment]:
        ra = db.role_assignments
        query = select(ra) if tenant_id is None else select(ra).where(ra.c.tenant_id == tenant_id)
        with self._engine.connect() as conn:
            return [_assignment(r) for r in conn.execute(query.order_by(ra.c.created_on))]

    def update_assignment(self, name: str, description: str | None, updated_on: float, updated_by: str) -> None:
        ra = db.role_assignments
        self._write(update(ra).where(ra.c.name == name.lower()).values(
            description=description, updated_on=updated_on, updated_by=updated_by))

    def delete_assignment(self, name: str) -> None:
        self._write(delete(db.role_assignments).where(db.role_assignments.c.name == name.lower()))

    def delete_principal_assignments(self, principal_id: str) -> None:
        self._write(delete(db.role_assignments).where(db.role_assignments.c.principal_id == principal_id.lower()))

    # ----------------------------------------------------------------- custom roles
    def put_role(self, role: StoredRole) -> None:
        """Create or replace a custom role. Raises `DuplicateKey` (CUSTOM_ROLE_TENANT_ROLE_NAME) when another role
        of the tenant has its name."""
        values = {**role.__dict__, "permissions": json.dumps(role.permissions),
                  "assignable_scopes": json.dumps(role.assignable_scopes), "role_name_key": role.role_name.lower()}
        t = db.custom_roles
        self._upsert(t, t.c.name == role.name, values)
        self._on_change()

    def list_roles(self, tenant_id: str | None = None) -> list[StoredRole]:
        t = db.custom_roles
        query = select(t) if tenant_id is None else select(t).where(t.c.tenant_id == tenant_id)
        with self._engine.connect() as conn:
            return [
                StoredRole(r.name, r.tenant_id, r.role_name, r.description, load_json(r.permissions),
                           load_json(r.assignable_scopes), r.created_on, r.updated_on, r.created_by)
                for r in conn.execute(query)
            ]

    def delete_role(self, name: str) -> None:
        self._write(delete(db.custom_roles).where(db.custom_roles.c.name == name.lower()))


@dataclass(frozen=True)
class HostCredential:
    id: str
    resource_key: str
    secret_hash: str
    created_at: float
    revoked: bool


class HostCredentialRepo:
    """Credentials that enroll a host agent to one compute resource (stored hashed)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, credential: HostCredential) -> None:
        with self._engine.begin() as conn:
            conn.execute(insert(db.host_credentials).values(**credential.__dict__))

    def get(self, credential_id: str) -> HostCredential | None:
        t = db.host_credentials
        with self._engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.id == credential_id.lower())).first()
        return HostCredential(row.id, row.resource_key, row.secret_hash, row.created_at, bool(row.revoked)) \
            if row else None

    def revoke_for(self, resource_key: str) -> int:
        t = db.host_credentials
        with self._engine.begin() as conn:
            # Only those still valid: the count answered is how many this call revoked.
            return int(conn.execute(update(t).where(t.c.resource_key == resource_key.lower(), t.c.revoked.is_(False))
                                    .values(revoked=True)).rowcount)

    def delete_for(self, resource_key: str) -> None:
        t = db.host_credentials
        with self._engine.begin() as conn:
            conn.execute(delete(t).where(t.c.resource_key == resource_key.lower()))


def _assignment(row: Row[Any]) -> StoredAssignment:
    return StoredAssignment(
        row.name, row.scope, row.tenant_id, row.role_definition_name, row.principal_id, row.principal_type,
        row.description, row.condition, row.condition_version, row.created_on, row.updated_on, row.created_by,
        row.updated_by,
    )
