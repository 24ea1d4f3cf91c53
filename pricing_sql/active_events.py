"""The events that count: those of committed batches, less the ones amendments deprecate
(``active_events.sql``). Rating, ingestion's duplicate check and the lake checks all
read events through this one definition."""

from __future__ import annotations

import duckdb

from pricing_sql.sql import load_sql
from storage.lake import Lake
from storage.tables import AMENDMENTS, BATCH_COMMITS


def register_batches_and_amendments(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    """Views ``lake_batches`` (committed batches) and ``lake_amendments``."""
    batches = lake.all_files("batches")
    (con.read_parquet(batches, hive_partitioning=False).select(*BATCH_COMMITS.names)
     if batches else con.from_arrow(BATCH_COMMITS.empty_table())).create_view("lake_batches",
                                                                              replace=True)
    amendments = lake.all_files("amendments")
    (con.read_parquet(amendments, hive_partitioning=False) if amendments
     else con.from_arrow(AMENDMENTS.empty_table())).create_view("lake_amendments", replace=True)


def register_active_events(con: duckdb.DuckDBPyConnection, lake: Lake,
                           event_files: list[str]) -> None:
    """Define ``active_events`` over ``event_files`` (not empty), less deprecated events."""
    con.read_parquet(event_files, hive_partitioning=False).create_view("lake_events",
                                                                       replace=True)
    register_batches_and_amendments(con, lake)
    con.execute(active_events_sql(lake))


def active_events_sql(lake: Lake) -> str:
    """``active_events.sql``, or without its anti join while the lake has no amendment."""
    return load_sql("active_events" if lake.all_files("amendments")
                    else "active_events_unamended")
