"""Evaluating alerts (docs/webhooks.md#alerts): after an ingestion batch, for the
customers it touched, and after the daily running-invoice refresh, for every customer.

- ``usage_exceeded``: the metric's quantity on the subscription's upcoming invoice (its
  usage billing period under way, the customer's local days ``[start, end)``), counted up
  to now by the billing run's own SQL (``webhooks.alert_values``).
- ``cost_exceeded``: that invoice's total so far, with its minimums, discounts and fixed
  fees, before prepaid credits (Orb's SDK: cost alerts "do not include burndown of
  pre-purchase credits").
- A threshold is exceeded at or above it (Orb's ``Threshold.value``); each fires once per
  (alert, period, threshold), and the next period re-arms it.
- Credit balances: the customer's grants in the currency, in effect today, after every
  entry recorded (``invoicing.credit_grants.balances_now``). Orb's transitions:
  ``depleted`` fires when a balance seen above 0 is 0, ``dropped`` when one seen above a
  threshold is at or below it, ``recovered`` when one seen at 0 is above it; each re-arms
  when an evaluation sees the balance out of that state again.
- Thresholds crossed together in one evaluation make one event, for the furthest one
  (Orb: "a single notification for the greater of the thresholds").

A firing and its outbox event are written in one state transaction
(``state.alerts.record_firings``), with ids made from the firing, so a re-evaluation
adds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import duckdb

from invoicing import top_ups
from pricing_sql.run_catalog import current_catalog
from state import StateStore
from state import alerts as stored
from state.alerts import Alert, Firing
from state.outbox import OutboxEvent, derived_event_id
from storage.duck import connect
from storage.lake import Lake
from storage.settings import Deployment
from webhooks import alert_values as values
from webhooks.alert_shapes import alert_shape, iso, webhook_number
from webhooks.alert_values import Period
from webhooks.sql import load_sql

log = logging.getLogger(__name__)

EVENT_TYPES = {"usage_exceeded": "subscription.usage_exceeded",
               "cost_exceeded": "subscription.cost_exceeded",
               "credit_balance_depleted": "customer.credit_balance_depleted",
               "credit_balance_dropped": "customer.credit_balance_dropped",
               "credit_balance_recovered": "customer.credit_balance_recovered"}
ACTOR = "alerts"


@dataclass
class Evaluation:
    alerts: int = 0  # enabled alerts evaluated
    events: int = 0  # outbox events appended
    failures: dict[str, str] = field(default_factory=dict)  # customer id: why
    top_ups: int = 0  # credit top-ups fired (invoicing/top_ups.py)


def batch_customers(con: duckdb.DuckDBPyConnection, lake: Lake,
                    batch_ids: Iterable[str]) -> list[str]:
    """The customers whose events the batches added."""
    files = [str(f) for batch_id in batch_ids for f in lake.batch_files("events", batch_id)]
    if not files:
        return []
    return [row[0] for row in con.sql(load_sql("batch_customers"),
                                      params={"files": files}).fetchall()]


def after_batches(deployment: Deployment, batch_ids: Collection[str],
                  now: datetime) -> Evaluation:
    """Evaluate the alerts of the customers the batches touched. Never raises: the
    batches are committed already, so a failure is logged and returned, not passed on."""
    try:
        with StateStore.open(deployment.state_store_url) as store:
            if not stored.read(store.engine, enabled_only=True):
                return Evaluation()  # no alert: nothing to read of the batches
        with closing(connect()) as con:
            customers = batch_customers(con, deployment.lake, batch_ids)
    except Exception as exc:
        log.exception("alerts after batches %s not evaluated", ", ".join(batch_ids))
        return Evaluation(failures={"*": f"{type(exc).__name__}: {exc}"})
    return evaluate_logged(deployment, now, customers) if customers else Evaluation()


def evaluate_logged(deployment: Deployment, now: datetime,
                    customer_ids: Collection[str] | None = None) -> Evaluation:
    """``evaluate``, a failure logged and returned rather than raised (a hook's); then the
    customers' credit top-ups, whose balances the same runs and entries change."""
    try:
        done = evaluate(deployment, now, customer_ids)
    except Exception as exc:
        log.exception("alerts not evaluated")
        done = Evaluation(failures={"*": f"{type(exc).__name__}: {exc}"})
    done.top_ups = top_ups.evaluate_logged(deployment, now, customer_ids).fired
    return done


def evaluate(deployment: Deployment, now: datetime,
             customer_ids: Collection[str] | None = None) -> Evaluation:
    """Evaluate the enabled alerts of ``customer_ids`` (None: every customer) as of
    ``now``; a customer whose values cannot be computed is logged and left out."""
    result = Evaluation()
    with StateStore.open(deployment.state_store_url) as store:
        alerts = stored.read(store.engine, customer_ids=customer_ids, enabled_only=True)
        if not alerts:
            return result
        catalog = current_catalog(deployment)
        customers = {c.id: c for c in catalog.customers}
        alerts = [a for a in alerts if a.customer_id in customers]
        latest = stored.latest_firings(store.engine, [a.alert_id for a in alerts])
        left = values.balances(deployment.lake, {(a.customer_id, a.currency or "")
                                                 for a in alerts
                                                 if a.type in stored.CUSTOMER_TYPES},
                               customers, now)
        wanted = {(a.subscription_id, a.currency): customers[a.customer_id] for a in alerts
                  if a.subscription_id is not None}
        invoices, failures = values.subscription_periods(deployment.lake, catalog, wanted,
                                                         now)
        for customer_id, why in failures.items():
            log.warning("alerts of customer %s not evaluated: %s", customer_id, why)
        result.failures |= failures
        firings: list[Firing] = []
        for alert in alerts:
            if alert.customer_id in failures:
                continue
            result.alerts += 1
            external = customers[alert.customer_id].external_customer_id
            if alert.subscription_id is None:
                balance = left.get((alert.customer_id, alert.currency or ""), Decimal(0))
                firings += balance_firings(alert, balance, latest, external, now)
                continue
            period = invoices.get((alert.subscription_id, alert.currency))
            if period is None:
                continue
            value = (period.cost if alert.type == "cost_exceeded"
                     else period.usage.get(alert.metric_id or "", Decimal(0)))
            fired = {t for t in alert.thresholds
                     if (f := latest.get((alert.alert_id, t))) is not None
                     and f.period_start == period.start}
            firings += exceeded_firings(alert, period, value, fired, external, now)
        result.events += stored.record_firings(store.engine, firings, ACTOR, now)
    return result


def exceeded_firings(alert: Alert, period: Period, value: Decimal, fired: set[Decimal],
                     external_customer_id: str | None, now: datetime) -> list[Firing]:
    """The thresholds at or below ``value`` not yet fired this period: one event, for the
    greatest of them, and a firing row for each."""
    crossed = [t for t in alert.thresholds if value >= t and t not in fired]
    if not crossed:
        return []
    top = max(crossed)
    event_type = EVENT_TYPES[alert.type]
    event_id = derived_event_id(event_type, alert.alert_id, iso(period.start),
                                stored.threshold_text(top))
    shape = alert_shape(alert, external_customer_id, {}, webhook_number)
    if alert.type == "usage_exceeded":
        properties: dict[str, Any] = {
            "billable_metric_id": alert.metric_id, "evaluated_quantity": float(value),
            "quantity_threshold": float(top)}
    else:
        properties = {"amount_threshold": str(top), "evaluated_amount": str(value)}
    payload = {"properties": {"alert_configuration": shape, **properties,
                              "timeframe_start": iso(period.start),
                              "timeframe_end": iso(period.end)},
               "subscription": {"id": alert.subscription_id}}
    event = OutboxEvent(event_id, event_type, now, payload, alert.customer_id,
                        alert.subscription_id)
    return [Firing(alert.alert_id, period.start, t, "fired", value, event) for t in crossed]


def watched(alert: Alert) -> tuple[Decimal, ...]:
    """The thresholds a credit-balance alert watches: 0 for depleted and recovered."""
    return alert.thresholds if alert.type == "credit_balance_dropped" else (Decimal(0),)


def in_alert(alert: Alert, latest: Mapping[tuple[str, Decimal], Firing]
             ) -> dict[Decimal, bool]:
    """Orb's ``balance_alert_status``: whether each threshold is fired and not cleared."""
    if alert.type not in stored.CUSTOMER_TYPES:
        return {}
    return {t: (f := latest.get((alert.alert_id, t))) is not None and f.kind == "fired"
            for t in watched(alert)}


def balance_firings(alert: Alert, balance: Decimal,
                    latest: Mapping[tuple[str, Decimal], Firing],
                    external_customer_id: str | None, now: datetime) -> list[Firing]:
    """Each watched threshold moves between armed and fired, as Orb's transitions: it is
    armed (a "cleared" row) by an evaluation that finds the balance not meeting it, and
    fires when armed and the balance meets it. A new alert is not armed, so a customer
    that never had credits is never "depleted". A firing's period is when its threshold
    was armed."""
    found: list[Firing] = []
    for threshold in watched(alert):
        meets = balance > 0 if alert.type == "credit_balance_recovered" else balance <= threshold
        last = latest.get((alert.alert_id, threshold))
        if last is None:  # armed by a first evaluation that sees it not met
            armed, since = False, alert.created_at
        else:
            armed = last.kind == "cleared"
            since = last.recorded_at if armed and last.recorded_at else last.period_start
        if armed and meets:
            found.append(Firing(alert.alert_id, since, threshold, "fired", balance, None))
        elif not armed and not meets:
            found.append(Firing(alert.alert_id, since, threshold, "cleared", balance, None))
    fired = [f for f in found if f.kind == "fired"]
    if not fired:
        return found
    lowest = min(fired, key=lambda f: f.threshold)
    event_type = EVENT_TYPES[alert.type]
    event_id = derived_event_id(event_type, alert.alert_id, iso(lowest.period_start),
                                stored.threshold_text(lowest.threshold))
    status = {**in_alert(alert, latest), **{f.threshold: f.kind == "fired" for f in found}}
    properties: dict[str, Any] = {
        "alert_configuration": alert_shape(alert, external_customer_id, status,
                                           webhook_number),
        "pricing_unit": {"id": alert.currency, "name": alert.currency, "symbol": None,
                         "display_name": None}}
    if alert.type == "credit_balance_dropped":
        properties["balance_threshold"] = stored.threshold_text(lowest.threshold)
    event = OutboxEvent(event_id, event_type, now, {
        "properties": properties,
        "customer": {"id": alert.customer_id, "external_customer_id": external_customer_id}},
        alert.customer_id)
    return [f if f.kind == "cleared" else Firing(f.alert_id, f.period_start, f.threshold,
                                                 f.kind, f.value, event) for f in found]


def in_alert_of(deployment: Deployment, alerts: Iterable[Alert]
                ) -> dict[str, dict[Decimal, bool]]:
    """``balance_alert_status`` of each credit-balance alert, for the API."""
    chosen = [a for a in alerts if a.type in stored.CUSTOMER_TYPES]
    if not chosen:
        return {}
    with StateStore.open(deployment.state_store_url) as store:
        latest = stored.latest_firings(store.engine, [a.alert_id for a in chosen])
    return {a.alert_id: in_alert(a, latest) for a in chosen}
