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
])

SUBSCRIPTION_PRICES = pa.schema([
    *BILLING_WINDOWS,
    ("price_id", pa.string()),
    ("price_name", pa.string()),
    ("model_type", pa.string()),
    ("billable_metric_id", pa.string()),
    ("fixed_quantity", QUANTITY),
])

PRICE_TIERS = pa.schema([
    ("price_id", pa.string()),
    ("tier_index", pa.int32()),
    ("first_unit", QUANTITY),
    ("last_unit", QUANTITY),
    ("unit_amount", UNIT_AMOUNT),
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
        })
    return rows


def billing_windows_table(catalog: Catalog, month: date) -> pa.Table:
    return pa.Table.from_pylist(billing_windows(catalog, month), schema=BILLING_WINDOWS)


def subscription_prices_table(catalog: Catalog, month: date) -> pa.Table:
    rows = [
        {
            **window,
            "price_id": price.id,
            "price_name": price.name,
            "model_type": price.model_type,
            "billable_metric_id": price.billable_metric_id,
            "fixed_quantity": price.fixed_price_quantity,
        }
        for window in billing_windows(catalog, month)
        for price in catalog.plan(window["plan_id"]).prices
    ]
    return pa.Table.from_pylist(rows, schema=SUBSCRIPTION_PRICES)


def price_tiers_table(catalog: Catalog) -> pa.Table:
    rows = [
        {
            "price_id": price.id,
            "tier_index": index,
            "first_unit": tier.first_unit,
            "last_unit": tier.last_unit,
            "unit_amount": tier.unit_amount,
        }
        for plan in catalog.plans
        for price in plan.prices
        for index, tier in enumerate(price.tiers())
    ]
    return pa.Table.from_pylist(rows, schema=PRICE_TIERS)
