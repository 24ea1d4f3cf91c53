"""``CREATE TABLE`` for the warehouses, from the lake's Arrow schemas, built with sqlglot.

One schema (the Parquet files' Arrow schema plus the hive partition column) gives every
dialect's DDL: each Arrow type maps to one sqlglot type, rendered by sqlglot per dialect,
so Snowflake, BigQuery, Spark and Postgres cannot drift apart. Statements are syntax
trees, never formatted strings, and sqlglot raises rather than emit something a dialect
does not support. See docs/exports.md for the mapping.
"""

from __future__ import annotations

import pyarrow as pa
import sqlglot
from sqlglot import exp

DIALECTS = ("snowflake", "bigquery", "spark", "postgres")

T = exp.DataType.Type
_PLAIN = {
    pa.string(): T.TEXT, pa.large_string(): T.TEXT, pa.bool_(): T.BOOLEAN,
    pa.int8(): T.TINYINT, pa.int16(): T.SMALLINT, pa.int32(): T.INT, pa.int64(): T.BIGINT,
    pa.float32(): T.FLOAT, pa.float64(): T.DOUBLE, pa.date32(): T.DATE,
}
# BigQuery's NUMERIC(P, S) holds at most 9 digits after the point and 29 before it;
# wider decimals need BIGNUMERIC, which only BigQuery has (never use it elsewhere:
# sqlglot renders it as DOUBLE for Snowflake).
_NUMERIC_SCALE, _NUMERIC_INTEGER_DIGITS = 9, 29
# Snowflake's reserved words (its documented list): a column so named is quoted in upper
# case, which Snowflake resolves exactly as it would the unquoted name (``batches.rows``).
_SNOWFLAKE_RESERVED = frozenset({
    "account", "all", "alter", "and", "any", "as", "between", "by", "case", "cast", "check",
    "column", "connect", "connection", "constraint", "create", "cross", "current", "current_date",
    "current_time", "current_timestamp", "current_user", "database", "delete", "distinct", "drop",
    "else", "exists", "false", "following", "for", "from", "full", "grant", "group", "gscluster",
    "having", "ilike", "in", "increment", "inner", "insert", "intersect", "into", "is", "issue",
    "join", "lateral", "left", "like", "localtime", "localtimestamp", "minus", "natural", "not",
    "null", "of", "on", "or", "order", "organization", "qualify", "regexp", "revoke", "right",
    "rlike", "row", "rows", "sample", "schema", "select", "set", "some", "start", "table",
    "tablesample", "then", "to", "trigger", "true", "try_cast", "union", "unique", "update",
    "using", "values", "view", "when", "whenever", "where", "with",
})


class UnsupportedType(TypeError):
    """An Arrow type with no faithful warehouse type (refused, never approximated)."""


def column_type(arrow: pa.DataType, dialect: str) -> exp.DataType:
    """The sqlglot type for an Arrow type in ``dialect``."""
    if arrow in _PLAIN:
        return exp.DataType(this=_PLAIN[arrow])
    if pa.types.is_timestamp(arrow):
        # With a zone the values are instants: TIMESTAMPTZ / TIMESTAMP_TZ / BigQuery
        # TIMESTAMP / Spark TIMESTAMP (LTZ); without one, wall-clock times.
        return exp.DataType(this=T.TIMESTAMPTZ if arrow.tz else T.TIMESTAMPNTZ)
    if pa.types.is_decimal128(arrow):
        return _decimal(arrow.precision, arrow.scale, dialect)
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
        if dialect == "snowflake":  # semi-structured ARRAY: what Parquet LISTs load into
            return exp.DataType(this=T.ARRAY)
        return exp.DataType(this=T.ARRAY, nested=True,
                            expressions=[column_type(arrow.value_type, dialect)])
    raise UnsupportedType(f"Arrow type {arrow} has no {dialect} mapping")


def _decimal(precision: int, scale: int, dialect: str) -> exp.DataType:
    params = [exp.DataTypeParam(this=exp.Literal.number(n)) for n in (precision, scale)]
    wide = scale > _NUMERIC_SCALE or precision - scale > _NUMERIC_INTEGER_DIGITS
    kind = T.BIGDECIMAL if dialect == "bigquery" and wide else T.DECIMAL
    return exp.DataType(this=kind, expressions=params)


def _identifier(name: str, dialect: str) -> exp.Identifier:
    if dialect == "snowflake" and name.lower() in _SNOWFLAKE_RESERVED:
        return exp.to_identifier(name.upper(), quoted=True)
    return exp.to_identifier(name)


def _column(field: pa.Field, dialect: str) -> exp.ColumnDef:
    try:
        kind = column_type(field.type, dialect)
    except UnsupportedType as exc:
        raise UnsupportedType(f"column {field.name!r}: {exc}") from exc
    # BigQuery arrays are never NULL (a missing list is empty) and refuse NOT NULL.
    nullable = field.nullable or (dialect == "bigquery" and kind.is_type(T.ARRAY))
    constraints = [] if nullable else [
        exp.ColumnConstraint(kind=exp.NotNullColumnConstraint())]
    return exp.ColumnDef(this=_identifier(field.name, dialect), kind=kind,
                         constraints=constraints)


def _partitioning(schema: pa.Schema, key: str | None, dialect: str) -> exp.Properties | None:
    """Spark tables are Parquet partitioned like the export; BigQuery partitions by a
    DATE key (it cannot partition by text); Snowflake and Postgres keep a plain column."""
    if key is None:
        return None
    column = _identifier(key, dialect)
    if dialect == "spark":
        return exp.Properties(expressions=[
            exp.FileFormatProperty(this=exp.Var(this="PARQUET")),
            exp.PartitionedByProperty(this=exp.Schema(expressions=[column]))])
    if dialect == "bigquery" and pa.types.is_date32(schema.field(key).type):
        return exp.Properties(expressions=[exp.PartitionedByProperty(this=column)])
    return None


def create_table(table: str, schema: pa.Schema, partition_key: str | None,
                 dialect: str, namespace: str | None = None) -> str:
    """``CREATE TABLE [namespace.]table (...)`` in ``dialect``; raises on anything
    unsupported. ``namespace`` is ``schema`` or ``database.schema`` (BigQuery:
    ``dataset`` or ``project.dataset``); sqlglot quotes any part that needs it."""
    columns = [_column(field, dialect) for field in schema]
    tree = exp.Create(this=exp.Schema(this=_table_name(table, namespace, dialect),
                                      expressions=columns),
                      kind="TABLE", properties=_partitioning(schema, partition_key, dialect))
    return tree.sql(dialect=dialect, pretty=True, unsupported_level=sqlglot.ErrorLevel.RAISE)


def _table_name(table: str, namespace: str | None, dialect: str) -> exp.Table:
    parts = [_identifier(part, dialect) for part in namespace.split(".")] if namespace else []
    if len(parts) > 2 or not all(part.name for part in parts):
        raise ValueError(f"namespace {namespace!r}: expected schema or database.schema")
    return exp.table_(_identifier(table, dialect), db=parts[-1] if parts else None,
                      catalog=parts[0] if len(parts) == 2 else None)


def ddl_script(tables: dict[str, tuple[pa.Schema, str | None]], dialect: str,
               namespace: str | None = None) -> str:
    """Every table's statement, in the given order, as one script."""
    statements = [create_table(name, schema, key, dialect, namespace)
                  for name, (schema, key) in tables.items()]
    header = f"-- orb export: {dialect} DDL generated from the lake's Parquet schemas"
    return "\n\n".join([header, *(f"{statement};" for statement in statements)]) + "\n"
