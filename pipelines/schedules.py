"""The monthly billing schedule; it starts stopped and is switched on in the UI.
New events need no schedule: the landing sensor (pipelines/ingestion.py) starts
an ingestion whenever files arrive."""

from __future__ import annotations

import dagster as dg

from pipelines.jobs import monthly_billing_job

# Runs for the month that has just closed. It waits until the 2nd, 02:00 UTC, so that
# the first UTC day of the new month (which customers west of UTC still bill in the
# closing month) has been ingested.
monthly_billing_schedule = dg.build_schedule_from_partitioned_job(
    monthly_billing_job, day_of_month=2, hour_of_day=2, minute_of_hour=0
)
