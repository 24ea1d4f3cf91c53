"""Price a single Orb-shaped price for a given usage, with the pipeline's own SQL.

    >>> evaluate_price({"model_type": "unit", "unit_config": {"unit_amount": "0.50"}}, 3)
    Decimal('1.50')

``usage`` is a quantity, or for grouped and matrix prices a list of
``{"group": {"region": "us"}, "quantity": 12}`` rows. The price is rated as a
usage price over one whole month for a customer in UTC, through
``line_items.sql`` exactly as in a billing run (a prorated price is therefore
not reduced). The result is rounded to the price's ``currency`` (default USD).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, NotRequired, TypedDict

import pyarrow as pa
from pydantic import TypeAdapter, ValidationError

from billing import money
from billing.catalog.models import (
    MODEL_TYPES,
    Catalog,
    Customer,
    Metric,
    Plan,
    Subscription,
)
from billing.catalog.prices import Price
from billing.charges import billing_windows
from pricing_sql.rating import price_line_items
from storage.duck import connect
from storage.lake import Row
from storage.tables import USAGE

MONTH = date(2026, 1, 1)
EVALUATE = "evaluate"

# A price as parsed from JSON: pydantic checks its shape, so its values are untyped here.
PriceJSON = Mapping[str, Any]
Quantity = Decimal | int | float | str


class UsageRow(TypedDict):
    """One group's usage: ``{"group": {"region": "us"}, "quantity": 12}``."""

    group: NotRequired[Mapping[str, object]]
    quantity: Quantity


Usage = Quantity | list[UsageRow]


@dataclass(frozen=True)
class Breakdown:
    currency: str
    amount: Decimal
    precise_amount: Decimal
    sub_line_items: list[Row]


def _price_model(price: PriceJSON) -> Price:
    model_type = price.get("model_type")
    config = f"{model_type}_config"
    if config not in price:
        raise ValueError(f"price has model_type {model_type!r} but no {config!r}")
    spec = {"id": str(price.get("id") or EVALUATE), "name": str(price.get("name") or EVALUATE),
            "model_type": model_type, config: price[config], "billable_metric_id": EVALUATE}
    try:
        return TypeAdapter(Price).validate_python(spec)
    except ValidationError as exc:
        raise ValueError("invalid price: " + "; ".join(
            ".".join(str(p) for p in err["loc"] if p not in MODEL_TYPES) + ": " + err["msg"]
            for err in exc.errors())) from exc


def _usage_rows(model: Price, usage: Usage, window_id: str) -> list[Row]:
    keys = list(model.grouping())
    rows: list[tuple[list[object], Quantity]]
    if isinstance(usage, list):
        rows = [(list(row.get("group", {}).get(key) for key in keys), row["quantity"])
                for row in usage]
    elif keys:
        raise ValueError(f"a {model.model_type} price groups usage by {keys}: pass a list of "
                         '{"group": {...}, "quantity": ...} rows')
    else:
        rows = [([], usage)]
    return [{"window_id": window_id, "metric_id": EVALUATE, "grouping": keys,
             "group_values": [None if v is None else str(v) for v in values],
             "quantity": Decimal(str(quantity))} for values, quantity in rows]


def price_breakdown(price: PriceJSON, usage: Usage) -> Breakdown:
    model = _price_model(price)
    currency = money.validate_currency(price.get("currency") or "USD")
    catalog = Catalog(
        metrics=[Metric(id=EVALUATE, name=EVALUATE, sql="SELECT count(*) FROM events")],
        plans=[Plan(id=EVALUATE, name=EVALUATE, currency=currency, prices=[model])],
        customers=[Customer(id=EVALUATE, name=EVALUATE)],
        subscriptions=[Subscription(id=EVALUATE, customer_id=EVALUATE, plan_id=EVALUATE,
                                    start_date=MONTH)],
    )
    (window,) = billing_windows(catalog, MONTH)
    usage_table = pa.Table.from_pylist(_usage_rows(model, usage, window.window_id),
                                       schema=USAGE)
    priced = price_line_items(connect(), catalog, MONTH, usage_table)
    (line,) = priced.line_items.to_pylist()
    return Breakdown(currency, money.quantize(line["amount"], currency), line["precise_amount"],
                     priced.sub_line_items.to_pylist())


def evaluate_price(price: PriceJSON, usage: Usage) -> Decimal:
    """The amount ``price`` charges for ``usage``, rounded to its currency's minor unit."""
    return price_breakdown(price, usage).amount
