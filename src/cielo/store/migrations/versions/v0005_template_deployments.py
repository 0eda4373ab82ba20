"""Template deployment records (store/template_deployments.py): one row per `Microsoft.Resources/deployments`
of a resource group, shared by every worker and kept across restarts.

Revision ID: 0005_template_deployments
Revises: 0004_stored_responses
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_template_deployments"
down_revision = "0004_stored_responses"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "template_deployments",
        sa.Column("key", sa.String(1024), primary_key=True),
        sa.Column("group_key", sa.String(1024), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("operation_id", sa.String(36), nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("operations", sa.Text, nullable=False),
        sa.Column("owner", sa.String(300), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("heartbeat", sa.Float, nullable=False),
    )
    op.create_index("ix_template_deployments_group_key", "template_deployments", ["group_key"])


def downgrade() -> None:
    op.drop_table("template_deployments")
