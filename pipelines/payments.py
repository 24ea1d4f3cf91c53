"""Payments in Dagster: the processor resource, the job that runs the ``payments``
asset, and the daily schedule that collects new invoices and retries failed payments
when their retry is due (the asset itself decides what is due; see docs/payments.md).

Secrets never go through Dagster config: the Stripe key is read from
``ORB_STRIPE_API_KEY`` when the processor is built, so it is neither in run config nor
in the UI.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from payments.manual import ManualProcessor
from payments.processor import PaymentProcessor
from payments.stripe_processor import StripeProcessor
from pipelines.resources import OrbStore

DEFAULT_PROCESSOR = "manual"


def _manual(config: PaymentsConfig, store: OrbStore) -> PaymentProcessor:
    return ManualProcessor(config.payments_file
                           or Path(store.data_dir) / "payments" / "payments.csv")


def _stripe(config: PaymentsConfig, store: OrbStore) -> PaymentProcessor:
    return StripeProcessor.from_env()


# A new gateway: a PaymentProcessor subclass and one entry here.
PROCESSORS: dict[str, Callable[[PaymentsConfig, OrbStore], PaymentProcessor]] = {
    "manual": _manual,
    "stripe": _stripe,
}


class PaymentsConfig(dg.ConfigurableResource):
    """Which payment processor collects issued invoices.

    ``processor``: ``manual`` (default; payments recorded in ``payments_file``, by default
    ``<data_dir>/payments/payments.csv``) or ``stripe`` (``ORB_STRIPE_API_KEY``,
    optionally ``ORB_STRIPE_API_BASE``). ``key_prefix`` starts every idempotency key:
    give each lake its own when several share one Stripe account."""

    processor: str = DEFAULT_PROCESSOR
    payments_file: str = ""
    key_prefix: str = "orb"

    @classmethod
    def from_env(cls) -> PaymentsConfig:
        """ORB_PAYMENT_PROCESSOR, ORB_PAYMENTS_FILE, ORB_PAYMENT_KEY_PREFIX."""
        return cls(processor=os.environ.get("ORB_PAYMENT_PROCESSOR", DEFAULT_PROCESSOR),
                   payments_file=os.environ.get("ORB_PAYMENTS_FILE", ""),
                   key_prefix=os.environ.get("ORB_PAYMENT_KEY_PREFIX", "orb"))

    def build(self, store: OrbStore) -> PaymentProcessor:
        if self.processor not in PROCESSORS:
            raise ValueError(f"unknown payment processor {self.processor!r} "
                             f"(ORB_PAYMENT_PROCESSOR): one of {', '.join(PROCESSORS)}")
        return PROCESSORS[self.processor](self, store)


payments_job = dg.define_asset_job(
    "collect_payments",
    selection=dg.AssetSelection.assets("payments"),
    description="Collect issued invoices, retry failed payments that are due and "
    "reconcile the processor's state into the lake.",
    tags={"orb/lake_writer": "payments"},
)

# Daily: new invoices are collected the day after they are issued at the latest, and
# a retry due at any time of day runs within 24 hours of its time. Starts stopped,
# like the billing schedule; switch it on in the UI.
payments_schedule = dg.ScheduleDefinition(
    name="collect_payments_daily",
    job=payments_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
