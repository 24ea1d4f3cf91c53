"""Customers and their versions, subscriptions and their change rows.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(128)


def _written() -> list[sa.Column[Any]]:
    return [sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("actor", sa.String(256), nullable=False)]


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("customer_id", ID, primary_key=True),
        *_written(),
    )
    op.create_table(
        "customer_versions",
        sa.Column("version_id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("customer_id", ID, sa.ForeignKey("customers.customer_id"), nullable=False),
        sa.Column("fields", sa.String(256), nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("external_customer_id", ID),
        sa.Column("email", sa.Text),
        sa.Column("timezone", sa.String(64)),
        sa.Column("net_terms", sa.Integer),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        *_written(),
    )
    op.create_index("customer_versions_by_customer", "customer_versions",
                    ["customer_id", "recorded_at"])
    op.create_index("customer_versions_by_external_id", "customer_versions",
                    ["external_customer_id"])
    op.create_table(
        "subscriptions",
        sa.Column("subscription_id", ID, primary_key=True),
        sa.Column("customer_id", ID, sa.ForeignKey("customers.customer_id"), nullable=False),
        *_written(),
    )
    op.create_index("subscriptions_by_customer", "subscriptions", ["customer_id"])
    op.create_table(
        "subscription_changes",
        sa.Column("change_id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("subscription_id", ID, sa.ForeignKey("subscriptions.subscription_id"),
                  nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_date", sa.Date, nullable=False),
        sa.Column("plan_id", ID),
        sa.Column("plan_version", sa.Integer),
        sa.Column("trial_end_date", sa.Date),
        sa.Column("billing_cycle_day", sa.Integer),
        sa.Column("align_with_start", sa.Boolean),
        sa.Column("coupon_id", ID),
        sa.Column("redeemed_on", sa.Date),
        sa.Column("adjustment", sa.Text),
        sa.Column("price_id", ID),
        sa.Column("quantity", sa.String(64)),
        *_written(),
        sa.CheckConstraint("kind IN ('create', 'plan', 'cancel', 'coupon', 'adjustment', "
                           "'quantity')", name="subscription_change_kind"),
    )
    op.create_index("subscription_changes_by_subscription", "subscription_changes",
                    ["subscription_id", "recorded_at"])


def downgrade() -> None:
    for table in ("subscription_changes", "subscriptions", "customer_versions", "customers"):
        op.drop_table(table)
