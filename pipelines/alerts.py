"""Alerts after the daily running-invoice refresh: a job that evaluates every enabled
alert, started by a sensor when a ``monthly_billing`` run succeeds (the daily schedule's
run of the month so far, or any other: an evaluation again adds nothing). Alerts after
ingestion run inside the ingestion job (pipelines/ingestion.py)."""

from __future__ import annotations

import dagster as dg

from assets.alerts import all_alerts
from pipelines.jobs import monthly_billing_job


@dg.job(description="Evaluate every enabled alert and append what fires to the outbox.")
def evaluate_alerts():
    all_alerts()


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS,
                      monitored_jobs=[monthly_billing_job], request_job=evaluate_alerts,
                      description="Evaluates every alert after a billing run succeeds.",
                      # it follows billing runs, each started on purpose: nothing to switch on
                      default_status=dg.DefaultSensorStatus.RUNNING)
def alerts_after_billing(context: dg.RunStatusSensorContext) -> dg.RunRequest:
    return dg.RunRequest(run_key=context.dagster_run.run_id)
