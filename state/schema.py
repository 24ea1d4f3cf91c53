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
    # Orb's Address and CustomerTaxID as JSON text (migration 0003)
    sa.Column("billing_address", sa.Text),
    sa.Column("shipping_address", sa.Text),
    sa.Column("tax_id", sa.Text),
    sa.Column("effective_at", Instant(), nullable=False),
    *_written(),
    sa.Index("customer_versions_by_customer", "customer_id", "recorded_at"),
    sa.Index("customer_versions_by_external_id", "external_customer_id"),
    # the newest row's instant (StateStore.last_recorded_at), per request of the API
    sa.Index("customer_versions_by_recorded_at", "recorded_at"),
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
    sa.Index("subscription_changes_by_recorded_at", "recorded_at"),
)

# -- what the rest of the company is told (docs/webhooks.md) ----------------------------

# The outbox: one row per business event, Orb's webhook body in ``payload`` (JSON).
# ``sequence`` is monotone (writers are serialized); ``event_id`` is the event's identity
# and the delivery's idempotency key: an event derived from a lake fact gets an id made
# from that fact, so writing it again after a crash adds nothing (``state/outbox.py``).
outbox_events = sa.Table(
    "outbox_events", metadata,
    sa.Column("sequence", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("event_id", ID, nullable=False, unique=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("customer_id", ID),  # null: an event of no customer (a data export)
    sa.Column("subscription_id", ID),
    sa.Column("created_at", Instant(), nullable=False),  # when it became true
    sa.Column("payload", sa.Text, nullable=False),
    *_written(),
    sa.Index("outbox_events_by_customer", "customer_id", "sequence"),
)

# Webhook endpoints: created once; every later edit (url, types, enabled) is a version.
webhook_endpoints = sa.Table(
    "webhook_endpoints", metadata,
    sa.Column("endpoint_id", ID, primary_key=True),
    sa.Column("secret", sa.String(256), nullable=False),  # whsec_..., needed to sign
    # the newest outbox sequence when it was created: it receives the events after it
    sa.Column("after_sequence", sa.Integer, nullable=False),
    *_written(),
)

webhook_endpoint_versions = sa.Table(
    "webhook_endpoint_versions", metadata,
    sa.Column("version_id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("endpoint_id", ID, sa.ForeignKey("webhook_endpoints.endpoint_id"),
              nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("enabled_event_types", sa.Text),  # JSON list; null: every type
    sa.Column("payload_style", sa.String(16), nullable=False),  # Orb's: standard|expanded
    sa.Column("signature_style", sa.String(16), nullable=False),  # standard|orb
    *_written(),
    sa.Index("webhook_endpoint_versions_by_endpoint", "endpoint_id", "version_id"),
)

# Every delivery attempt, kept: one row per POST (or per failure to connect).
webhook_attempts = sa.Table(
    "webhook_attempts", metadata,
    sa.Column("attempt_id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("endpoint_id", ID, sa.ForeignKey("webhook_endpoints.endpoint_id"),
              nullable=False),
    sa.Column("event_id", ID, sa.ForeignKey("outbox_events.event_id"), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),  # 1, 2, ... per endpoint and event
    sa.Column("started_at", Instant(), nullable=False),
    sa.Column("status_code", sa.Integer),  # null: no response
    sa.Column("error", sa.Text),
    # delivered | retrying (next_attempt_at set) | failed (gave up; replayable)
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("next_attempt_at", Instant()),
    *_written(),
    sa.Index("webhook_attempts_by_event", "endpoint_id", "event_id", "attempt"),
)

# A dispatcher's claim on one endpoint's events of one customer (``lane``; "" for events
# of no customer) until ``lease_until``: two dispatchers never post the same lane at once,
# so a customer's events reach an endpoint in sequence. Updated in place: a lease, not
# history.
webhook_claims = sa.Table(
    "webhook_claims", metadata,
    sa.Column("endpoint_id", ID, sa.ForeignKey("webhook_endpoints.endpoint_id"),
              primary_key=True),
    sa.Column("lane", ID, primary_key=True),
    sa.Column("holder", sa.String(64), nullable=False),
    sa.Column("lease_until", Instant(), nullable=False),
)

# Alerts in Orb's model: created once, enabled/disabled or re-thresholded by versions.
alerts = sa.Table(
    "alerts", metadata,
    sa.Column("alert_id", ID, primary_key=True),
    # usage_exceeded | cost_exceeded | credit_balance_depleted | credit_balance_dropped
    # | credit_balance_recovered
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("customer_id", ID, sa.ForeignKey("customers.customer_id")),
    sa.Column("subscription_id", ID, sa.ForeignKey("subscriptions.subscription_id")),
    sa.Column("metric_id", ID),
    sa.Column("currency", sa.String(8)),
    *_written(),
)

alert_versions = sa.Table(
    "alert_versions", metadata,
    sa.Column("version_id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("alert_id", ID, sa.ForeignKey("alerts.alert_id"), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("thresholds", sa.Text, nullable=False),  # JSON list of decimals as text
    *_written(),
    sa.Index("alert_versions_by_alert", "alert_id", "version_id"),
)

# A threshold fired in a period: once, whatever re-evaluates it (the unique key).
# usage/cost: ``period_start`` is the billing period's start, every row is "fired".
# Credit balances have no period: ``period_start`` is when the threshold was armed (the
# alert's creation, or the "cleared" row that re-armed it), and a "cleared" row (no
# event) records the balance leaving the alert, which re-arms it (state/alerts.py).
alert_firings = sa.Table(
    "alert_firings", metadata,
    sa.Column("alert_id", ID, sa.ForeignKey("alerts.alert_id"), primary_key=True),
    sa.Column("period_start", Instant(), primary_key=True),
    sa.Column("threshold", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),  # fired | cleared
    sa.Column("value", sa.String(64), nullable=False),  # the value evaluated, a decimal
    sa.Column("event_id", ID),  # the outbox event told (null: cleared)
    *_written(),
    sa.CheckConstraint("kind IN ('fired', 'cleared')", name="alert_firing_kind"),
)

# A subscription's invoicing threshold (Orb's ``invoicing_threshold``): from
# ``effective_at`` on; null removes it.
invoicing_thresholds = sa.Table(
    "invoicing_thresholds", metadata,
    sa.Column("change_id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("subscription_id", ID, sa.ForeignKey("subscriptions.subscription_id"),
              nullable=False),
    sa.Column("threshold", sa.String(64)),  # a decimal in the plan's currency, as text
    sa.Column("effective_at", Instant(), nullable=False),
    *_written(),
    sa.Index("invoicing_thresholds_by_subscription", "subscription_id", "change_id"),
)

# Credit top-ups (Orb's ``customers.credits.top_ups``): one configuration per row, never
# changed; a new one for the same customer and currency replaces the active one, and a
# delete ends one, each by a row of ``credit_top_up_ends`` (state/top_ups.py).
credit_top_ups = sa.Table(
    "credit_top_ups", metadata,
    sa.Column("top_up_id", ID, primary_key=True),
    sa.Column("customer_id", ID, sa.ForeignKey("customers.customer_id"), nullable=False),
    sa.Column("currency", sa.String(8), nullable=False),
    sa.Column("amount", sa.String(64), nullable=False),  # decimals as text, as thresholds
    sa.Column("threshold", sa.String(64), nullable=False),
    sa.Column("per_unit_cost_basis", sa.String(64), nullable=False),
    sa.Column("invoice_settings", sa.Text, nullable=False),  # Orb's shape, as JSON text
    sa.Column("active_from", Instant(), nullable=False),
    sa.Column("expires_after", sa.Integer),
    sa.Column("expires_after_unit", sa.String(8)),  # day | month
    *_written(),
    sa.Index("credit_top_ups_by_customer", "customer_id", "currency"),
)

credit_top_up_ends = sa.Table(
    "credit_top_up_ends", metadata,
    sa.Column("top_up_id", ID, sa.ForeignKey("credit_top_ups.top_up_id"), primary_key=True),
    sa.Column("reason", sa.String(16), nullable=False),  # deleted | replaced
    *_written(),
)

# Each evaluation that changes a top-up's state: "fired" (the balance at or below the
# threshold: ``grant_id`` granted, the purchase invoiced) disarms it, "cleared" (the
# balance above it again) re-arms it. (top_up_id, sequence) is unique, so two
# evaluations at once cannot both fire the same crossing.
credit_top_up_triggers = sa.Table(
    "credit_top_up_triggers", metadata,
    sa.Column("top_up_id", ID, sa.ForeignKey("credit_top_ups.top_up_id"), primary_key=True),
    sa.Column("sequence", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(16), nullable=False),  # fired | cleared
    sa.Column("balance", sa.String(64), nullable=False),  # the balance evaluated
    sa.Column("grant_id", ID),  # fired: the credit grant it makes
    sa.Column("purchase_amount", sa.String(64)),  # fired: amount × per_unit_cost_basis
    *_written(),
    sa.CheckConstraint("kind IN ('fired', 'cleared')", name="credit_top_up_trigger_kind"),
)

# The purchase invoice of a fired top-up (invoicing/one_off.py's), once made.
credit_top_up_invoices = sa.Table(
    "credit_top_up_invoices", metadata,
    sa.Column("top_up_id", ID, primary_key=True),
    sa.Column("sequence", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("invoice_id", ID, nullable=False),
    *_written(),
    sa.ForeignKeyConstraint(["top_up_id", "sequence"], ["credit_top_up_triggers.top_up_id",
                                                        "credit_top_up_triggers.sequence"]),
)

# Orb's pending subscription changes (``Create-Pending-Subscription-Change: true``): a
# subscription create or plan change held, as its request, until applied or cancelled
# (one row of ``subscription_change_outcomes``); applying makes the same state write an
# immediate request makes (api/pending_changes.py).
pending_subscription_changes = sa.Table(
    "pending_subscription_changes", metadata,
    sa.Column("change_id", ID, primary_key=True),
    sa.Column("change_type", sa.String(32), nullable=False),  # create_subscription | ...
    sa.Column("subscription_id", ID, nullable=False),  # a create's is the id it will have
    sa.Column("customer_id", ID, sa.ForeignKey("customers.customer_id"), nullable=False),
    sa.Column("request", sa.Text, nullable=False),  # the request's body, JSON
    sa.Column("expiration_time", Instant(), nullable=False),
    *_written(),
    sa.Index("pending_subscription_changes_by_subscription", "subscription_id"),
)

subscription_change_outcomes = sa.Table(
    "subscription_change_outcomes", metadata,
    sa.Column("change_id", ID, sa.ForeignKey("pending_subscription_changes.change_id"),
              primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),  # applied | cancelled
    sa.Column("description", sa.Text),
    sa.Column("previously_collected_amount", sa.String(64)),
    *_written(),
    sa.CheckConstraint("status IN ('applied', 'cancelled')",
                       name="subscription_change_status"),
)
