"""A fingerprint of each of a run's draft documents, computed for all of them at once in
DuckDB (``sql/draft_fingerprints.sql``): what tells the draft documents' folder which
drafts changed since they were last rendered, without building any draft in Python."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from invoicing.issuing import DRAFT_TABLES, register_issued
from invoicing.sql import load_sql
from storage.billing_runs import MonthTables
from storage.lake import Lake

# The run's tables a draft is made from: its invoice's rows in each.
SOURCE_TABLES = (*DRAFT_TABLES, "sub_line_items")
CUSTOMERS = pa.schema([("customer_id", pa.string()), ("content", pa.string())])


def draft_fingerprints(con: duckdb.DuckDBPyConnection, lake: Lake, run: MonthTables,
                       customers: pa.Table, salt: str) -> pa.Table:
    """``reference``, ``invoice_id`` and ``fingerprint`` of every draft of ``run`` (its
    ``SOURCE_TABLES`` read whole), by reference. ``customers``: ``CUSTOMERS``, each
    customer as the documents show it; ``salt``: whatever else shapes a document (the
    issuer, the renderer's version)."""
    register_issued(con, lake, run.month)
    for table in SOURCE_TABLES:
        rows = run[table]
        # The row number keeps the order the run wrote (a document shows its breakdowns
        # in it) without entering the fingerprint: rows of other invoices shift it.
        con.register(table, rows.append_column("_row", pa.array(np.arange(rows.num_rows))))
    con.register("customers", customers.cast(CUSTOMERS))
    try:
        # DuckDB's hash may change with its version: then every draft renders once.
        return con.sql(load_sql("draft_fingerprints"), params={
            "salt": f"{salt}|duckdb {duckdb.__version__}"}).to_arrow_table()
    finally:
        for table in (*SOURCE_TABLES, "customers"):
            con.unregister(table)
