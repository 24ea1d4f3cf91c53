"""The outbox and webhook delivery, alerts, and invoicing thresholds (docs/webhooks.md).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(128)


def _written() -> list[sa.Column[Any]]:
    return [sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("actor", sa.String(256), nullable=False)]


def upgrade() -> None:
    op.create_table(
        "outbox_events",
        sa.Column("sequence", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("event_id", ID, nullable=False, unique=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("customer_id", ID),
        sa.Column("subscription_id", ID),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        *_written(),
    )
    op.create_index("outbox_events_by_customer", "outbox_events",
                    ["customer_id", "sequence"])
    op.create_table(
        "webhook_endpoints",
        sa.Column("endpoint_id", ID, primary_key=True),
        sa.Column("secret", sa.String(256), nullable=False),
        sa.Column("after_sequence", sa.Integer, nullable=False),
        *_written(),
    )
    op.create_table(
        "webhook_endpoint_versions",
        sa.Column("version_id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("endpoint_id", ID, sa.ForeignKey("webhook_endpoints.endpoint_id"),
                  nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("enabled_event_types", sa.Text),
        sa.Column("payload_style", sa.String(16), nullable=False),
        sa.Column("signature_style", sa.String(16), nullable=False),
        *_written(),
    )
    op.create_index("webhook_endpoint_versions_by_endpoint", "webhook_endpoint_versions",
                    ["endpoint_id", "version_id"])
    op.create_table(
        "webhook_attempts",
        sa.Column("attempt_id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("endpoint_id", ID, sa.ForeignKey("webhook_endpoints.endpoint_id"),
                  nullable=False),
        sa.Column("event_id", ID, sa.ForeignKey("outbox_events.event_id"), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
        *_written(),
    )
    op.create_index("webhook_attempts_by_event", "webhook_attempts",
                    ["endpoint_id", "event_id", "attempt"])
    op.create_table(
        "webhook_claims",
        sa.Column("endpoint_id", ID, sa.ForeignKey("webhook_endpoints.endpoint_id"),
                  primary_key=True),
        sa.Column("lane", ID, primary_key=True),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("alert_id", ID, primary_key=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("customer_id", ID, sa.ForeignKey("customers.customer_id")),
        sa.Column("subscription_id", ID, sa.ForeignKey("subscriptions.subscription_id")),
        sa.Column("metric_id", ID),
        sa.Column("currency", sa.String(8)),
        *_written(),
    )
    op.create_table(
        "alert_versions",
        sa.Column("version_id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("alert_id", ID, sa.ForeignKey("alerts.alert_id"), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("thresholds", sa.Text, nullable=False),
        *_written(),
    )
    op.create_index("alert_versions_by_alert", "alert_versions",
                    ["alert_id", "version_id"])
    op.create_table(
        "alert_firings",
        sa.Column("alert_id", ID, sa.ForeignKey("alerts.alert_id"), primary_key=True),
        sa.Column("period_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("threshold", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("event_id", ID),
        *_written(),
        sa.CheckConstraint("kind IN ('fired', 'cleared')", name="alert_firing_kind"),
    )
    op.create_table(
        "invoicing_thresholds",
        sa.Column("change_id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("subscription_id", ID, sa.ForeignKey("subscriptions.subscription_id"),
                  nullable=False),
        sa.Column("threshold", sa.String(64)),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        *_written(),
    )
    op.create_index("invoicing_thresholds_by_subscription", "invoicing_thresholds",
                    ["subscription_id", "change_id"])


def downgrade() -> None:
    for table in ('invoicing_thresholds',
                  'alert_firings',
                  'alert_versions',
                  'alerts',
                  'webhook_claims',
                  'webhook_attempts',
                  'webhook_endpoint_versions',
                  'webhook_endpoints',
                  'outbox_events'):
        op.drop_table(table)
