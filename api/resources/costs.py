"""Costs: Orb's ``/customers/{id}/costs`` (and by external id), and the request handling
``/subscriptions/{id}/costs`` shares, computed on demand from the lake (``api/costs.py``,
docs/api.md#costs-usage-and-the-upcoming-invoice)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter, Request

from api import costs
from api.access import Authorized, config
from api.errors import bad_request, not_found
from api.shapes import instant
from api.shapes import price as shaped_price
from api.views import View, current_period
from billing import money, periods
from billing.catalog import Customer, Subscription
from pricing_sql.customer_rating import RatingRefused

router = APIRouter(tags=["costs"])

ViewMode = Literal["periodic", "cumulative"]


def query_day(text: str, customer: Customer, field: str, up: bool) -> date:
    """A day, or an ISO 8601 instant (one without an offset is in the customer's zone)
    as the customer's local day; ``up``: an instant inside a day counts that whole day
    (a timeframe's exclusive end)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request([f"query.{field}: expected a day (YYYY-MM-DD) or an ISO 8601 "
                           f"instant, got {text!r}"]) from None
    zone = periods.zone(customer.timezone)
    local = (moment.replace(tzinfo=zone) if moment.tzinfo is None
             else moment.astimezone(zone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return local.date() + timedelta(days=1 if up and local != midnight else 0)


def timeframe(current: View, customer: Customer, subscriptions: list[Subscription],
              start: str | None, end: str | None) -> list[date]:
    """The customer's days asked for: ``[timeframe_start, timeframe_end)``; by default
    from the start of the billing periods under way to the end of today."""
    under_way = [p for p in (current_period(current, s, customer) for s in subscriptions) if p]
    first = (query_day(start, customer, "timeframe_start", False) if start
             else min((p[0] for p in under_way), default=None))
    last = (query_day(end, customer, "timeframe_end", True) if end
            else current.today(customer) + timedelta(days=1))
    if first is None:
        return []  # nothing under way and no timeframe asked for
    if last <= first:
        raise bad_request([f"query.timeframe_end: {last} is not after timeframe_start "
                           f"{first}"])
    if (last - first).days > costs.MAX_DAYS:
        raise bad_request([f"query.timeframe_end: at most {costs.MAX_DAYS} days at once, "
                           f"asked for {(last - first).days}"])
    return [first + timedelta(days=i) for i in range((last - first).days)]


def costs_response(caller: Authorized, current: View, customer: Customer,
                   subscription: Subscription | None, start: str | None, end: str | None,
                   view_mode: ViewMode, currency: str | None) -> dict[str, Any]:
    """Orb's ``{"data": [AggregatedCost, ...]}``: one per day, cumulative from the start
    of the billing period under way that day (or the day alone, ``periodic``)."""
    subscriptions = [subscription] if subscription else [
        s for s in current.subscriptions if s.customer_id == customer.id]
    days = timeframe(current, customer, subscriptions, start, end)
    if not days:
        return {"data": []}
    catalog = costs.catalog_of(current.references, current.customers, current.subscriptions,
                               customer.id)
    try:
        points = costs.cumulative_costs(caller.deployment.lake, catalog, customer, days,
                                        subscription.id if subscription else None, currency)
    except RatingRefused as exc:
        raise bad_request([f"path: {exc}"]) from exc
    except ValueError as exc:
        raise bad_request([f"query.currency: {exc}"]) from exc
    if view_mode == "periodic":
        points = costs.periodic(points)

    def midnight(day: date) -> str | None:
        return instant(periods.local_midnight(day, customer.timezone))

    def cash(value: Decimal, currency: str) -> str:
        return str(money.quantize(value, currency))

    data = []
    for point in points:
        per_price = []
        for cost in point.prices:
            plan = current.plan(cost.plan_id)
            price = None if plan is None else next(
                (p for p in plan.version(cost.plan_version).prices if p.id == cost.price_id),
                None)
            per_price.append({
                "price_id": cost.price_id,
                "price": None if price is None else shaped_price(current, price, cost.currency),
                "quantity": f"{cost.quantity.normalize():f}",
                "subtotal": cash(cost.subtotal, cost.currency),
                "total": cash(cost.subtotal, cost.currency)})
        unit = point.prices[0].currency  # every window billed that day has its lines
        data.append({"timeframe_start": midnight(point.start),
                     "timeframe_end": midnight(point.end),
                     "per_price_costs": per_price,
                     "subtotal": cash(point.subtotal, unit),
                     "total": cash(point.total, unit)})
    return {"data": data}


def _customer(customer: Customer | None, given: str) -> Customer:
    if customer is None:
        raise not_found("customer", given)
    return customer


@router.get("/customers/{customer_id}/costs")
def customer_costs(customer_id: str, request: Request, caller: Authorized,
                   timeframe_start: str | None = None, timeframe_end: str | None = None,
                   view_mode: ViewMode = "cumulative", currency: str | None = None,
                   ) -> dict[str, Any]:
    """Every subscription of the customer, each price's costs summed."""
    current = costs.read_view(caller.deployment, config(request).clock())
    customer = _customer(current.customer(customer_id), customer_id)
    return costs_response(caller, current, customer, None, timeframe_start,
                          timeframe_end, view_mode, currency)


@router.get("/customers/external_customer_id/{external_customer_id}/costs")
def customer_costs_by_external_id(
        external_customer_id: str, request: Request, caller: Authorized,
        timeframe_start: str | None = None, timeframe_end: str | None = None,
        view_mode: ViewMode = "cumulative", currency: str | None = None) -> dict[str, Any]:
    current = costs.read_view(caller.deployment, config(request).clock())
    customer = _customer(current.customer_by_external_id(external_customer_id),
                         external_customer_id)
    return costs_response(caller, current, customer, None, timeframe_start,
                          timeframe_end, view_mode, currency)
