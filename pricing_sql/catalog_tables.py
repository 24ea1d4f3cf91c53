"""The catalog as Arrow tables, the inputs the pricing SQL joins against.

These tables have one row per customer, subscription or price tier (hundreds or
thousands of rows), never one per event, so building them in Python is cheap.
"""

from __future__ import annotations

from datetime import date

import pyarrow as pa

from billing import money, periods
from billing.catalog import Catalog

QUANTITY = pa.decimal128(38, 9)
UNIT_AMOUNT = pa.decimal128(38, 12)
INSTANT = pa.timestamp("us", tz="UTC")

CUSTOMERS = pa.schema([("customer_id", pa.string()), ("external_customer_id", pa.string())])

BILLING_WINDOWS = pa.schema([
    ("subscription_id", pa.string()),
    ("customer_id", pa.string()),
    ("plan_id", pa.string()),
    ("currency", pa.string()),
    ("currency_exponent", pa.int32()),
    ("billing_month", pa.date32()),
    ("invoice_period_start", INSTANT),
    ("invoice_period_end", INSTANT),
    ("period_start", INSTANT),
    ("period_end", INSTANT),
    ("active_days", pa.int32()),
    ("period_days", pa.int32()),
])

PLAN_PRICES = pa.schema([
    ("plan_id", pa.string()),
    ("price_id", pa.string()),
    ("price_name", pa.string()),
    ("model_type", pa.string()),
    ("billable_metric_id", pa.string()),
    ("fixed_quantity", QUANTITY),
])

PRICE_TERMS = pa.schema([
    ("price_id", pa.string()),
    ("scheme", pa.string()),
    ("grouping", pa.list_(pa.string())),
    ("package_size", QUANTITY),
    ("allocation", QUANTITY),
    ("matrix_allocation", QUANTITY),
    ("prorate", pa.bool_()),
])

PRICE_TIERS = pa.schema([
    ("price_id", pa.string()),
    ("tier_index", pa.int32()),
    ("lower", QUANTITY),
    ("upper", QUANTITY),
    ("rate", UNIT_AMOUNT),
    ("flat_amount", UNIT_AMOUNT),
    ("minimum_amount", UNIT_AMOUNT),
])

PRICE_CELLS = pa.schema([
    ("price_id", pa.string()),
    ("cell_index", pa.int32()),
    ("dimension_values", pa.list_(pa.string())),
    ("rate", UNIT_AMOUNT),
])


def customers_table(catalog: Catalog) -> pa.Table:
    rows = [{"customer_id": c.id, "external_customer_id": c.external_customer_id}
            for c in catalog.customers]
    return pa.Table.from_pylist(rows, schema=CUSTOMERS)


def billing_windows(catalog: Catalog, month: date) -> list[dict]:
    """Each subscription active in ``month``: the customer's local month, and the part
    of it the subscription covers, as UTC instants."""
    rows = []
    for sub in catalog.subscriptions:
        customer = catalog.customer(sub.customer_id)
        plan = catalog.plan(sub.plan_id)
        invoice_period = periods.month_period(month, customer.timezone)
        active = periods.local_date_period(sub.start_date, sub.end_date, customer.timezone)
        window = invoice_period.intersect(active)
        if window is None:
            continue
        first = month.replace(day=1)
        after = periods.add_months(first, 1)
        active_from = max(sub.start_date, first)
        active_to = min(sub.end_date or after, after)
        rows.append({
            "subscription_id": sub.id,
            "customer_id": customer.id,
            "plan_id": plan.id,
            "currency": plan.currency,
            "currency_exponent": money.exponent(plan.currency),
            "billing_month": month.replace(day=1),
            "invoice_period_start": invoice_period.start,
            "invoice_period_end": invoice_period.end,
            "period_start": window.start,
            "period_end": window.end,
            # Day-based proration: local days covered over local days in the month.
            "active_days": (active_to - active_from).days,
            "period_days": (after - first).days,
        })
    return rows


def billing_windows_table(catalog: Catalog, month: date) -> pa.Table:
    return pa.Table.from_pylist(billing_windows(catalog, month), schema=BILLING_WINDOWS)


def plan_prices_table(catalog: Catalog) -> pa.Table:
    rows = [
        {
            "plan_id": plan.id,
            "price_id": price.id,
            "price_name": price.name,
            "model_type": price.model_type,
            "billable_metric_id": price.billable_metric_id,
            "fixed_quantity": price.fixed_price_quantity,
        }
        for plan in catalog.plans
        for price in plan.prices
    ]
    return pa.Table.from_pylist(rows, schema=PLAN_PRICES)


def _prices(catalog: Catalog):
    return [price for plan in catalog.plans for price in plan.prices]


def price_terms_table(catalog: Catalog) -> pa.Table:
    rows = []
    for price in _prices(catalog):
        program = price.program()
        rows.append({
            "price_id": price.id,
            "scheme": program.scheme,
            "grouping": list(program.grouping),
            "package_size": program.package_size,
            "allocation": program.allocation,
            "matrix_allocation": program.matrix_allocation,
            "prorate": program.prorate,
        })
    return pa.Table.from_pylist(rows, schema=PRICE_TERMS)


def price_tiers_table(catalog: Catalog) -> pa.Table:
    rows = [
        {
            "price_id": price.id,
            "tier_index": index,
            "lower": tier.lower,
            "upper": tier.upper,
            "rate": tier.rate,
            "flat_amount": tier.flat_amount,
            "minimum_amount": tier.minimum_amount,
        }
        for price in _prices(catalog)
        for index, tier in enumerate(price.program().tiers)
    ]
    return pa.Table.from_pylist(rows, schema=PRICE_TIERS)


def price_cells_table(catalog: Catalog) -> pa.Table:
    rows = [
        {"price_id": price.id, "cell_index": index, "dimension_values": list(values),
         "rate": rate}
        for price in _prices(catalog)
        for index, (values, rate) in enumerate(price.program().cells)
    ]
    return pa.Table.from_pylist(rows, schema=PRICE_CELLS)
