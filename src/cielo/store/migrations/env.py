"""Alembic's environment for Cielo's schema. Cielo runs the migrations itself (store/migrate.py), on a connection
it passes in `config.attributes["connection"]`; there is no alembic.ini.

For developers, a new revision: `python -m cielo.store.migrate revision -m "what changes"` writes a file into
versions/ from the tables in store/db.py (review it: batch mode for SQLite, data migrations by hand)."""

from __future__ import annotations

from alembic import context

from cielo.store import activity, keystore, responses, signin, template_deployments  # noqa: F401 - their tables
from cielo.store.db import metadata

connection = context.config.attributes["connection"]
# One transaction for the whole upgrade: a failure leaves the database as it was. Alembic assumes SQLite cannot
# roll DDL back (Python's sqlite3 module commits around it); store/migrate.py's engine issues real BEGINs, so it can.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  transaction_per_migration=False, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
