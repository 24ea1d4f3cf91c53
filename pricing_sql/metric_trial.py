"""Each metric run once before a billing run runs it, so that a metric that passes the
checks binds, runs and gives an exact number.

``metrics.parse_metric`` reads the SQL; DuckDB finds the rest only when it runs it: a
function that does not take the types it is given, a number that is a DOUBLE, a value
that is not a number at all, a cast that fails on a real value. Here each metric goes
through what rating runs (``usage_events.sql``, then the compiled metric) over trial
events of the lake's ``events`` schema:

- an empty table, on every catalog load (``catalog_files``), so a billing run refuses
  such a metric before it starts; the metric's literals and casts must be integers or
  DECIMAL (a float such as ``1e300`` makes the value a DOUBLE, whose conversion to the
  DECIMAL quantity overflows or rounds, and only on real rows), and its value a number;
- a sample of the lake's newest events (``lake_sample``), from ``orb metrics check``
  only: a billing run reads the month's events anyway, and one odd event must not stop
  the whole month at load.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import duckdb
import pyarrow as pa
from duckdb.sqltypes import DuckDBPyType
from sqlglot import exp

from pricing_sql.active_events import register_active_events
from pricing_sql.metrics import (
    DIALECT,
    QUANTITY_TYPE,
    MetricSQLError,
    compile_metric,
    parse_metric,
    value_query,
)
from pricing_sql.sql import load_sql
from storage.duck import connect
from storage.lake import Lake
from storage.tables import EVENTS

# DuckDB's type ids of exact numbers, and of the numbers that are not; avg and / of exact
# numbers are DOUBLE, the one inexact value a metric may have.
EXACT = {"tinyint", "smallint", "integer", "bigint", "hugeint", "utinyint", "usmallint",
         "uinteger", "ubigint", "uhugeint", "decimal"}
INEXACT = {"float", "double", "bignum"}
AVERAGE = "double"
SAMPLE_DAYS = 31  # the newest month of event days
SAMPLE_EVENTS = 100_000


def trial_problems(metrics: Sequence[tuple[str, str]],
                   sample: pa.Table | None = None) -> dict[str, str]:
    """Metric id -> why it fails, for (id, SQL) pairs that pass ``parse_metric``: run on an
    empty events table, then on ``sample`` (rows of the lake's events schema) if given."""
    problems: dict[str, str] = {}
    con = _trial(EVENTS.empty_table())
    for metric_id, sql in metrics:
        try:
            _check_numbers(con, sql)
            _check_value(con, sql)
            _run(con, metric_id, sql)
        except MetricSQLError as exc:
            problems[metric_id] = str(exc)
        except duckdb.Error as exc:
            problems[metric_id] = f"does not run: {_reason(exc)}"
    if sample is None or sample.num_rows == 0:
        return problems
    con = _trial(sample)
    for metric_id, sql in metrics:
        if metric_id in problems:
            continue
        try:
            _run(con, metric_id, sql)
        except duckdb.Error as exc:
            problems[metric_id] = (f"fails on a sample of {sample.num_rows:,} events of the "
                                   f"lake: {_reason(exc)}")
    return problems


def lake_sample(lake: Lake, events: int = SAMPLE_EVENTS) -> pa.Table | None:
    """Up to ``events`` of the events that count from the lake's newest ``SAMPLE_DAYS`` day
    partitions (read up to the limit, not sorted); None when the lake has no events."""
    files = lake.all_files("events")
    if not files:
        return None
    newest = date.fromisoformat(lake.partition_value(files[-1]))  # day folders sort by date
    days = [newest - timedelta(days=back) for back in range(SAMPLE_DAYS)]
    con = connect()
    register_active_events(con, lake, lake.files_in("events", "event_date", days))
    return con.view("active_events").limit(events).to_arrow_table()


def _trial(events: pa.Table) -> duckdb.DuckDBPyConnection:
    """A connection with ``period_events`` over ``events``, as rating builds it."""
    con = connect()
    con.register("active_events", events)
    con.execute(load_sql("trial_windows"))
    con.execute(load_sql("usage_events"))
    return con


def _run(con: duckdb.DuckDBPyConnection, metric_id: str, sql: str) -> None:
    con.sql(compile_metric(metric_id, sql, "period_events").sql(dialect=DIALECT)).fetchall()


def _type(con: duckdb.DuckDBPyConnection, query: exp.Select) -> DuckDBPyType:
    """DuckDB's type of the query's one column (bound, not run)."""
    return con.sql(query.sql(dialect=DIALECT)).types[0]


def _check_numbers(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Every number literal and cast in the metric's value is exact (a DataType's own
    parameters, the 38 of DECIMAL(38, 0), are not values)."""
    for node in parse_metric(sql).expressions[0].walk():
        if isinstance(node, exp.Cast):
            kind = _type(con, exp.select(exp.cast(exp.null(), node.to)))
        elif (isinstance(node, exp.Literal) and node.is_number
              and not node.find_ancestor(exp.DataType)):
            kind = _type(con, exp.select(node.copy()))
        else:
            continue
        if kind.id in INEXACT:
            raise MetricSQLError(
                f"{node.sql(dialect=DIALECT)} is a {kind}, not an integer or DECIMAL: a "
                f"metric computes in exact numbers so that its value becomes a "
                f"{QUANTITY_TYPE} quantity without overflow or rounding; write numbers as "
                "decimals (0.001, 1000) and cast to DECIMAL(p, s)", node)


def _check_value(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    kind = _type(con, value_query(sql, "period_events"))
    if kind.id not in EXACT and kind.id != AVERAGE:
        raise MetricSQLError(f"the metric's value is a {kind}, not a number: a metric "
                             "counts, sums or takes the min, max or average of numbers")


def _reason(exc: duckdb.Error) -> str:
    """DuckDB's message without the query it quotes on its following lines."""
    return str(exc).strip().splitlines()[0]
