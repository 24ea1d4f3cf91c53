"""The state store's tables, in SQLAlchemy Core: customers and their versions,
subscriptions and their change rows. Append-only: a row is inserted once and never
updated or deleted (docs/state.md). The migrations in ``state/migrations/`` create
exactly these tables; ``tests/test_state.py`` compares the two.

Every change row has ``effective_at`` (the instant it takes effect), ``recorded_at``
(when it was written) and ``actor`` (who wrote it); instants are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData()

ID = sa.String(128)  # billing.catalog.fields.Identifier's length


class Instant(sa.TypeDecorator[datetime]):
    """A UTC instant: ``timestamptz`` on PostgreSQL, naive UTC text on SQLite; always an
    aware UTC ``datetime`` in Python."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"instant {value} has no time zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _written() -> list[sa.Column[Any]]:
    """When a row was written and by whom."""
    return [sa.Column("recorded_at", Instant(), nullable=False),
            sa.Column("actor", sa.String(256), nullable=False)]


customers = sa.Table(
    "customers", metadata,
    sa.Column("customer_id", ID, primary_key=True),
    *_written(),
)

# A customer's first version sets every field; an edit sets the fields in ``fields``
# (comma-separated names) from ``effective_at`` on, and leaves the other columns null.
customer_versions = sa.Table(
    "customer_versions", metadata,
    sa.Column("version_id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("customer_id", ID, sa.ForeignKey("customers.customer_id"), nullable=False),
    sa.Column("fields", sa.String(256), nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("external_customer_id", ID),
    sa.Column("email", sa.Text),
    sa.Column("timezone", sa.String(64)),
    sa.Column("net_terms", sa.Integer),
    sa.Column("effective_at", Instant(), nullable=False),
    *_written(),
    sa.Index("customer_versions_by_customer", "customer_id", "recorded_at"),
    sa.Index("customer_versions_by_external_id", "external_customer_id"),
)

subscriptions = sa.Table(
    "subscriptions", metadata,
    sa.Column("subscription_id", ID, primary_key=True),
    sa.Column("customer_id", ID, sa.ForeignKey("customers.customer_id"), nullable=False),
    *_written(),
    sa.Index("subscriptions_by_customer", "customer_id"),
)

CHANGE_KINDS = ("create", "plan", "cancel", "coupon", "adjustment", "quantity")

# One row per change. ``effective_date`` is the customer's local day the change takes
# effect on, which billing reads (a phase's start, the end date, a redemption date).
# create: plan_id, plan_version, trial_end_date, billing_cycle_day,
#   align_with_start (the first phase starts on effective_date);
# plan: plan_id, plan_version (a phase from effective_date); cancel: end_date is
# effective_date; coupon: coupon_id, redeemed_on (null: the subscription's start);
# adjustment: adjustment (Orb-shaped JSON); quantity: quantity, price_id (rating does
# not read it yet).
subscription_changes = sa.Table(
    "subscription_changes", metadata,
    sa.Column("change_id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("subscription_id", ID, sa.ForeignKey("subscriptions.subscription_id"),
              nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("effective_at", Instant(), nullable=False),
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
    sa.Column("quantity", sa.String(64)),  # a decimal, as text: SQLite has no exact numeric
    *_written(),
    sa.CheckConstraint("kind IN ('create', 'plan', 'cancel', 'coupon', 'adjustment', "
                       "'quantity')", name="subscription_change_kind"),
    sa.Index("subscription_changes_by_subscription", "subscription_id", "recorded_at"),
)
