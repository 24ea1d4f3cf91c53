"""Amendments: deprecate past events for a customer and timeframe, auditably.

Like Orb's backfills with ``replace_existing_events`` and its single-event
amendments, an amendment is a record, never a deletion: the events it covers stay
in the lake and in raw/, and stop counting because ``active_events.sql`` says so.
Replacement events are ingested as an ordinary batch after the record is made, so
they count (and may reuse the deprecated events' idempotency keys).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa

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


def amended_days(amendment: Amendment) -> list:
    """The UTC days whose events the amendment can change."""
    first, last = amendment.timeframe_start.date(), amendment.timeframe_end.date()
    if amendment.timeframe_end == datetime.combine(last, datetime.min.time(), tzinfo=UTC):
        last -= timedelta(days=1)  # the end is exclusive
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
