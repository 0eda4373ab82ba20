"""Keys that replicas sharing a database keep in it: the token signing keys, the key that seals account keys and the
local CA, each private part sealed with the installation's key-encryption key (core/sealing.KeyEncryptionKey), never
in plaintext. A version per kind of key tells each replica's KeyRing that another one rotated or pruned.

Used only with `--database-url`; the embedded default (SQLite) keeps these keys as files in the data directory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    Row,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from cielo.core.sealing import KeyEncryptionKey
from cielo.errors import DataDirectoryError
from cielo.store.db import metadata

shared_keys = Table(
    "shared_keys",
    metadata,
    Column("kind", String(32), primary_key=True),  # signing, sealing, ca, kek
    Column("name", String(128), primary_key=True),  # a signing key's kid; "sealing", "ca", "check"
    Column("public", Text, nullable=False),  # what is not secret: a certificate (base64 DER or PEM), or ""
    Column("sealed", Text, nullable=False),  # the private part, AES-256-GCM under the KEK, bound to kind and name
    Column("created_at", Float, nullable=False),
    Column("retire_at", Float, nullable=True),  # signing keys: leaves the JWKS after this
)

key_versions = Table(
    "key_versions",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("version", Integer, nullable=False),
)

SIGNING, SEALING, CA, KEK = "signing", "sealing", "ca", "kek"
_CHECK = b"cielo key-encryption key check"


@dataclass(frozen=True)
class StoredKey:
    kind: str
    name: str
    public: str
    secret: bytes
    created_at: float
    retire_at: float | None


def _context(kind: str, name: str) -> str:
    return f"cielo shared key {kind}/{name}"


class KeyStore:
    def __init__(self, engine: Engine, kek: KeyEncryptionKey) -> None:
        self._engine = engine
        self._kek = kek
        self.where = engine.url.render_as_string(hide_password=True)

    # ----------------------------------------------------------------- the KEK itself
    def check_kek(self, now: float) -> None:
        """The first replica records a value sealed with its KEK; every later one must open it, or start refused
        (a KEK other than the one that sealed the keys would fail later, at the first signature)."""
        t = shared_keys
        with self._engine.connect() as conn:
            row = conn.execute(select(t.c.sealed).where(t.c.kind == KEK, t.c.name == "check")).first()
        if row is None:
            try:
                with self._engine.begin() as conn:
                    conn.execute(insert(t).values(kind=KEK, name="check", public="", created_at=now, retire_at=None,
                                                  sealed=self._kek.seal(_CHECK, _context(KEK, "check"))))
                return
            except IntegrityError:
                return self.check_kek(now)  # another replica recorded its check first: it must open
        try:
            self._kek.open(row.sealed, _context(KEK, "check"))
        except ValueError as exc:
            raise DataDirectoryError(self.where, "holds keys sealed with another key-encryption key than the one "
                                                 "given (CIELO_KEY_ENCRYPTION_KEY, --key-encryption-key-file)"
                                     ) from exc

    # ----------------------------------------------------------------- reads
    def version(self, kind: str) -> int:
        with self._engine.connect() as conn:
            value = conn.execute(select(key_versions.c.version).where(key_versions.c.kind == kind)).scalar()
        return int(value or 0)

    def keys(self, kind: str) -> list[StoredKey]:
        t = shared_keys
        with self._engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.kind == kind).order_by(t.c.created_at, t.c.name)).all()
        return [self._opened(row) for row in rows]

    def _opened(self, row: Row[Any]) -> StoredKey:
        kind, name = row.kind, row.name
        try:
            secret = self._kek.open(row.sealed, _context(kind, name))
        except ValueError as exc:
            raise DataDirectoryError(self.where, f"the {kind} key {name} cannot be opened with the key-encryption "
                                                 "key given (another one sealed it, or the row was changed)") from exc
        return StoredKey(kind, name, row.public, secret, row.created_at, row.retire_at)

    # ----------------------------------------------------------------- writes
    def add_signing_key(self, kid: str, public: str, secret: bytes, now: float, retire_current_at: float,
                        *, only_if_none_current: bool = False) -> bool:
        """Add a signing key and retire the current ones at `retire_current_at`, in one transaction that holds the
        signing version's row lock (replicas starting together add one key, not one each). False when
        `only_if_none_current` and a current key exists."""
        t = shared_keys
        with self._engine.begin() as conn:
            self._bump(conn, SIGNING)
            if only_if_none_current and conn.execute(select(t.c.name).where(
                    t.c.kind == SIGNING, t.c.retire_at.is_(None)).limit(1)).first() is not None:
                return False  # (the version bump commits: a reload costs a replica one query)
            conn.execute(update(t).where(t.c.kind == SIGNING, t.c.retire_at.is_(None)).values(
                retire_at=retire_current_at))
            conn.execute(insert(t).values(kind=SIGNING, name=kid, public=public, created_at=now, retire_at=None,
                                          sealed=self._kek.seal(secret, _context(SIGNING, kid))))
        return True

    def remove(self, kind: str, names: list[str]) -> None:
        if not names:
            return
        with self._engine.begin() as conn:
            self._bump(conn, kind)
            conn.execute(delete(shared_keys).where(shared_keys.c.kind == kind, shared_keys.c.name.in_(names)))

    def get_or_create(self, kind: str, name: str, make: Callable[[], tuple[str, bytes]], now: float) -> StoredKey:
        """The key of that kind and name; made by `make` (public, secret) and stored when there is none. Of replicas
        making it at once, the first stored wins and every one returns it."""
        t = shared_keys
        condition = (t.c.kind == kind, t.c.name == name)
        with self._engine.connect() as conn:
            row = conn.execute(select(t).where(*condition)).first()
        if row is None:
            public, secret = make()
            try:
                with self._engine.begin() as conn:
                    conn.execute(insert(t).values(kind=kind, name=name, public=public, created_at=now, retire_at=None,
                                                  sealed=self._kek.seal(secret, _context(kind, name))))
                    self._bump(conn, kind)
            except IntegrityError:
                pass  # another replica stored its own first: that one is read below
            with self._engine.connect() as conn:
                row = conn.execute(select(t).where(*condition)).one()
        return self._opened(row)

    def rewrap(self, new: KeyEncryptionKey) -> int:
        """Seal every key again under `new` (KEK rotation), in one transaction; the number of rows. Replicas still
        running with the old KEK fail at their next start until given the new one (their keys are in memory)."""
        t = shared_keys
        with self._engine.begin() as conn:
            rows = conn.execute(select(t).with_for_update()).all()
            for row in rows:
                secret = self._opened(row).secret
                conn.execute(update(t).where(t.c.kind == row.kind, t.c.name == row.name).values(
                    sealed=new.seal(secret, _context(row.kind, row.name))))
        self._kek = new
        return len(rows)

    @staticmethod
    def _bump(conn: Connection, kind: str) -> None:
        t = key_versions
        if conn.execute(update(t).where(t.c.kind == kind).values(version=t.c.version + 1)).rowcount:
            return
        try:
            with conn.begin_nested():
                conn.execute(insert(t).values(kind=kind, version=1))
        except IntegrityError:
            conn.execute(update(t).where(t.c.kind == kind).values(version=t.c.version + 1))


def sealed_row(kek: KeyEncryptionKey, kind: str, name: str, public: str, secret: bytes, created_at: float,
               retire_at: float | None) -> dict[str, Any]:
    """A `shared_keys` row as a KeyStore under `kek` would write it (`cielo export` moves a data directory's key
    files into the database this way)."""
    return {"kind": kind, "name": name, "public": public, "created_at": created_at, "retire_at": retire_at,
            "sealed": kek.seal(secret, _context(kind, name))}
