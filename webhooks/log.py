"""What the outbox holds and what was posted, for ``orb webhooks events|attempts`` and
the API (docs/webhooks.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from state import schema
from state.database import reading


@dataclass(frozen=True)
class EventRow:
    sequence: int
    event_id: str
    type: str
    customer_id: str | None
    created_at: datetime
    recorded_at: datetime


@dataclass(frozen=True)
class AttemptRow:
    endpoint_id: str
    event_id: str
    attempt: int
    started_at: datetime
    status_code: int | None
    outcome: str
    next_attempt_at: datetime | None
    error: str | None


def events(engine: sa.Engine, since: datetime | None = None, until: datetime | None = None,
           event_type: str | None = None) -> list[EventRow]:
    """The outbox's events created in [since, until), in sequence."""
    table = schema.outbox_events
    query = sa.select(table.c.sequence, table.c.event_id, table.c.type, table.c.customer_id,
                      table.c.created_at, table.c.recorded_at).order_by(table.c.sequence)
    if since is not None:
        query = query.where(table.c.created_at >= since)
    if until is not None:
        query = query.where(table.c.created_at < until)
    if event_type is not None:
        query = query.where(table.c.type == event_type)
    with reading(engine) as connection:
        return [EventRow(*row) for row in connection.execute(query)]


def attempts(engine: sa.Engine, event_id: str) -> list[AttemptRow]:
    """Every attempt to post ``event_id``, by endpoint and attempt; an unknown event is
    a ``KeyError``."""
    table = schema.webhook_attempts
    with reading(engine) as connection:
        known = connection.execute(sa.select(schema.outbox_events.c.sequence).where(
            schema.outbox_events.c.event_id == event_id)).first()
        if known is None:
            raise KeyError(f"no event {event_id!r} in the outbox")
        return [AttemptRow(*row) for row in connection.execute(
            sa.select(table.c.endpoint_id, table.c.event_id, table.c.attempt,
                      table.c.started_at, table.c.status_code, table.c.outcome,
                      table.c.next_attempt_at, table.c.error)
            .where(table.c.event_id == event_id)
            .order_by(table.c.endpoint_id, table.c.attempt))]
