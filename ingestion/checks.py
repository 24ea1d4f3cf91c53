"""What must hold of the event lake: no idempotency key counts twice for a customer, and
every event's customer is in the catalog. Each returns the failing rows (empty: holds)."""

from __future__ import annotations

from billing.catalog import Catalog
from ingestion.sql import load_sql
from pricing_sql.active_events import register_active_events
from pricing_sql.catalog_tables import customers_table
from storage.duck import connect
from storage.lake import Lake


def duplicate_keys(lake: Lake) -> list[tuple]:
    """Keys that count more than once among the events that count."""
    files = lake.all_files("events")
    if not files:
        return []
    con = connect()
    register_active_events(con, lake, files)
    return con.sql(load_sql("check_event_keys")).fetchall()


def unknown_customers(lake: Lake, catalog: Catalog) -> list[tuple]:
    """Events whose customer is not in the catalog."""
    files = lake.all_files("events")
    if not files:
        return []
    con = connect()
    con.read_parquet(files, hive_partitioning=False).create_view("lake_events")
    con.register("customers", customers_table(catalog))
    return con.sql(load_sql("check_event_customers")).fetchall()
