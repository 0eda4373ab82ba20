"""Keys shared by replicas on one database (store/keystore.py): signing keys, the sealing key and the CA, their
private parts sealed with the key-encryption key, and a version per kind of key. Empty for the embedded default
(SQLite keeps these keys as files in the data directory).

Revision ID: 0007_shared_keys
Revises: 0006_activity_log
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_shared_keys"
down_revision = "0006_activity_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shared_keys",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("public", sa.Text, nullable=False),
        sa.Column("sealed", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("retire_at", sa.Float, nullable=True),
    )
    op.create_table(
        "key_versions",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("key_versions")
    op.drop_table("shared_keys")
