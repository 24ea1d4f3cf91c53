"""What must hold of rated usage: each usage line priced for exactly its window's usage,
and billed usage equal to the usage the event lake gives now."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from billing.catalog import Catalog
from pricing_sql.catalog_tables import price_terms_table
from pricing_sql.rating import compute_usage
from pricing_sql.sql import load_sql
from storage.billing_runs import read_month
from storage.duck import connect
from storage.lake import Lake
from storage.tables import TABLES


def line_usage_failures(lake: Lake, catalog: Catalog, month: date,
                        run_id: str) -> list[tuple[object, ...]]:
    """Usage lines of billing run ``run_id`` whose quantity is not their window's usage
    (``check_line_usage.sql``)."""
    con = connect()
    run = read_month(lake, month, ("line_items", "usage"), run_id)
    for table in ("line_items", "usage"):
        con.register(table, run[table])
    con.register("price_terms", price_terms_table(catalog))
    return con.sql(load_sql("check_line_usage")).fetchall()


def usage_drift(lake: Lake, catalog_of: Callable[[date], Catalog]
                ) -> list[tuple[object, ...]]:
    """(month, window...) of every billed month whose usage, computed again from the lake
    as it is now, differs from what was billed: the months to re-rate. ``catalog_of``:
    the catalog a month was billed with (its newest state snapshot)."""
    drift: list[tuple[object, ...]] = []
    for path in lake.all_files("usage"):
        month = date.fromisoformat(lake.partition_value(path))
        con = connect()
        con.register("billed", lake.read_partition("usage", TABLES["usage"].key, month))
        con.register("now", compute_usage(con, lake, catalog_of(month), month).usage)
        drift += [(f"{month:%Y-%m}", *row) for row in
                  con.sql(load_sql("check_usage_drift")).fetchall()]
    return drift
