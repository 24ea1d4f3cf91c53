"""Orb's pending subscription changes (docs/api.md#pending-subscription-changes): a
subscription create or plan change requested with ``Create-Pending-Subscription-Change:
true`` is held here, as its request, until it is applied (the same write an immediate
request makes, by the API) or cancelled, or it expires. Its outcome is one row keyed by
the change, so a change is applied or cancelled once."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from state import schema
from state.database import reading, writing
from state.errors import StateError

CHANGE_TYPES = ("create_subscription", "schedule_plan_change")


@dataclass(frozen=True)
class PendingChange:
    change_id: str
    change_type: str
    subscription_id: str
    customer_id: str
    request: dict[str, Any]  # the request's body
    expiration_time: datetime
    recorded_at: datetime
    status: str = "pending"  # pending | applied | cancelled
    outcome_at: datetime | None = None
    description: str | None = None
    previously_collected_amount: str | None = None

    def status_at(self, now: datetime) -> str:
        """Orb's status: an expired change is cancelled (it can no longer be applied)."""
        if self.status == "pending" and now >= self.expiration_time:
            return "cancelled"
        return self.status


def create(engine: sa.Engine, change: PendingChange, actor: str) -> None:
    with writing(engine) as connection:
        connection.execute(sa.insert(schema.pending_subscription_changes), [{
            "change_id": change.change_id, "change_type": change.change_type,
            "subscription_id": change.subscription_id, "customer_id": change.customer_id,
            "request": json.dumps(change.request, sort_keys=True),
            "expiration_time": change.expiration_time, "recorded_at": change.recorded_at,
            "actor": actor}])


def read(engine: sa.Engine, change_ids: Collection[str] | None = None,
         subscription_ids: Collection[str] | None = None) -> list[PendingChange]:
    """The changes (of ``change_ids`` or ``subscription_ids``), with their outcomes."""
    changes, outcomes = schema.pending_subscription_changes, schema.subscription_change_outcomes
    query = (sa.select(changes, outcomes.c.status, outcomes.c.recorded_at.label("outcome_at"),
                       outcomes.c.description, outcomes.c.previously_collected_amount)
             .outerjoin(outcomes, outcomes.c.change_id == changes.c.change_id)
             .order_by(changes.c.recorded_at, changes.c.change_id))
    if change_ids is not None:
        query = query.where(changes.c.change_id.in_(list(change_ids)))
    if subscription_ids is not None:
        query = query.where(changes.c.subscription_id.in_(list(subscription_ids)))
    with reading(engine) as connection:
        return [PendingChange(r.change_id, r.change_type, r.subscription_id, r.customer_id,
                              json.loads(r.request), r.expiration_time, r.recorded_at,
                              r.status or "pending", r.outcome_at, r.description,
                              r.previously_collected_amount)
                for r in connection.execute(query)]


def pending_by_subscription(engine: sa.Engine, now: datetime) -> dict[str, str]:
    """Each subscription's pending change (the newest), by subscription id."""
    changes, outcomes = schema.pending_subscription_changes, schema.subscription_change_outcomes
    query = (sa.select(changes.c.subscription_id, changes.c.change_id)
             .where(changes.c.expiration_time > now,
                    ~sa.exists().where(outcomes.c.change_id == changes.c.change_id))
             .order_by(changes.c.recorded_at))
    with reading(engine) as connection:
        return {row[0]: row[1] for row in connection.execute(query)}


def record_outcome(engine: sa.Engine, change_id: str, status: str, actor: str,
                   now: datetime, description: str | None = None,
                   previously_collected_amount: str | None = None) -> None:
    """Close the change as ``applied`` or ``cancelled``; StateError if it is closed or
    expired already (nothing written)."""
    outcomes = schema.subscription_change_outcomes
    with writing(engine) as connection:
        found = connection.execute(
            sa.select(schema.pending_subscription_changes.c.expiration_time,
                      outcomes.c.status)
            .outerjoin(outcomes, outcomes.c.change_id
                       == schema.pending_subscription_changes.c.change_id)
            .where(schema.pending_subscription_changes.c.change_id == change_id)).first()
        if found is None:
            raise StateError([f"path.subscription_change_id: unknown change {change_id!r}"])
        if found.status is not None:
            raise StateError([f"path.subscription_change_id: change {change_id!r} is "
                              f"{found.status} already"])
        if now >= found.expiration_time:
            raise StateError([f"path.subscription_change_id: change {change_id!r} expired "
                              f"at {found.expiration_time.isoformat()}"])
        connection.execute(sa.insert(outcomes), [{
            "change_id": change_id, "status": status, "description": description,
            "previously_collected_amount": previously_collected_amount,
            "recorded_at": now, "actor": actor}])
