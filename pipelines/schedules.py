"""Schedules; each starts stopped and is switched on in the UI.

New events need no schedule when the landing sensor (pipelines/ingestion.py) is on: it
starts an ingestion whenever files arrive. The daily ingestion is the catch-up for
deployments that leave the sensor off; the daily running invoices aggregate the month
so far. One monthly billing run covers every cadence:
quarterly and annual charges are made by the run of the month their invoice is dated
in (docs/invoicing.md). Payment retries: pipelines/payments.py."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from pipelines.ingestion import ingest_events
from pipelines.jobs import check_lake_job, monthly_billing_job


@dg.schedule(job=monthly_billing_job, cron_schedule="0 2 2 * *", execution_timezone="UTC",
             name="monthly_billing_schedule", default_status=dg.DefaultScheduleStatus.STOPPED)
def monthly_billing_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """The run that closes last month. It waits until the 2nd, 02:00 UTC, so that the
    first UTC day of the new month (which customers west of UTC still bill in the
    closing month) has been ingested."""
    month = _month_before(context.scheduled_execution_time.date())
    return dg.RunRequest(run_key=month.isoformat(), partition_key=month.isoformat())


@dg.schedule(job=monthly_billing_job, cron_schedule="0 3 * * *", execution_timezone="UTC",
             name="daily_running_invoices", default_status=dg.DefaultScheduleStatus.STOPPED)
def daily_running_invoices(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Every day, the month of yesterday's usage again: running drafts, usage so far and
    revenue to date, as Orb's upcoming invoice."""
    yesterday = context.scheduled_execution_time.date() - timedelta(days=1)
    return dg.RunRequest(partition_key=yesterday.replace(day=1).isoformat())


def _month_before(day: date) -> date:
    return (day.replace(day=1) - timedelta(days=1)).replace(day=1)


daily_ingestion_schedule = dg.ScheduleDefinition(
    name="daily_ingestion", job=ingest_events, cron_schedule="0 1 * * *",
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Ingest whatever is in the landing folder, every day at 01:00 UTC.")

# After the ingestion: the whole-lake checks see the day's batches.
daily_checks_schedule = dg.ScheduleDefinition(
    name="daily_lake_checks", job=check_lake_job, cron_schedule="30 1 * * *",
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Check idempotency keys and customers over the whole event lake.")
