"""Schedules for the two jobs; both start stopped and are switched on in the UI."""

from __future__ import annotations

import dagster as dg

from pipelines.jobs import ingest_events_job, monthly_billing_job

# Each runs for the partition that has just closed: yesterday's events, last month's bill.
# Billing waits until the 2nd, 02:00 UTC, so that the first UTC day of the new month
# (which customers west of UTC still bill in the closing month) has landed first.
ingest_events_schedule = dg.build_schedule_from_partitioned_job(
    ingest_events_job, hour_of_day=1, minute_of_hour=0
)
monthly_billing_schedule = dg.build_schedule_from_partitioned_job(
    monthly_billing_job, day_of_month=2, hour_of_day=2, minute_of_hour=0
)
