"""Revenue assets: the monthly revenue tables (computed in ``revenue/compute.py``) and the
revenue report (``reports/revenue_report.py``). Definitions and schemas: docs/revenue.md."""

import dagster as dg

from assets.metadata import money_totals, table_metadata
from assets.partitions import MONTHLY, billing_month
from assets.resources import OrbStore
from reports.revenue_report import write_revenue_report
from revenue.compute import SCHEMAS, compute_revenue
from storage.duck import connect
from storage.tables import TABLES

DESCRIPTIONS = {
    "mrr": "MRR and ARR per customer and currency at the end of the month: fees in effect "
           "on its last day normalized to a month, plus usage whose service ended in it.",
    "mrr_movements": "Each customer's MRR change from the month before: new, expansion, "
                     "contraction, churn or reactivation; they sum to the MRR change.",
    "cohort_retention": "Net revenue retention of each cohort (first month with MRR) in "
                        "the month.",
    "revenue_by_dimension": "The run's billed revenue by plan, price, metric and customer, "
                            "adjustments shared among the lines they cover.",
    "revenue_recognition": "Billed, recognized (ratably by service day) and deferred "
                           "revenue of the month, and the schedule of the deferred balance.",
    "billed_vs_collected": "Issued documents of the month: billed, paid, outstanding, void.",
    "usage_trends": "Each metric's quantity over the run's usage windows.",
}


@dg.multi_asset(
    specs=[dg.AssetSpec(table, deps=["line_items", "invoice_adjustments", "billing_run"]
                        + (["usage"] if table == "usage_trends" else []),
                        partitions_def=MONTHLY, group_name="reporting",
                        kinds={"duckdb", "parquet"}, description=DESCRIPTIONS[table])
           for table in SCHEMAS],
    partitions_def=MONTHLY,
    # Each table is its own file: a backfill or a launch from the UI may take any of them.
    can_subset=True,
)
def revenue_tables(context: dg.AssetExecutionContext, store: OrbStore):
    month = billing_month(context)
    lake = store.lake
    computed = compute_revenue(connect(), lake, store.billing_catalog(context), month)
    selected = {key.to_user_string() for key in context.selected_asset_keys}
    for table in (t for t in SCHEMAS if t in selected):
        rows = computed[table]
        path = lake.write_partition(table, TABLES[table].key, month, rows)
        yield dg.MaterializeResult(asset_key=table, metadata={
            **table_metadata(table, rows, path),
            **(money_totals(rows, {"mrr": "mrr"}) if table == "mrr" else {})})


@dg.asset(partitions_def=MONTHLY, deps=[*SCHEMAS, "quarantine"], group_name="reporting",
          kinds={"html"})
def revenue_report(context: dg.AssetExecutionContext, store: OrbStore) -> dg.MaterializeResult:
    """The month's revenue report with charts: `reports/revenue/<YYYY-MM>.html`."""
    month = billing_month(context)
    path, headline = write_revenue_report(connect(), store.lake, month)
    return dg.MaterializeResult(metadata={
        "mrr": dg.MetadataValue.json(headline), "path": dg.MetadataValue.path(str(path)),
        "report": dg.MetadataValue.url(path.as_uri())})


REVENUE_ASSETS = [revenue_tables, revenue_report]
REVENUE_TABLES = list(SCHEMAS)
