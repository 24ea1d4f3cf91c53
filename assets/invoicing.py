"""Invoicing domain: invoices with adjustments and credits, corrections of issued
invoices, and a draft document per invoice and correction."""

from decimal import Decimal

import dagster as dg

from assets.partitions import MONTHLY, billing_month
from assets.resources import OrbStore
from invoicing.issuing import compute_corrections, invoice_run
from reports.documents import render_drafts
from storage.duck import connect
from storage.tables import TABLES


@dg.multi_asset(
    specs=[
        dg.AssetSpec("invoices", deps=["line_items"], partitions_def=MONTHLY,
                     group_name="invoicing", kinds={"duckdb", "parquet"},
                     description="One invoice per customer, currency and invoice date: "
                     "subtotal, adjustments, credits applied, total = amount due."),
        dg.AssetSpec("invoice_adjustments", deps=["line_items"], partitions_def=MONTHLY,
                     group_name="invoicing", kinds={"parquet"},
                     description="Each discount, minimum and maximum applied, in order."),
        # Balances carry over from the month before, so a backfill runs months in order.
        dg.AssetSpec("credit_ledger", partitions_def=MONTHLY, group_name="invoicing",
                     kinds={"parquet"}, deps=["line_items", dg.AssetDep(
                         "credit_ledger", partition_mapping=dg.TimeWindowPartitionMapping(
                             start_offset=-1, end_offset=-1))],
                     description="Prepaid credit drawdowns and expiries of the run."),
    ],
    partitions_def=MONTHLY,
)
def invoices(context: dg.AssetExecutionContext, store: OrbStore):
    month = billing_month(context)
    lake, con = store.lake, connect()
    invoiced = invoice_run(con, lake, store.billing_catalog(context), month,
                           lake.read_partition("line_items", "billing_month", month))
    for table, rows in (("invoices", invoiced.invoices),
                        ("invoice_adjustments", invoiced.adjustments),
                        ("credit_ledger", invoiced.ledger)):
        path = lake.write_partition(table, TABLES[table].key, month, rows)
        yield dg.MaterializeResult(asset_key=table, metadata={
            "rows": rows.num_rows, "path": dg.MetadataValue.path(str(path))})


@dg.asset(partitions_def=MONTHLY, deps=["invoices", "invoice_adjustments"],
          group_name="invoicing", kinds={"duckdb", "parquet"})
def invoice_corrections(context: dg.AssetExecutionContext,
                        store: OrbStore) -> dg.MaterializeResult:
    """Per-line differences between this run and the issued invoices of the month: the
    draft credit notes and adjustment invoices that correct them."""
    month = billing_month(context)
    lake = store.lake
    rows = compute_corrections(connect(), lake, month,
                               lake.read_partition("line_items", "billing_month", month),
                               lake.read_partition("invoice_adjustments", "billing_month", month))
    path = lake.write_partition("invoice_corrections", TABLES["invoice_corrections"].key,
                                month, rows)
    net = sum((r["amount"] for r in rows.to_pylist()), Decimal(0))
    return dg.MaterializeResult(metadata={
        "lines": rows.num_rows, "corrections": len(set(rows.column("correction_id").to_pylist())),
        "net": str(net), "path": dg.MetadataValue.path(str(path))})


@dg.asset(partitions_def=MONTHLY, deps=[invoice_corrections, "sub_line_items"],
          group_name="invoicing", kinds={"html"})
def invoice_documents(context: dg.AssetExecutionContext, store: OrbStore) -> dg.MaterializeResult:
    """An HTML draft per unissued invoice and correction: reports/invoices/<YYYY-MM>/."""
    month = billing_month(context)
    folder, count = render_drafts(connect(), store.lake, store.billing_catalog(context),
                                  store.issuer, month)
    return dg.MaterializeResult(metadata={"documents": count,
                                          "folder": dg.MetadataValue.path(str(folder))})
