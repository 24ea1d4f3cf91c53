"""Billable metrics written by users as SQL over ``events``, checked and compiled with sqlglot.

A metric is one aggregate over the events of one billing period, for example::

    SELECT sum(properties.tokens) FROM events WHERE event_name = 'completion'

It never names a customer or a time range: the pipeline compiles it into a
query over the period's events, grouped by subscription. Before anything runs,
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

import sqlglot
from sqlglot import exp

DIALECT = "duckdb"
QUANTITY_TYPE = "DECIMAL(38, 9)"
EVENT_COLUMNS = {"event_name", "timestamp"}
PROPERTY_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

AGGREGATES = (exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max)
NUMERIC_AGGREGATES = (exp.Sum, exp.Avg, exp.Min, exp.Max)
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
    def __init__(self, message: str, node: exp.Expression | None = None, line: int | None = None,
                 col: int | None = None):
        where = _position(node) if node is not None else (line, col)
        self.line, self.col = where
        prefix = f"line {self.line}, column {self.col}: " if self.line else ""
        super().__init__(prefix + message)


def _position(node: exp.Expression) -> tuple[int | None, int | None]:
    for candidate in node.walk():
        if "line" in candidate.meta:
            return candidate.meta["line"], candidate.meta["col"]
    return None, None


def parse_metric(sql: str) -> exp.Select:
    """Parse and check a metric; raise MetricSQLError naming what is wrong and where."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=DIALECT) if s is not None]
    except sqlglot.ParseError as err:
        first = err.errors[0] if err.errors else {}
        raise MetricSQLError(f"cannot parse metric SQL: {first.get('description', err)}",
                             line=first.get("line"), col=first.get("col")) from err
    except sqlglot.TokenError as err:
        raise MetricSQLError(f"cannot parse metric SQL: {err}") from err
    if len(statements) != 1:
        raise MetricSQLError(f"a metric is exactly one SELECT statement, found {len(statements)}")
    select = statements[0]
    if not isinstance(select, exp.Select):
        raise MetricSQLError(f"a metric must be a SELECT, not {select.key.upper()}", select)
    _check_shape(select)
    _check_nodes(select)
    return select


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
        raise MetricSQLError("the metric's value must be an aggregate (count, sum, avg, min, max)",
                             value)
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


def _read_property(column: exp.Column) -> exp.Expression:
    value = exp.JSONExtractScalar(
        this=exp.column("properties"), expression=exp.Literal.string(f"$.{column.name}")
    )
    if _numeric_context(column):
        return exp.cast(value, QUANTITY_TYPE)
    return value


def compile_metric(metric_id: str, sql: str, source: str) -> exp.Select:
    """The metric as ``SELECT subscription_id, metric_id, quantity FROM <source> ... GROUP BY``."""
    select = parse_metric(sql).copy()
    select = select.transform(
        lambda node: _read_property(node)
        if isinstance(node, exp.Column) and node.table == "properties" else node
    )
    value = select.expressions[0].unalias()
    return (
        exp.select(
            exp.column("subscription_id"),
            exp.alias_(exp.Literal.string(metric_id), "metric_id"),
            exp.alias_(exp.cast(exp.func("coalesce", value, exp.Literal.number(0)),
                                QUANTITY_TYPE), "quantity"),
        )
        .from_(exp.to_table(source))
        .where(select.args.get("where").this if select.args.get("where") else None)
        .group_by(exp.column("subscription_id"))
    )


def compile_usage_query(metrics: dict[str, str], source: str) -> exp.Expression:
    """All metrics over ``source`` as one UNION ALL, one row per (subscription, metric)."""
    compiled = [compile_metric(name, metrics[name], source) for name in sorted(metrics)]
    query: exp.Expression = compiled[0]
    for select in compiled[1:]:
        query = exp.union(query, select, distinct=False)
    return query
