"""Prices: Orb's ``/prices`` (list, fetch, fetch by external id) and
``/prices/{price_id}/evaluate`` (docs/api.md#prices). A price is a plan's, from the
catalog folder (catalog as code), so read-only here; its ids are unique across plans
(the catalog's check), and ``external_price_id`` is the same id."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from api import costs
from api.access import Authorized, Caller, IdempotentRoute, config, found, path_id, reads
from api.errors import bad_request, not_found
from api.pages import Cursor, Limit, page
from api.shapes import price as shaped_price
from api.views import View
from billing.catalog import Customer
from billing.catalog.models import Plan
from billing.catalog.prices import Price
from pricing_sql.customer_rating import RatingRefused
from pricing_sql.metrics import MetricSQLError
from pricing_sql.price_evaluation import evaluate_for_customer

router = APIRouter(tags=["prices"], route_class=IdempotentRoute)


def _prices(current: View) -> list[tuple[Price, Plan]]:
    """Every price of every plan version, in the catalog's order."""
    return [(price, plan) for plan in current.references.plans for price in plan.all_prices()]


def _price(current: View, price_id: str) -> tuple[Price, Plan]:
    hit = next(((p, plan) for p, plan in _prices(current) if p.id == price_id), None)
    if hit is None:
        raise not_found("price", price_id)
    return hit


def _read_view(request: Request, caller: Caller) -> View:
    return costs.read_view(caller.deployment, config(request).clock())


@path_id("price_id")
@path_id("external_price_id")  # both are the catalog's price id
def _tenants_price(request: Request, caller: Caller, price_id: str) -> tuple[Price, Plan]:
    return _price(_read_view(request, caller), price_id)


def _shaped(current: View, hit: tuple[Price, Plan]) -> dict[str, Any]:
    price, plan = hit
    return shaped_price(current, price, plan.currency)


@router.get("/prices")
def list_prices(request: Request, caller: Authorized,
                cursor: Cursor = None, limit: Limit = 20) -> dict[str, Any]:
    current = _read_view(request, caller)
    return page(_prices(current), cursor, limit, lambda hit: hit[0].id,
                lambda hit: _shaped(current, hit))


@router.get("/prices/external_price_id/{external_price_id}")
def fetch_price_by_external_id(external_price_id: str, request: Request, caller: Authorized,
                               ) -> dict[str, Any]:
    return _shaped(_read_view(request, caller), found(request, "external_price_id"))


@router.get("/prices/{price_id}")
def fetch_price(price_id: str, request: Request, caller: Authorized) -> dict[str, Any]:
    return _shaped(_read_view(request, caller), found(request, "price_id"))


class EvaluatePrice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeframe_start: datetime
    timeframe_end: datetime
    customer_id: str | None = None
    external_customer_id: str | None = None
    filter: str | None = None
    grouping_keys: list[str] = []
    metric_parameter_overrides: dict[str, object] | None = None


def _customer(current: View, body: EvaluatePrice) -> Customer:
    if (body.customer_id is None) == (body.external_customer_id is None):
        raise bad_request(["body: give exactly one of customer_id and external_customer_id "
                           "(an evaluation is of one customer's events)"])
    if body.customer_id is not None:
        customer = current.customer(body.customer_id)
        given = body.customer_id
    else:
        given = str(body.external_customer_id)
        customer = current.customer_by_external_id(given)
    if customer is None:
        raise not_found("customer", given)
    return customer


def _utc(moment: datetime) -> datetime:
    """An instant without an offset is UTC, as Orb reads one."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@router.post("/prices/{price_id}/evaluate")
@reads
def evaluate_price(price_id: str, body: EvaluatePrice, request: Request, caller: Authorized,
                   ) -> dict[str, Any]:
    """Orb's evaluate: the price's output over one customer's events in
    ``[timeframe_start, timeframe_end)``, per group of ``grouping_keys`` (event property
    names), counted and priced by the billing run's own SQL. A read: a read-only key may."""
    price, plan = found(request, "price_id")
    current = _read_view(request, caller)
    customer = _customer(current, body)
    if body.metric_parameter_overrides:
        raise bad_request(["body.metric_parameter_overrides: metrics here have no "
                           "parameters (docs/api.md#prices)"])
    start, end = _utc(body.timeframe_start), _utc(body.timeframe_end)
    if end <= start:
        raise bad_request([f"body.timeframe_end: {end.isoformat()} is not after "
                           f"timeframe_start {start.isoformat()}"])
    if (end - start).days >= costs.MAX_DAYS:
        raise bad_request([f"body.timeframe_end: at most {costs.MAX_DAYS} days at once"])
    try:
        groups = evaluate_for_customer(caller.deployment.lake, current.references, price,
                                       plan.currency, customer.id, start, end,
                                       body.grouping_keys, body.filter)
    except MetricSQLError as exc:
        field = "grouping_keys" if "grouping key" in str(exc) else "filter"
        raise bad_request([f"body.{field}: {exc}"]) from exc
    except RatingRefused as exc:
        raise bad_request([f"path.price_id: {exc}"]) from exc
    except ValueError as exc:
        raise bad_request([f"path.price_id: {exc}"]) from exc
    return {"data": [{"amount": str(group.amount),
                      "grouping_values": list(group.grouping_values),
                      # Orb's shape is a JSON number: an integral count stays an integer
                      "quantity": _number(group.quantity)}
                     for group in groups]}


def _number(quantity: Decimal) -> int | float:
    return int(quantity) if quantity == quantity.to_integral_value() else float(quantity)
