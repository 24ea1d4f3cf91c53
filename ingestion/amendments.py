"""Amendments: deprecate past events for a customer and timeframe, auditably; and Orb's
event search, which shows which events are deprecated.

Like Orb's backfills with ``replace_existing_events`` and its single-event
amendments, an amendment is a record, never a deletion: the events it covers stay
in the lake and in raw/, and stop counting because ``active_events.sql`` says so.
Replacement events are ingested as an ordinary batch after the record is made, so
they count (and may reuse the deprecated events' idempotency keys).
"""

from __future__ import annotations

import uuid
from contextlib import closing
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa

from ingestion.sql import load_sql
from pricing_sql.active_events import register_active_events
from storage.duck import connect
from storage.lake import Lake
from storage.tables import AMENDMENTS, TABLES


@dataclass(frozen=True)
class Amendment:
    amendment_id: str
    created_at: datetime
    customer_id: str | None
    timeframe_start: datetime
    timeframe_end: datetime
    idempotency_key: str | None
    reason: str


def record_amendment(lake: Lake, customer_id: str | None, start: datetime, end: datetime,
                     reason: str, now: datetime, idempotency_key: str | None = None) -> Amendment:
    """Write an amendment record (immutable: to undo one, amend again with the fix)."""
    if not start < end:
        raise ValueError(f"empty timeframe: start {start} is not before end {end}")
    if not reason.strip():
        raise ValueError("an amendment needs a reason, for the audit trail")
    amendment = Amendment(uuid.uuid4().hex[:16], now.astimezone(UTC), customer_id,
                          start.astimezone(UTC), end.astimezone(UTC), idempotency_key, reason)
    lake.write_partition("amendments", TABLES["amendments"].key, amendment.amendment_id,
                         pa.Table.from_pylist([asdict(amendment)], schema=AMENDMENTS))
    return amendment


def amended_days(amendment: Amendment) -> list[date]:
    """The UTC days whose events the amendment can change."""
    return timeframe_days(amendment.timeframe_start, amendment.timeframe_end)


@dataclass(frozen=True)
class FoundEvent:
    """An event as Orb's search shows it."""

    id: str
    customer_id: str
    event_name: str
    timestamp: datetime
    properties: str  # JSON text
    deprecated: bool


def search_events(lake: Lake, ids: list[str], start: datetime,
                  end: datetime) -> list[FoundEvent]:
    """The events with these idempotency keys in ``[start, end)``, deprecated ones
    included (search_events.sql); only the timeframe's day partitions are read."""
    # the days that have events, rather than every day of what may be a long timeframe
    first, last = start.astimezone(UTC).date(), end.astimezone(UTC).date()
    days = [day for folder in lake.table_dir("events").glob("*=*")
            if first <= (day := date.fromisoformat(folder.name.split("=", 1)[1])) <= last]
    files = lake.files_in("events", TABLES["events"].key, days)
    if not files or not ids:
        return []
    with closing(connect()) as con:
        register_active_events(con, lake, files)
        rows = con.execute(load_sql("search_events"), {
            "ids": ids, "start": start, "end": end}).fetchall()
    return [FoundEvent(key, customer, name, at.astimezone(UTC), properties, deprecated)
            for key, customer, name, at, properties, deprecated in rows]


def timeframe_days(start: datetime, end: datetime) -> list[date]:
    """The UTC days of ``[start, end)``."""
    first, last = start.astimezone(UTC).date(), end.astimezone(UTC).date()
    if end.astimezone(UTC) == datetime.combine(last, datetime.min.time(), tzinfo=UTC):
        last -= timedelta(days=1)  # the end is exclusive
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
