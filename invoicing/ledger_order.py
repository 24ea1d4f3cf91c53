"""Why billing months run in order, and the checks that enforce it.

A month's run starts from each credit grant's balance before the month: its amount plus
the credit ledger of every earlier month (``credit_grants.balances_before``). Those
balances are right only when every earlier month's ledger is its newest completed
billing run's, and each of those runs started after the months before it had closed:
otherwise the month is drawn from balances that have since changed. So, in a lake that
holds credit grants (without them every ledger is empty and order changes nothing):

- a month's run starts only when every earlier billed month is whole and was billed
  after the months before it (``unordered_months``);
- it commits only if no earlier month committed a run while it ran
  (``billed_meanwhile``), the one way two runs started in the wrong order can still
  both pass the first check.

The Dagster side (a backfill's months, the run queue) is ``assets/billing_order.py``.
"""

from __future__ import annotations

from datetime import date, datetime

import pyarrow.parquet as pq

from storage.billing_runs import RUNS, MixedBillingRun, read_month
from storage.lake import Lake
from storage.tables import BILLING_RUNS


def holds_credits(lake: Lake) -> bool:
    return bool(lake.all_files("credit_grants"))


def last_commits(lake: Lake, before: date) -> dict[date, datetime]:
    """When each month before ``before`` last committed a billing run, in month order."""
    files = [f for f in lake.all_files(RUNS)
             if date.fromisoformat(lake.partition_value(f)) < before]
    if not files:
        return {}
    rows = pq.read_table(files, partitioning=None, schema=BILLING_RUNS).to_pylist()
    last: dict[date, datetime] = {}
    for row in rows:
        month = row["billing_month"]
        last[month] = max(last.get(month, row["finished_at"]), row["finished_at"])
    return dict(sorted(last.items()))


def unordered_months(lake: Lake, month: date) -> list[str]:
    """Why ``month`` cannot start from the balances the months before it closed with:
    an earlier month whose ledger is not its newest completed run's, or whose last run
    finished before a run of a month before it (so it drew from older balances)."""
    problems = []
    ledger_months = {date.fromisoformat(lake.partition_value(f))
                     for f in lake.all_files("credit_ledger")}
    for earlier in sorted(m for m in ledger_months if m < month):
        try:
            read_month(lake, earlier, ["credit_ledger"])
        except MixedBillingRun as mixed:
            problems.append(str(mixed))
    newest: tuple[date, datetime] | None = None
    for earlier, finished in last_commits(lake, month).items():
        if newest is not None and finished < newest[1]:
            problems.append(
                f"{earlier:%Y-%m} was last billed at {finished:%Y-%m-%d %H:%M:%S} UTC, before "
                f"{newest[0]:%Y-%m} was billed again at {newest[1]:%Y-%m-%d %H:%M:%S} UTC, so "
                f"its credit drawdowns come from balances that have changed since; re-rate "
                f"{earlier:%Y-%m} through the month before {month:%Y-%m}, in order, first")
        if newest is None or finished >= newest[1]:
            newest = (earlier, finished)
    return problems


def billed_meanwhile(lake: Lake, month: date, started: datetime) -> list[str]:
    """The months before ``month`` that committed a billing run after ``started`` (the
    start of ``month``'s run): their ledgers changed after this run read its balances."""
    return [f"{earlier:%Y-%m} committed a billing run at {finished:%Y-%m-%d %H:%M:%S} UTC, "
            f"after this run of {month:%Y-%m} started ({started:%Y-%m-%d %H:%M:%S} UTC), so "
            f"this run's credit balances may predate it; bill {month:%Y-%m} again"
            for earlier, finished in last_commits(lake, month).items() if finished > started]

