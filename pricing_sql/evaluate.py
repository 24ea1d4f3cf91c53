"""Price a single Orb-shaped price for a given usage, with the pipeline's own SQL.

    >>> evaluate_price({"model_type": "unit", "unit_config": {"unit_amount": "0.50"}}, 3)
    Decimal('1.50')

``usage`` is a quantity, or for grouped and matrix prices a list of
``{"group": {"region": "us"}, "quantity": 12}`` rows; rows of the same group are one
group. A quantity is a number of at most 9 decimal places and never negative: a
negative or malformed one is refused with an error naming it. The price is rated as a
usage price over one whole month for a customer in UTC, through
``line_items.sql`` exactly as in a billing run (a prorated price is therefore
not reduced). The result is rounded to the price's ``currency`` (default USD), or for
a price in a custom pricing unit (a ``conversion_rate``) converted to its
``invoicing_currency`` (default USD) and rounded to that. A
composite price (``percent``, ``minimum_composite``) is priced over no other prices:
its minimum, or 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any, NotRequired, TypedDict, get_args

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
from billing.catalog.prices import PRICE_MODELS, QUANTITY_PLACES, Price
from billing.charges import billing_windows
from pricing_sql.rating import price_line_items
from storage.duck import connect
from storage.lake import Row
from storage.tables import USAGE

MONTH = date(2026, 1, 1)
EVALUATE = "evaluate"
QUANTITY_LIMIT = Decimal(1).scaleb(38 - QUANTITY_PLACES)
# A price in a custom unit: its unit and rate; the result is in ``invoicing_currency``.
CONVERSION = ("currency", "conversion_rate", "conversion_rate_config")

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
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown model_type {model_type!r}; the price models are: "
                         + ", ".join(sorted(MODEL_TYPES)))
    config = f"{model_type}_config"
    if config not in price:
        raise ValueError(f"price has model_type {model_type!r} but no {config!r}")
    spec = {"id": str(price.get("id") or EVALUATE), "name": str(price.get("name") or EVALUATE),
            "model_type": model_type, config: price.get(config)}
    if _converts(price):  # a custom pricing unit, converted to the invoicing currency
        spec |= {key: price[key] for key in CONVERSION if price.get(key) is not None}
    if not any(m.COMPOSITE and model_type in get_args(m.model_fields["model_type"].annotation)
               for m in PRICE_MODELS):
        spec["billable_metric_id"] = EVALUATE
    try:
        model: Price = TypeAdapter(Price).validate_python(spec)
    except ValidationError as exc:
        raise ValueError("invalid price: " + "; ".join(
            f"{_field(err['loc'])}: {err['msg']}" for err in exc.errors())) from exc
    if any(tier.per_unit_maximum is not None for tier in model.program().tiers):
        raise ValueError("per_unit_maximum caps each event's fee, which needs event-level "
                         "rating: a price evaluated for a total quantity has no events (a "
                         "billing run applies it)")
    return model


def _converts(price: PriceJSON) -> bool:
    return any(price.get(key) is not None for key in CONVERSION[1:])


def _field(loc: tuple[int | str, ...]) -> str:
    """``tiered_config.tiers[1].unit_amount``; pydantic's union tags (model types) left out."""
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc if p not in MODEL_TYPES]
    return "".join(parts).lstrip(".") or "price"


def _quantity(value: object, where: str) -> Decimal:
    """``value`` as a usage quantity the SQL holds exactly, or an error naming ``where``.

    A negative quantity is refused: a billing run rates a negative metric value as 0
    (docs/pricing.md#negative-usage), so a price evaluated for one would only mislead."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    try:
        quantity = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{where}: {value!r} is not a number") from None
    if not quantity.is_finite():
        raise ValueError(f"{where}: {value!r} is not a finite number")
    if quantity < 0:
        raise ValueError(f"{where}: {value} is negative; a usage quantity is 0 or more")
    if quantity >= QUANTITY_LIMIT:
        raise ValueError(f"{where}: {value} is too large (at most {38 - QUANTITY_PLACES} "
                         "digits before the decimal point)")
    with localcontext() as exact:
        exact.prec = 2 * 38  # quantize must not round a 38-digit quantity
        if quantity != quantity.quantize(Decimal(1).scaleb(-QUANTITY_PLACES)):
            raise ValueError(f"{where}: {value} has more than {QUANTITY_PLACES} decimal places")
    return quantity


def _usage_rows(model: Price, usage: Usage, window_id: str) -> list[Row]:
    keys = list(model.grouping())
    rows: list[tuple[list[object], Decimal]]
    if isinstance(usage, list):
        rows = []
        for index, row in enumerate(usage):
            if not isinstance(row, Mapping) or "quantity" not in row:
                raise ValueError(f'usage[{index}]: expected {{"group": {{...}}, "quantity": '
                                 f"...}}, got {row!r}")
            group = row.get("group", {})
            if not isinstance(group, Mapping):
                raise ValueError(f"usage[{index}].group: expected an object, got {group!r}")
            rows.append(([group.get(key) for key in keys],
                         _quantity(row["quantity"], f"usage[{index}].quantity")))
    elif keys:
        raise ValueError(f"a {model.model_type} price groups usage by {keys}: pass a list of "
                         '{"group": {...}, "quantity": ...} rows')
    else:
        rows = [([], _quantity(usage, "quantity"))]
    # Rows of the same group are merged by the SQL (rate_usage.sql), as one group.
    return [{"window_id": window_id, "metric_id": EVALUATE, "grouping": keys,
             "group_values": [None if v is None else str(v) for v in values],
             "quantity": quantity} for values, quantity in rows]


def price_breakdown(price: PriceJSON, usage: Usage) -> Breakdown:
    (breakdown,) = price_breakdowns(price, [usage])
    return breakdown


def price_breakdowns(price: PriceJSON, usages: Sequence[Usage]) -> list[Breakdown]:
    """``price`` for each of ``usages``, in one pass of the SQL: each usage is its own
    customer's month (a price evaluated for many groups costs one query, not one each)."""
    model = _price_model(price)
    invoicing = price.get("invoicing_currency") if _converts(price) else price.get("currency")
    currency = money.validate_currency(invoicing or "USD")
    names = [f"{EVALUATE}_{index}" for index in range(len(usages))]
    catalog = Catalog(
        metrics=[Metric(id=EVALUATE, name=EVALUATE, sql="SELECT count(*) FROM events")],
        plans=[Plan(id=EVALUATE, name=EVALUATE, currency=currency, prices=[model])],
        customers=[Customer(id=name, name=name) for name in names],
        subscriptions=[Subscription(id=name, customer_id=name, plan_id=EVALUATE,
                                    start_date=MONTH) for name in names],
    )
    window_of = {w.customer_id: w.window_id for w in billing_windows(catalog, MONTH)}
    rows = [row for name, usage in zip(names, usages, strict=True)
            for row in _usage_rows(model, usage, window_of[name])]
    priced = price_line_items(connect(), catalog, MONTH,
                              pa.Table.from_pylist(rows, schema=USAGE))
    lines = {line["customer_id"]: line for line in priced.line_items.to_pylist()}
    subs: dict[str, list[Row]] = {}
    for sub in priced.sub_line_items.to_pylist():
        subs.setdefault(sub["line_item_id"], []).append(sub)
    return [Breakdown(currency, money.quantize(lines[name]["amount"], currency),
                      lines[name]["precise_amount"], subs.get(lines[name]["line_item_id"], []))
            for name in names]


def evaluate_price(price: PriceJSON, usage: Usage) -> Decimal:
    """The amount ``price`` charges for ``usage``, rounded to its currency's minor unit."""
    return price_breakdown(price, usage).amount
