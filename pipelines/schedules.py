"""Schedules; each starts stopped and is switched on in the UI.

New events need no schedule when the landing sensor (pipelines/ingestion.py) is on: it
starts an ingestion whenever files arrive. The daily ingestion is the catch-up for
deployments that leave the sensor off. One monthly billing run covers every cadence:
quarterly and annual charges are made by the run of the month their invoice is dated
in (docs/invoicing.md). Payment retries: pipelines/payments.py."""

from __future__ import annotations

import dagster as dg

from pipelines.ingestion import ingest_events
from pipelines.jobs import check_lake_job, monthly_billing_job

# Runs for the month that has just closed. It waits until the 2nd, 02:00 UTC, so that
# the first UTC day of the new month (which customers west of UTC still bill in the
# closing month) has been ingested.
monthly_billing_schedule = dg.build_schedule_from_partitioned_job(
    monthly_billing_job, day_of_month=2, hour_of_day=2, minute_of_hour=0
)

daily_ingestion_schedule = dg.ScheduleDefinition(
    name="daily_ingestion", job=ingest_events, cron_schedule="0 1 * * *",
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Ingest whatever is in the landing folder, every day at 01:00 UTC.")

# After the ingestion: the whole-lake checks see the day's batches.
daily_checks_schedule = dg.ScheduleDefinition(
    name="daily_lake_checks", job=check_lake_job, cron_schedule="30 1 * * *",
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Check idempotency keys and customers over the whole event lake.")
