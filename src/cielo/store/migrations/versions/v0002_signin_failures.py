"""Failed sign-ins counted in the database (smart lockout and per-address throttling, store/signin.py).

Builds between the baseline release and migrations made this table themselves (`create(checkfirst=True)`):
it is created here only where it is missing.

Revision ID: 0002_signin_failures
Revises: 0001_baseline
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_signin_failures"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("signin_failures"):
        op.create_table(
            "signin_failures",
            sa.Column("key", sa.String(80), primary_key=True),
            sa.Column("failures", sa.Integer, nullable=False),
            sa.Column("window_start", sa.Float, nullable=False),
            sa.Column("locked_until", sa.Float, nullable=False),
            sa.Column("lockouts", sa.Integer, nullable=False),
            sa.Column("last_failure", sa.Float, nullable=False),
        )
    if "ix_signin_failures_last_failure" not in {i["name"] for i in inspector.get_indexes("signin_failures")}:
        op.create_index("ix_signin_failures_last_failure", "signin_failures", ["last_failure"])


def downgrade() -> None:
    op.drop_table("signin_failures")
