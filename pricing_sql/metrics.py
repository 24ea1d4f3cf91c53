"""Billable metrics written by users as SQL over ``events``, checked and compiled with sqlglot.

A metric is one aggregate over the events of one billing period, for example::

    SELECT sum(properties.tokens) FROM events WHERE event_name = 'completion'

Aggregates: count, count(DISTINCT ...), sum, avg, min, max, and Orb's
``latest_by(value, timestamp)`` / ``earliest_by(value, timestamp)`` (the value of
the last or first event in the period). It never names a customer or a time
range: the pipeline compiles it into a query over the period's events, grouped
by subscription. Before anything runs,
the SQL is parsed and checked: a single SELECT over ``events`` with one
aggregate, only allow-listed functions, only known columns. Every error gives
the line and column of the offending token.

``properties.<key>`` reads a key of the event's JSON properties. It is read as
a DECIMAL where the SQL treats it as a number (inside sum/avg/min/max, in
arithmetic, or compared with a number literal) and as text everywhere else
(e.g. ``count(DISTINCT properties.user_id)``, ``properties.region = 'eu'``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

DIALECT = "duckdb"
QUANTITY_TYPE = "DECIMAL(38, 9)"
# What a property a metric reads as a number must stay below, in absolute value, as rated
# (rounded to 9 decimals: 999999999999999999.999999999 is the largest accepted); ingestion
# quarantines an event beyond it (check_batch.sql), so that no metric that aggregates
# properties can overflow. Quantities are DECIMAL(38, 9), below 10^29. A sum of n values
# each below 10^18 is below n x 10^18: a window of up to 10^11 events (38,000 a second
# for a whole month, from one customer) sums inside DECIMAL(38, 9). min, max, avg,
# latest_by and earliest_by stay below 10^18 whatever the count; count is a BIGINT. A
# metric's own arithmetic (``properties.a * properties.b`` is DECIMAL(38, 18), below
# 10^20) can still overflow for some values: rating then leaves that customer out of
# the month (pricing_sql/isolation.py).
PROPERTY_LIMIT = Decimal(10) ** 18
EVENT_COLUMNS = {"event_name", "timestamp"}
PROPERTY_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

AGGREGATES = (exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max, exp.ArgMax, exp.ArgMin)
NUMERIC_AGGREGATES = (exp.Sum, exp.Avg, exp.Min, exp.Max, exp.ArgMax, exp.ArgMin)
# Orb's names for "value of the latest / earliest event", in DuckDB arg_max / arg_min.
ORB_AGGREGATES = {"latest_by": exp.ArgMax, "earliest_by": exp.ArgMin}
ARITHMETIC = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.Neg)
COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
# Scalar functions a metric may use; anything else (read_parquet, getenv, unknown names) is refused.
SCALAR_FUNCTIONS = (
    exp.Coalesce, exp.If, exp.Case, exp.Abs, exp.Round, exp.Ceil, exp.Floor, exp.Greatest,
    exp.Least, exp.Lower, exp.Upper, exp.Cast, exp.TryCast, exp.Distinct, exp.Nullif,
    exp.Connector,
)
# sqlglot's argument names for the clauses a metric may not have.
FORBIDDEN_CLAUSES = {"joins": "JOIN", "group": "GROUP BY", "having": "HAVING", "order": "ORDER BY",
                     "limit": "LIMIT", "offset": "OFFSET", "qualify": "QUALIFY", "with_": "WITH",
                     "distinct": "SELECT DISTINCT"}


class MetricSQLError(ValueError):
    def __init__(self, message: str, node: exp.Expr | None = None, line: int | None = None,
                 col: int | None = None):
        where = _position(node) if node is not None else (line, col)
        self.line, self.col = where
        prefix = f"line {self.line}, column {self.col}: " if self.line else ""
        super().__init__(prefix + message)


def _position(node: exp.Expr) -> tuple[int | None, int | None]:
    """Line and column where the node's first token starts (sqlglot records where it ends)."""
    for candidate in node.walk():
        meta = candidate.meta
        if "line" in meta:
            return meta["line"], meta["col"] - (meta["end"] - meta["start"])
    return None, None


def _statements(sql: str, what: str) -> list[exp.Expr]:
    """``sql``'s statements; a MetricSQLError with the place when ``what`` cannot parse."""
    try:
        return [s for s in sqlglot.parse(sql, read=DIALECT) if s is not None]
    except sqlglot.ParseError as err:
        first = err.errors[0] if err.errors else {}
        raise MetricSQLError(f"cannot parse {what}: {first.get('description', err)}",
                             line=first.get("line"), col=first.get("col")) from err
    except sqlglot.TokenError as err:
        raise MetricSQLError(f"cannot parse {what}: {err}") from err


def parse_metric(sql: str) -> exp.Select:
    """Parse and check a metric; raise MetricSQLError naming what is wrong and where."""
    statements = _statements(sql, "metric SQL")
    if len(statements) != 1:
        raise MetricSQLError(f"a metric is exactly one SELECT statement, found {len(statements)}")
    select = statements[0]
    if not isinstance(select, exp.Select):
        raise MetricSQLError(f"a metric must be a SELECT, not {select.key.upper()}", select)
    select = select.transform(_orb_aggregate)
    # The root stays the SELECT: only latest_by / earliest_by calls inside it are replaced.
    assert isinstance(select, exp.Select)
    _check_shape(select)
    _check_nodes(select)
    return select


# What a price's filter may be at its top: a condition, never a bare value.
FILTER_NODES = (exp.Predicate, exp.Connector, exp.Not, exp.Boolean, exp.Paren)


def parse_filter(sql: str) -> exp.Expr:
    """Parse and check a price's filter, a condition on the events (``properties.region =
    'us'``), under a metric's WHERE rules; positions are the filter's own."""
    statements = _statements(sql, "filter")
    if len(statements) != 1 or not isinstance(statements[0], FILTER_NODES):
        raise MetricSQLError("a filter is one condition on the events, such as "
                             "properties.region = 'us'",
                             statements[0] if len(statements) == 1 else None)
    condition = statements[0]
    # checked where it will run: the WHERE of a metric over events
    select = exp.select(exp.Count(this=exp.Star())).from_("events").where(condition.copy())
    _check_shape(select)
    _check_nodes(select)
    return condition


def filtered_metric(sql: str, filter_sql: str) -> str:
    """The metric's SQL with the price's filter added to its WHERE (both checked), built
    as a syntax tree: what rating runs for the price's own usage."""
    select = parse_metric(sql).where(parse_filter(filter_sql), append=True)
    return select.sql(dialect=DIALECT)


def over_cap_metrics(sql: str, rate: Decimal, cap: Decimal) -> tuple[str, str]:
    """For a fee of ``rate`` per unit capped at ``cap`` per event: the volume and the count
    of the events whose fee passes the cap, as metrics over the same events. The capped
    fee is then exact, rate x (volume - volume over) + cap x count over, with no rounding
    per event. The metric must add up a volume per event: ``sum(<value>)``."""
    select = parse_metric(sql)
    value = select.expressions[0].unalias()
    if not isinstance(value, exp.Sum) or isinstance(value.this, exp.Distinct):
        raise MetricSQLError("per_unit_maximum caps each event's fee, so the metric must add "
                             f"up each event's volume, sum(<value>), not {value.sql(DIALECT)}",
                             value)
    per_event = value.this
    over = exp.GT(this=exp.Mul(this=exp.paren(per_event.copy()), expression=_decimal(rate)),
                  expression=_decimal(cap))
    volume = exp.Sum(this=exp.Case(ifs=[exp.If(this=over, true=per_event.copy())],
                                   default=exp.Literal.number(0)))
    count = exp.Count(this=exp.Case(ifs=[exp.If(this=over.copy(),
                                                true=exp.Literal.number(1))]))
    return (select.copy().select(volume, append=False).sql(dialect=DIALECT),
            select.copy().select(count, append=False).sql(dialect=DIALECT))


def _decimal(value: Decimal) -> exp.Expr:
    return exp.Literal.number(format(value, "f"))  # never 1E-7: a DECIMAL, not a DOUBLE


def _orb_aggregate(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.Anonymous) and node.name.lower() in ORB_AGGREGATES:
        if len(node.expressions) != 2:
            raise MetricSQLError(f"{node.name.lower()} takes (value, timestamp)", node)
        value, order = node.expressions
        aggregate = ORB_AGGREGATES[node.name.lower()](this=value, expression=order)
        aggregate.meta.update(node.meta)
        return aggregate
    return node


def _check_shape(select: exp.Select) -> None:
    for clause, name in FORBIDDEN_CLAUSES.items():
        if select.args.get(clause):
            node = select.args[clause]
            node = node[0] if isinstance(node, list) else node
            raise MetricSQLError(f"{name} is not allowed in a metric", node)
    source = select.args.get("from_")
    table = source.this if source else None
    if not isinstance(table, exp.Table) or table.name != "events" or table.db or table.catalog:
        raise MetricSQLError("a metric must select FROM events", table or select)
    if len(select.expressions) != 1:
        raise MetricSQLError("a metric selects exactly one value", select.expressions[-1])
    value = select.expressions[0]
    if not value.find(*AGGREGATES):
        raise MetricSQLError("the metric's value must be an aggregate (count, sum, avg, min, max, "
                             "latest_by, earliest_by)", value)
    for column in value.find_all(exp.Column):
        if not column.find_ancestor(*AGGREGATES):
            raise MetricSQLError(f"column {column.sql()} is used outside an aggregate", column)
    where = select.args.get("where")
    if where is not None and where.find(*AGGREGATES):
        raise MetricSQLError("aggregates are not allowed in WHERE", where.find(*AGGREGATES))


def _check_nodes(select: exp.Select) -> None:
    for node in select.walk():
        if isinstance(node, exp.Subquery | exp.Select) and node is not select:
            raise MetricSQLError("subqueries are not allowed in a metric", node)
        if isinstance(node, exp.Window):
            raise MetricSQLError("window functions are not allowed in a metric", node)
        if isinstance(node, exp.Func) and not isinstance(node, AGGREGATES + SCALAR_FUNCTIONS):
            name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
            raise MetricSQLError(f"function {name.lower()} is not allowed in a metric", node)
        if isinstance(node, exp.Column):
            _check_column(node)
        if isinstance(node, exp.Star) and not isinstance(node.parent, exp.Count):
            raise MetricSQLError("* is only allowed as count(*)", node)
        if isinstance(node, exp.Placeholder | exp.Parameter):
            # Nothing binds it when the run executes the metric. sqlglot keeps no
            # position for a placeholder: the expression holding it gives one.
            raise MetricSQLError(f"parameter {node.sql(dialect=DIALECT)} is not allowed in a "
                                 "metric: a metric takes no parameters, write the value itself",
                                 node.parent or node)


def _check_column(column: exp.Column) -> None:
    if column.table == "properties" and not column.args.get("db"):
        if not PROPERTY_KEY.match(column.name):
            raise MetricSQLError(f"property key {column.name!r} must be a plain identifier", column)
        return
    if column.table or column.name not in EVENT_COLUMNS:
        raise MetricSQLError(
            f"unknown column {column.sql()}: a metric can use {sorted(EVENT_COLUMNS)} "
            "and properties.<key>", column)


def _numeric_context(column: exp.Column) -> bool:
    parent = column.parent
    while isinstance(parent, exp.Paren):
        parent = parent.parent
    if isinstance(parent, ARITHMETIC):
        return True
    if isinstance(parent, COMPARISONS):
        other = parent.right if parent.left is column else parent.left
        return isinstance(other, exp.Literal) and not other.is_string
    aggregate = column.find_ancestor(*AGGREGATES)
    return isinstance(aggregate, NUMERIC_AGGREGATES) and not column.find_ancestor(exp.Distinct)


def _property(key: str) -> exp.Expression:
    """``properties.<key>`` as text, with a JSON path node that sqlglot can transpile."""
    path = Dialect.get_or_raise(DIALECT).to_json_path(exp.Literal.string(f"$.{key}"))
    return exp.JSONExtractScalar(this=exp.column("properties"), expression=path)


def _read_property(column: exp.Column) -> exp.Expression:
    value = _property(column.name)
    if _numeric_context(column):
        return exp.cast(value, QUANTITY_TYPE)
    return value


def group_value(key: str) -> exp.Expression:
    if not PROPERTY_KEY.match(key):
        raise MetricSQLError(f"grouping key {key!r} must be a plain identifier")
    return _property(key)


def compiled_parts(sql: str) -> tuple[exp.Expr, exp.Expr | None]:
    """The metric's value and WHERE condition (None: every event), properties read as
    text or DECIMAL."""
    select = parse_metric(sql).copy().transform(
        lambda node: _read_property(node)
        if isinstance(node, exp.Column) and node.table == "properties" else node
    )
    where = select.args.get("where")
    return select.expressions[0].unalias(), where.this if where else None


def filter_condition(sql: str, table: str) -> exp.Expr:
    """A checked filter (``parse_filter``) as a condition on ``table``'s events: properties
    read as text or DECIMAL, as in a metric, and every column qualified with ``table`` so
    that it can sit in a join's condition."""
    def qualified(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and node.table == "properties":
            return _read_property(node)
        if isinstance(node, exp.Column):
            return exp.column(node.name, table=table, quoted=True)
        return node
    # the properties' JSON reads come out of the first pass as ``properties``: qualified
    # by the second
    read = parse_filter(sql).copy().transform(qualified)
    return read.transform(lambda node: exp.column("properties", table=table)
                          if isinstance(node, exp.Column) and node.name == "properties"
                          and not node.table else node)


def compile_metric(metric_id: str, sql: str, source: str,
                   grouping: tuple[str, ...] = ()) -> exp.Select:
    """The metric as ``SELECT window_id, metric_id, grouping, group_values, quantity
    FROM <source> ... GROUP BY window_id, group_values`` (a window is one usage period
    of one subscription).

    ``grouping`` names event properties (a matrix price's dimensions, a grouped
    price's grouping key); ``group_values`` is the list of their values, in order."""
    value, where = compiled_parts(sql)
    group_values = [group_value(key) for key in grouping]
    values = exp.Array(expressions=[value.copy() for value in group_values])
    return (
        exp.select(*usage_columns(metric_id, grouping, exp.cast(values, "VARCHAR[]"), value))
        .from_(exp.to_table(source))
        .where(where)
        .group_by(exp.column("window_id"), *group_values)
    )


def usage_columns(metric_id: str, grouping: tuple[str, ...], group_values: exp.Expr,
                  value: exp.Expr, window: str = "window_id") -> list[exp.Expr]:
    """A usage row's columns (window_id, metric_id, grouping, group_values, quantity), as
    every way of computing usage gives them: over events, or from rollups (which key
    the window by another ``window`` column)."""
    keys = exp.Array(expressions=[exp.Literal.string(key) for key in grouping])
    return [exp.column(window),
            exp.alias_(exp.Literal.string(metric_id), "metric_id"),
            exp.alias_(exp.cast(keys, "VARCHAR[]"), "grouping"),
            exp.alias_(group_values, "group_values"),
            exp.alias_(exp.cast(exp.func("coalesce", value, exp.Literal.number(0)),
                                QUANTITY_TYPE), "quantity")]


def union_all(queries: Sequence[exp.Query]) -> exp.Query:
    """``queries`` (at least one) as one UNION ALL, in order; they are copied, once each
    (``exp.union`` copies both sides by default: the whole union so far, every time)."""
    query: exp.Query = queries[0].copy()
    for other in queries[1:]:
        query = exp.union(query, other.copy(), distinct=False, copy=False)
    return query


def compile_usage_query(requests: list[tuple[str, str, tuple[str, ...]]],
                        source: str) -> exp.Query:
    """Every (metric id, metric SQL, grouping) over ``source`` as one UNION ALL."""
    compiled = [compile_metric(metric_id, sql, source, grouping)
                for metric_id, sql, grouping in sorted(requests)]
    return union_all(compiled)


PORTABLE_DIALECTS = ("spark", "snowflake", "bigquery")


def portability(sql: str) -> dict[str, str]:
    """The metric's compiled query in each warehouse dialect, or why it does not transpile.

    sqlglot raises on constructs a dialect cannot express (unsupported_level=RAISE)."""
    query = compile_metric("metric", sql, "events")
    result = {}
    for dialect in PORTABLE_DIALECTS:
        try:
            result[dialect] = query.sql(dialect=dialect,
                                        unsupported_level=sqlglot.ErrorLevel.RAISE)
        except sqlglot.errors.UnsupportedError as err:
            result[dialect] = f"ERROR: {err}"
    return result


def beyond_limit(key: str) -> exp.Expr:
    """``properties.<key>`` is there but is not a number below PROPERTY_LIMIT: the events
    ingestion quarantines today (check_batch.sql), found in a lake written before."""
    value = _property(key)
    number = exp.TryCast(this=value, to=exp.DataType.build(QUANTITY_TYPE, dialect=DIALECT),
                         safe=True)  # safe: TRY_CAST on Spark too, not CAST
    within = exp.LT(this=exp.Abs(this=number), expression=exp.Literal.number(PROPERTY_LIMIT))
    return exp.not_(exp.func("coalesce", within, exp.Is(this=value.copy(),
                                                         expression=exp.Null())))


def numeric_properties(metric_sqls: list[str]) -> list[str]:
    """Property keys some metric reads as a number; ingestion rejects events whose
    value for one of them is not a number, instead of failing the billing run."""
    keys = set()
    for sql in metric_sqls:
        for column in parse_metric(sql).find_all(exp.Column):
            if column.table == "properties" and _numeric_context(column):
                keys.add(column.name)
    return sorted(keys)


def value_query(sql: str, source: str) -> exp.Select:
    """``SELECT <the metric's value> FROM source``, properties read as ``compile_metric``
    reads them, before the value is made a quantity: its type is the value's."""
    value, _ = compiled_parts(sql)
    return exp.select(value).from_(exp.to_table(source))


def metric_problems(metrics: list[tuple[str, str]]) -> dict[str, str]:
    """Metric id -> what is wrong, for each (metric id, SQL) that fails its checks."""
    problems = {}
    for metric_id, sql in metrics:
        try:
            parse_metric(sql)
        except MetricSQLError as exc:
            problems[metric_id] = str(exc)
    return problems
