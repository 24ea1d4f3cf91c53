"""Credit top-ups with their triggers and purchase invoices, pending subscription
changes with their outcomes (docs/api.md), and the indexes that find the store's newest
row at once (``StateStore.last_recorded_at``, which the API's cached reads check).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(128)
DECIMAL = sa.String(64)  # decimals as text, as the store keeps thresholds


def _written() -> list[sa.Column[Any]]:
    return [sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("actor", sa.String(256), nullable=False)]


def upgrade() -> None:
    op.create_index("customer_versions_by_recorded_at", "customer_versions", ["recorded_at"])
    op.create_index("subscription_changes_by_recorded_at", "subscription_changes",
                    ["recorded_at"])
    op.create_table(
        "credit_top_ups",
        sa.Column("top_up_id", ID, primary_key=True),
        sa.Column("customer_id", ID, sa.ForeignKey("customers.customer_id"), nullable=False),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("amount", DECIMAL, nullable=False),
        sa.Column("threshold", DECIMAL, nullable=False),
        sa.Column("per_unit_cost_basis", DECIMAL, nullable=False),
        sa.Column("invoice_settings", sa.Text, nullable=False),
        sa.Column("active_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_after", sa.Integer),
        sa.Column("expires_after_unit", sa.String(8)),
        *_written(),
    )
    op.create_index("credit_top_ups_by_customer", "credit_top_ups",
                    ["customer_id", "currency"])
    op.create_table(
        "credit_top_up_ends",
        sa.Column("top_up_id", ID, sa.ForeignKey("credit_top_ups.top_up_id"),
                  primary_key=True),
        sa.Column("reason", sa.String(16), nullable=False),
        *_written(),
    )
    op.create_table(
        "credit_top_up_triggers",
        sa.Column("top_up_id", ID, sa.ForeignKey("credit_top_ups.top_up_id"),
                  primary_key=True),
        sa.Column("sequence", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("balance", DECIMAL, nullable=False),
        sa.Column("grant_id", ID),
        sa.Column("purchase_amount", DECIMAL),
        *_written(),
        sa.CheckConstraint("kind IN ('fired', 'cleared')", name="credit_top_up_trigger_kind"),
    )
    op.create_table(
        "credit_top_up_invoices",
        sa.Column("top_up_id", ID, primary_key=True),
        sa.Column("sequence", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("invoice_id", ID, nullable=False),
        *_written(),
        sa.ForeignKeyConstraint(["top_up_id", "sequence"],
                                ["credit_top_up_triggers.top_up_id",
                                 "credit_top_up_triggers.sequence"]),
    )
    op.create_table(
        "pending_subscription_changes",
        sa.Column("change_id", ID, primary_key=True),
        sa.Column("change_type", sa.String(32), nullable=False),
        sa.Column("subscription_id", ID, nullable=False),
        sa.Column("customer_id", ID, sa.ForeignKey("customers.customer_id"), nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("expiration_time", sa.DateTime(timezone=True), nullable=False),
        *_written(),
    )
    op.create_index("pending_subscription_changes_by_subscription",
                    "pending_subscription_changes", ["subscription_id"])
    op.create_table(
        "subscription_change_outcomes",
        sa.Column("change_id", ID, sa.ForeignKey("pending_subscription_changes.change_id"),
                  primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("previously_collected_amount", DECIMAL),
        *_written(),
        sa.CheckConstraint("status IN ('applied', 'cancelled')",
                           name="subscription_change_status"),
    )


def downgrade() -> None:
    for table in ("subscription_change_outcomes", "pending_subscription_changes",
                  "credit_top_up_invoices", "credit_top_up_triggers", "credit_top_up_ends",
                  "credit_top_ups"):
        op.drop_table(table)
    op.drop_index("subscription_changes_by_recorded_at", "subscription_changes")
    op.drop_index("customer_versions_by_recorded_at", "customer_versions")
