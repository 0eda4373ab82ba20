"""The unique constraints that Cielo's services map to their surfaces' errors, and the translation of a
database's unique-constraint violation into `DuplicateKey`.

Uniqueness is decided by the database, whichever worker process (or replica) writes first: a check in one
process's memory cannot see what another process is writing at the same moment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from cielo.errors import DuplicateKey


@dataclass(frozen=True)
class UniqueKey:
    """A unique constraint (or primary key), by table and columns."""

    table: str
    columns: tuple[str, ...]

    def matches(self, exc: DuplicateKey) -> bool:
        return exc.columns == self.columns and exc.table in ("", self.table)


ROLE_ASSIGNMENT_NAME = UniqueKey("role_assignments", ("name",))
ROLE_ASSIGNMENT_PRINCIPAL_ROLE_SCOPE = UniqueKey(
    "role_assignments", ("principal_id", "role_definition_name", "scope_key"))
CUSTOM_ROLE_NAME = UniqueKey("custom_roles", ("name",))
CUSTOM_ROLE_TENANT_ROLE_NAME = UniqueKey("custom_roles", ("tenant_id", "role_name_key"))
RESOURCE_KEY = UniqueKey("resources", ("key",))
RESOURCE_SUBDOMAIN = UniqueKey("resources", ("subdomain_key",))
ACCOUNT_KEYS = UniqueKey("account_keys", ("resource_key",))
USER_UPN = UniqueKey("users", ("upn_lower",))
GROUP_MEMBER = UniqueKey("group_members", ("group_id", "member_id"))
SERVICE_PRINCIPAL_APP = UniqueKey("service_principals", ("tenant_id", "app_id"))
FEDERATED_CREDENTIAL_NAME = UniqueKey("federated_credentials", ("app_object_id", "name"))

# SQLite: "UNIQUE constraint failed: t.a, t.b"; PostgreSQL: '... violates unique constraint "x" DETAIL: Key (a, b)=(…)'
_SQLITE = re.compile(r"UNIQUE constraint failed: ([\w.]+(?:, [\w.]+)*)")
_POSTGRES = re.compile(r"Key \(([^)]*)\)=")


def duplicate_key(exc: IntegrityError) -> DuplicateKey | None:
    """The unique constraint `exc` violated; None for other integrity errors (NOT NULL, foreign keys)."""
    text = str(exc.orig)
    found = _SQLITE.search(text)
    if found:
        qualified = [part.strip() for part in found.group(1).split(",")]
        table = qualified[0].rsplit(".", 1)[0] if "." in qualified[0] else ""
        return DuplicateKey(table, tuple(part.rsplit(".", 1)[-1] for part in qualified))
    found = _POSTGRES.search(text)
    if found:
        diag = getattr(exc.orig, "diag", None)
        table = str(getattr(diag, "table_name", "") or "")
        return DuplicateKey(table, tuple(part.strip().strip('"') for part in found.group(1).split(",")))
    return None


def translated(exc: IntegrityError) -> Exception:
    """What to raise for `exc`: `DuplicateKey` for a unique violation, else `exc` itself."""
    return duplicate_key(exc) or exc
