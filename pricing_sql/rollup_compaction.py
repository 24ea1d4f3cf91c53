"""A UTC month's day rollups compacted into one file, so that rating reads a row per
customer, request and group values (and distinct value) for the month instead of one
per day: at 10,000 customers and 100M events, 0.35M rows where the days held 5.6M
(docs/capacity.md).

Each row keeps what rating needs to take any window's whole days back out: ``days``, a
bit per day of the month on which the row's day rollups had a row, and each other
partial as a list with a value per day (the day's partials of every batch combined):
rollup_slots.py, which rolled_month_rows.sql reads a window's range of days from. So the
usage is the same as from the day rollups, value for value (tests/test_rollups.py checks
it with hypothesis).

A compaction is made of given day rollup files (``lake/event_rollups/month/
event_month=<first day>/<spec>.<count>.<digest>.parquet``, their names in its metadata)
and never changes. Rating reads, for each month, the one with the most files among
those made only of files it reads (visible batches' current rollups: a replayed batch's
file has a new name), and the day rollups of the files none of them holds (a batch landed
since). Ingestion makes them at the end of a run of batches, at most every ``INTERVAL``
per month (HTTP landing commits a batch a second).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from billing.periods import days_of_month
from pricing_sql.active_events import register_batches_and_amendments, visible_batch_ids
from pricing_sql.metrics import DIALECT
from pricing_sql.rollup_slots import slotted_query
from pricing_sql.rollups import EPOCH, MONTH, TABLE, RollupSpec, rollup_files, write_rows
from storage.lake import Lake, write_atomically

INPUTS = b"orb.inputs"  # the file metadata key listing a compaction's day rollups
# How often ingestion compacts a month, at most, and how long a compaction stays after a
# newer one holding all its files was made: a rating lists compactions and reads the one
# it picks in the same few seconds, never minutes later.
INTERVAL = timedelta(minutes=10)
RETENTION = timedelta(minutes=10)


def day_number(day: date) -> int:
    return (day - EPOCH).days


def compaction_query(spec: RollupSpec, month: date, source: str = "compaction_source",
                     slots: int | None = None) -> exp.Query:
    """The month's rows from ``source``'s day rollup rows: per request, customer, group
    values and distinct values, the day bits and each other partial's value per day
    (rollup_slots.py). ``slots=0``: its schema, without the SQL of a list per day."""
    first, days = day_number(month), len(days_of_month(month))
    bucket = exp.column("bucket")
    return slotted_query(spec, source, exp.cast(exp.Literal.number(first), "INTEGER"),
                         days if slots is None else slots, ("first_day", "days"),
                         (bucket >= first) & (bucket < first + days))


def _name(day_file: Path) -> str:
    """A day rollup's name in a compaction's list: its partition and file name."""
    return f"{day_file.parent.name}/{day_file.name}"


def _folder(lake: Lake, month: date) -> Path:
    return lake.table_dir(TABLE) / MONTH / f"event_month={month.isoformat()}"


def _compactions(lake: Lake, spec: RollupSpec, month: date) -> list[Path]:
    """The month's compactions under ``spec``, those of most day files first."""
    found = _folder(lake, month).glob(f"{spec.fingerprint}.*.parquet")
    return sorted(found, key=lambda p: (int(p.name.split(".")[1]), p.name), reverse=True)


@lru_cache(maxsize=4096)
def _inputs(path: Path) -> frozenset[str]:
    """The day rollups a compaction holds (it never changes: kept per process)."""
    metadata = pq.read_schema(path).metadata or {}
    return frozenset(json.loads(metadata[INPUTS]))


def chosen(lake: Lake, spec: RollupSpec, day_files: Iterable[Path],
           ) -> tuple[list[Path], list[Path]]:
    """For ``day_files`` (the day rollups a rating reads): the compaction each month is
    read from, the one of most files among those holding only ``day_files``, and the day
    files no chosen compaction holds."""
    by_month: dict[date, dict[str, Path]] = {}
    for file in day_files:
        day = date.fromisoformat(Lake.partition_value(file))
        by_month.setdefault(day.replace(day=1), {})[_name(file)] = file
    compactions: list[Path] = []
    left: list[Path] = []
    for month, files in sorted(by_month.items()):
        best = next((c for c in _compactions(lake, spec, month) if _inputs(c) <= files.keys()),
                    None)
        held = _inputs(best) if best is not None else frozenset()
        if best is not None:
            compactions.append(best)
        left += [file for name, file in sorted(files.items()) if name not in held]
    return compactions, left


def compact(con: duckdb.DuckDBPyConnection, lake: Lake, spec: RollupSpec, month: date,
            day_files: list[Path]) -> Path | None:
    """A compaction of ``month``'s ``day_files`` (day rollups under ``spec``); None when
    there are none, or the newest compaction holds exactly them. Compactions that one
    holding all their files has superseded for ``RETENTION`` are removed."""
    names = sorted(_name(f) for f in day_files)
    existing = _compactions(lake, spec, month)
    if not names or any(_inputs(c) == frozenset(names) for c in existing):
        return None
    con.read_parquet([str(f) for f in day_files], hive_partitioning=False).create_view(
        "compaction_source", replace=True)
    rows = con.sql(compaction_query(spec, month).sql(dialect=DIALECT)).to_arrow_table()
    rows = rows.replace_schema_metadata({INPUTS: json.dumps(names)})
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
    target = _folder(lake, month) / f"{spec.fingerprint}.{len(names):06d}.{digest}.parquet"
    write_atomically(target, lambda path: write_rows(rows, path))
    _prune(existing)
    return target


def _prune(compactions: list[Path]) -> None:
    """Remove each compaction whose files another, made ``RETENTION`` ago or more, holds
    all of: no rating reads it any more."""
    settled = time.time() - RETENTION.total_seconds()
    for old in compactions:
        if any(newer != old and newer.stat().st_mtime <= settled
               and _inputs(old) <= _inputs(newer) for newer in compactions):
            old.unlink(missing_ok=True)


def compact_months(con: duckdb.DuckDBPyConnection, lake: Lake, spec: RollupSpec,
                   months: Iterable[date], interval: timedelta = INTERVAL) -> list[Path]:
    """Compact the visible batches' day rollups of each of ``months`` whose newest
    compaction is older than ``interval`` (ingestion, after a run of batches)."""
    recent = time.time() - interval.total_seconds()
    due = [month for month in sorted(set(months)) if spec.requests and not any(
        c.stat().st_mtime > recent for c in _compactions(lake, spec, month))]
    if not due:
        return []
    register_batches_and_amendments(con, lake)
    visible = visible_batch_ids(con)
    made = []
    for month in due:
        events = lake.files_in("events", "event_date", days_of_month(month))
        days = [rollup_files(lake, spec, file)[1] for file in events
                if Path(file).stem in visible]
        if (path := compact(con, lake, spec, month, [d for d in days if d.exists()])):
            made.append(path)
    return made


def empty_compaction(con: duckdb.DuckDBPyConnection, spec: RollupSpec,
                     empty_rollup: pa.Table) -> pa.Table:
    """A compaction with no rows, in the spec's schema."""
    con.register("compaction_source", empty_rollup)
    return con.sql(compaction_query(spec, EPOCH, slots=0).sql(dialect=DIALECT)).to_arrow_table()

