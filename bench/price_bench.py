"""Price a month for N customers x 20 prices from pre-aggregated usage; print the timings.

    .venv/bin/python bench/price_bench.py [--customers 10000] [--repeat 5]

The 20 prices cover every model (several twice); grouped and matrix prices get
three usage groups per customer; the plan has a 10 % discount and a minimum, and
every tenth customer a prepaid credit grant. Timed separately: the billing windows and
catalog tables (Python), the pricing SQL (rate_usage.sql, line_items.sql and
line_item_details.sql), and assembling invoices (adjustments, credits, totals).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date
from decimal import Decimal

import numpy as np
import pyarrow as pa

from billing.catalog import Catalog
from billing.charges import billing_windows
from billing.credits import Grant
from invoicing.assembly import assemble_invoices
from pricing_sql import catalog_tables
from pricing_sql.sql import load_sql
from storage.duck import connect
from storage.tables import USAGE as USAGE_SCHEMA

MONTH = date(2026, 10, 1)
TIERS = {"tiers": [{"first_unit": 0, "last_unit": 1000, "unit_amount": "0.01"},
                   {"first_unit": 1000, "last_unit": None, "unit_amount": "0.005"}]}
MATRIX = {"dimensions": ["region"], "default_unit_amount": "0.02",
          "matrix_values": [{"dimension_values": ["r0"], "unit_amount": "0.01"}]}
LOWER_TIERS = [{"tier_lower_bound": "0", "unit_amount": "0.01"},
               {"tier_lower_bound": "500", "unit_amount": "0.008"}]
CONFIGS = [
    ("unit", {"unit_amount": "0.002"}),
    ("tiered", TIERS),
    ("package", {"package_amount": "1.00", "package_size": 100}),
    ("matrix", MATRIX),
    ("bulk", {"tiers": [{"maximum_units": 1000, "unit_amount": "0.01"},
                        {"maximum_units": None, "unit_amount": "0.008"}]}),
    ("threshold_total_amount", {"consumption_table": [
        {"threshold": "100", "total_amount": "5"}, {"threshold": "1000", "total_amount": "40"}]}),
    ("tiered_package", {"package_size": "10", "tiers": [
        {"tier_lower_bound": "0", "per_unit": "1"},
        {"tier_lower_bound": "500", "per_unit": "0.8"}]}),
    ("tiered_with_minimum", {"tiers": [{**t, "minimum_amount": "3"} for t in LOWER_TIERS]}),
    ("package_with_allocation", {"allocation": "100", "package_amount": "2",
                                 "package_size": "50"}),
    ("unit_with_percent", {"unit_amount": "0.5", "percent": "2"}),
    ("bps", {"bps": 125}),
    ("bulk_bps", {"tiers": [{"maximum_amount": "10000", "bps": 125},
                            {"maximum_amount": None, "bps": 100}]}),
    ("tiered_bps", {"tiers": [{"minimum_amount": "0", "maximum_amount": "10000", "bps": 125},
                              {"minimum_amount": "10000", "maximum_amount": None, "bps": 100}]}),
    ("grouped_tiered", {"grouping_key": "region", "tiers": LOWER_TIERS}),
    ("matrix_with_allocation", {**MATRIX, "allocation": "50"}),
    ("unit_with_proration", {"unit_amount": "0.3"}),
    ("grouped_allocation", {"grouping_key": "region", "allocation": "100",
                            "overage_unit_rate": "0.01"}),
    ("tiered", TIERS),
    ("unit", {"unit_amount": "0.0001"}),
    ("matrix", MATRIX),
]


def build_catalog(customers: int) -> Catalog:
    prices = [{"id": f"p{i}", "name": f"{model} {i}", "model_type": model,
               f"{model}_config": config, "billable_metric_id": f"m{i}"}
              for i, (model, config) in enumerate(CONFIGS)]
    return Catalog.model_validate({
        "metrics": [{"id": f"m{i}", "name": f"m{i}", "sql": "SELECT count(*) FROM events"}
                    for i in range(len(CONFIGS))],
        "plans": [{"id": "plan", "name": "Plan", "currency": "USD", "prices": prices,
                   "adjustments": [
                       {"id": "ten_off", "adjustment_type": "percentage_discount",
                        "percentage_discount": "0.1"},
                       {"id": "floor", "adjustment_type": "minimum",
                        "minimum_amount": "500.00"}]}],
        "customers": [{"id": f"c{i}", "name": f"c{i}", "timezone": "America/New_York"}
                      for i in range(customers)],
        "subscriptions": [{"id": f"s{i}", "customer_id": f"c{i}", "plan_id": "plan",
                           "start_date": "2026-01-01" if i % 7 else "2026-10-12"}
                          for i in range(customers)],
    })


def build_grants(catalog: Catalog) -> list[Grant]:
    return [Grant(f"g{i}", customer.id, "USD", Decimal("100.00"), Decimal(1), date(2026, 9, 1),
                  None) for i, customer in enumerate(catalog.customers) if i % 10 == 0]


def build_usage(catalog: Catalog, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns: dict[str, list] = {name: [] for name in USAGE_SCHEMA.names}
    subscriptions = [w.window_id for w in billing_windows(catalog, MONTH)]
    for price in catalog.plans[0].prices:
        keys = list(price.grouping())
        groups = [[f"r{g}"] for g in range(3)] if keys else [[]]
        for values in groups:
            quantities = rng.integers(0, 5000, size=len(subscriptions))
            columns["window_id"] += subscriptions
            columns["metric_id"] += [price.billable_metric_id] * len(subscriptions)
            columns["grouping"] += [keys] * len(subscriptions)
            columns["group_values"] += [values] * len(subscriptions)
            columns["quantity"] += [Decimal(int(q)) for q in quantities]
    return pa.Table.from_pydict(columns, schema=USAGE_SCHEMA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    catalog = build_catalog(args.customers)
    usage = build_usage(catalog)
    grants = build_grants(catalog)
    tables_s, sql_s, invoice_s = [], [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        tables = {
            "billing_windows": catalog_tables.billing_windows_table(
                billing_windows(catalog, MONTH)),
            "plan_prices": catalog_tables.plan_prices_table(catalog),
            "price_terms": catalog_tables.price_terms_table(catalog),
            "price_tiers": catalog_tables.price_tiers_table(catalog),
            "price_cells": catalog_tables.price_cells_table(catalog),
        }
        built = time.perf_counter()
        con = connect()
        for name, table in {**tables, "usage": usage}.items():
            con.register(name, table)
        con.execute(load_sql("rate_usage"))
        lines = con.sql(load_sql("line_items")).to_arrow_table()
        con.sql(load_sql("line_item_details")).to_arrow_table()
        priced = time.perf_counter()
        invoices = assemble_invoices(connect(), catalog, MONTH, lines, grants, {}, {}).invoices
        finished = time.perf_counter()
        tables_s.append(built - started)
        sql_s.append(priced - built)
        invoice_s.append(finished - priced)
    print(f"customers: {args.customers:,}  prices: {len(CONFIGS)}  usage rows: {usage.num_rows:,}"
          f"  line items: {lines.num_rows:,}  invoices: {invoices.num_rows:,}")
    print(f"windows + catalog tables (Python): median {statistics.median(tables_s):.3f} s")
    print(f"pricing SQL (DuckDB):              median {statistics.median(sql_s):.3f} s  "
          f"(min {min(sql_s):.3f}, max {max(sql_s):.3f}, {args.repeat} runs)")
    print(f"invoices (adjustments, credits):   median {statistics.median(invoice_s):.3f} s")
    totals = [a + b + c for a, b, c in zip(tables_s, sql_s, invoice_s, strict=True)]
    print(f"total:                             median {statistics.median(totals):.3f} s")


if __name__ == "__main__":
    main()
