"""Ingest raw event batches: keep each as received, check it, and add its events to the lake.

A batch is one file. Its id is a hash of its bytes, so sending the same file again
ingests nothing new. For each batch, under a lock so that concurrent runs cannot
interleave:

1. the file is copied, unchanged, to ``quarantine/raw/<batch_id>/<name>``;
2. every raw event is checked (``ingestion/sql/check_batch.sql``), then its
   idempotency key against every event already in the lake (``ingestion/key_index.py``);
   a file that cannot be read is one rejected row (``ingestion/sources.py``);
3. clean events are written to ``events/event_date=<day>/<batch_id>.parquet``, one
   file per day the batch touches, their keys added to the key index, and rejected
   events written to ``quarantine/batch_id=<batch_id>/data.parquet`` with reason, file
   and row;
4. last, the copy moves to ``raw/<batch_id>/<name>`` (never modified after) and the
   batch record ``batches/batch_id=<batch_id>/data.parquet`` commits it.

A crash before step 4 leaves a batch that is simply ingested again on the next try:
every file it writes is replaced whole, with the same content. The next ingestion
after one that did not finish first removes the scratch files of writes it was killed
in and moves a raw copy left without its batch record back to ``quarantine/raw/``:
``raw/`` only ever holds committed batches. Replaying a batch (after fixing the
catalog) re-checks its raw file the same way.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import cast

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from billing import periods
from billing.catalog import Catalog
from ingestion import key_set
from ingestion.event_files import EVENT_COLUMNS, DayEvents, by_day, compact_rollups, write_days
from ingestion.key_index import HeldKeys, KeyIndex
from ingestion.sources import Sources, parquet_read_error, parquet_relation, read_landing
from ingestion.sql import load_sql
from pricing_sql.active_events import register_active_events
from pricing_sql.catalog_tables import customers_table
from pricing_sql.metrics import PROPERTY_LIMIT, numeric_properties
from pricing_sql.rating import usage_metrics, usage_requests
from pricing_sql.rollups import RollupSpec, remove_rollup_scratch, split_requests
from storage.duck import cursor
from storage.lake import Lake
from storage.settings import Settings
from storage.tables import TABLES

KEYS_SCHEMA = pa.schema([("customer_id", pa.string()), ("idempotency_key", pa.string()),
                         ("batch_id", pa.string())])
DUPLICATES_SCHEMA = pa.schema([("source_row", pa.int64()), ("detail", pa.string())])
# The quarantine reason of a key ingested before (check_batch.sql has the others).
DUPLICATE_REASON = "duplicate idempotency_key"
# check_batch.sql's words after "property <key>" for a number a metric could not sum.
OUT_OF_RANGE = f"is out of range: its absolute value must be below 10^{PROPERTY_LIMIT.adjusted()}"


@dataclass(frozen=True)
class Window:
    """Timestamps accepted at ingestion, relative to when the batch is ingested."""

    max_age: timedelta = timedelta(days=400)
    max_future: timedelta = timedelta(hours=1)
    too_old: str = "timestamp is before the accepted window"  # the reason past max_age

    @classmethod
    def of(cls, settings: Settings) -> Window:
        return cls(max_age=timedelta(days=settings.max_event_age_days))


@dataclass(frozen=True)
class Scope:
    """A pending backfill's bounds (ingestion/backfills.py): its events must fall in
    [start, end) and, if it has one, be its customer's; their keys are checked against
    the events that will count once it closes."""

    backfill_id: str
    start: datetime
    end: datetime
    customer_id: str | None = None


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
                 progress: Callable[[Path], None] | None = None,
                 scope: Scope | None = None, held: HeldKeys | None = None,
                 ) -> list[BatchResult]:
    """Ingest each file as a batch; a file already ingested (same bytes) adds nothing.
    ``scope``: the files are ingested into that backfill (enrolled by the caller).
    ``held``: a key set the caller keeps between ingestions into this lake
    (ingestion/key_index.py), used while it fits ORB_KEY_SET_MAX_BYTES.

    Files taken from the landing folder are removed from it once their batch is
    committed: the copy in raw/ is the record of what was received."""
    results: list[BatchResult | Future[BatchResult]] = []
    # Three batches are in hand at once: the next one is checked (DuckDB, on a
    # connection of its own), this one's keys are compared with the lake's, and the
    # previous one's files are written (pyarrow). Each step keeps both cores busy only
    # part of the time. A batch's keys are in the key index before the next batch's are
    # looked up, and batches commit in order.
    # (the checking connection closes after the checker has stopped using it)
    with (lake.recovering_lock("ingest", lambda: _recover(lake)),
          closing(cursor(con)) as checking_con,
          ThreadPoolExecutor(max_workers=1) as writer,
          ThreadPoolExecutor(max_workers=1) as checker,
          ThreadPoolExecutor(max_workers=1) as reader):
        _ensure_key_index(con, lake)
        rules = _rules(lake, catalog, now, window, scope)
        index = KeyIndex(lake)
        # Holding every key in memory costs a pass over the index and pays for itself
        # once the files add about half as many events as the lake holds, if it fits; a
        # set kept from earlier ingestions (``held``) costs only the runs added since.
        coming, rows = _expected_events(files), index.rows()
        fits = key_set.bytes_for(rows + coming) <= _key_set_budget()
        if held is not None and fits:
            index.hold_in_memory(coming, held)
        elif held is not None:
            held.restart()  # its memory back: the runs are searched instead
        elif coming >= rows / 2 and fits:
            index.hold_in_memory(coming)
        in_flight: tuple[str, Path, Future[BatchResult]] | None = None
        # each file's content hash is taken ahead, while earlier files are checked
        ahead = iter(zip(files, reader.map(batch_id_of, files), strict=True))
        queued: deque[tuple[Path, str, Path | None, Future[pa.Table] | None]] = deque()
        taken: set[str] = set()

        def queue_next() -> None:
            """Start checking the next file, unless it is in the lake or comes earlier in
            this call (its kept copy moves to raw/ when the earlier one commits)."""
            if (item := next(ahead, None)) is None:
                return
            path, batch_id = item
            if batch_id in taken or lake.partition_file("batches", "batch_id",
                                                        batch_id).exists():
                queued.append((path, batch_id, None, None))
                return
            taken.add(batch_id)
            raw = lake.keep_raw(path, batch_id)
            queued.append((path, batch_id, raw, checker.submit(
                _check, checking_con, raw, rules)))

        def land() -> None:
            nonlocal in_flight
            if in_flight:
                _, landed, writing = in_flight
                in_flight = None
                writing.result()
                _release(lake, landed, progress)

        queue_next()
        while queued:
            path, batch_id, raw, checking = queued.popleft()
            queue_next()
            if in_flight and in_flight[0] == batch_id:  # the same file twice in one call
                land()
            if raw is None or lake.partition_file("batches", "batch_id", batch_id).exists():
                if checking:
                    checking.result()
                results.append(BatchResult(batch_id, path.name, "already ingested"))
                _release(lake, path, progress)
                continue
            assert checking is not None  # queued with its raw file
            checked = checking.result()
            land()
            settled = _settle(con, lake, index, batch_id, raw, checked, "ingested",
                              scope.backfill_id if scope else None)
            writing = writer.submit(_write, lake, index, settled, now, rules.rollups)
            results.append(writing)
            in_flight = (batch_id, path, writing)
        land()
        done = [r.result() if isinstance(r, Future) else r for r in results]
        compact_rollups(con, lake, rules.rollups,
                        [day for r in done if r.status != "already ingested" for day in r.days])
    return done


def _key_set_budget() -> int:
    """The most memory the in-memory key set may take (ORB_KEY_SET_MAX_BYTES, 4 GiB:
    a lake of about 250M events; past it, batches are looked up in the runs)."""
    return int(os.environ.get("ORB_KEY_SET_MAX_BYTES", 4 << 30))


def _expected_events(files: list[Path]) -> int:
    """About how many events the files hold: Parquet says; a text file is guessed from
    its size (an event takes well over 50 bytes of JSON or CSV)."""
    total = 0
    for path in files:
        with suppress(OSError, pa.ArrowException):  # unreadable: the check reports it
            total += (pq.read_metadata(path).num_rows if path.suffix.lower() == ".parquet"
                      else path.stat().st_size // 50)
    return total


def _release(lake: Lake, path: Path, progress: Callable[[Path], None] | None) -> None:
    """A file's batch is committed: a file taken from the landing folder leaves it."""
    if path.resolve().is_relative_to(lake.landing):
        path.unlink()
    if progress:
        progress(path)


def replay_batch(con: duckdb.DuckDBPyConnection, lake: Lake, catalog: Catalog, batch_id: str,
                 now: datetime, window: Window = Window()) -> BatchResult:
    """Check a batch's raw file again, e.g. after adding a customer it named: events
    that now pass join the lake, the rest stay quarantined with their current reason."""
    with lake.recovering_lock("ingest", lambda: _recover(lake)):
        _ensure_key_index(con, lake)
        raw = lake.raw_file(batch_id)
        rules = _rules(lake, catalog, now, window)
        checked = _check(con, raw, rules)
        index = KeyIndex(lake)
        settled = _settle(con, lake, index, batch_id, raw, checked, "replayed")
        return _write(lake, index, settled, now, rules.rollups)


def _duplicates(con: duckdb.DuckDBPyConnection, lake: Lake, index: KeyIndex, batch_id: str,
                source_file: str, hashes: np.ndarray, closing: str | None) -> pa.Table:
    """(source_row, detail) of the duplicate keys of the batch registered as
    checked_batch (duplicate_keys.sql); ``hashes`` are its clean events', sorted. Only
    suspects are compared key by key: hashes repeated in the batch, and hashes the key
    index finds in earlier batches (whose events are read from just those)."""
    repeated = np.unique(hashes[1:][hashes[1:] == hashes[:-1]])
    batches, found = index.candidates(hashes, batch_id)
    suspects = np.union1d(repeated, found)
    if not len(suspects):
        return DUPLICATES_SCHEMA.empty_table()
    con.register("suspect_hashes", pa.table({"key_hash": suspects}))
    files = [str(f) for b in sorted(batches) for f in lake.batch_files("events", b)]
    if files:
        # a deprecated event's key is free again, and an uncommitted batch holds none; a
        # backfill's events are compared with those that will count once it closes
        register_active_events(con, lake, files, closing)
        existing = con.sql("SELECT customer_id, idempotency_key, batch_id FROM active_events "
                           "WHERE hash(customer_id, idempotency_key) IN "
                           "(SELECT key_hash FROM suspect_hashes)")
    else:
        existing = con.from_arrow(KEYS_SCHEMA.empty_table())
    existing.create_view("existing_keys", replace=True)
    return con.sql(load_sql("duplicate_keys"), params={"source_file": source_file}) \
        .to_arrow_table().cast(DUPLICATES_SCHEMA)


def _dropped(passed: pa.Table, duplicates: pa.Table) -> np.ndarray | None:
    """Which rows of the events that passed the checks are duplicates (None: none)."""
    if not len(duplicates):
        return None
    return pc.is_in(passed["source_row"], duplicates["source_row"]).to_numpy(
        zero_copy_only=False)


def _closed_before(lake: Lake) -> date | None:
    """The first UTC day after the last month that has invoices."""
    months = [date.fromisoformat(Lake.partition_value(p)) for p in lake.all_files("invoices")]
    return periods.add_months(max(months), 1) if months else None


@dataclass
class _Settled:
    """A checked batch, split into what it adds to the lake and what it quarantines."""

    batch_id: str
    raw: Path  # the kept file
    status: str
    days: list[DayEvents]  # each day's clean events, in the order written
    rejected: pa.Table  # quarantine rows
    hashes: np.ndarray  # the clean events' key hashes, sorted, for the key index


def _settle(con: duckdb.DuckDBPyConnection, lake: Lake, index: KeyIndex, batch_id: str,
            raw: Path, checked: pa.Table, status: str, closing: str | None = None) -> _Settled:
    """Find the checked batch's duplicate keys and split it (uses DuckDB: call it from
    the thread that owns the connection)."""
    # check_batch.sql puts the events that passed first: a slice, not a copy
    passed = checked.slice(0, checked["reject_reason"].null_count)
    hashes = _sorted(passed["key_hash"].to_numpy())
    con.register("checked_batch", checked)
    # a batch is one file, named relative to its raw folder (sources.py)
    duplicates = _duplicates(con, lake, index, batch_id, raw.name, hashes, closing)
    dropped = _dropped(passed, duplicates)
    if dropped is not None:
        hashes = _sorted(passed["key_hash"].to_numpy()[~dropped])
    con.register("duplicate_rows", duplicates)
    # the raw file is read again only for the fields of duplicates, if there are any
    _register_raw_events(con, read_landing([raw] if len(duplicates) else [], raw.parent),
                         raw.parent)
    rejected = con.sql(load_sql("batch_rejects"), params={
        "batch_id": batch_id, "duplicate_reason": DUPLICATE_REASON}).to_arrow_table()
    events = passed
    for column, value in (("batch_id", batch_id), ("source_file", raw.name)):
        events = events.append_column(column, pa.repeat(value, len(passed)).cast(pa.string()))
    events = events.select(EVENT_COLUMNS)
    return _Settled(batch_id, raw, status, by_day(events, dropped), rejected, hashes)


def _sorted(hashes: np.ndarray) -> np.ndarray:
    # polars sorts on every core: a third of numpy's time for a batch's hashes
    return pl.Series(hashes).sort().to_numpy()


def _write(lake: Lake, index: KeyIndex, settled: _Settled, now: datetime,
           rollups: RollupSpec) -> BatchResult:
    """Write a settled batch's events and their rollups, keys and quarantine, then commit
    it (runs beside the next batch's check, whose DuckDB connection it does not use: the
    rollups run on cursors of a database of their own, event_files.py)."""
    batch_id, rejected = settled.batch_id, settled.rejected
    write_days(lake, batch_id, settled.days, rollups)
    index.add(batch_id, settled.hashes)
    lake.write_partition("quarantine", TABLES["quarantine"].key, batch_id, rejected)
    accepted = sum(day.count() for day in settled.days)
    result = BatchResult(
        batch_id, settled.raw.name, settled.status, rows=accepted + len(rejected),
        accepted=accepted, rejected=len(rejected),
        duplicates=pc.sum(pc.equal(rejected["reject_reason"], DUPLICATE_REASON))
        .as_py() or 0,
        late=sum(day.count("late") for day in settled.days),
        days=[day.day for day in settled.days])
    lake.commit_raw(settled.raw, batch_id)
    _commit(lake, result, now)
    return result


@dataclass(frozen=True)
class _Rules:
    """What every batch of one ingestion is checked against (check_batch.sql)."""

    customers: pa.Table
    params: dict[str, object]
    rollups: RollupSpec  # what each day's events are rolled up into, for rating


def _rules(lake: Lake, catalog: Catalog, now: datetime, window: Window,
           scope: Scope | None = None) -> _Rules:
    customers, numeric_keys, rollups = _catalog_rules(catalog)
    return _Rules(customers, {
        "too_old": window.too_old,
        "scope_start": scope.start if scope else None,
        "scope_end": scope.end if scope else None,
        "scope_customer": scope.customer_id if scope else None,
        "earliest": now.astimezone(UTC) - window.max_age,
        "latest": now.astimezone(UTC) + window.max_future,
        "closed_before": _closed_before(lake),
        "numeric_keys": numeric_keys,
        "property_limit": PROPERTY_LIMIT,
        "out_of_range": OUT_OF_RANGE,
    }, rollups)


def _catalog_rules(catalog: Catalog) -> tuple[pa.Table, list[str], RollupSpec]:
    """The catalog's customers table, numeric properties and rollup spec, kept with it
    (``Catalog.derived``): current_catalog returns the same object while the state is
    unchanged, and the landing process checks a segment a second against it; building
    them cost 14 ms a time."""
    key = ("ingestion_rules", None)
    if key not in catalog.derived:
        catalog.derived[key] = (customers_table(catalog),
                                numeric_properties(list(usage_metrics(catalog).values())),
                                split_requests(usage_requests(catalog))[0])
    return cast(tuple[pa.Table, list[str], RollupSpec], catalog.derived[key])


def _check(con: duckdb.DuckDBPyConnection, raw: Path, rules: _Rules) -> pa.Table:
    """Every raw event with its reject_reason (null: keep), each checked on its own
    (duplicate keys are found next), in the order clean events are written. A Parquet
    file whose data cannot be read past its footer is one rejected row."""
    sources = read_landing([raw], raw.parent)
    con.register("customers", rules.customers)
    try:
        return _checked(con, sources, raw.parent, rules)
    except duckdb.Error:
        # the file's fault only if DuckDB cannot read it alone either (read again only
        # here: the way that does not fail reads each file once)
        problem = parquet_read_error(con, raw) if sources.parquet else None
        if problem is None:
            raise
    return _checked(con, Sources.unreadable(raw.name, problem), raw.parent, rules)


def _checked(con: duckdb.DuckDBPyConnection, sources: Sources, folder: Path,
             rules: _Rules) -> pa.Table:
    _register_raw_events(con, sources, folder)
    return con.sql(load_sql("check_batch"), params=rules.params).to_arrow_table()


def _register_raw_events(con: duckdb.DuckDBPyConnection, sources: Sources,
                         folder: Path) -> None:
    """View raw_events (raw_events.sql) over the batch's sources (none: an empty view)."""
    # registered, not a view: a view would be shared by the connections of one database
    con.register("parquet_events", parquet_relation(con, sources.parquet, folder))
    con.register("csv_events", sources.records)
    con.register("json_lines", sources.json_lines)
    con.execute(load_sql("raw_events"))


def _recover(lake: Lake) -> None:
    """Tidy up after an ingestion that did not finish (it was killed, or failed), holding
    the ingest lock, which every writer of these folders holds (rating, which writes
    rollups too, holds the rollup lock): the scratch files of the writes it was killed
    in, and a raw copy moved before its batch record was written.
    The copies of batches that never committed stay in quarantine/raw/."""
    for folder in (*(lake.table_dir(t) for t in ("events", "quarantine", "batches", "keys")),
                   lake.raw, lake.uncommitted_raw):
        lake.remove_scratch(folder)
    remove_rollup_scratch(lake)
    if lake.raw.exists():
        for kept in lake.raw.iterdir():
            if not lake.partition_file("batches", "batch_id", kept.name).exists():
                lake.uncommit_raw(kept.name)


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
            index.add(batch_id, _sorted(hashes.to_arrow_table()["key_hash"].to_numpy()))


def _commit(lake: Lake, result: BatchResult, now: datetime) -> None:
    """Write the batch record, which makes the batch's events count."""
    # A replay keeps the first commit time: amendments made since still apply to it.
    key = TABLES["batches"].key
    record = lake.partition_file("batches", key, result.batch_id)
    committed_at = (pq.read_table(record, columns=["committed_at"])["committed_at"][0].as_py()
                    if record.exists() else now.astimezone(UTC))
    days = result.days
    lake.write_partition("batches", key, result.batch_id, pa.Table.from_pylist([{
        "batch_id": result.batch_id, "file": result.file, "status": result.status,
        "committed_at": committed_at, "checked_at": now.astimezone(UTC),
        "rows": result.rows, "accepted": result.accepted, "rejected": result.rejected,
        "duplicates": result.duplicates, "late": result.late,
        "first_day": days[0] if days else None, "last_day": days[-1] if days else None,
    }]))
