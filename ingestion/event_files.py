"""How a batch's clean events become files: one per UTC day, in a total order.

``lake/events/event_date=<day>/<batch_id>.parquet`` holds the day's events of one
batch clustered by customer: ordered by customer_id, then timestamp, then row (a batch
is one file, so rows are unique), in row groups of ``EVENT_ROW_GROUP_ROWS`` rows. The
same batch always gives the same bytes. Clustered, each row group's customer_id min/max
statistics span a narrow range of customers, so a scan filtered to one customer (the
API's costs, usage and upcoming invoice) skips nearly every row group of a big file
(docs/lake.md#events-clustered-by-customer). Duplicates found after the check are left
out of each day while it is written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pricing_sql.engine import DuckDBEngine
from pricing_sql.rollup_compaction import compact_months
from pricing_sql.rollups import RollupSpec, roll_up, stale_rollups, write_rollups
from storage.duck import connect, cursor
from storage.lake import Lake
from storage.tables import EVENTS, TABLES

LOG = logging.getLogger(__name__)
EVENT_COLUMNS = EVENTS.names
# Rows a row group of an event file holds. Sorted by customer, a group of a day's file
# spans about this many rows' worth of customers (200 of 10,000 when a 3.3M-event file
# has ~330 events a customer), so a one-customer scan reads 1 or 2 of its ~50 groups; a
# smaller group skips more but costs every full scan (rating) more footers and pages.
EVENT_ROW_GROUP_ROWS = 65_536
# How event files are encoded. A dictionary only where values repeat (a dictionary of
# unique keys, rows or instants is built, then dropped, for nothing), and min/max
# statistics only on the columns queries filter on: together 40% less CPU writing a
# batch, which was half of ingesting it.
EVENT_ENCODING: dict[str, Any] = {
    "use_dictionary": ["event_name", "customer_id", "properties", "batch_id", "source_file"],
    "write_statistics": ["timestamp", "event_name", "customer_id", "batch_id", "source_row"],
    "row_group_size": EVENT_ROW_GROUP_ROWS,
}


@dataclass(frozen=True)
class DayEvents:
    """One day's clean events of a batch: a slice of its rows, less the duplicates
    ``keep`` leaves out."""

    day: date
    events: pa.Table
    keep: np.ndarray | None  # None: every row

    def count(self, column: str | None = None) -> int:
        """How many events are kept, or how many of them have ``column`` true."""
        values = (np.ones(len(self.events), bool) if column is None
                  else self.events[column].to_numpy(zero_copy_only=False))
        return int(np.count_nonzero(values if self.keep is None else values[self.keep]))

    def kept(self) -> pa.Table:
        return self.events if self.keep is None else self.events.filter(self.keep)

    def clustered(self) -> pa.Table:
        """The kept events ordered by customer_id, then timestamp, then row."""
        return by_customer(self.kept())


def _roll_up(lake: Lake, spec: RollupSpec, path: Path, events: pa.Table) -> None:
    """The rollups of a day's file, or none if a value raises: rating then makes them,
    or reads the events (and reports whose values raise), so ingestion never fails on it."""
    with closing(connect()) as con:  # a connection of the process's database
        try:
            rolled = roll_up(con, spec, events)
        except DuckDBEngine.arithmetic_errors as exc:
            LOG.warning("no rollups for %s: %s", path, exc)
            return
    write_rollups(lake, spec, path, rolled)


def compact_rollups(con: duckdb.DuckDBPyConnection, lake: Lake, spec: RollupSpec,
                    days: Iterable[date]) -> None:
    """Compact the day rollups of the UTC months of ``days`` (an ingestion's batches'),
    where not done in the last few minutes (pricing_sql/rollup_compaction.py). The batches
    are committed: should it fail, rating reads their day rollups, as it does those of
    batches landed since a month's newest compaction."""
    months = {day.replace(day=1) for day in days}
    if not months or not spec.requests:
        return
    with closing(cursor(con)) as own:
        try:
            compact_months(own, lake, spec, months)
        except (duckdb.Error, OSError) as exc:
            LOG.warning("day rollups of %s not compacted: %s",
                        ", ".join(f"{m:%Y-%m}" for m in sorted(months)), exc)


def by_customer(events: pa.Table) -> pa.Table:
    """``events``, in timestamp then row order, stably sorted by customer_id: so by
    customer, then timestamp, then row."""
    # Rank the few distinct customers, then a stable sort of the small integer ranks
    # (numpy's radix sort) and one gather: 0.65 CPU seconds per 1M events where DuckDB
    # ordering the check's rows by customer too cost 1.25 (docs/ingestion.md#measured).
    customers = pc.dictionary_encode(events["customer_id"]).combine_chunks()
    ranks = pc.rank(customers.dictionary, sort_keys="ascending").to_numpy()
    ranks = ranks.astype(np.uint16 if len(ranks) < 1 << 16 else np.uint32)
    return events.take(np.argsort(ranks[customers.indices.to_numpy()], kind="stable"))


def by_day(events: pa.Table, dropped: np.ndarray | None) -> list[DayEvents]:
    """Each UTC day's ``events`` (in timestamp order), less ``dropped``."""
    # in timestamp order, each day is one run of dates
    runs = pc.run_end_encode(pc.cast(events["timestamp"], pa.date32()).combine_chunks())
    days = []
    start = 0
    for day, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist(), strict=True):
        keep = None if dropped is None or not dropped[start:end].any() else ~dropped[start:end]
        if keep is None or keep.any():
            days.append(DayEvents(day, events.slice(start, end - start), keep))
        start = end
    return days


def write_days(lake: Lake, batch_id: str, days: list[DayEvents],
               rollups: RollupSpec | None = None) -> None:
    """One file per day for the batch's clean events, and each file's rollups of the
    ``rollups`` requests (pricing_sql/rollups.py), which rating reads instead of them."""
    # A replay may drop days this batch wrote before: remove its files there first.
    written = {day.day for day in days}
    for stale in lake.batch_files("events", batch_id):
        if date.fromisoformat(Lake.partition_value(stale)) not in written:
            stale.unlink()
    for stale in stale_rollups(lake, batch_id):  # of the files about to be replaced
        stale.unlink()

    # Filtering and compressing happen in pyarrow, which releases the GIL: a day per core.
    def write(day: DayEvents) -> None:
        events = day.clustered()
        path = lake.write_file("events", TABLES["events"].key, day.day, f"{batch_id}.parquet",
                               events, **EVENT_ENCODING)
        if rollups is not None and rollups.requests:
            _roll_up(lake, rollups, path, events)

    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(write, days))
