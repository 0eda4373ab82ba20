"""Baseline: the schema of the last release before migrations (commit bc75321), as its create_all built it.

A database that release made has these tables and no `alembic_version`: Cielo stamps it with this revision,
then upgrades it. This file describes that schema on its own (not through store/db.py, which moves on).

Revision ID: 0001_baseline
Revises:
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

TABLES = ("tenants", "subscriptions", "users", "groups", "group_members", "applications", "service_principals",
          "password_credentials", "key_credentials", "federated_credentials", "auth_codes", "device_codes",
          "refresh_tokens", "resources", "account_keys", "role_assignments", "custom_roles", "host_credentials")


def upgrade() -> None:
    col = sa.Column
    string, text, flt, boolean = sa.String, sa.Text, sa.Float, sa.Boolean
    op.create_table(
        "tenants",
        col("id", string(36), primary_key=True),
        col("display_name", string(256), nullable=False),
        col("default_domain", string(256), nullable=False, unique=True),
        col("created_at", flt, nullable=False),
    )
    op.create_table(
        "subscriptions",
        col("id", string(36), primary_key=True),
        col("tenant_id", string(36), sa.ForeignKey("tenants.id"), nullable=False),
        col("display_name", string(256), nullable=False),
        col("state", string(32), nullable=False),
    )
    op.create_table(
        "users",
        col("object_id", string(36), primary_key=True),
        col("tenant_id", string(36), sa.ForeignKey("tenants.id"), nullable=False),
        col("upn", string(256), nullable=False),
        col("upn_lower", string(256), nullable=False, unique=True),
        col("display_name", string(256), nullable=False),
        col("password_hash", text, nullable=False),
        col("is_admin", boolean, nullable=False),
        col("account_enabled", boolean, nullable=False),
        col("created_at", flt, nullable=False),
    )
    op.create_table(
        "groups",
        col("object_id", string(36), primary_key=True),
        col("tenant_id", string(36), sa.ForeignKey("tenants.id"), nullable=False),
        col("display_name", string(256), nullable=False),
        col("mail_nickname", string(256), nullable=False),
        col("description", text, nullable=True),
        col("created_at", flt, nullable=False),
    )
    op.create_table(
        "group_members",
        col("group_id", string(36), sa.ForeignKey("groups.object_id", ondelete="CASCADE"), primary_key=True),
        col("member_id", string(36), primary_key=True),
    )
    op.create_table(
        "applications",
        col("object_id", string(36), primary_key=True),
        col("tenant_id", string(36), sa.ForeignKey("tenants.id"), nullable=False),
        col("app_id", string(36), nullable=False, unique=True),
        col("display_name", string(256), nullable=False),
        col("is_public_client", boolean, nullable=False),
        col("access_token_version", sa.Integer, nullable=False),
        col("identifier_uris", text, nullable=False),
        col("redirect_uris", text, nullable=False),
        col("created_at", flt, nullable=False),
    )
    op.create_table(
        "service_principals",
        col("object_id", string(36), primary_key=True),
        col("tenant_id", string(36), sa.ForeignKey("tenants.id"), nullable=False),
        col("app_id", string(36), nullable=False),
        col("display_name", string(256), nullable=False),
        col("sp_type", string(32), nullable=False),
        col("created_at", flt, nullable=False),
    )
    op.create_index("ix_sp_tenant_app", "service_principals", ["tenant_id", "app_id"], unique=True)
    op.create_table(
        "password_credentials",
        col("key_id", string(36), primary_key=True),
        col("app_object_id", string(36), sa.ForeignKey("applications.object_id", ondelete="CASCADE")),
        col("display_name", string(256), nullable=True),
        col("hint", string(8), nullable=False),
        col("secret_hash", string(128), nullable=False),
        col("start", flt, nullable=False),
        col("end", flt, nullable=False),
    )
    op.create_table(
        "key_credentials",
        col("key_id", string(36), primary_key=True),
        col("app_object_id", string(36), sa.ForeignKey("applications.object_id", ondelete="CASCADE")),
        col("display_name", string(256), nullable=True),
        col("cert_der", sa.LargeBinary, nullable=False),
        col("start", flt, nullable=False),
        col("end", flt, nullable=False),
    )
    op.create_table(
        "federated_credentials",
        col("id", string(36), primary_key=True),
        col("app_object_id", string(36), sa.ForeignKey("applications.object_id", ondelete="CASCADE")),
        col("name", string(120), nullable=False),
        col("issuer", string(600), nullable=False),
        col("subject", string(600), nullable=False),
        col("audiences", text, nullable=False),
        col("description", text, nullable=True),
    )
    op.create_table(
        "auth_codes",
        col("code_hash", string(64), primary_key=True),
        col("tenant_id", string(36), nullable=False),
        col("client_id", string(36), nullable=False),
        col("user_id", string(36), nullable=False),
        col("redirect_uri", text, nullable=False),
        col("scope", text, nullable=False),
        col("code_challenge", string(128), nullable=True),
        col("code_challenge_method", string(16), nullable=True),
        col("nonce", text, nullable=True),
        col("expires_at", flt, nullable=False),
        col("redeemed", boolean, nullable=False),
        col("family_id", string(36), nullable=True),
    )
    op.create_table(
        "device_codes",
        col("device_code_hash", string(64), primary_key=True),
        col("user_code", string(16), nullable=False, unique=True),
        col("tenant_id", string(36), nullable=True),
        col("client_id", string(36), nullable=False),
        col("scope", text, nullable=False),
        col("expires_at", flt, nullable=False),
        col("status", string(16), nullable=False),
        col("user_id", string(36), nullable=True),
        col("last_poll", flt, nullable=True),
    )
    op.create_table(
        "refresh_tokens",
        col("token_hash", string(64), primary_key=True),
        col("family_id", string(36), nullable=False),
        col("tenant_id", string(36), nullable=False),
        col("client_id", string(36), nullable=False),
        col("user_id", string(36), nullable=False),
        col("expires_at", flt, nullable=False),
        col("redeemed", boolean, nullable=False),
        col("revoked", boolean, nullable=False),
    )
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"])
    op.create_index("ix_refresh_tokens_user_id", "refresh_tokens", ["user_id"])
    op.create_table(
        "resources",
        col("key", string(1024), primary_key=True),
        col("id", string(1024), nullable=False),
        col("subscription_id", string(36), nullable=False),
        col("resource_group", string(90), nullable=True),
        col("parent_key", string(1024), nullable=True),
        col("type", string(256), nullable=False),
        col("name", string(256), nullable=False),
        col("location", string(64), nullable=True),
        col("kind", string(64), nullable=True),
        col("sku", text, nullable=True),
        col("tags", text, nullable=True),
        col("properties", text, nullable=False),
        col("identity", text, nullable=True),
        col("system_data", text, nullable=True),
        col("etag", string(64), nullable=False),
    )
    op.create_index("ix_resources_subscription_id", "resources", ["subscription_id"])
    op.create_index("ix_resources_resource_group", "resources", ["resource_group"])
    op.create_index("ix_resources_parent_key", "resources", ["parent_key"])
    op.create_table(
        "account_keys",
        col("resource_key", string(1024), primary_key=True),
        col("key1_hash", string(64), nullable=False),
        col("key2_hash", string(64), nullable=False),
        col("key1_encrypted", text, nullable=False),
        col("key2_encrypted", text, nullable=False),
    )
    op.create_table(
        "role_assignments",
        col("name", string(36), primary_key=True),
        col("scope", string(1024), nullable=False),
        col("scope_key", string(1024), nullable=False),
        col("tenant_id", string(36), nullable=False),
        col("role_definition_name", string(36), nullable=False),
        col("principal_id", string(36), nullable=False),
        col("principal_type", string(32), nullable=False),
        col("description", text, nullable=True),
        col("condition", text, nullable=True),
        col("condition_version", string(8), nullable=True),
        col("created_on", flt, nullable=False),
        col("updated_on", flt, nullable=False),
        col("created_by", string(36), nullable=True),
        col("updated_by", string(36), nullable=True),
    )
    op.create_index("ix_role_assignments_scope_key", "role_assignments", ["scope_key"])
    op.create_index("ix_role_assignments_principal_id", "role_assignments", ["principal_id"])
    op.create_table(
        "custom_roles",
        col("name", string(36), primary_key=True),
        col("tenant_id", string(36), nullable=False),
        col("role_name", string(512), nullable=False),
        col("description", text, nullable=True),
        col("permissions", text, nullable=False),
        col("assignable_scopes", text, nullable=False),
        col("created_on", flt, nullable=False),
        col("updated_on", flt, nullable=False),
        col("created_by", string(36), nullable=True),
    )
    op.create_table(
        "host_credentials",
        col("id", string(36), primary_key=True),
        col("resource_key", string(1024), nullable=False),
        col("secret_hash", string(64), nullable=False),
        col("created_at", flt, nullable=False),
        col("revoked", boolean, nullable=False),
    )
    op.create_index("ix_host_credentials_resource_key", "host_credentials", ["resource_key"])


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
