"""Schedules: which exist, that they start stopped, and what the billing one runs."""

from datetime import UTC, datetime

import dagster as dg

from pipelines.definitions import defs


def schedules():
    return {s.name: defs.resolve_schedule_def(s.name) for s in defs.schedules}


def test_every_schedule_starts_stopped():
    assert {name: s.default_status for name, s in schedules().items()} == {
        name: dg.DefaultScheduleStatus.STOPPED for name in (
            "monthly_billing_schedule", "daily_ingestion", "daily_lake_checks",
            "collect_payments_daily")}


def test_billing_on_the_2nd_runs_the_month_that_closed():
    schedule = schedules()["monthly_billing_schedule"]
    assert schedule.cron_schedule == "0 2 2 * *"
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 12, 2, 2, tzinfo=UTC))
        (request,) = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2026-11-01"
