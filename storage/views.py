"""The DuckDB catalog: a database file of views over the lake, for analysts and BI tools.

``duckdb data/orb.duckdb`` then ``SELECT * FROM invoices`` reads the Parquet lake
directly; the views hold absolute paths, so refresh them after moving the data.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from storage.duck import connect
from storage.lake import Lake
from storage.tables import PUBLISHED_TABLES

_VIEW = sqlglot.parse_one(
    "CREATE OR REPLACE VIEW placeholder AS "
    "SELECT * FROM read_parquet('placeholder', hive_partitioning = true, union_by_name = true)",
    read="duckdb",
)


def view_sql(table: str, pattern: str) -> str:
    """``CREATE VIEW`` for one lake table, built as a syntax tree, not by formatting."""
    tree = _VIEW.copy()
    tree.this.replace(exp.to_table(table))
    read = tree.find(exp.ReadParquet)
    assert read is not None  # _VIEW selects FROM read_parquet(...)
    read.expressions[0].replace(exp.Literal.string(pattern))
    return tree.sql(dialect="duckdb")


def refresh_views(lake: Lake) -> list[str]:
    """(Re)create a view for every published table that has at least one partition."""
    present = [table for table in PUBLISHED_TABLES if lake.all_files(table)]
    con = connect(str(lake.duckdb_path))
    try:
        for table in present:
            con.execute(view_sql(table, str(lake.table_dir(table) / "*" / "*.parquet")))
    finally:
        con.close()
    return present
