"""Schedules: which exist, that they start stopped, and what the billing one runs."""

from datetime import UTC, datetime

import dagster as dg

from pipelines.definitions import defs


def schedules():
    return {s.name: defs.resolve_schedule_def(s.name) for s in defs.schedules}


def test_every_schedule_starts_stopped():
    assert {name: s.default_status for name, s in schedules().items()} == {
        name: dg.DefaultScheduleStatus.STOPPED for name in (
            "monthly_billing_schedule", "daily_running_invoices", "daily_ingestion",
            "daily_lake_checks", "collect_payments_daily", "dunning_daily",
            "auto_issue_drafts")}


def requested_partition(name, at):
    # Invoked directly: evaluating a tick would resolve the shared job against a
    # short-lived test instance.
    request = schedules()[name](dg.build_schedule_context(scheduled_execution_time=at))
    return request.partition_key


def test_billing_on_the_2nd_runs_the_month_that_closed():
    assert schedules()["monthly_billing_schedule"].cron_schedule == "0 2 2 * *"
    at = datetime(2026, 12, 2, 2, tzinfo=UTC)
    assert requested_partition("monthly_billing_schedule", at) == "2026-11-01"


def test_running_invoices_rate_the_month_of_yesterday():
    assert requested_partition("daily_running_invoices",
                               datetime(2026, 11, 24, 3, tzinfo=UTC)) == "2026-11-01"
    # on the 1st, yesterday closed the month before: its drafts are brought up to date
    assert requested_partition("daily_running_invoices",
                               datetime(2026, 12, 1, 3, tzinfo=UTC)) == "2026-11-01"
