"""Ingest raw event batches: keep each as received, check it, and add its events to the lake.

A batch is one file. Its id is a hash of its bytes, so sending the same file again
ingests nothing new. For each batch, under a lock so that concurrent runs cannot
interleave:

1. the file is copied, unchanged, to ``raw/<batch_id>/<name>`` (never modified after);
2. every raw event is checked (``pricing_sql/sql/check_batch.sql``), including its
   idempotency key against every event already in the lake;
3. clean events are written to ``events/event_date=<day>/<batch_id>.parquet``, one
   file per day the batch touches, and rejected ones to
   ``quarantine/batch_id=<batch_id>/data.parquet`` with reason, file and row;
4. last, the batch record ``batches/batch_id=<batch_id>/data.parquet`` commits it.

A crash before step 4 leaves a batch that is simply ingested again on the next try:
every file it writes is replaced whole, with the same content. Replaying a batch
(after fixing the catalog) re-checks its raw file the same way.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from billing import periods
from billing.catalog import Catalog
from pricing_sql.catalog_tables import customers_table
from pricing_sql.loader import load_sql
from pricing_sql.metrics import numeric_properties
from storage.amendments import register_active_events
from storage.key_index import KeyIndex
from storage.lake import Lake
from storage.sources import parquet_relation, read_landing

EVENT_COLUMNS = ["timestamp", "event_name", "customer_id", "idempotency_key", "properties",
                 "batch_id", "source_file", "source_row", "late"]

KEYS_SCHEMA = pa.schema([("customer_id", pa.string()), ("idempotency_key", pa.string()),
                         ("batch_id", pa.string())])


@dataclass(frozen=True)
class Window:
    """Timestamps accepted at ingestion, relative to when the batch is ingested."""

    max_age: timedelta = timedelta(days=400)
    max_future: timedelta = timedelta(hours=1)


@dataclass
class BatchResult:
    batch_id: str
    file: str
    status: str  # "ingested", "already ingested" or "replayed"
    rows: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    late: int = 0
    days: list[date] = field(default_factory=list)


def batch_id_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:24]


def ingest_files(con: duckdb.DuckDBPyConnection, lake: Lake, catalog: Catalog,
                 files: list[Path], now: datetime, window: Window = Window(),
                 progress: Callable[[Path], None] | None = None) -> list[BatchResult]:
    """Ingest each file as a batch; a file already ingested (same bytes) adds nothing.

    Files taken from the landing folder are removed from it once their batch is
    committed: the copy in raw/ is the record of what was received."""
    results = []
    with lake.lock("ingest"):
        _ensure_key_index(con, lake)
        for path in files:
            batch_id = batch_id_of(path)
            if lake.partition_file("batches", "batch_id", batch_id).exists():
                results.append(BatchResult(batch_id, path.name, "already ingested"))
            else:
                raw = lake.keep_raw(path, batch_id)
                results.append(_check_and_write(con, lake, catalog, raw, batch_id, now, window,
                                                "ingested"))
            if path.resolve().is_relative_to(lake.landing):
                path.unlink()
            if progress:
                progress(path)
    return results


def replay_batch(con: duckdb.DuckDBPyConnection, lake: Lake, catalog: Catalog, batch_id: str,
                 now: datetime, window: Window = Window()) -> BatchResult:
    """Check a batch's raw file again, e.g. after adding a customer it named: events
    that now pass join the lake, the rest stay quarantined with their current reason."""
    with lake.lock("ingest"):
        _ensure_key_index(con, lake)
        raw = lake.raw_file(batch_id)
        return _check_and_write(con, lake, catalog, raw, batch_id, now, window, "replayed")


def _reject_duplicates(con: duckdb.DuckDBPyConnection, lake: Lake, index: KeyIndex,
                       batch_id: str, hashes: np.ndarray) -> bool:
    """Mark the checked batch's duplicate keys (duplicate_keys.sql); whether any hash
    needed an exact look. Only suspects are compared key by key: hashes repeated in the
    batch, and hashes the key index finds in earlier batches (read from just those)."""
    repeated = np.unique(hashes[1:][hashes[1:] == hashes[:-1]])
    batches, found = index.candidates(hashes, batch_id)
    suspects = np.union1d(repeated, found)
    if not len(suspects):
        return False
    con.register("suspect_hashes", pa.table({"key_hash": suspects}))
    files = [str(f) for b in sorted(batches) for f in lake.batch_files("events", b)]
    if files:
        # a deprecated event's key is free again, and an uncommitted batch holds none
        register_active_events(con, lake, files)
        existing = con.sql("SELECT customer_id, idempotency_key, batch_id FROM active_events "
                           "WHERE hash(customer_id, idempotency_key) IN "
                           "(SELECT key_hash FROM suspect_hashes)")
    else:
        existing = con.from_arrow(KEYS_SCHEMA.empty_table())
    existing.create_view("existing_keys", replace=True)
    con.execute(load_sql("duplicate_keys"))
    return True


def _clean_hashes(con: duckdb.DuckDBPyConnection) -> np.ndarray:
    """The sorted key hashes of the checked batch's clean events."""
    column = con.sql("SELECT key_hash FROM checked_batch WHERE reject_reason IS NULL") \
        .to_arrow_table()["key_hash"]
    return np.sort(column.to_numpy())


def _closed_before(lake: Lake) -> date | None:
    """The first UTC day after the last month that has invoices."""
    months = [date.fromisoformat(Lake.partition_value(p)) for p in lake.all_files("invoices")]
    return periods.add_months(max(months), 1) if months else None


def _check_and_write(con: duckdb.DuckDBPyConnection, lake: Lake, catalog: Catalog, raw: Path,
                     batch_id: str, now: datetime, window: Window, status: str) -> BatchResult:
    _check(con, lake, catalog, raw, now, window)
    index = KeyIndex(lake)
    hashes = _clean_hashes(con)
    if _reject_duplicates(con, lake, index, batch_id, hashes):
        hashes = _clean_hashes(con)
    batch = {"batch_id": batch_id}
    clean = con.sql(load_sql("batch_events"), params=batch).to_arrow_table()
    rejected = con.sql(load_sql("batch_rejects"), params=batch).to_arrow_table()
    days = _write_events(lake, batch_id, clean)
    index.add(batch_id, hashes)
    lake.write_partition("quarantine", "batch_id", batch_id, rejected)
    result = BatchResult(
        batch_id, raw.name, status, rows=len(clean) + len(rejected), accepted=len(clean),
        rejected=len(rejected),
        duplicates=pc.sum(pc.equal(rejected["reject_reason"], "duplicate idempotency_key"))
        .as_py() or 0,
        late=pc.sum(clean["late"]).as_py() or 0, days=days)
    _commit(lake, result, now)
    return result


def _check(con: duckdb.DuckDBPyConnection, lake: Lake, catalog: Catalog, raw: Path,
           now: datetime, window: Window) -> None:
    """Fill temp table checked_batch: every raw event with its reject_reason (null: keep),
    each checked on its own (duplicate keys are found next)."""
    sources = read_landing([raw], raw.parent)
    parquet_relation(con, sources.parquet, raw.parent).create_view("parquet_events", replace=True)
    con.register("csv_events", sources.records)
    con.register("json_lines", sources.json_lines)
    con.register("customers", customers_table(catalog))
    con.execute(load_sql("check_batch"), {
        "earliest": now.astimezone(UTC) - window.max_age,
        "latest": now.astimezone(UTC) + window.max_future,
        "closed_before": _closed_before(lake),
        "numeric_keys": numeric_properties([m.sql for m in catalog.metrics]),
    })


def _ensure_key_index(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    """hash() may change between DuckDB versions: rebuild the key index from the
    committed batches' events when it was made by another version (or not at all)."""
    index = KeyIndex(lake)
    if index.is_current():
        return
    index.reset()
    for record in lake.all_files("batches"):
        batch_id = Lake.partition_value(record)
        files = [str(f) for f in lake.batch_files("events", batch_id)]
        if files:
            hashes = con.read_parquet(files).select(duckdb.FunctionExpression(
                "hash", duckdb.ColumnExpression("customer_id"),
                duckdb.ColumnExpression("idempotency_key")).alias("key_hash"))
            index.add(batch_id, np.sort(hashes.to_arrow_table()["key_hash"].to_numpy()))


def _write_events(lake: Lake, batch_id: str, clean: pa.Table) -> list[date]:
    """One file per day for the batch's clean events; returns the days."""
    # Rows are sorted by timestamp, so each day is one run of event_date.
    runs = pc.run_end_encode(clean["event_date"].combine_chunks())
    days, ends = runs.values.to_pylist(), runs.run_ends.to_pylist()
    starts = [0, *ends[:-1]]
    # A replay may drop days this batch wrote before: remove its files there first.
    for stale in lake.batch_files("events", batch_id):
        if date.fromisoformat(Lake.partition_value(stale)) not in days:
            stale.unlink()
    # Writing compresses in pyarrow, which releases the GIL: one day per core.
    events = clean.select(EVENT_COLUMNS)

    def write(day: date, start: int, end: int) -> None:
        lake.write_file("events", "event_date", day, f"{batch_id}.parquet",
                        events.slice(start, end - start))

    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(write, days, starts, ends))
    return days


def _commit(lake: Lake, result: BatchResult, now: datetime) -> None:
    """Write the batch record, which makes the batch's events count."""
    # A replay keeps the first commit time: amendments made since still apply to it.
    record = lake.partition_file("batches", "batch_id", result.batch_id)
    committed_at = (pq.read_table(record, columns=["committed_at"])["committed_at"][0].as_py()
                    if record.exists() else now.astimezone(UTC))
    days = result.days
    lake.write_partition("batches", "batch_id", result.batch_id, pa.Table.from_pylist([{
        "batch_id": result.batch_id, "file": result.file, "status": result.status,
        "committed_at": committed_at, "checked_at": now.astimezone(UTC),
        "rows": result.rows, "accepted": result.accepted, "rejected": result.rejected,
        "duplicates": result.duplicates, "late": result.late,
        "first_day": days[0] if days else None, "last_day": days[-1] if days else None,
    }]))


def list_quarantine(con: duckdb.DuckDBPyConnection, lake: Lake, batch_id: str | None,
                    reason: str | None, limit: int) -> tuple[list[dict], dict[str, int]]:
    """Quarantined events (at most ``limit``) and the count of each reason."""
    files = lake.all_files("quarantine")
    if not files:
        return [], {}
    con.execute(load_sql("list_quarantine"),
                {"files": files, "batch_id": batch_id, "reason": reason})
    rows = con.sql("SELECT * FROM picked ORDER BY batch_id, source_file, source_row "
                   "LIMIT $limit", params={"limit": limit}).to_arrow_table().to_pylist()
    counts = dict(con.sql("SELECT reject_reason, count(*) FROM picked GROUP BY 1 "
                          "ORDER BY 2 DESC, 1").fetchall())
    return rows, counts
