"""The outbox (docs/webhooks.md): business events appended in the transaction that makes
them true, read back in sequence by the dispatcher and the warehouse mirror.

A state-store write appends its events on the write's own connection. A fact the lake
holds (an issued invoice, a payment) is appended after the lake commits, with an
``event_id`` made from the fact (``derived_event_id``): appending it again, after a crash
or from a catch-up scan, adds nothing, so no fact is lost and none gets a second id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from state import schema


@dataclass(frozen=True)
class OutboxEvent:
    """One business event: Orb's webhook type and body (``payload``, a JSON object that
    the dispatcher sends as it is, with ``id``, ``type`` and ``created_at`` set)."""

    event_id: str
    type: str
    created_at: datetime
    payload: dict[str, Any]
    customer_id: str | None = None
    subscription_id: str | None = None


@dataclass(frozen=True)
class StoredEvent:
    sequence: int
    event: OutboxEvent


def derived_event_id(event_type: str, *fact: str) -> str:
    """The id of the event ``event_type`` about ``fact`` (e.g. an invoice id): the same
    fact always gives the same id."""
    digest = hashlib.sha256("\x1f".join((event_type, *fact)).encode()).hexdigest()
    return f"evt_{digest[:24]}"


def append(connection: sa.Connection, events: Iterable[OutboxEvent], recorded_at: datetime,
           actor: str) -> int:
    """Append ``events`` not in the outbox yet (by ``event_id``), in the given order, on
    ``connection``'s transaction (a ``state.database.writing`` one: writers are serialized,
    so sequences are monotone). The number appended."""
    wanted = list(events)
    if not wanted:
        return 0
    ids = [event.event_id for event in wanted]
    present: set[str] = set()
    for start in range(0, len(ids), 500):
        present.update(connection.execute(
            sa.select(schema.outbox_events.c.event_id)
            .where(schema.outbox_events.c.event_id.in_(ids[start:start + 500]))).scalars())
    rows = []
    for event in wanted:
        if event.event_id in present:
            continue
        present.add(event.event_id)
        rows.append({"event_id": event.event_id, "type": event.type,
                     "customer_id": event.customer_id,
                     "subscription_id": event.subscription_id,
                     "created_at": event.created_at, "payload": _body(event),
                     "recorded_at": recorded_at, "actor": actor})
    if rows:
        connection.execute(sa.insert(schema.outbox_events), rows)
    return len(rows)


def _body(event: OutboxEvent) -> str:
    body = {**event.payload, "id": event.event_id, "type": event.type,
            "created_at": event.created_at.isoformat().replace("+00:00", "Z")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def read(connection: sa.Connection, after_sequence: int = 0, limit: int | None = None,
         types: Sequence[str] | None = None) -> list[StoredEvent]:
    """Events after ``after_sequence``, in sequence; ``types`` narrows to those types."""
    table = schema.outbox_events
    query = sa.select(table).where(table.c.sequence > after_sequence).order_by(table.c.sequence)
    if types is not None:
        query = query.where(table.c.type.in_(list(types)))
    if limit is not None:
        query = query.limit(limit)
    return [StoredEvent(row.sequence, OutboxEvent(
        row.event_id, row.type, row.created_at, json.loads(row.payload), row.customer_id,
        row.subscription_id)) for row in connection.execute(query)]


def newest_sequence(connection: sa.Connection) -> int:
    """The newest event's sequence, 0 for an empty outbox."""
    value = connection.execute(sa.select(sa.func.max(schema.outbox_events.c.sequence))).scalar()
    return int(value or 0)
