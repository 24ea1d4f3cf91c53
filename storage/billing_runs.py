"""Which billing run wrote a month's tables, and whether that run completed.

A billing run (one ``monthly_billing`` run of a month: ``orb bill``, a schedule, a
backfill) writes its month's partition of each of ``RUN_TABLES`` with its run id, in a
``run_id`` column and in the file's metadata (which names the run of an empty partition
too), then, last, its commit: ``billing_runs/billing_month=M/<run_id>.parquet``. Each
partition is replaced atomically, but a run killed between two of them leaves a month
whose tables come from two runs: invoices of the new run beside adjustments of the old,
totals that their lines do not add up to. So every reader that combines a month's
tables reads them with ``read_month``: inside a run, each must be that run's; anywhere
else, each must be the month's newest completed run's, or the reader refuses, naming
the tables that differ and saying to re-run the month.

A month none of whose tables carries a run id and that has no commit was written before
billing runs were recorded: it is read as it stands (docs/invoicing.md).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from storage.lake import Lake
from storage.tables import BILLING_RUNS, RUN_ID, TABLES

# The month tables a billing run writes, in the order it writes them.
RUN_TABLES = ("usage", "rating_exclusions", "line_items", "sub_line_items", "invoices",
              "invoice_adjustments", "credit_ledger", "invoice_taxes", "invoice_corrections")
# Run tables added after runs were first committed: a completed run whose commit does not
# list one wrote none, and it reads as empty (a month billed before taxes has no tax).
ADDED_LATER = frozenset({"invoice_taxes"})
RUNS = "billing_runs"
METADATA_KEY = b"orb.run_id"
# Dagster's run ids (uuid4); one names its commit file, so nothing else is taken.
_VALID_ID = re.compile(r"[A-Za-z0-9_-]+")
# What stands in a month's partition instead of a run id.
MISSING = "missing"
BEFORE_RUNS = "no run id (written before billing runs were recorded)"


# Billing runs hold no lake lock (a month's run is one Dagster run at a time), so a
# scratch file is told to be a killed writer's by its age: a live one is seconds old.
STALE_SCRATCH = timedelta(hours=1)


class MixedBillingRun(RuntimeError):
    """A month's tables are not all from one completed billing run (or not all from the
    run reading them)."""


@dataclass(frozen=True)
class MonthTables:
    """Tables of one month, all from one billing run, as their stage computed them."""

    month: date
    run_id: str | None  # None: a month written before billing runs were recorded
    tables: dict[str, pa.Table]  # without their run_id column

    def __getitem__(self, table: str) -> pa.Table:
        return self.tables[table]


def write(lake: Lake, table: str, month: date, run_id: str, rows: pa.Table, *,
          behind: bool = False) -> Path:
    """Replace ``table``'s partition of ``month`` with ``rows``, stamped with ``run_id``;
    with ``behind``, while the run goes on (``Lake.write_behind``: its next step reads
    the rows from memory, and its commit waits for them)."""
    if not _VALID_ID.fullmatch(run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    stamped = rows.append_column(RUN_ID, pa.repeat(pa.scalar(run_id), rows.num_rows))
    stamped = stamped.cast(TABLES[table].schema).replace_schema_metadata(
        {METADATA_KEY: run_id.encode()})
    key = TABLES[table].key
    if behind:
        return lake.write_behind(table, key, month, stamped)
    # kept in memory: the run's next steps read it back (read_month)
    return lake.write_partition(table, key, month, stamped, keep=True)


def remove_stale_scratch(lake: Lake) -> list[Path]:
    """The scratch files that billing runs killed mid-write left in the tables billing
    runs write (its month tables, their commits and the state snapshot's), if older
    than ``STALE_SCRATCH``; each run removes them as it starts."""
    tables = (*RUN_TABLES, RUNS, *(t for t in TABLES if t.startswith("state_")))
    return [path for table in tables
            for path in lake.remove_scratch(lake.table_dir(table), STALE_SCRATCH)]


def commit(lake: Lake, month: date, run_id: str, at: datetime) -> Path:
    """Record ``run_id`` as a completed run of ``month``. Every one of ``RUN_TABLES`` must
    be there, written by it: a run whose tables were replaced meanwhile by another's
    never completes."""
    lake.wait_for_writes()  # a table written behind that failed fails the commit
    found = _on_disk(lake, month, RUN_TABLES)
    differ = {table: run for table, run in found.items() if run != run_id}
    if differ:
        raise MixedBillingRun(
            f"billing run {run_id} of {month:%Y-%m} cannot complete: "
            f"{_describe(differ)}; re-run the month with `orb bill --period {month:%Y-%m}`")
    return lake.write_file(RUNS, TABLES[RUNS].key, month, f"{run_id}.parquet",
                           pa.Table.from_pylist([{
                               "run_id": run_id, "billing_month": month, "finished_at": at,
                               "tables": list(RUN_TABLES)}], schema=BILLING_RUNS))


def completed_runs(lake: Lake, month: date) -> list[str]:
    """The completed billing runs of ``month``, newest first."""
    files = lake.files_in(RUNS, TABLES[RUNS].key, [month])
    if not files:
        return []
    rows = pq.read_table(files, partitioning=None, schema=BILLING_RUNS).sort_by(
        [("finished_at", "descending"), ("run_id", "descending")])
    return [str(run) for run in rows["run_id"].to_pylist()]


def read_month(lake: Lake, month: date, tables: Iterable[str],
               run_id: str | None = None) -> MonthTables:
    """``tables`` of ``month``, each read once, without their run_id column.

    Inside a billing run (``run_id`` given) each must have been written by that run.
    Otherwise every one of ``RUN_TABLES`` must have been written by the month's newest
    completed run (those not asked for are checked by their files' metadata), unless none
    carries a run id and none completed (a month written before runs were recorded).
    Raises ``MixedBillingRun`` naming the tables that differ; a missing partition asked
    for raises ``FileNotFoundError``, except one of ``ADDED_LATER``: empty when the run
    read did not write it (its commit does not list it, or none was recorded), else
    refused as missing."""
    rows = {table: _partition(lake, table, month) for table in tables}
    found = {table: MISSING if table_rows is None else _run_of(table_rows.schema)
             for table, table_rows in rows.items()}
    completed: list[str] | None = None  # inside a run, which runs completed is beside the point
    if run_id is None:
        found |= _on_disk(lake, month, [t for t in RUN_TABLES if t not in rows])
        completed = completed_runs(lake, month)  # after the tables: a run commits after them
    expected = run_id if completed is None else next(iter(completed), None)
    if completed and expected is not None:
        unwritten = ADDED_LATER - _recorded_tables(lake, month, expected)
        found = {t: run for t, run in found.items() if not (t in unwritten and run == MISSING)}
    differ = {table: run for table, run in found.items() if run != expected}
    before_runs = expected is None and set(found.values()) <= {BEFORE_RUNS, MISSING}
    if differ and not before_runs:
        if run_id is not None:
            head = f"the tables of billing month {month:%Y-%m} are not all this run's ({run_id})"
        elif expected is None:
            head = f"billing month {month:%Y-%m} has no completed billing run"
        else:
            head = (f"the tables of billing month {month:%Y-%m} are not all from its newest "
                    f"completed billing run ({expected})")
        raise MixedBillingRun(f"{head}: {_describe(differ, completed)}; re-run the month "
                              f"with `orb bill --period {month:%Y-%m}`")
    return MonthTables(month, expected, {
        table: _without_run_id(_empty(table) if table_rows is None else table_rows)
        for table, table_rows in rows.items()})


def _empty(table: str) -> pa.Table:
    schema = TABLES[table].schema
    assert schema is not None  # a month table is Parquet
    return schema.empty_table()


def _without_run_id(rows: pa.Table) -> pa.Table:
    return rows.drop_columns([RUN_ID.name]) if RUN_ID.name in rows.schema.names else rows


def _partition(lake: Lake, table: str, month: date) -> pa.Table | None:
    """A month's partition; None for a table of ``ADDED_LATER`` that is not there."""
    key = TABLES[table].key
    if table in ADDED_LATER and not lake.partition_file(table, key, month).exists():
        return None
    return lake.read_partition(table, key, month)


def _recorded_tables(lake: Lake, month: date, run_id: str) -> set[str]:
    """The tables completed run ``run_id`` of ``month`` says, in its commit, it wrote."""
    rows = pq.read_table(lake.files_in(RUNS, TABLES[RUNS].key, [month]), partitioning=None,
                         schema=BILLING_RUNS).to_pylist()
    return {table for row in rows if row["run_id"] == run_id for table in row["tables"] or ()}


def _run_of(schema: pa.Schema) -> str:
    value = (schema.metadata or {}).get(METADATA_KEY)
    return BEFORE_RUNS if value is None else value.decode()


def _on_disk(lake: Lake, month: date, tables: Iterable[str]) -> dict[str, str]:
    """The run that wrote each table's partition of ``month``, from its file's footer."""
    found = {}
    for table in tables:
        path = lake.partition_file(table, TABLES[table].key, month)
        found[table] = _run_of(pq.read_schema(path)) if path.exists() else MISSING
    return found


def _describe(differ: Mapping[str, str], completed: list[str] | None = None) -> str:
    """``usage, invoices from run R (never completed); credit_ledger missing``; whether a
    run completed is said when ``completed`` (the month's completed runs) is given."""
    order = {table: n for n, table in enumerate(RUN_TABLES)}
    by_run: defaultdict[str, list[str]] = defaultdict(list)
    for table in sorted(differ, key=lambda t: (order.get(t, len(order)), t)):
        by_run[differ[table]].append(table)
    parts = []
    for run, tables in by_run.items():
        names = ", ".join(tables)
        if run in (MISSING, BEFORE_RUNS):
            parts.append(f"{names} {run}")
        elif completed is None:
            parts.append(f"{names} from run {run}")
        else:
            state = "an older completed run" if run in completed else "never completed"
            parts.append(f"{names} from run {run} ({state})")
    return "; ".join(parts)
