"""The activity log (store/activity.py): control-plane writes, sign-ins, token issuances and data-plane denials,
listed by `GET /subscriptions/{id}/providers/Microsoft.Insights/eventtypes/management/values`. Portable types only
(SQLite and PostgreSQL).

Revision ID: 0006_activity_log
Revises: 0005_template_deployments
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_activity_log"
down_revision = "0005_template_deployments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "activity_log",
        sa.Column("event_data_id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("subscription_id", sa.String(36), nullable=True),
        sa.Column("event_ts", sa.Float, nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("operation_name", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("caller", sa.String(256), nullable=False),
        sa.Column("caller_lower", sa.String(256), nullable=False),
        sa.Column("correlation_id", sa.String(100), nullable=False),
        sa.Column("resource_id", sa.String(1024), nullable=False),
        sa.Column("resource_lower", sa.String(1024), nullable=False),
        sa.Column("group_lower", sa.String(90), nullable=False),
        sa.Column("provider_lower", sa.String(128), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_activity_log_sub_ts", "activity_log", ["subscription_id", "event_ts"])
    op.create_index("ix_activity_log_tenant_ts", "activity_log", ["tenant_id", "event_ts"])


def downgrade() -> None:
    op.drop_table("activity_log")
