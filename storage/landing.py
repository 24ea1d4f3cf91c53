"""Land raw event batches into the lake as clean, deduplicated, day-partitioned events.

The landing folder may hold Parquet, JSON Lines and CSV batches (``storage/sources.py``).

Every raw event ends up in exactly one place: the ``events`` table (clean, first
occurrence of its idempotency key) or the ``rejected_events`` table with the
reason, source file and row. Rejected events whose timestamp cannot be read
have no day and go to the ``event_date=unknown`` partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import duckdb
import polars as pl

from billing.catalog import Catalog
from pricing_sql.catalog_tables import customers_table
from pricing_sql.loader import load_sql
from storage.lake import Lake
from storage.sources import parquet_relation, read_landing

UNKNOWN_DAY = "unknown"
EVENTS_SCHEMA = {
    "timestamp": pl.Datetime("us", "UTC"),
    "event_name": pl.String,
    "customer_id": pl.String,
    "idempotency_key": pl.String,
    "properties": pl.String,
    "source_file": pl.String,
    "source_row": pl.Int64,
}
REJECTS_SCHEMA = {
    "source_file": pl.String,
    "source_row": pl.Int64,
    "reject_reason": pl.String,
    "reject_detail": pl.String,
    "idempotency_key": pl.String,
    "event_name": pl.String,
    "raw_timestamp": pl.String,
    "raw_customer_id": pl.String,
    "raw_external_customer_id": pl.String,
    "raw_properties": pl.String,
}
CHECKED_SCHEMA = {**EVENTS_SCHEMA, **REJECTS_SCHEMA, "event_date": pl.Date}

SELECT_CHECKED = """
SELECT *, CAST("timestamp" AS DATE) AS event_date
FROM checked_events
WHERE "timestamp" IS NULL OR ("timestamp" >= $start AND "timestamp" < $end)
ORDER BY "timestamp", customer_id, idempotency_key, source_file, source_row
"""


@dataclass
class LandingResult:
    events_by_day: dict[date, int] = field(default_factory=dict)
    rejects_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return sum(self.events_by_day.values())

    @property
    def rejected(self) -> int:
        return sum(self.rejects_by_reason.values())


def _checked_events(con: duckdb.DuckDBPyConnection, lake: Lake, catalog: Catalog,
                    start: datetime, end: datetime) -> pl.DataFrame:
    files = lake.landing_files()
    if not files:
        return pl.DataFrame(schema=CHECKED_SCHEMA)
    sources = read_landing(files, lake.landing)
    parquet_relation(con, sources.parquet, lake.landing).create_view("parquet_events")
    con.register("csv_events", sources.records)
    con.register("json_lines", sources.json_lines)
    con.register("customers", customers_table(catalog))
    con.execute(load_sql("land_events"))
    return con.sql(SELECT_CHECKED, params={"start": start, "end": end}).pl()


def land_events(con: duckdb.DuckDBPyConnection, lake: Lake, catalog: Catalog,
                start: datetime, end: datetime) -> LandingResult:
    """Rewrite the ``events`` and ``rejected_events`` partitions of the UTC days in
    ``[start, end)`` from everything in the landing folder. Duplicates are decided
    over the whole landing folder, so the first occurrence of a key wins whichever
    day's partition is being written."""
    checked = _checked_events(con, lake, catalog, start, end)
    is_clean = pl.col("reject_reason").is_null()
    clean = checked.filter(is_clean).partition_by("event_date", as_dict=True)
    rejected = checked.filter(~is_clean)
    rejected_by_day = rejected.partition_by("event_date", as_dict=True)
    empty = pl.DataFrame(schema=CHECKED_SCHEMA)

    result = LandingResult()
    days = [start.date() + timedelta(days=i) for i in range((end - start).days)]
    for day in days:
        rows = clean.get((day,), empty).select(list(EVENTS_SCHEMA))
        lake.write_partition("events", "event_date", day, rows.to_arrow())
        result.events_by_day[day] = len(rows)
        bad = rejected_by_day.get((day,), empty).select(list(REJECTS_SCHEMA))
        lake.write_partition("rejected_events", "event_date", day, bad.to_arrow())
    undated = rejected_by_day.get((None,), empty).select(list(REJECTS_SCHEMA))
    lake.write_partition("rejected_events", "event_date", UNKNOWN_DAY, undated.to_arrow())
    counts = rejected.group_by("reject_reason").len().sort("reject_reason")
    result.rejects_by_reason = dict(counts.iter_rows())
    return result
