"""Payments in Dagster: the job that runs the ``payments`` asset, and the daily schedule
that collects new invoices and retries failed payments when their retry is due (the asset
itself decides what is due; see docs/payments.md). The processor is the
``payment_processor`` resource (``assets/resources.py``)."""

import dagster as dg

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

dunning_job = dg.define_asset_job(
    "send_dunning_notices",
    selection=dg.AssetSelection.assets("dunning_notices"),
    description="Send the reminders and past-due notices now due (mail over SMTP); a "
    "past-due notice brings the invoice's payment retry forward.",
    # the payments slot: notices and collections one at a time, each reading the other's
    # records (a notice announces a retry from the payment attempts; collection reads it)
    tags={"orb/lake_writer": "payments"},
)

# An hour before collect_payments_daily, so that the retry a past-due notice announces
# runs the same morning. Starts stopped, like the other schedules.
dunning_schedule = dg.ScheduleDefinition(
    name="dunning_daily",
    job=dunning_job,
    cron_schedule="0 5 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
