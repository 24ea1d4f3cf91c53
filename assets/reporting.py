"""Reporting domain: DuckDB views over the whole lake. The monthly revenue tables and
report are assets/revenue.py (computed in revenue/compute.py)."""

import dagster as dg

from assets.invoicing import invoices
from assets.resources import OrbStore
from assets.revenue import REVENUE_TABLES, revenue_report
from storage.views import refresh_views


@dg.asset(deps=[invoices, *REVENUE_TABLES, revenue_report, "events", "quarantine"],
          group_name="reporting", kinds={"duckdb"})
def lake_views(store: OrbStore) -> dg.MaterializeResult:
    """data/orb.duckdb: one view per lake table, for ad-hoc SQL and BI tools."""
    tables = refresh_views(store.lake)
    return dg.MaterializeResult(metadata={"views": ", ".join(tables),
                                          "database": dg.MetadataValue.path(
                                              str(store.lake.duckdb_path))})
