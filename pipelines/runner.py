"""Run the pipeline's jobs in-process, the same asset graph the UI shows.

Runs are recorded in the Dagster instance under DAGSTER_HOME when it is set (as
``make`` sets it), so that ``make ui`` shows what the CLI did.
"""

from __future__ import annotations

import os
from datetime import date, timedelta

import dagster as dg

from assets.revenue import REVENUE_TABLES

# The CLI prints its own summary; Dagster's step-by-step log stays in the run record.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else (
        dg.DagsterInstance.ephemeral())


def _run(defs: dg.Definitions, job: str, on: dg.DagsterInstance, what: str,
         **options) -> None:
    """Run a job in-process on ``on``; raise with every failure's message if it fails."""
    result = defs.resolve_job_def(job).execute_in_process(instance=on, run_config=QUIET,
                                                          **options)
    if not result.success:
        failures = [event.message for event in result.all_events if event.is_failure]
        raise RuntimeError(f"{what} failed: " + "; ".join(str(f) for f in failures))


def ingest_landing(defs: dg.Definitions, on: dg.DagsterInstance) -> None:
    """Ingest everything in the landing folder, as the landing sensor would."""
    _run(defs, "ingest_events", on, "ingesting the landing folder")


def bill_month(defs: dg.Definitions, month: date, on: dg.DagsterInstance) -> None:
    _run(defs, "monthly_billing", on, f"billing {month:%Y-%m}",
         partition_key=month.isoformat())


def collect_payments(defs: dg.Definitions, on: dg.DagsterInstance) -> None:
    _run(defs, "collect_payments", on, "collecting payments")


def refresh_revenue(defs: dg.Definitions, month: date, on: dg.DagsterInstance) -> None:
    """Rebuild a month's revenue tables and report alone (after payments, say)."""
    _run(defs, "monthly_billing", on, f"refreshing the revenue of {month:%Y-%m}",
         partition_key=month.isoformat(),
         asset_selection=[dg.AssetKey(key) for key in (*REVENUE_TABLES, "revenue_report")])


def refresh_views(defs: dg.Definitions, on: dg.DagsterInstance) -> None:
    _run(defs, "refresh_lake_views", on, "refreshing lake views")


def bill_months(defs: dg.Definitions, months: list[date], on: dg.DagsterInstance) -> None:
    """Ingest what has landed, then bill each month."""
    ingest_landing(defs, on)
    for month in months:
        bill_month(defs, month, on)
    refresh_views(defs, on)


def last_complete_month(today: date) -> date:
    return (today.replace(day=1) - timedelta(days=1)).replace(day=1)
