"""Alerts: Orb's ``/alerts`` over the state store (docs/api.md#alerts,
docs/webhooks.md#alerts), written through ``state.alerts`` as ``orb alerts`` writes them.

Credit-balance alerts are created for a customer (by Orb id or external id), usage and
cost alerts for a subscription; an alert is then re-thresholded, enabled or disabled, each
a new version. A write to an alert evaluates its customer's alerts after the answer, as
Orb re-evaluates on a configuration change. Bodies are validated after the path's id is
found, so another tenant's id is a 404 whatever the body."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Body, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict

from api.access import Authorized, Caller, IdempotentRoute, audit, config, path_id
from api.costs import read_view
from api.errors import bad_request, not_found
from api.pages import Cursor, Limit, page
from api.views import View
from api.writes import body_field, validated
from pricing_sql.run_catalog import plans_and_metrics
from state import StateError, StateStore
from state import alerts as stored
from webhooks.alert_shapes import alert_shape
from webhooks.alerts import evaluate_logged, in_alert_of

Instant = AwareDatetime  # an ISO 8601 instant with its offset, as Orb sends them
router = APIRouter(prefix="/alerts", tags=["alerts"], route_class=IdempotentRoute)


class Threshold(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: Any  # checked by state.alerts: a decimal, zero or more


class CustomerAlert(BaseModel):
    """Orb's create-customer-alert body."""

    model_config = ConfigDict(extra="forbid")
    currency: str
    type: Literal["credit_balance_depleted", "credit_balance_dropped",
                  "credit_balance_recovered"]
    thresholds: list[Threshold] | None = None


class SubscriptionAlert(BaseModel):
    """Orb's create-subscription-alert body; grouped and filtered cost alerts and
    ``spend_exceeded`` are not served (docs/api.md), so their fields take only null."""

    model_config = ConfigDict(extra="forbid")
    thresholds: list[Threshold]
    type: Literal["usage_exceeded", "cost_exceeded"]
    currency: str | None = None
    metric_id: str | None = None
    grouping_keys: None = None
    price_filters: None = None
    threshold_overrides: None = None


class AlertUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thresholds: list[Threshold]
    price_filters: None = None
    threshold_overrides: None = None


def _store(caller: Caller) -> StateStore:
    return StateStore.open(caller.deployment.state_store_url)


def _current(request: Request, caller: Caller) -> View:
    return read_view(caller.deployment, config(request).clock())


def _shaped(caller: Caller, current: View, alerts: list[stored.Alert]) -> list[dict[str, Any]]:
    status = in_alert_of(caller.deployment, alerts)
    external = {c.id: c.external_customer_id for c in current.customers}
    return [alert_shape(a, external.get(a.customer_id), status.get(a.alert_id, {}))
            for a in alerts]


def _found(caller: Caller, alert_id: str) -> stored.Alert:
    with _store(caller) as store:
        found = stored.read(store.engine, [alert_id])
    if not found:
        raise not_found("alert", alert_id)
    return found[0]


@path_id("alert_id")
@path_id("alert_configuration_id")
def _tenants_alert(request: Request, caller: Caller, alert_id: str) -> stored.Alert:
    return _found(caller, alert_id)


def _evaluate_later(tasks: BackgroundTasks, caller: Caller, customer_id: str,
                    now: datetime) -> None:
    tasks.add_task(evaluate_logged, caller.deployment, now, [customer_id])


def _create(request: Request, caller: Caller, tasks: BackgroundTasks, new: stored.NewAlert,
            thresholds: list[Threshold] | None) -> dict[str, Any]:
    now = config(request).clock()
    metrics = {m.id for m in plans_and_metrics(caller.deployment).metrics}
    try:
        with _store(caller) as store:
            alert = stored.create(store.engine, new, [t.value for t in thresholds or []],
                                  metrics, caller.actor, now, body_field)
    except StateError as exc:
        raise bad_request(exc.problems) from exc
    [after] = _shaped(caller, _current(request, caller), [alert])
    audit(request, caller, "alert", alert.alert_id, None, after)
    _evaluate_later(tasks, caller, alert.customer_id, now)
    return after


def _new_id() -> str:
    return f"alert_{secrets.token_hex(8)}"


@router.post("/customer_id/{customer_id}")
def create_for_customer(customer_id: str, request: Request, caller: Authorized,
                        tasks: BackgroundTasks, body: Annotated[Any, Body()] = None,
                        ) -> dict[str, Any]:
    if _current(request, caller).customer(customer_id) is None:
        raise not_found("customer", customer_id)
    alert = validated(CustomerAlert, body if isinstance(body, dict) else {})
    return _create(request, caller, tasks, stored.NewAlert(
        _new_id(), alert.type, customer_id, currency=alert.currency), alert.thresholds)


@router.post("/external_customer_id/{external_customer_id}")
def create_for_external_customer(external_customer_id: str, request: Request,
                                 caller: Authorized, tasks: BackgroundTasks,
                                 body: Annotated[Any, Body()] = None) -> dict[str, Any]:
    found = _current(request, caller).customer_by_external_id(external_customer_id)
    if found is None:
        raise not_found("customer with external_customer_id", external_customer_id)
    alert = validated(CustomerAlert, body if isinstance(body, dict) else {})
    return _create(request, caller, tasks, stored.NewAlert(
        _new_id(), alert.type, found.id, currency=alert.currency), alert.thresholds)


@router.post("/subscription_id/{subscription_id}")
def create_for_subscription(subscription_id: str, request: Request, caller: Authorized,
                            tasks: BackgroundTasks, body: Annotated[Any, Body()] = None,
                            ) -> dict[str, Any]:
    if _current(request, caller).subscription(subscription_id) is None:
        raise not_found("subscription", subscription_id)
    alert = validated(SubscriptionAlert, body if isinstance(body, dict) else {})
    return _create(request, caller, tasks, stored.NewAlert(
        _new_id(), alert.type, subscription_id=subscription_id, metric_id=alert.metric_id,
        currency=alert.currency), alert.thresholds)


@router.get("")
def list_alerts(request: Request, caller: Authorized, cursor: Cursor = None,
                limit: Limit = 20, customer_id: str | None = None,
                external_customer_id: str | None = None, subscription_id: str | None = None,
                created_at_gt: Annotated[Instant | None, Query(alias="created_at[gt]")] = None,
                created_at_gte: Annotated[Instant | None, Query(alias="created_at[gte]")] = None,
                created_at_lt: Annotated[Instant | None, Query(alias="created_at[lt]")] = None,
                created_at_lte: Annotated[Instant | None, Query(alias="created_at[lte]")] = None,
                ) -> dict[str, Any]:
    """Orb's list: one of customer_id, external_customer_id or subscription_id; newest
    first."""
    if (customer_id, external_customer_id, subscription_id) == (None, None, None):
        raise bad_request(["query: give one of customer_id, external_customer_id or "
                           "subscription_id (as Orb requires)"])
    current = _current(request, caller)
    if external_customer_id is not None:
        found = current.customer_by_external_id(external_customer_id)
        customer_id = found.id if found else ""
    with _store(caller) as store:
        alerts = stored.read(store.engine)
    chosen = [a for a in alerts
              if (customer_id is None or a.customer_id == customer_id)
              and (subscription_id is None or a.subscription_id == subscription_id)
              and (created_at_gt is None or a.created_at > created_at_gt)
              and (created_at_gte is None or a.created_at >= created_at_gte)
              and (created_at_lt is None or a.created_at < created_at_lt)
              and (created_at_lte is None or a.created_at <= created_at_lte)][::-1]
    shapes = dict(zip((a.alert_id for a in chosen), _shaped(caller, current, chosen),
                      strict=True))
    return page(chosen, cursor, limit, lambda a: a.alert_id, lambda a: shapes[a.alert_id])


@router.get("/{alert_id}")
def fetch_alert(alert_id: str, request: Request, caller: Authorized) -> dict[str, Any]:
    [shown] = _shaped(caller, _current(request, caller), [_found(caller, alert_id)])
    return shown


def _change(request: Request, caller: Caller, tasks: BackgroundTasks, alert_id: str,
            subscription_id: str | None, enabled: bool | None = None,
            body: Any = None) -> dict[str, Any]:
    before_alert = _found(caller, alert_id)
    if subscription_id is not None and subscription_id != before_alert.subscription_id:
        raise bad_request([f"query.subscription_id: alert {alert_id!r} is not of "
                           f"subscription {subscription_id!r} (plan alerts are not served)"])
    thresholds = None
    if enabled is None:
        update = validated(AlertUpdate, body if isinstance(body, dict) else {})
        thresholds = [t.value for t in update.thresholds]
    current = _current(request, caller)
    [before] = _shaped(caller, current, [before_alert])
    now = config(request).clock()
    try:
        with _store(caller) as store:
            alert = stored.change(store.engine, alert_id, caller.actor, now, enabled,
                                  thresholds, body_field)
    except StateError as exc:
        raise bad_request(exc.problems) from exc
    [after] = _shaped(caller, current, [alert])
    audit(request, caller, "alert", alert_id, before, after)
    if alert.enabled:
        _evaluate_later(tasks, caller, alert.customer_id, now)
    return after


@router.put("/{alert_configuration_id}")
def update_alert(alert_configuration_id: str, request: Request, caller: Authorized,
                 tasks: BackgroundTasks, body: Annotated[Any, Body()] = None,
                 ) -> dict[str, Any]:
    return _change(request, caller, tasks, alert_configuration_id, None, body=body)


@router.post("/{alert_configuration_id}/enable")
def enable_alert(alert_configuration_id: str, request: Request, caller: Authorized,
                 tasks: BackgroundTasks, subscription_id: str | None = None) -> dict[str, Any]:
    return _change(request, caller, tasks, alert_configuration_id, subscription_id, True)


@router.post("/{alert_configuration_id}/disable")
def disable_alert(alert_configuration_id: str, request: Request, caller: Authorized,
                  tasks: BackgroundTasks, subscription_id: str | None = None) -> dict[str, Any]:
    return _change(request, caller, tasks, alert_configuration_id, subscription_id, False)
