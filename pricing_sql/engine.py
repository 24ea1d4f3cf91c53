"""Where the rating SQL runs: DuckDB (the default) or Apache Spark, from the same ``.sql`` files.

The rating SQL (``usage_events.sql``, ``active_events.sql``, the compiled metric
queries, ``rate_usage.sql``, ``line_items.sql``, ``line_item_details.sql``) is written
in DuckDB's dialect. :class:`DuckDBEngine` runs it as it is; :class:`SparkEngine`
transpiles every statement to Spark SQL with sqlglot, refusing anything sqlglot
cannot express (``unsupported_level=RAISE``), and runs it on a SparkSession. Both
take their inputs as Arrow tables or Parquet files and return Arrow tables.

``ORB_ENGINE=duckdb|spark`` selects one (:func:`engine_from_env`); docs/engines.md
says what runs where, the rewrites that keep the SQL portable, and the decimal
settings.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

from pricing_sql.active_events import RECORDS, active_events_sql, register_active_events
from pricing_sql.sql import load_sql

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from storage.lake import Lake

ENGINES = ("duckdb", "spark")
SOURCE_DIALECT = "duckdb"
# The files every engine runs; tests/test_engine_parity.py checks each transpiles.
SHARED_SQL = ("usage_events", "visible_batches", "active_events", "active_events_unamended",
              "rate_usage", "line_items", "line_item_details", "subset_events", "single_events")

# Spark settings the shared SQL relies on (docs/engines.md, "Decimals"):
SPARK_SQL_CONF = {
    # DECIMAL(38, 9) x DECIMAL(38, 12) is DECIMAL(38, 21) on DuckDB; with precision
    # loss allowed Spark would cut it to DECIMAL(38, 6) and round money silently.
    # Without it Spark keeps the full scale, as DuckDB does, and overflow is an error.
    "spark.sql.decimalOperations.allowPrecisionLoss": "false",
    # Overflow and invalid casts raise instead of turning into NULL.
    "spark.sql.ansi.enabled": "true",
    # Instants are UTC everywhere, as in storage/duck.py.
    "spark.sql.session.timeZone": "UTC",
}


class Engine(Protocol):
    name: str
    # What a query raises when some row's value overflows or does not convert: the errors
    # rating survives by leaving that row's customer out (pricing_sql/isolation.py).
    arithmetic_errors: tuple[type[Exception], ...]

    def register(self, name: str, table: pa.Table) -> None:
        """Make an Arrow table queryable as ``name``."""

    def run_script(self, sql: str) -> None:
        """Run the statements of a DuckDB-dialect script (``CREATE ... TEMP TABLE|VIEW``)."""

    def query(self, sql: str | exp.Expression) -> pa.Table:
        """Run one DuckDB-dialect query (text or sqlglot tree) and return its rows."""

    def register_active_events(self, lake: Lake, event_files: list[str]) -> None:
        """Define ``active_events`` over ``event_files`` (active_events.sql)."""


class DuckDBEngine:
    """Today's behaviour: Arrow tables registered on a DuckDB connection, SQL run as written."""

    name = "duckdb"
    arithmetic_errors: tuple[type[Exception], ...] = (duckdb.OutOfRangeException,
                                                      duckdb.ConversionException)

    def __init__(self, con: duckdb.DuckDBPyConnection | None = None):
        if con is None:
            from storage.duck import connect

            con = connect()
        self.con = con

    def register(self, name: str, table: pa.Table) -> None:
        self.con.register(name, table)

    def run_script(self, sql: str) -> None:
        self.con.execute(sql)

    def query(self, sql: str | exp.Expression) -> pa.Table:
        text = sql.sql(dialect=SOURCE_DIALECT) if isinstance(sql, exp.Expression) else sql
        return self.con.sql(text).to_arrow_table()

    def register_active_events(self, lake: Lake, event_files: list[str]) -> None:
        register_active_events(self.con, lake, event_files)


def _spark_rewrite(node: exp.Expr) -> exp.Expr:
    """The one function the shared SQL uses that sqlglot does not map: DuckDB's
    ``error(message)`` is Spark's ``raise_error(message)``."""
    if isinstance(node, exp.Anonymous) and node.name.lower() == "error":
        return exp.Anonymous(this="raise_error", expressions=node.expressions)
    return node


def to_spark(statement: exp.Expr) -> str:
    """One DuckDB-dialect statement as Spark SQL; raises sqlglot's UnsupportedError
    for anything Spark cannot express."""
    return statement.copy().transform(_spark_rewrite).sql(
        dialect="spark", unsupported_level=sqlglot.ErrorLevel.RAISE)


def parse_script(sql: str) -> list[exp.Expr]:
    return [s for s in sqlglot.parse(sql, read=SOURCE_DIALECT) if s is not None]


def temp_relation(statement: exp.Expr) -> tuple[str, str, exp.Expr] | None:
    """``(name, kind, query)`` of ``CREATE [OR REPLACE] TEMP TABLE|VIEW name AS query``."""
    if not isinstance(statement, exp.Create) or statement.kind not in ("TABLE", "VIEW"):
        return None
    properties = statement.args.get("properties")
    temporary = properties is not None and any(
        isinstance(p, exp.TemporaryProperty) for p in properties.expressions)
    if not temporary or not isinstance(statement.expression, exp.Query):
        raise ValueError(f"only CREATE TEMP TABLE|VIEW ... AS SELECT is portable: "
                         f"{statement.sql(dialect=SOURCE_DIALECT)[:80]}")
    return statement.this.name, statement.kind, statement.expression


def spark_session(master: str | None = None) -> SparkSession:
    """A SparkSession with the settings the shared SQL relies on.

    ``master`` (default ``ORB_SPARK_MASTER``, else ``local[2]``): ``local[N]`` runs in
    this process's JVM, bound to 127.0.0.1 with no UI; ``spark://host:7077``,
    ``yarn`` or ``k8s://...`` scale out (docs/engines.md)."""
    from pyspark.sql import SparkSession

    master = master or os.environ.get("ORB_SPARK_MASTER", "local[2]")
    builder = SparkSession.builder.appName("orb-rating").master(master)
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = (builder
                   .config("spark.ui.enabled", "false")
                   .config("spark.ui.showConsoleProgress", "false")
                   .config("spark.driver.host", "127.0.0.1")
                   .config("spark.driver.bindAddress", "127.0.0.1")
                   .config("spark.driver.memory",
                           os.environ.get("ORB_SPARK_DRIVER_MEMORY", "1g"))
                   # a billing run's tables are small next to 200 default partitions
                   .config("spark.sql.shuffle.partitions",
                           os.environ.get("ORB_SPARK_SHUFFLE_PARTITIONS", "4")))
    for key, value in SPARK_SQL_CONF.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    # getOrCreate may hand back a running session: the settings must hold all the same.
    for key, value in SPARK_SQL_CONF.items():
        session.conf.set(key, value)
    session.sparkContext.setLogLevel(os.environ.get("ORB_SPARK_LOG_LEVEL", "ERROR"))
    return session


def _normalize(table: pa.Table) -> pa.Table:
    """Spark's Arrow output with DuckDB's spelling of the same types: list items named
    ``item``, timestamps in UTC (values unchanged)."""
    fields = []
    for field in table.schema:
        kind = field.type
        if pa.types.is_list(kind):
            kind = pa.list_(kind.value_type)
        elif pa.types.is_timestamp(kind):
            kind = pa.timestamp(kind.unit, tz="UTC")
        fields.append(pa.field(field.name, kind))
    return table.cast(pa.schema(fields))


class SparkEngine:
    """The same SQL transpiled to Spark SQL and run on a SparkSession.

    Arrow inputs become temp views (``createDataFrame`` from Arrow); Parquet files
    are read by Spark itself, so on a cluster the executors read the lake directly.
    ``CREATE TEMP TABLE x AS q`` is run as ``q``, materialized (``localCheckpoint``)
    and registered as temp view ``x``; ``CREATE TEMP VIEW`` as a temp view."""

    name = "spark"

    def __init__(self, session: SparkSession | None = None):
        from pyspark.errors import ArithmeticException, NumberFormatException

        self.spark = session or spark_session()
        # ANSI mode: overflow is an ArithmeticException, a bad cast a NumberFormatException
        self.arithmetic_errors: tuple[type[Exception], ...] = (ArithmeticException,
                                                               NumberFormatException)

    def register(self, name: str, table: pa.Table) -> None:
        self.spark.createDataFrame(table).createOrReplaceTempView(name)

    def register_parquet(self, name: str, files: list[str], empty: pa.Schema,
                         columns: list[str] | None = None) -> None:
        """``files`` as view ``name``, or an empty view of schema ``empty`` when none."""
        if not files:
            self.register(name, empty.empty_table())
            return
        frame = self.spark.read.parquet(*files)
        frame.select(*(columns or frame.columns)).createOrReplaceTempView(name)

    def run_script(self, sql: str) -> None:
        for statement in parse_script(sql):
            relation = temp_relation(statement)
            if relation is None:
                self.spark.sql(to_spark(statement))
                continue
            name, kind, query = relation
            frame = self.spark.sql(to_spark(query))
            if kind == "TABLE":
                frame = frame.localCheckpoint()
            frame.createOrReplaceTempView(name)

    def query(self, sql: str | exp.Expression) -> pa.Table:
        statements = [sql] if isinstance(sql, exp.Expression) else parse_script(sql)
        if len(statements) != 1:
            raise ValueError(f"expected one query, found {len(statements)} statements")
        return _normalize(self.spark.sql(to_spark(statements[0])).toArrow())

    def register_active_events(self, lake: Lake, event_files: list[str]) -> None:
        self.register_parquet("lake_events", event_files, pa.schema([]))
        for view, table, schema in RECORDS:
            self.register_parquet(view, lake.all_files(table), schema, columns=schema.names)
        self.run_script(load_sql("visible_batches"))
        self.run_script(active_events_sql(lake))


def as_engine(con: duckdb.DuckDBPyConnection | Engine | None) -> Engine:
    """An engine from what the rating functions are given: a DuckDB connection
    (today's callers), an engine, or None for a new DuckDB connection."""
    if con is None or isinstance(con, duckdb.DuckDBPyConnection):
        return DuckDBEngine(con)
    return con


def engine_from_env(name: str | None = None) -> Engine:
    """``ORB_ENGINE`` (``duckdb``, the default, or ``spark``)."""
    name = (name or os.environ.get("ORB_ENGINE") or "duckdb").strip().lower()
    if name == "duckdb":
        return DuckDBEngine()
    if name == "spark":
        return SparkEngine()
    raise ValueError(f"ORB_ENGINE must be one of {', '.join(ENGINES)}, not {name!r}")
