"""A month's usage read from rollups where it can (``rollups.py``), from events elsewhere.

Three parts, one UNION ALL: the rolled requests over the rolled windows, from their
rollup rows; the other requests over the rolled windows, from those of their events that
some such request's WHERE keeps; and every request over the windows rollups cannot
serve, from their events, as rating.py always did. Both event parts are
usage_events.sql, the second over other tables.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from pricing_sql.active_events import visible_batch_ids
from pricing_sql.engine import DuckDBEngine
from pricing_sql.metrics import DIALECT, compile_usage_query, compiled_parts, union_all
from pricing_sql.rollup_compaction import chosen, empty_compaction
from pricing_sql.rollup_slots import sliced_rows
from pricing_sql.rollups import (
    DAY,
    EPOCH,
    HOUR,
    Request,
    RollupSpec,
    empty_rollup,
    ensure_rollups,
    rolled_query,
    split_requests,
)
from pricing_sql.sql import load_sql
from storage.lake import Lake


def rolled_usage_query(engine: DuckDBEngine, lake: Lake, requests: list[Request],
                       windows: pa.Table, files: list[str]) -> exp.Query | None:
    """The usage query of ``windows`` (rating.WINDOWS) over the event ``files``, with
    what it reads registered on ``engine``; None when no request or window can be read
    from rollups."""
    spec, rest = split_requests(requests)
    if not spec.requests:
        return None
    con = engine.con
    engine.register("usage_windows", windows)
    engine.register_active_events(lake, files)
    engine.run_script(load_sql("split_windows"))
    split = engine.query("SELECT * FROM split_windows ORDER BY window_id")
    if not pc.any(split["rolled"]).as_py():
        return None
    engine.run_script(load_sql("window_edges"))
    _register_rollups(engine, lake, spec, files)
    engine.run_script(sliced_rows(spec, "rolled_month_rows"))
    engine.run_script(sliced_rows(spec, "rolled_hour_rows"))
    engine.run_script(load_sql("rolled_rows"))
    parts = [rolled_query(spec)]
    others = split.filter(pc.invert(split["rolled"])).select(windows.column_names)
    if others.num_rows:
        engine.register("usage_windows", others.cast(windows.schema))
        engine.run_script(load_sql("usage_events"))
        parts.append(compile_usage_query(requests, source="period_events"))
    if rest:
        wheres = [compiled_parts(sql)[1] for _, sql, _ in rest]
        # the events some such request reads: every event if one has no WHERE
        kept = exp.or_(*(exp.paren(where) if where is not None else exp.true()
                         for where in wheres))
        con.sql(exp.select("*").from_("active_events").where(kept).sql(dialect=DIALECT)
                ).create_view("unrolled_events", replace=True)
        rolled = split.filter(split["rolled"]).select(windows.column_names)
        engine.register("rolled_windows", rolled.cast(windows.schema))
        engine.run_script(_usage_events(events="unrolled_events", windows="rolled_windows",
                                        into="rolled_window_events"))
        parts.append(compile_usage_query(rest, source="rolled_window_events"))
    return union_all(parts)


def _usage_events(events: str, windows: str, into: str) -> str:
    """usage_events.sql over other tables: the ``events`` of the ``windows``, kept as
    ``into``."""
    renamed = {"active_events": events, "usage_windows": windows, "period_events": into}

    def rename(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Table) and node.name in renamed:
            node = node.copy()
            node.set("this", exp.to_identifier(renamed[node.name]))
        return node

    statement = sqlglot.parse_one(load_sql("usage_events"), read=DIALECT)
    return statement.transform(rename).sql(dialect=DIALECT)


def _register_rollups(engine: DuckDBEngine, lake: Lake, spec: RollupSpec,
                      files: list[str]) -> None:
    """Views ``rollup_months`` (the month compactions of the visible batches' day
    rollups), ``rollup_days`` (those day rollups none of them holds) and ``rollup_hours``
    (their hour rollups of the days a rolled window starts or ends in off midnight)."""
    con = engine.con
    visible = visible_batch_ids(con)
    found = ensure_rollups(con, lake, spec, [f for f in files if Path(f).stem in visible])
    edges = {str(EPOCH + timedelta(days=day))
             for day in engine.query(load_sql("rolled_edge_days"))["day"].to_pylist()}
    months, days = chosen(lake, spec, [day for _, _, day in found])
    hours = [hour for file, hour, _ in found if Lake.partition_value(file) in edges]
    for view, paths in (("rollup_months", months), ("rollup_days", days), ("rollup_hours", hours)):
        relation = (con.read_parquet([str(p) for p in paths], hive_partitioning=False)
                    if paths else con.from_arrow(_empty_view(engine, spec, view, found)))
        relation.create_view(view, replace=True)


def _empty_view(engine: DuckDBEngine, spec: RollupSpec, view: str,
                found: list[tuple[str, Path, Path]]) -> pa.Table:
    """No rows, in the schema of ``view``. A rollup file of its grain gives it, when there
    is one: a footer is read quicker than the rollup SQL runs over no rows (0.04 s)."""
    if view == "rollup_months":
        return empty_compaction(engine.con, spec, _empty_view(engine, spec, "rollup_days", found))
    grain = HOUR if view == "rollup_hours" else DAY
    if not found:
        return empty_rollup(engine.con, spec, grain)
    _, hour_file, day_file = found[0]
    return pq.read_schema(hour_file if grain == HOUR else day_file).empty_table()
