"""Orb's event backfills: add or replace a past timeframe's events, seen all at once when
the backfill closes, and undone by reverting it (docs/ingestion.md#backfills).

A backfill is one record (``lake/backfills/backfill_id=<id>/``), rewritten whole, and
atomically, when it closes or is reverted. Its events are ingested as ordinary batches,
through ``ingest_files`` with the backfill's ``Scope``, each batch enrolled in
``backfill_batches`` before it commits. ``pricing_sql/sql/visible_batches.sql`` is the
one place that applies the record: the batches count from the close on, and a backfill
that replaces events acts as an amendment made at the close. So a closed backfill takes
effect whole or not at all, and a revert, one more rewrite, undoes all of it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq

from ingestion.batches import Scope
from pricing_sql.metrics import MetricSQLError, filter_condition
from storage.lake import Lake
from storage.tables import BACKFILL_BATCHES, BACKFILLS, TABLES

# Orb's default limit on a backfill's timeframe
MAX_TIMEFRAME = timedelta(days=31)
# Orb closes a backfill a day after its creation unless told otherwise
DEFAULT_CLOSE_AFTER = timedelta(days=1)
LOCK = "backfills"
Status = Literal["pending", "reflected", "reverted"]


class BackfillError(ValueError):
    """A backfill request that cannot be carried out; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Backfill:
    backfill_id: str
    created_at: datetime
    customer_id: str | None
    timeframe_start: datetime
    timeframe_end: datetime
    replace_existing_events: bool
    close_time: datetime
    reverted_at: datetime | None = None
    # a condition on the events (a price filter's syntax): the events of the timeframe it
    # replaces; None: all of them
    deprecation_filter: str | None = None

    def status(self, now: datetime) -> Status:
        if self.reverted_at is not None:
            return "reverted"
        return "reflected" if self.close_time <= now else "pending"

    @property
    def scope(self) -> Scope:
        return Scope(self.backfill_id, self.timeframe_start, self.timeframe_end,
                     self.customer_id)

    def overlaps(self, other: Backfill) -> bool:
        return (self.timeframe_start < other.timeframe_end
                and other.timeframe_start < self.timeframe_end
                and (self.customer_id is None or other.customer_id is None
                     or self.customer_id == other.customer_id))


def _write(lake: Lake, backfill: Backfill) -> Backfill:
    lake.write_partition("backfills", TABLES["backfills"].key, backfill.backfill_id,
                         pa.Table.from_pylist([asdict(backfill)], schema=BACKFILLS))
    return backfill


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def read_backfill(lake: Lake, backfill_id: str) -> Backfill | None:
    path = lake.partition_file("backfills", TABLES["backfills"].key, backfill_id)
    if not path.exists():
        return None
    (row,) = pq.read_table(path, partitioning=None).to_pylist()
    return Backfill(**row)


def list_backfills(lake: Lake) -> list[Backfill]:
    """Every backfill, newest first."""
    files = lake.all_files("backfills")
    rows = pq.read_table(files, partitioning=None).to_pylist() if files else []
    return sorted((Backfill(**row) for row in rows),
                  key=lambda b: (b.created_at, b.backfill_id), reverse=True)


def create_backfill(lake: Lake, customer_id: str | None, start: datetime, end: datetime,
                    replace_existing_events: bool, close_time: datetime | None,
                    now: datetime, max_age: timedelta,
                    deprecation_filter: str | None = None) -> Backfill:
    """A pending backfill of ``[start, end)`` for one customer (None: every customer).
    Orb's rules: at most ``MAX_TIMEFRAME`` long, closing in the future, and no overlap
    with another pending backfill of the same customer or of every customer. A
    ``deprecation_filter`` (only with ``replace_existing_events``) is checked as a
    price's filter is: it runs as the condition of the events replaced."""
    if deprecation_filter is not None:
        if not replace_existing_events:
            raise BackfillError("deprecation_filter", "applies to the events a backfill "
                                "replaces: set replace_existing_events too")
        try:
            filter_condition(deprecation_filter, "e")
        except MetricSQLError as exc:
            raise BackfillError("deprecation_filter", str(exc)) from exc
    start, end, now = _utc(start), _utc(end), _utc(now)
    close = _utc(close_time) if close_time is not None else now + DEFAULT_CLOSE_AFTER
    if not start < end:
        raise BackfillError("timeframe_end", f"{end.isoformat()} is not after "
                                             f"timeframe_start {start.isoformat()}")
    if end - start > MAX_TIMEFRAME:
        raise BackfillError("timeframe_end", f"a backfill covers at most "
                            f"{MAX_TIMEFRAME.days} days; this one covers {end - start}")
    if start < now - max_age:
        raise BackfillError("timeframe_start", f"{start.isoformat()} is older than the "
                            f"{max_age.days} days events are kept for (ORB_MAX_EVENT_AGE_DAYS)")
    if end > now:
        raise BackfillError("timeframe_end", f"{end.isoformat()} is in the future; a "
                            "backfill covers past events")
    if close <= now:
        raise BackfillError("close_time", f"{close.isoformat()} is not in the future")
    backfill = Backfill(f"bf_{uuid.uuid4().hex[:16]}", now, customer_id, start, end,
                        replace_existing_events, close, None, deprecation_filter)
    with lake.lock(LOCK):
        clash = next((b for b in list_backfills(lake)
                      if b.status(now) == "pending" and b.overlaps(backfill)), None)
        if clash is not None:
            raise BackfillError("timeframe_start", f"the timeframe overlaps pending backfill "
                                f"{clash.backfill_id} of {clash.customer_id or 'every customer'}"
                                "; close or revert it first")
        return _write(lake, backfill)


def _found(lake: Lake, backfill_id: str) -> Backfill:
    backfill = read_backfill(lake, backfill_id)
    if backfill is None:
        raise LookupError(backfill_id)
    return backfill


def close_backfill(lake: Lake, backfill_id: str, now: datetime) -> Backfill:
    """Reflect a pending backfill from ``now`` on: one record rewritten. Waits for an
    ingestion into it under way (it holds the lock), so none lands after the close."""
    with lake.lock(LOCK):
        backfill = _found(lake, backfill_id)
        status = backfill.status(now)
        if status != "pending":
            raise BackfillError("backfill_id", f"backfill {backfill_id} is {status}; only a "
                                               "pending backfill can be closed")
        return _write(lake, replace(backfill, close_time=_utc(now)))


def revert_backfill(lake: Lake, backfill_id: str, now: datetime) -> Backfill:
    """Undo a backfill, pending or reflected: its events stop counting and the events it
    replaced count again. One record rewritten."""
    with lake.lock(LOCK):
        backfill = _found(lake, backfill_id)
        if backfill.reverted_at is not None:
            raise BackfillError("backfill_id", f"backfill {backfill_id} is already reverted")
        return _write(lake, replace(backfill, reverted_at=_utc(now)))


@contextmanager
def ingesting(lake: Lake, backfill_id: str, now: datetime) -> Iterator[Backfill]:
    """Hold a pending backfill while a batch is ingested into it (``enroll`` it first):
    it cannot close or be reverted meanwhile."""
    with lake.lock(LOCK):
        backfill = _found(lake, backfill_id)
        status = backfill.status(now)
        if status != "pending":
            raise BackfillError("backfill_id", f"backfill {backfill_id} is {status}: it takes "
                                               "no more events")
        yield backfill


def enroll(lake: Lake, backfill: Backfill, batch_id: str) -> None:
    """Record that batch ``batch_id`` belongs to ``backfill``, before the batch commits:
    a batch never counts as an ordinary one, even for an instant."""
    key = TABLES["backfill_batches"].key
    if not lake.partition_file("backfill_batches", key, batch_id).exists():
        lake.write_partition("backfill_batches", key, batch_id, pa.Table.from_pylist(
            [{"batch_id": batch_id, "backfill_id": backfill.backfill_id}],
            schema=BACKFILL_BATCHES))


def events_ingested(lake: Lake) -> dict[str, int]:
    """Backfill id -> how many events its committed batches accepted."""
    members = lake.all_files("backfill_batches")
    if not members:
        return {}
    counts: dict[str, int] = {}
    for row in pq.read_table(members, partitioning=None).to_pylist():
        record = lake.partition_file("batches", TABLES["batches"].key, row["batch_id"])
        if record.exists():
            accepted = pq.read_table(record, columns=["accepted"])["accepted"][0].as_py()
            counts[row["backfill_id"]] = counts.get(row["backfill_id"], 0) + accepted
    return counts
