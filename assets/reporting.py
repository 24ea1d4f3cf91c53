"""Reporting domain: the month's revenue summary, and DuckDB views over the whole lake."""

import dagster as dg
import duckdb

from assets.invoicing import invoices
from assets.partitions import MONTHLY, billing_month
from billing import periods
from pipelines.resources import OrbStore
from pricing_sql.loader import load_sql
from reports.render import render_revenue_summary
from storage.catalog import refresh_views
from storage.duck import connect

TOP_INVOICES = 10


@dg.asset(partitions_def=MONTHLY, deps=[invoices], group_name="reporting",
          kinds={"duckdb", "parquet", "html"})
def revenue_summary(context: dg.AssetExecutionContext, store: OrbStore) -> dg.MaterializeResult:
    """Billed revenue by currency and plan, as Parquet and reports/revenue/<YYYY-MM>.html."""
    month = billing_month(context)
    lake = store.lake
    con = connect()
    for table in ("line_items", "invoice_adjustments"):
        con.register(table, lake.read_partition(table, "billing_month", month))
    summary = con.sql(load_sql("revenue_summary")).to_arrow_table()
    lake.write_partition("revenue_summary", "billing_month", month, summary)

    heads = lake.read_partition("invoices", "billing_month", month).to_pylist()
    top = sorted(heads, key=lambda head: (-head["total"], head["invoice_id"]))[:TOP_INVOICES]
    label = month.strftime("%Y-%m")
    html = render_revenue_summary(label, summary.to_pylist(), top,
                                  _rejected_by_reason(con, lake, month))
    folder = lake.reports / "revenue"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{label}.html").write_text(html, encoding="utf-8")
    return dg.MaterializeResult(metadata={
        "billed": dg.MetadataValue.json(
            {f"{row['currency']} {row['plan_id']}": str(row["billed"]) for row in
             summary.to_pylist()}),
    })


def _rejected_by_reason(con: duckdb.DuckDBPyConnection, lake, month) -> dict[str, int]:
    files = lake.all_files("quarantine")
    if not files:
        return {}
    days = periods.days_of_month(month)
    rows = con.execute(
        "SELECT reject_reason, count(*) FROM read_parquet($files) "
        "WHERE event_date BETWEEN $first AND $last GROUP BY 1 ORDER BY 1",
        {"files": files, "first": days[0], "last": days[-1]},
    ).fetchall()
    return dict(rows)


@dg.asset(deps=[invoices, revenue_summary, "events", "quarantine"], group_name="reporting",
          kinds={"duckdb"})
def lake_views(store: OrbStore) -> dg.MaterializeResult:
    """data/orb.duckdb: one view per lake table, for ad-hoc SQL and BI tools."""
    tables = refresh_views(store.lake)
    return dg.MaterializeResult(metadata={"views": ", ".join(tables),
                                          "database": dg.MetadataValue.path(
                                              str(store.lake.duckdb_path))})
