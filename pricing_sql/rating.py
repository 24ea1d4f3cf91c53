"""Rate one billing month: usage per subscription and metric, priced line items, invoices.

Each step is set-based SQL over all customers at once; Python only supplies the
catalog tables and the list of lake files to read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import duckdb
import pyarrow as pa
from sqlglot import exp

from billing import periods
from billing.catalog import Catalog
from pricing_sql.catalog_tables import (
    billing_windows_table,
    plan_prices_table,
    price_cells_table,
    price_terms_table,
    price_tiers_table,
)
from pricing_sql.loader import load_sql
from pricing_sql.metrics import compile_usage_query
from storage.amendments import register_active_events
from storage.lake import Lake

USAGE_SCHEMA = pa.schema([
    ("subscription_id", pa.string()),
    ("metric_id", pa.string()),
    ("grouping", pa.list_(pa.string())),
    ("group_values", pa.list_(pa.string())),
    ("quantity", pa.decimal128(38, 9)),
])


def event_days(month: date) -> list[date]:
    """UTC days whose events can fall in ``month`` in some customer's time zone
    (UTC-12 to UTC+14 reach at most one day past either end of the UTC month)."""
    days = periods.days_of_month(month)
    return [days[0] - timedelta(days=1), *days, days[-1] + timedelta(days=1)]


def compute_usage(con: duckdb.DuckDBPyConnection, lake: Lake, catalog: Catalog,
                  month: date) -> pa.Table:
    """One row per (subscription, metric) with the metric's value over the
    subscription's part of the customer's local month."""
    files = lake.files_in("events", "event_date", event_days(month))
    if not files or not catalog.metrics:
        return USAGE_SCHEMA.empty_table()
    con.register("billing_windows", billing_windows_table(catalog, month))
    register_active_events(con, lake, files)
    con.execute(load_sql("usage_events"))
    union = compile_usage_query(usage_requests(catalog), source="period_events")
    # A total order, so the same events always give byte-identical partitions.
    query = exp.select("*").from_(union.subquery("usage")).order_by(*USAGE_SCHEMA.names[:4])
    return con.sql(query.sql(dialect="duckdb")).to_arrow_table().cast(USAGE_SCHEMA)


def usage_requests(catalog: Catalog) -> list[tuple[str, str, tuple[str, ...]]]:
    """Each metric ungrouped, plus each (metric, grouping) a matrix or grouped price needs."""
    requests = {(metric.id, metric.sql, ()) for metric in catalog.metrics}
    for plan in catalog.plans:
        for price in plan.prices:
            if price.billable_metric_id and price.grouping():
                metric = catalog.metric(price.billable_metric_id)
                requests.add((metric.id, metric.sql, price.grouping()))
    return sorted(requests)


@dataclass(frozen=True)
class PricedLines:
    line_items: pa.Table  # one row per subscription price, rounded
    sub_line_items: pa.Table  # the breakdown by usage group and tier, unrounded


def price_line_items(con: duckdb.DuckDBPyConnection, catalog: Catalog, month: date,
                     usage: pa.Table) -> PricedLines:
    """Every price of every subscription active in ``month``, priced and rounded."""
    con.register("billing_windows", billing_windows_table(catalog, month))
    con.register("plan_prices", plan_prices_table(catalog))
    con.register("price_terms", price_terms_table(catalog))
    con.register("price_tiers", price_tiers_table(catalog))
    con.register("price_cells", price_cells_table(catalog))
    con.register("usage", usage)
    con.execute(load_sql("rate_usage"))
    return PricedLines(con.sql(load_sql("line_items")).to_arrow_table(),
                       con.sql(load_sql("line_item_details")).to_arrow_table())


def build_invoices(con: duckdb.DuckDBPyConnection, line_items: pa.Table) -> pa.Table:
    con.register("line_items", line_items)
    return con.sql(load_sql("invoices")).to_arrow_table()
