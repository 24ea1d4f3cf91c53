"""Revenue domain: MRR and its movements, cohort retention, revenue by plan, price, metric
and customer, billed vs collected, recognized and deferred revenue and usage trends: the
tables behind the monthly revenue report (reports/revenue_report.py). Definitions and
schemas: docs/revenue.md.

Partition M is the run that closes M (docs/invoicing.md). The tables of M are computed from
the line items and adjustments of every run up to M (MRR and recognition need the history)
and never from later runs, so materializing M again gives the same files until M or an
earlier month is re-rated; re-rate months in order and re-materialize the ones after.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from billing.catalog import Catalog
from invoicing.documents import committed_files, issued_heads
from pricing_sql.catalog_tables import plan_prices_table
from revenue.sql import load_sql
from storage.billing_runs import read_month
from storage.lake import Lake
from storage.tables import DOCUMENT_EVENTS, INVOICE_ADJUSTMENTS, LINE_ITEMS, USAGE
from storage.tables import REVENUE_SCHEMAS as SCHEMAS


def runs_through(lake: Lake, table: str, month: date) -> list[str]:
    """The files of ``table``'s monthly partitions up to and including ``month``."""
    return [f for f in lake.all_files(table)
            if date.fromisoformat(Lake.partition_value(f)) <= month]


def _read(files: list[str], schema: pa.Schema | None = None) -> pa.Table:
    return pq.read_table(files, partitioning=None, schema=schema)


def register_revenue_lines(con: duckdb.DuckDBPyConnection, catalog: Catalog,
                           line_items: pa.Table, adjustments: pa.Table) -> None:
    """Create ``revenue_lines`` (and the revenue SQL macros) on ``con`` from line items and
    invoice adjustments of any number of runs."""
    con.register("line_items", line_items)
    con.register("invoice_adjustments", adjustments)
    con.register("plan_prices", plan_prices_table(catalog))
    con.execute(load_sql("revenue_macros"))
    con.execute(load_sql("revenue_lines"))


def _query(con: duckdb.DuckDBPyConnection, name: str, month: date, table: str) -> pa.Table:
    return con.sql(load_sql(name), params={"month": month}).to_arrow_table().cast(SCHEMAS[table])


def revenue_history(con: duckdb.DuckDBPyConnection, month: date) -> dict[str, pa.Table]:
    """MRR, movements, cohorts and recognition of ``month`` from ``revenue_lines``."""
    con.execute(load_sql("revenue_mrr"), {"month": month})
    con.execute(load_sql("revenue_recognition_schedule"))
    return {
        "mrr": _query(con, "revenue_mrr_month", month, "mrr"),
        "mrr_movements": _query(con, "revenue_movements", month, "mrr_movements"),
        "cohort_retention": _query(con, "revenue_cohorts", month, "cohort_retention"),
        "revenue_recognition": _query(con, "revenue_recognition", month, "revenue_recognition"),
        "revenue_by_dimension": _query(con, "revenue_by_dimension", month,
                                       "revenue_by_dimension"),
    }


def compute_revenue(con: duckdb.DuckDBPyConnection, lake: Lake, catalog: Catalog,
                    month: date) -> dict[str, pa.Table]:
    """Every revenue table of ``month`` from the lake (runs up to ``month``)."""
    line_files = runs_through(lake, "line_items", month)
    adjustment_files = runs_through(lake, "invoice_adjustments", month)
    if not line_files or not adjustment_files:
        raise FileNotFoundError(f"no line items or adjustments up to {month:%Y-%m} in "
                                f"{lake.root}: materialize line_items and invoices first")
    # Each month read must be whole: its tables all from its newest completed billing run.
    for run_month in sorted({date.fromisoformat(Lake.partition_value(f))
                             for f in line_files + adjustment_files}):
        read_month(lake, run_month, ())
    register_revenue_lines(con, catalog, _read(line_files, LINE_ITEMS),
                           _read(adjustment_files, INVOICE_ADJUSTMENTS))
    tables = revenue_history(con, month)

    con.register("issued_documents", issued_heads(lake))
    events = committed_files(lake, "document_events")
    con.register("document_events",
                 _read(events, DOCUMENT_EVENTS) if events else DOCUMENT_EVENTS.empty_table())
    tables["billed_vs_collected"] = _query(con, "revenue_billed_collected", month,
                                           "billed_vs_collected")

    usage = lake.files_in("usage", "billing_month", [month])
    current = lake.files_in("line_items", "billing_month", [month])
    if usage and current:
        con.register("usage", _read(usage, USAGE))
        con.register("line_items", _read(current, LINE_ITEMS))
        tables["usage_trends"] = _query(con, "revenue_usage_trends", month, "usage_trends")
    else:
        tables["usage_trends"] = SCHEMAS["usage_trends"].empty_table()
    return tables
