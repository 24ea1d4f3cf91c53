"""The outbox events of the state store (docs/webhooks.md#events-and-where-they-come-from).

Two kinds. What a write makes true when it commits (``written_events``): a customer
created or edited, a subscription created, a plan change, a cancellation or a quantity
scheduled; ``StateStore.apply`` appends them on the write's own transaction. What time
makes true (``due_events``): a subscription starting, changing plan or ending when its
day arrives; a scan over the rows finds those due by an instant, and the dispatcher
appends them before each pass. Every id is made from the rows (``derived_event_id``), so
a scan run twice, or a write's events, never give one fact two ids.

Payloads carry Orb's webhook body in its ``standard`` style: the object's own fields,
with references to related objects (docs/webhooks.md lists what is left empty).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from billing import periods
from state import rows
from state.history import (
    FAR_FUTURE,
    Change,
    CustomerVersion,
    customer_at,
    subscription_state,
)
from state.outbox import OutboxEvent, derived_event_id


def _instant(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def customer_object(versions: list[CustomerVersion], as_of: datetime) -> dict[str, Any]:
    """Orb's Customer, as the versions give it at ``as_of``."""
    current = customer_at(versions, as_of)[0]
    return {"id": current.customer_id, "external_customer_id": current.external_customer_id,
            "name": current.name, "email": current.email or "",
            "timezone": current.timezone, "created_at": _instant(versions[0].recorded_at),
            "currency": None, "balance": "0.00", "metadata": {}}


def subscription_object(subscription_id: str, customer: list[CustomerVersion],
                        changes: list[Change], as_of: datetime) -> dict[str, Any]:
    """Orb's Subscription (standard style: the customer and plan as references), as its
    rows give it at ``as_of``."""
    first = customer[0]
    timezone = customer_at(customer, as_of)[0].timezone or "UTC"
    state = subscription_state(subscription_id, first.customer_id, changes, FAR_FUTURE)

    def midnight(day: date | None) -> str | None:
        return None if day is None else _instant(periods.local_midnight(day, timezone))

    start = periods.local_midnight(state.phases[0].start_date, timezone)
    end = (None if state.end_date is None
           else periods.local_midnight(state.end_date, timezone))
    plan = state.phases[0]
    for phase in state.phases:
        if periods.local_midnight(phase.start_date, timezone) <= as_of:
            plan = phase
    status = ("upcoming" if as_of < start else "ended" if end is not None and end <= as_of
              else "active")
    return {"id": subscription_id,
            "customer": {"id": first.customer_id,
                         "external_customer_id": customer_at(customer, as_of)[0]
                         .external_customer_id},
            "plan": {"id": plan.plan_id, "external_plan_id": None},
            "start_date": midnight(state.phases[0].start_date),
            "end_date": midnight(state.end_date), "status": status,
            "trial_info": {"end_date": midnight(state.created.trial_end_date)},
            "created_at": _instant(state.created.recorded_at), "metadata": {}}


def _event(event_type: str, created_at: datetime, payload: dict[str, Any],
           customer_id: str, subscription_id: str | None, *fact: str) -> OutboxEvent:
    return OutboxEvent(derived_event_id(event_type, *fact), event_type, created_at,
                       {"properties": {}, **payload}, customer_id, subscription_id)


def written_events(new_customers: Iterable[str], versions: Iterable[CustomerVersion],
                   changes: Iterable[Change], all_rows: rows.Rows) -> list[OutboxEvent]:
    """The events a write makes true, in the order of its rows: ``new_customers`` and
    the ``versions`` and ``changes`` it adds, ``all_rows`` the rows they join (every
    row of the customers and subscriptions they touch, these included)."""
    created = set(new_customers)
    events: list[OutboxEvent] = []
    announced: set[str] = set()
    for version in versions:
        customer_id = version.customer_id
        history = all_rows.versions[customer_id]
        customer = customer_object(history, version.recorded_at)
        if customer_id in created:
            if customer_id not in announced:
                announced.add(customer_id)
                events.append(_event("customer.created", version.recorded_at,
                                     {"customer": customer}, customer_id, None, customer_id))
            continue
        previous = customer_at(history[:history.index(version)], FAR_FUTURE)[0]
        events.append(_event(
            "customer.edited", version.recorded_at,
            {"customer": customer, "properties": {"previous_attributes": {
                name: getattr(previous, name) for name in version.fields}}},
            customer_id, None, customer_id, _instant(version.recorded_at),
            str(history.index(version))))
    for change in changes:
        events += _change_events(change, all_rows)
    return events


def _change_events(change: Change, all_rows: rows.Rows) -> list[OutboxEvent]:
    sub_id = change.subscription_id
    customer_id = all_rows.subscriptions[sub_id].customer_id
    history = all_rows.changes[sub_id]
    known = history[:history.index(change) + 1]
    subscription = subscription_object(sub_id, all_rows.versions[customer_id], known,
                                       change.recorded_at)
    fact = (sub_id, change.kind, _instant(change.recorded_at), str(history.index(change)))

    def event(event_type: str, properties: dict[str, Any]) -> OutboxEvent:
        return _event(event_type, change.recorded_at,
                      {"subscription": subscription, "properties": properties},
                      customer_id, sub_id, *fact)

    if change.kind == "create":
        return [_event("subscription.created", change.recorded_at,
                       {"subscription": subscription}, customer_id, sub_id, sub_id)]
    if change.kind == "plan":
        previous = subscription_state(sub_id, customer_id, history[:history.index(change)],
                                      FAR_FUTURE)
        before = [p for p in previous.phases if p.start_date < change.effective_date]
        return [event("subscription.plan_change_scheduled", {
            "change_date": change.effective_date.isoformat(),
            "new_plan_id": change.plan_id,
            "previous_plan_id": (before or previous.phases)[-1].plan_id})]
    if change.kind == "cancel":
        return [event("subscription.cancellation_scheduled",
                      {"cancellation_date": change.effective_date.isoformat()})]
    if change.kind == "quantity" and change.price_id is not None:
        old = [c.quantity for c in history[:history.index(change)]
               if c.kind == "quantity" and c.price_id == change.price_id]
        # Orb's quantities are JSON numbers; exact decimals here, as strings (docs)
        return [event("subscription.fixed_fee_quantity_updated", {
            "effective_date": _instant(change.effective_at),
            "new_quantity": str(change.quantity),
            "old_quantity": str(old[-1]) if old and old[-1] is not None else "1",
            "price_id": change.price_id})]
    return []


def due_events(connection: sa.Connection, now: datetime) -> list[OutboxEvent]:
    """Every subscription start, plan change and end that has taken effect by ``now``,
    as the rows stand (a plan change or end moved later has not happened yet)."""
    found = rows.read_rows(connection)
    events: list[OutboxEvent] = []
    for sub_id, changes in found.changes.items():
        customer_id = found.subscriptions[sub_id].customer_id
        customer = found.versions[customer_id]
        timezone = customer_at(customer, now)[0].timezone or "UTC"
        state = subscription_state(sub_id, customer_id, changes, FAR_FUTURE)

        def at(day: date) -> datetime:
            return periods.local_midnight(day, timezone)  # noqa: B023 (used at once)

        def event(event_type: str, when: datetime, properties: dict[str, Any],
                  *fact: str) -> OutboxEvent:
            subscription = subscription_object(sub_id, customer, changes,  # noqa: B023
                                               when)
            return _event(event_type, when, {"subscription": subscription,
                                             "properties": properties},
                          customer_id, sub_id, sub_id, *fact)  # noqa: B023

        first = state.phases[0]
        if at(first.start_date) <= now:
            events.append(event("subscription.started", at(first.start_date), {}))
        for previous, phase in zip(state.phases, state.phases[1:], strict=False):
            if at(phase.start_date) <= now:
                events.append(event("subscription.plan_changed", at(phase.start_date),
                                    {"previous_plan_id": previous.plan_id},
                                    phase.start_date.isoformat(), phase.plan_id))
        if state.end_date is not None and at(state.end_date) <= now:
            events.append(event("subscription.ended", at(state.end_date), {},
                                state.end_date.isoformat()))
    events.sort(key=lambda e: e.created_at)
    return events
