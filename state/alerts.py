"""Alerts in Orb's model (docs/webhooks.md#alerts): created once, then enabled, disabled
or re-thresholded by appending a version; and the firings of their thresholds, each
written with its outbox event in one transaction.

A write is checked whole before anything is written (``StateError`` names every problem
and where): the customer or subscription exists, the metric is the catalog's and only on
a usage alert, a credit-balance alert has a currency, thresholds are decimals, zero or
more, none twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa

from billing import money
from state import outbox, schema
from state.database import reading, writing
from state.errors import StateError
from state.events import customer_object, subscription_object
from state.rows import read_rows

CUSTOMER_TYPES = ("credit_balance_depleted", "credit_balance_dropped",
                  "credit_balance_recovered")
SUBSCRIPTION_TYPES = ("usage_exceeded", "cost_exceeded")
# Orb's rule: depleted and recovered watch zero and take no thresholds
NO_THRESHOLDS = ("credit_balance_depleted", "credit_balance_recovered")

Where = Callable[[str], str]


def _plain(field: str) -> str:
    return field


@dataclass(frozen=True)
class Alert:
    """An alert as its newest version gives it."""

    alert_id: str
    type: str
    customer_id: str
    subscription_id: str | None
    metric_id: str | None
    currency: str | None
    enabled: bool
    thresholds: tuple[Decimal, ...]
    created_at: datetime


@dataclass(frozen=True)
class NewAlert:
    alert_id: str
    type: str
    customer_id: str | None = None  # a credit-balance alert's
    subscription_id: str | None = None  # a usage or cost alert's
    metric_id: str | None = None
    currency: str | None = None
    thresholds: tuple[Decimal, ...] = ()


@dataclass(frozen=True)
class Firing:
    """A threshold that fired (``event`` set) or was cleared (re-armed, no event)."""

    alert_id: str
    period_start: datetime
    threshold: Decimal
    kind: str  # fired | cleared
    value: Decimal
    event: outbox.OutboxEvent | None
    recorded_at: datetime | None = None  # as read back


def threshold_text(value: Decimal) -> str:
    """A threshold as kept: without trailing zeros, so 10 and 10.00 are one threshold."""
    return f"{value.normalize():f}" if value else "0"


def _thresholds(values: Iterable[object], where: Where) -> tuple[list[str], tuple[Decimal, ...]]:
    problems, found = [], []
    for index, raw in enumerate(values):
        try:
            value = Decimal(str(raw))
        except InvalidOperation:
            problems.append(f"{where(f'thresholds.{index}.value')}: {raw!r} is not a number")
            continue
        if not value.is_finite() or value < 0:
            problems.append(f"{where(f'thresholds.{index}.value')}: {raw!r} must be a "
                            "number, zero or more")
        elif value in found:
            problems.append(f"{where(f'thresholds.{index}.value')}: {raw!r} is given twice")
        else:
            found.append(value)
    return problems, tuple(sorted(found))


def _threshold_problems(alert_type: str, thresholds: Sequence[object], where: Where
                        ) -> tuple[list[str], tuple[Decimal, ...]]:
    problems, values = _thresholds(thresholds, where)
    if alert_type in NO_THRESHOLDS and thresholds:
        problems.append(f"{where('thresholds')}: a {alert_type} alert watches a balance of "
                        "zero and takes no thresholds")
    elif alert_type not in NO_THRESHOLDS and not thresholds:
        problems.append(f"{where('thresholds')}: a {alert_type} alert needs at least one "
                        "threshold")
    return problems, values


def create(engine: sa.Engine, new: NewAlert, thresholds: Sequence[object],
           metric_ids: Collection[str], actor: str, now: datetime,
           where: Where = _plain) -> Alert:
    """Write ``new`` (its ``thresholds`` given raw, checked here) and its first version,
    enabled. ``metric_ids``: the catalog's metrics. Raises StateError."""
    problems: list[str] = []
    kind = new.type
    customer_id = new.customer_id
    with writing(engine) as connection:
        if kind not in CUSTOMER_TYPES + SUBSCRIPTION_TYPES:
            problems.append(f"{where('type')}: {kind!r} is not one of "
                            f"{', '.join(CUSTOMER_TYPES + SUBSCRIPTION_TYPES)}")
        if kind in SUBSCRIPTION_TYPES and new.customer_id is not None:
            problems.append(f"{where('customer_id')}: a {kind} alert is a subscription's; "
                            "give the subscription only")
        elif kind in CUSTOMER_TYPES and new.subscription_id is not None:
            problems.append(f"{where('subscription_id')}: a {kind} alert is a customer's; "
                            "give the customer only")
        if kind in SUBSCRIPTION_TYPES:
            customer_id = connection.execute(
                sa.select(schema.subscriptions.c.customer_id)
                .where(schema.subscriptions.c.subscription_id == new.subscription_id)
            ).scalar()
            if new.subscription_id is None or customer_id is None:
                problems.append(f"{where('subscription_id')}: unknown subscription "
                                f"{new.subscription_id!r}")
        elif kind in CUSTOMER_TYPES and not connection.execute(
                sa.select(schema.customers.c.customer_id)
                .where(schema.customers.c.customer_id == customer_id)).first():
            problems.append(f"{where('customer_id')}: unknown customer {customer_id!r}")
        if kind == "usage_exceeded" and new.metric_id is None:
            problems.append(f"{where('metric_id')}: a usage_exceeded alert needs the metric "
                            "it watches")
        elif kind == "usage_exceeded" and new.metric_id not in metric_ids:
            problems.append(f"{where('metric_id')}: unknown metric {new.metric_id!r}")
        elif kind != "usage_exceeded" and new.metric_id is not None:
            problems.append(f"{where('metric_id')}: only a usage_exceeded alert watches a "
                            "metric")
        currency = new.currency
        if kind in CUSTOMER_TYPES and currency is None:
            problems.append(f"{where('currency')}: a {kind} alert needs the currency of the "
                            "balance it watches")
        elif kind == "usage_exceeded" and currency is not None:
            problems.append(f"{where('currency')}: a usage_exceeded alert counts a metric's "
                            "quantity, not money")
        elif currency is not None:
            try:
                currency = money.currency_code(currency)
            except money.UnknownCurrencyError as exc:
                problems.append(f"{where('currency')}: {exc}")
        found, values = _threshold_problems(kind, thresholds, where)
        problems += found
        if not problems:
            problems += _taken(connection, kind, customer_id, new.subscription_id,
                               new.metric_id, currency, where)
        if problems:
            raise StateError(problems)
        assert customer_id is not None
        connection.execute(sa.insert(schema.alerts), [{
            "alert_id": new.alert_id, "type": kind, "customer_id": customer_id,
            "subscription_id": new.subscription_id, "metric_id": new.metric_id,
            "currency": currency, "recorded_at": now, "actor": actor}])
        _version(connection, new.alert_id, True, values, actor, now)
    return Alert(new.alert_id, kind, customer_id, new.subscription_id, new.metric_id,
                 currency, True, values, now)


def _taken(connection: sa.Connection, kind: str, customer_id: str | None,
           subscription_id: str | None, metric_id: str | None, currency: str | None,
           where: Where) -> list[str]:
    """Orb's limits: one alert of each credit-balance type per customer and currency, one
    cost alert per subscription, one usage alert per subscription and metric."""
    t = schema.alerts
    query = sa.select(t.c.alert_id).where(t.c.type == kind)
    if kind in CUSTOMER_TYPES:
        query = query.where(t.c.customer_id == customer_id, t.c.currency == currency)
    else:
        query = query.where(t.c.subscription_id == subscription_id)
        if kind == "usage_exceeded":
            query = query.where(t.c.metric_id == metric_id)
    existing = connection.execute(query).scalar()
    if existing is None:
        return []
    of = (f"customer {customer_id!r} in {currency}" if kind in CUSTOMER_TYPES
          else f"subscription {subscription_id!r}")
    on = f" on metric {metric_id!r}" if metric_id else ""
    return [f"{where('type')}: alert {existing!r} is already the {kind} alert of {of}{on}; "
            "update it instead"]


def _version(connection: sa.Connection, alert_id: str, enabled: bool,
             thresholds: Sequence[Decimal], actor: str, now: datetime) -> None:
    connection.execute(sa.insert(schema.alert_versions), [{
        "alert_id": alert_id, "enabled": enabled,
        "thresholds": json.dumps([threshold_text(t) for t in thresholds]),
        "recorded_at": now, "actor": actor}])


def change(engine: sa.Engine, alert_id: str, actor: str, now: datetime,
           enabled: bool | None = None, thresholds: Sequence[object] | None = None,
           where: Where = _plain) -> Alert:
    """A new version of the alert: enabled or disabled, or new thresholds (the others
    kept). Raises StateError, and KeyError for an alert that does not exist."""
    with writing(engine) as connection:
        current = _read(connection, [alert_id])
        if not current:
            raise KeyError(alert_id)
        alert = current[0]
        values = alert.thresholds
        if thresholds is not None:
            problems, values = _threshold_problems(alert.type, thresholds, where)
            if problems:
                raise StateError(problems)
        state = alert.enabled if enabled is None else enabled
        _version(connection, alert_id, state, values, actor, now)
    return Alert(alert.alert_id, alert.type, alert.customer_id, alert.subscription_id,
                 alert.metric_id, alert.currency, state, values, alert.created_at)


def read(engine: sa.Engine, alert_ids: Collection[str] | None = None,
         customer_ids: Collection[str] | None = None, enabled_only: bool = False
         ) -> list[Alert]:
    """The alerts as they are now (their newest version), in the order created."""
    with reading(engine) as connection:
        found = _read(connection, alert_ids, customer_ids)
    return [a for a in found if a.enabled or not enabled_only]


def _read(connection: sa.Connection, alert_ids: Collection[str] | None = None,
          customer_ids: Collection[str] | None = None) -> list[Alert]:
    a, v = schema.alerts, schema.alert_versions
    # the first version's id orders alerts as created, whatever the clock said
    versions = (sa.select(v.c.alert_id, sa.func.max(v.c.version_id).label("newest"),
                          sa.func.min(v.c.version_id).label("first"))
                .group_by(v.c.alert_id).subquery())
    query = (sa.select(a, v.c.enabled, v.c.thresholds)
             .join(versions, versions.c.alert_id == a.c.alert_id)
             .join(v, v.c.version_id == versions.c.newest)
             .order_by(versions.c.first))
    if alert_ids is not None:
        query = query.where(a.c.alert_id.in_(list(alert_ids)))
    if customer_ids is not None:
        query = query.where(a.c.customer_id.in_(list(customer_ids)))
    return [Alert(row.alert_id, row.type, row.customer_id, row.subscription_id,
                  row.metric_id, row.currency, row.enabled,
                  tuple(Decimal(t) for t in json.loads(row.thresholds)), row.recorded_at)
            for row in connection.execute(query)]


def latest_firings(engine: sa.Engine, alert_ids: Collection[str]
                   ) -> dict[tuple[str, Decimal], Firing]:
    """Each (alert, threshold)'s newest firing or clearing."""
    t = schema.alert_firings
    found: dict[tuple[str, Decimal], Firing] = {}
    ids = list(alert_ids)
    with reading(engine) as connection:
        for start in range(0, len(ids), 500):
            for row in connection.execute(
                    sa.select(t).where(t.c.alert_id.in_(ids[start:start + 500]))
                    .order_by(t.c.recorded_at)):
                found[(row.alert_id, Decimal(row.threshold))] = Firing(
                    row.alert_id, row.period_start, Decimal(row.threshold), row.kind,
                    Decimal(row.value), None, row.recorded_at)
    return found


def record_firings(engine: sa.Engine, firings: Sequence[Firing], actor: str,
                   now: datetime) -> int:
    """Write the firings not written yet (by their key) with their outbox events, in one
    transaction; the number of events appended. A re-evaluation that finds the same
    firings adds nothing."""
    if not firings:
        return 0
    t = schema.alert_firings
    with writing(engine) as connection:
        # after every row written before (writers are serialized): a credit-balance
        # threshold is re-armed at its "cleared" row's instant, which must be new
        newest = connection.execute(sa.select(sa.func.max(t.c.recorded_at))).scalar()
        if newest is not None:
            newest = newest.replace(tzinfo=UTC) if newest.tzinfo is None else newest
            now = max(now, newest + timedelta(microseconds=1))
        keys = {(f.alert_id, f.period_start, threshold_text(f.threshold), f.kind)
                for f in firings}
        present = set()
        for alert_id in {f.alert_id for f in firings}:
            present |= {(row.alert_id, row.period_start, row.threshold, row.kind)
                        for row in connection.execute(
                            sa.select(t.c.alert_id, t.c.period_start, t.c.threshold, t.c.kind)
                            .where(t.c.alert_id == alert_id))}
        rows, events = [], {}
        for firing in firings:
            key = (firing.alert_id, firing.period_start, threshold_text(firing.threshold),
                   firing.kind)
            if key in present or key not in keys:
                continue
            present.add(key)
            rows.append({"alert_id": firing.alert_id, "period_start": firing.period_start,
                         "threshold": key[2], "kind": firing.kind,
                         "value": str(firing.value),
                         "event_id": firing.event.event_id if firing.event else None,
                         "recorded_at": now, "actor": actor})
            if firing.event is not None:
                events[firing.event.event_id] = firing.event
        if rows:
            connection.execute(sa.insert(t), rows)
        return outbox.append(connection, _with_objects(connection, events.values()), now,
                             actor)


def _with_objects(connection: sa.Connection, events: Iterable[outbox.OutboxEvent]
                  ) -> list[outbox.OutboxEvent]:
    """The events with their ``subscription`` or ``customer`` as every other event of the
    outbox has them (``state.events``: Orb's standard payload style), as of the event."""
    wanted = list(events)
    if not wanted:
        return []
    found = read_rows(connection, None, {e.customer_id for e in wanted if e.customer_id},
                      {e.subscription_id for e in wanted if e.subscription_id})
    done = []
    for event in wanted:
        assert event.customer_id is not None
        versions = found.versions[event.customer_id]
        if event.subscription_id is not None:
            objects = {"subscription": subscription_object(
                event.subscription_id, versions, found.changes[event.subscription_id],
                event.created_at)}
        else:
            objects = {"customer": customer_object(versions, event.created_at)}
        done.append(replace(event, payload={**event.payload, **objects}))
    return done
