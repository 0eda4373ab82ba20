"""Stored responses of the Responses API (store/responses.py): one row per response kept with `store: true`,
for its account and caller, until it expires (30 days).

Revision ID: 0004_stored_responses
Revises: 0003_integrity
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_stored_responses"
down_revision = "0003_integrity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stored_responses",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("account_id", sa.String(1024), nullable=False),
        sa.Column("owner", sa.String(80), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("input_items", sa.Text, nullable=False),
        sa.Column("context", sa.Text, nullable=False),
    )
    op.create_index("ix_stored_responses_expires_at", "stored_responses", ["expires_at"])


def downgrade() -> None:
    op.drop_table("stored_responses")
