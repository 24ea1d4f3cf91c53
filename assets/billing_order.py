"""Billing months run in order, however they are launched (docs/deploy.md).

The run queue keeps ``monthly_billing`` runs one at a time (tag ``orb/lake_writer:
billing``), first in first out, so a job backfill's months start in the order it
submits them; an asset backfill waits for ``credit_ledger``'s month before by itself.
These checks make the order a rule rather than a habit of the queue: a month's run
fails at its first step when the month before is in its backfill without a successful
run, or when the months before it do not give the balances it starts from
(``invoicing/ledger_order.py``); and its commit fails when an earlier month was billed
while it ran."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from assets.partitions import BACKFILL_TAG, billing_month
from assets.resources import OrbStore
from invoicing.ledger_order import billed_meanwhile, holds_credits, unordered_months


def check_start(context: dg.AssetExecutionContext, store: OrbStore) -> None:
    """Raise ``dg.Failure`` if this month's run may not start yet (see the module)."""
    month = billing_month(context)
    problems = _backfill_waits(context, month)
    if holds_credits(store.lake):
        problems += unordered_months(store.lake, month)
    _refuse(month, "cannot start", problems)


def check_commit(context: dg.AssetExecutionContext, store: OrbStore) -> None:
    """Raise ``dg.Failure`` if an earlier month committed a run while this one ran."""
    if holds_credits(store.lake):
        month = billing_month(context)
        _refuse(month, "cannot commit", billed_meanwhile(store.lake, month, _started(context)))


def _backfill_waits(context: dg.AssetExecutionContext, month: date) -> list[str]:
    """The month before, when this run's backfill bills it too and it has no successful
    run in it yet. An asset backfill creates a month's run only after the month before
    materialized ``credit_ledger``, so only a job backfill can get here out of order."""
    backfill_id = context.run.tags.get(BACKFILL_TAG)
    if backfill_id is None:
        return []
    before = (month - timedelta(days=1)).replace(day=1).isoformat()
    instance = context.instance
    runs = [record.dagster_run for record in instance.get_run_records(dg.RunsFilter(
        tags={BACKFILL_TAG: backfill_id, "dagster/partition": before}))]
    if any(run.status == dg.DagsterRunStatus.SUCCESS for run in runs):
        return []
    backfill = instance.get_backfill(backfill_id)
    if not runs and before not in ((backfill.partition_names or []) if backfill else []):
        return []
    state = "; ".join(f"run {run.run_id} {run.status.value.lower()}" for run in runs)
    return [f"it comes after {before[:7]} in backfill {backfill_id}, and {before[:7]} has no "
            f"successful run there ({state or 'it has not run yet'}): its credit ledger "
            f"holds the balances {month:%Y-%m} starts from. Bill {before[:7]} first, then "
            f"{month:%Y-%m} (re-execute the backfill from failure: it runs both, in order)"]


def _started(context: dg.AssetExecutionContext) -> datetime:
    """When the run that read this month's opening balances began: the run that wrote its
    `credit_ledger` (this one, the run a re-execution continues, or an earlier run of its
    asset backfill)."""
    instance = context.instance
    ledger = instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey("credit_ledger"), asset_partitions=[context.partition_key]),
        limit=1).records
    record = instance.get_run_record_by_id(ledger[0].run_id) if ledger else None
    if record is None or record.start_time is None:
        raise dg.Failure(f"billing {context.partition_key[:7]} cannot commit: the Dagster "
                         "instance has no run that materialized its credit_ledger; bill "
                         "the month again", allow_retries=False)
    return datetime.fromtimestamp(record.start_time, UTC)


def _refuse(month: date, what: str, problems: list[str]) -> None:
    if problems:
        raise dg.Failure(description=f"billing {month:%Y-%m} {what}: " + "; ".join(problems),
                         allow_retries=False)
