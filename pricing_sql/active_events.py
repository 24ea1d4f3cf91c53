"""The events that count: those of committed batches, less the ones amendments deprecate,
with Orb's backfills applied (``visible_batches.sql``, ``active_events.sql``). Rating,
ingestion's duplicate check and the lake checks all read events through this one
definition."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from pricing_sql.metrics import DIALECT, filter_condition
from pricing_sql.sql import load_sql
from storage.lake import Lake
from storage.tables import AMENDMENTS, BACKFILL_BATCHES, BACKFILLS, BATCH_COMMITS

# The record tables visible_batches.sql reads: (view, lake table, schema read)
RECORDS = (("lake_batch_records", "batches", BATCH_COMMITS),
           ("lake_amendment_records", "amendments", AMENDMENTS),
           ("lake_backfills", "backfills", BACKFILLS),
           ("lake_backfill_batches", "backfill_batches", BACKFILL_BATCHES))


def register_batches_and_amendments(con: duckdb.DuckDBPyConnection, lake: Lake,
                                    closing: str | None = None) -> None:
    """Views ``lake_batches`` (the batches whose events count, since when) and
    ``lake_amendments`` (what deprecates them). ``closing`` names a pending backfill to
    take as closed now: ingestion checks a backfill's keys against the events that will
    count once it closes."""
    for view, table, schema in RECORDS:
        files = lake.all_files(table)
        relation = (con.read_parquet(files, hive_partitioning=False).select(*schema.names)
                    if files else con.from_arrow(schema.empty_table()))
        if view == "lake_backfills" and closing is not None:
            relation = con.from_arrow(_closed_now(relation.to_arrow_table(), closing))
        relation.create_view(view, replace=True)
    con.execute(load_sql("visible_batches"))


def visible_batch_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The ids of the batches whose events count, from ``lake_batches`` (registered by
    ``register_batches_and_amendments``)."""
    return set(con.sql("SELECT batch_id FROM lake_batches").to_arrow_table()["batch_id"]
               .to_pylist())


def _closed_now(backfills: pa.Table, backfill_id: str) -> pa.Table:
    now = pa.scalar(datetime.now(UTC), BACKFILLS.field("close_time").type)
    chosen = pc.equal(backfills["backfill_id"], backfill_id)
    return backfills.set_column(
        backfills.schema.get_field_index("close_time"), "close_time",
        pc.if_else(chosen, now, backfills["close_time"]))


def register_active_events(con: duckdb.DuckDBPyConnection, lake: Lake,
                           event_files: list[str], closing: str | None = None) -> None:
    """Define ``active_events`` over ``event_files`` (not empty), less deprecated events
    (``closing``: as ``register_batches_and_amendments``)."""
    con.read_parquet(event_files, hive_partitioning=False).create_view("lake_events",
                                                                       replace=True)
    register_batches_and_amendments(con, lake, closing)
    con.execute(active_events_sql(lake))


def active_events_sql(lake: Lake) -> str:
    """``active_events.sql``, or without its anti join while the lake has no amendment
    (a backfill that replaces events acts as one); a backfill's deprecation filter joins
    the anti join's condition, for that backfill's row only."""
    if not (lake.all_files("amendments") or lake.all_files("backfills")):
        return load_sql("active_events_unamended")
    filters = _deprecation_filters(lake)
    if not filters:
        return load_sql("active_events")
    view = sqlglot.parse_one(load_sql("active_events"), dialect=DIALECT)
    anti = next(join for join in view.find_all(exp.Join) if join.side == "" and
                join.kind == "ANTI")
    only = exp.or_(exp.column("deprecation_filter", table="a").is_(exp.null()), *(
        exp.and_(exp.column("amendment_id", table="a").eq(exp.Literal.string(backfill_id)),
                 exp.paren(filter_condition(condition, "e")))
        for backfill_id, condition in sorted(filters.items())))
    anti.set("on", exp.and_(anti.args["on"], exp.paren(only)))
    return view.sql(dialect=DIALECT)


def _deprecation_filters(lake: Lake) -> dict[str, str]:
    """The backfills' deprecation filters, by backfill id (those with one)."""
    files = lake.all_files("backfills")
    if not files:
        return {}
    rows = pq.read_table(files, partitioning=None, schema=BACKFILLS,
                         columns=["backfill_id", "deprecation_filter"]).to_pylist()
    return {row["backfill_id"]: row["deprecation_filter"] for row in rows
            if row["deprecation_filter"] is not None}
