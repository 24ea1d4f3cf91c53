"""Time partitions shared by the assets: UTC days for events, calendar months for billing,
and the billing run that writes a month.

A billing month's run makes the invoices dated after its 1st up to the next 1st
(docs/invoicing.md). The current month is a partition too: run during the month, it
holds running drafts (usage so far), which the run on the 2nd of the next month
replaces; a draft is never issued before its date.
"""

from __future__ import annotations

import os
from datetime import date

import dagster as dg

# The first day the lake can hold; override for older history.
FIRST_DAY = os.environ.get("ORB_FIRST_DAY", "2025-01-01")


def first_month(value: str | None, first_day: str) -> str:
    """The first billing month's 1st: ``ORB_FIRST_MONTH`` (YYYY-MM) when set, so the UI
    shows no missing partitions before the first billed month; else ``first_day``'s."""
    if not value:
        return first_day
    try:
        month = date.fromisoformat(f"{value}-01")
    except ValueError:
        raise ValueError(f"ORB_FIRST_MONTH={value!r} is not a month YYYY-MM") from None
    if month < date.fromisoformat(first_day):
        raise ValueError(f"ORB_FIRST_MONTH={value} is before ORB_FIRST_DAY={first_day}")
    return month.isoformat()


DAILY = dg.DailyPartitionsDefinition(start_date=FIRST_DAY)
MONTHLY = dg.MonthlyPartitionsDefinition(
    start_date=first_month(os.environ.get("ORB_FIRST_MONTH"), FIRST_DAY), end_offset=1)


def billing_month(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> date:
    return date.fromisoformat(context.partition_key)


# Dagster's tags on a backfill's runs; a job backfill's also name its partition set.
BACKFILL_TAG, PARTITION_SET_TAG = "dagster/backfill", "dagster/partition_set"


def billing_run_id(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> str:
    """The billing run the month's tables are stamped with (storage/billing_runs.py): the
    Dagster run, or the run a re-execution (from failure, in the UI) continues. In an
    asset backfill it is the backfill: Dagster runs a month's `credit_ledger` only after
    the month before's, in a later run than its `usage`, so the month's tables come from
    several runs of it. (A job backfill's runs, tagged with their partition set, bill a
    month in one run each.)"""
    tags = context.run.tags
    if BACKFILL_TAG in tags and PARTITION_SET_TAG not in tags:
        return tags[BACKFILL_TAG]
    return context.run.root_run_id or context.run.run_id


def goes_on_to(context: dg.AssetExecutionContext, step: str) -> bool:
    """Whether this run goes on, in this process, to ``step`` (an op of the job: a run of
    a selection of assets may stop before it)."""
    steps = context.run.step_keys_to_execute
    return context.job_def.has_node_named(step) and (steps is None or step in steps)
