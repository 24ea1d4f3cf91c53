"""The catalog as Arrow tables, the inputs the pricing SQL joins against.

These tables have one row per customer, billing window or price tier (hundreds or
thousands of rows), never one per event, so building them in Python is cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import pyarrow as pa

from billing.catalog import Catalog
from billing.catalog.prices import CompositePrice, Price
from billing.charges import BillingWindow
from pricing_sql.price_usage import over_cap_ids

QUANTITY = pa.decimal128(38, 9)
UNIT_AMOUNT = pa.decimal128(38, 12)
INSTANT = pa.timestamp("us", tz="UTC")

CUSTOMERS = pa.schema([("customer_id", pa.string()), ("external_customer_id", pa.string())])

BILLING_WINDOWS = pa.schema([
    ("invoice_id", pa.string()),
    ("invoice_date", pa.date32()),
    ("billing_month", pa.date32()),
    ("window_id", pa.string()),
    ("subscription_id", pa.string()),
    ("customer_id", pa.string()),
    ("plan_id", pa.string()),
    ("plan_version", pa.int32()),
    ("cycle", pa.string()),  # billing/cycles.py Cycle.key: month:3, day:14, one_time
    ("in_advance", pa.bool_()),
    ("currency", pa.string()),
    ("currency_exponent", pa.int32()),
    ("service_start", pa.date32()),
    ("service_end", pa.date32()),
    ("period_start", INSTANT),
    ("period_end", INSTANT),
    ("active_days", pa.int32()),
    ("period_days", pa.int32()),
    # a fixed fee's piece at a quantity of its own (billing/quantities.py), else NULL
    ("price_id", pa.string()),
    ("quantity", QUANTITY),
    ("replaced", pa.bool_()),
])

PLAN_PRICES = pa.schema([
    ("plan_id", pa.string()),
    ("plan_version", pa.int32()),
    ("cadence_months", pa.int32()),  # revenue's months per cycle
    ("cycle", pa.string()),  # what billing windows join on
    ("in_advance", pa.bool_()),
    ("prorate", pa.bool_()),
    ("price_id", pa.string()),
    ("price_name", pa.string()),
    ("model_type", pa.string()),
    ("billable_metric_id", pa.string()),
    ("fixed_quantity", QUANTITY),
    ("invoice_grouping_key", pa.string()),
])

PRICE_TERMS = pa.schema([
    ("price_id", pa.string()),
    ("usage_metric_id", pa.string()),  # the metric's, or a filtered price's own usage
    ("scheme", pa.string()),
    ("grouping", pa.list_(pa.string())),
    ("package_size", QUANTITY),
    ("allocation", QUANTITY),
    ("matrix_allocation", QUANTITY),
    ("allocation_per_group", QUANTITY),
    ("group_maximum", UNIT_AMOUNT),
    ("max_group", pa.bool_()),
    ("filter_values", pa.list_(pa.string())),
    ("rate_from_group", pa.bool_()),
    ("composite", pa.string()),
    ("composite_rate", UNIT_AMOUNT),
    ("composite_minimum", UNIT_AMOUNT),
    ("composite_maximum", UNIT_AMOUNT),
    ("components", pa.list_(pa.string())),
    ("consumption_values", pa.list_(pa.string())),
    ("allowance_values", pa.list_(pa.string())),
    ("prorated_group_minimum", UNIT_AMOUNT),
    ("cell_discounts", pa.bool_()),
    ("daily_allowance", QUANTITY),
    ("metered_minimum", UNIT_AMOUNT),
])

PRICE_TIERS = pa.schema([
    ("price_id", pa.string()),
    ("tier_index", pa.int32()),
    ("lower", QUANTITY),
    ("upper", QUANTITY),
    ("rate", UNIT_AMOUNT),
    ("flat_amount", UNIT_AMOUNT),
    ("minimum_amount", UNIT_AMOUNT),
    ("cell_values", pa.list_(pa.string())),
    # a cap per event (bps models): the cap and the usage keys of the events over it
    ("per_unit_maximum", UNIT_AMOUNT),
    ("over_volume_id", pa.string()),
    ("over_count_id", pa.string()),
])

PRICE_CELLS = pa.schema([
    ("price_id", pa.string()),
    ("cell_index", pa.int32()),
    ("dimension_values", pa.list_(pa.string())),
    ("rate", UNIT_AMOUNT),
    ("cell_offset", pa.int32()),  # leading group values not part of the cell
    # A spend discount's cell: its discount, threshold and the rates the cell's quantity
    # is credited at, its rate times the discount below and above the threshold, and the
    # difference of the two discounts, at which the threshold is credited past it.
    ("discount_index", pa.int32()),
    ("discount_label", pa.string()),
    ("threshold", QUANTITY),
    ("below_rate", UNIT_AMOUNT),
    ("above_rate", UNIT_AMOUNT),
    ("threshold_rate", UNIT_AMOUNT),
    ("position", pa.int32()),  # a value rate's: the group value it rates, not a cell
])


def customers_table(catalog: Catalog) -> pa.Table:
    rows = [{"customer_id": c.id, "external_customer_id": c.external_customer_id}
            for c in catalog.customers]
    return pa.Table.from_pylist(rows, schema=CUSTOMERS)


def billing_windows_table(windows: Sequence[BillingWindow]) -> pa.Table:
    columns = zip(*windows, strict=True) if windows else [[] for _ in BILLING_WINDOWS]
    return pa.Table.from_arrays([instants(values) if field.type == INSTANT
                                 else pa.array(list(values), field.type)
                                 for values, field in zip(columns, BILLING_WINDOWS, strict=True)],
                                schema=BILLING_WINDOWS)


def instants(values: Iterable[datetime]) -> pa.Array:
    """Aware datetimes as INSTANT, each distinct one converted once: Arrow asks every
    value for its UTC offset, and a run's windows share a few dozen bounds (a calendar's
    datetimes are the same objects, so their hashes are computed once too)."""
    distinct: dict[datetime, int] = {}
    indices = [distinct.setdefault(value, len(distinct)) for value in values]
    return pa.array(list(distinct), INSTANT).take(pa.array(indices, pa.int32()))


def plan_prices_table(catalog: Catalog) -> pa.Table:
    rows = [
        {
            "plan_id": plan.id,
            "plan_version": version.version,
            "cadence_months": price.cadence_months,
            "cycle": price.cycle.key,
            "in_advance": price.in_advance,
            # fixed fees always prorate over a partial cycle; usage when configured to
            "prorate": price.fixed_price_quantity is not None or price.program().prorate,
            "price_id": price.id,
            "price_name": price.name,
            "model_type": price.model_type,
            "billable_metric_id": price.billable_metric_id,
            "fixed_quantity": price.fixed_price_quantity,
            "invoice_grouping_key": price.invoice_grouping_key,
        }
        for plan in catalog.plans
        for version in plan.all_versions()
        for price in version.prices
    ]
    return pa.Table.from_pylist(rows, schema=PLAN_PRICES)


def _prices(catalog: Catalog) -> list[Price]:
    return [price for plan in catalog.plans for price in plan.all_prices()]


def _components(catalog: Catalog) -> dict[str, list[str]]:
    """Each composite price's components: the prices of its own plan version it is on."""
    return {
        price.id: price.components(version.prices)
        for plan in catalog.plans
        for version in plan.all_versions()
        for price in version.prices if isinstance(price, CompositePrice)
    }


def _values(value: str | None) -> list[str] | None:
    return None if value is None else [value]


def price_terms_table(catalog: Catalog) -> pa.Table:
    rows = []
    components = _components(catalog)
    for price in _prices(catalog):
        program = price.invoice_program()
        rows.append({
            "price_id": price.id,
            "usage_metric_id": price.usage_metric_id,
            "scheme": program.scheme,
            "grouping": list(program.grouping),
            "package_size": program.package_size,
            "allocation": program.allocation,
            "matrix_allocation": program.matrix_allocation,
            "allocation_per_group": program.allocation_per_group,
            "group_maximum": program.group_maximum,
            "max_group": program.max_group,
            "filter_values": None if program.filter_values is None else list(
                program.filter_values),
            "rate_from_group": program.rate_from_group,
            "composite": program.composite,
            "composite_rate": program.composite_rate,
            "composite_minimum": program.composite_minimum,
            "composite_maximum": program.composite_maximum,
            "components": components.get(price.id),
            "consumption_values": _values(program.consumption_value),
            "allowance_values": _values(program.allowance_value),
            "prorated_group_minimum": program.prorated_group_minimum,
            "cell_discounts": bool(program.cell_discounts),
            "daily_allowance": program.daily_allowance,
            "metered_minimum": program.metered_minimum,
        })
    return pa.Table.from_pylist(rows, schema=PRICE_TERMS)


def price_tiers_table(catalog: Catalog) -> pa.Table:
    rows = []
    for price in _prices(catalog):
        # numbered within each set of tiers: the price's own, and each cell's
        numbered: dict[tuple[str | None, ...] | None, int] = {}
        for tier in price.invoice_program().tiers:
            index = numbered[tier.cell] = numbered.get(tier.cell, -1) + 1
            over = (over_cap_ids(str(price.usage_metric_id), tier)
                    if tier.per_unit_maximum is not None else (None, None))
            rows.append({
                "price_id": price.id,
                "tier_index": index,
                "lower": tier.lower,
                "upper": tier.upper,
                "rate": tier.rate,
                "flat_amount": tier.flat_amount,
                "minimum_amount": tier.minimum_amount,
                "cell_values": None if tier.cell is None else list(tier.cell),
                "per_unit_maximum": tier.per_unit_maximum,
                "over_volume_id": over[0],
                "over_count_id": over[1],
            })
    return pa.Table.from_pylist(rows, schema=PRICE_TIERS)


def price_cells_table(catalog: Catalog) -> pa.Table:
    rows: list[dict[str, object]] = []
    for price in _prices(catalog):
        program = price.invoice_program()
        discounts = dict(program.cell_discounts)
        for index, (values, rate) in enumerate(program.cells):
            row: dict[str, object] = {"price_id": price.id, "cell_index": index,
                                      "dimension_values": list(values), "rate": rate,
                                      "cell_offset": program.cell_offset}
            discount = discounts.get(values)
            if discount is not None and rate is not None:
                row.update(discount_index=discount.index, discount_label=discount.label,
                           threshold=discount.threshold, below_rate=rate * discount.below,
                           above_rate=rate * discount.above,
                           threshold_rate=discount.below - discount.above)
            rows.append(row)
        rows += [{"price_id": price.id, "dimension_values": [v.value], "rate": v.rate,
                  "cell_offset": 0, "position": v.position} for v in program.value_rates]
    return pa.Table.from_pylist(rows, schema=PRICE_CELLS)
