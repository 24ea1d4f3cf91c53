"""Asset checks: what must hold of the lake before money moves.

The invoice and line item checks run in every billing run and block the assets after
them when they fail, so a run never renders or issues invoices that do not add up.
The lake checks (job ``check_lake``) look at the whole event lake, and recompute every
billed month's usage from it to find the months late events or amendments changed."""

import warnings
from datetime import date

import dagster as dg
import duckdb

from assets.partitions import MONTHLY, billing_month
from pipelines.resources import OrbStore
from pricing_sql.catalog_tables import customers_table, price_terms_table
from pricing_sql.loader import load_sql
from pricing_sql.rating import compute_usage
from storage.amendments import register_active_events
from storage.duck import connect

# Partitioned asset checks are a Dagster preview feature; they work here as documented.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec",
                        category=dg.PreviewWarning)


def _result(rows: list[tuple], what: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=not rows, metadata={
        "failures": len(rows), "first": dg.MetadataValue.json([list(map(str, r))
                                                              for r in rows[:10]]),
        "checked": what})


def _month_tables(con: duckdb.DuckDBPyConnection, store: OrbStore, month, *tables: str) -> None:
    for table in tables:
        con.register(table, store.lake.read_partition(table, "billing_month", month))


@dg.asset_check(asset="invoices", blocking=True, partitions_def=MONTHLY,
                additional_deps=["line_items", "invoice_adjustments"],
                description="Subtotal = sum of rounded lines; total = subtotal + adjustments "
                "- credits; no negative invoice.")
def invoice_totals_add_up(context: dg.AssetCheckExecutionContext,
                          store: OrbStore) -> dg.AssetCheckResult:
    con = connect()
    _month_tables(con, store, billing_month(context), "invoices", "line_items",
                  "invoice_adjustments")
    return _result(con.sql(load_sql("check_invoice_totals")).fetchall(), "invoices")


@dg.asset_check(asset="line_items", blocking=True, partitions_def=MONTHLY,
                additional_deps=["usage"],
                description="Every usage line is priced for exactly its window's usage.")
def line_items_match_usage(context: dg.AssetCheckExecutionContext,
                           store: OrbStore) -> dg.AssetCheckResult:
    con = connect()
    _month_tables(con, store, billing_month(context), "line_items", "usage")
    con.register("price_terms", price_terms_table(store.catalog()))
    return _result(con.sql(load_sql("check_line_usage")).fetchall(), "usage line items")


@dg.asset_check(asset="usage",
                description="Every billed month's usage, computed again from the event lake "
                "as it is now, equals what was billed: fails when events were ingested or "
                "amended since, naming the windows of the months to re-rate.")
def usage_matches_the_event_lake(store: OrbStore) -> dg.AssetCheckResult:
    lake, catalog = store.lake, store.catalog()
    drift = []
    for path in lake.all_files("usage"):
        month = date.fromisoformat(lake.partition_value(path))
        con = connect()
        con.register("billed", lake.read_partition("usage", "billing_month", month))
        con.register("now", compute_usage(con, lake, catalog, month))
        drift += [(f"{month:%Y-%m}", *row) for row in
                  con.sql(load_sql("check_usage_drift")).fetchall()]
    return _result(drift, "billed months")


@dg.asset_check(asset="events", description="No idempotency key counts twice for a "
                "customer among the events that count.")
def event_keys_unique(store: OrbStore) -> dg.AssetCheckResult:
    files = store.lake.all_files("events")
    if not files:
        return _result([], "no events")
    con = connect()
    register_active_events(con, store.lake, files)
    return _result(con.sql(load_sql("check_event_keys")).fetchall(), f"{len(files)} files")


@dg.asset_check(asset="events", description="Every event's customer is in the catalog.")
def event_customers_known(store: OrbStore) -> dg.AssetCheckResult:
    files = store.lake.all_files("events")
    if not files:
        return _result([], "no events")
    con = connect()
    con.read_parquet(files, hive_partitioning=False).create_view("lake_events")
    con.register("customers", customers_table(store.catalog()))
    return _result(con.sql(load_sql("check_event_customers")).fetchall(),
                   f"{len(files)} files")


BILLING_CHECKS = [invoice_totals_add_up, line_items_match_usage]
# The whole-lake checks (job check_lake). The usage reconciliation is not part of
# billing runs, which would recompute what they have just computed.
LAKE_CHECKS = [event_keys_unique, event_customers_known, usage_matches_the_event_lake]
