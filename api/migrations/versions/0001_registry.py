"""Tenants, API keys, the audit trail, idempotent responses.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from state.schema import Instant

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(128)


def upgrade() -> None:
    op.create_table(
        "api_tenants",
        sa.Column("tenant_id", ID, primary_key=True),
        sa.Column("data_dir", sa.Text, nullable=False),
        sa.Column("created_at", Instant, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", ID, primary_key=True),
        sa.Column("tenant_id", ID, sa.ForeignKey("api_tenants.tenant_id"), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("description", sa.Text),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("revoked_at", Instant),
    )
    op.create_table(
        "api_audit_events",
        sa.Column("audit_id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("key_id", ID),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("at", Instant, nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("resource", sa.String(64), nullable=False),
        sa.Column("resource_id", ID, nullable=False),
        sa.Column("before", sa.Text),
        sa.Column("after", sa.Text, nullable=False),
    )
    op.create_index("ix_api_audit_events_tenant_id", "api_audit_events", ["tenant_id"])
    op.create_table(
        "api_idempotent_responses",
        sa.Column("tenant_id", ID, primary_key=True),
        sa.Column("idempotency_key", sa.String(256), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("created_at", Instant, nullable=False),
    )


def downgrade() -> None:
    for table in ("api_idempotent_responses", "api_audit_events", "api_keys", "api_tenants"):
        op.drop_table(table)
