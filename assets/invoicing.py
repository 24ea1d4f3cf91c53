"""Invoicing domain: invoices with adjustments and credits, corrections of issued
invoices, the billing run's commit, and a draft document per invoice and correction."""

from datetime import UTC, datetime
from decimal import Decimal

import dagster as dg

from assets.billing_order import check_commit, check_start
from assets.metadata import money_totals, table_metadata
from assets.partitions import MONTHLY, billing_month, billing_run_id, goes_on_to
from assets.resources import OrbStore
from billing.gc_pause import gc_paused
from invoicing.issuing import compute_corrections, invoice_run
from reports.documents import render_drafts
from storage import billing_runs
from storage.duck import connect


@dg.multi_asset(
    specs=[
        dg.AssetSpec("invoices", deps=["line_items"], partitions_def=MONTHLY,
                     group_name="invoicing", kinds={"duckdb", "parquet"},
                     description="One invoice per customer, currency and invoice date: "
                     "subtotal, adjustments, credits applied, total = amount due."),
        dg.AssetSpec("invoice_adjustments", deps=["line_items"], partitions_def=MONTHLY,
                     group_name="invoicing", kinds={"parquet"},
                     description="Each discount, minimum and maximum applied, in order."),
        dg.AssetSpec("invoice_taxes", deps=["line_items"], partitions_def=MONTHLY,
                     group_name="invoicing", kinds={"parquet"},
                     description="Tax lines, after adjustments and credits: per taxable "
                     "line or per invoice, with rate, jurisdiction and reason."),
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
    check_start(context, store)  # the balances it reads are the months before's
    month, run_id = billing_month(context), billing_run_id(context)
    lake, con = store.lake, connect()
    line_items = billing_runs.read_month(lake, month, ["line_items"], run_id)["line_items"]
    with gc_paused():  # as in usage (assets/rating.py)
        invoiced = invoice_run(con, lake, store.billing_catalog(context), month, line_items)
    # written behind, as the rating tables are (assets/rating.py), if the run's commit,
    # which waits for them, follows in this process; its next steps read them from memory
    behind = goes_on_to(context, "billing_run")
    for table, rows in (("invoices", invoiced.invoices),
                        ("invoice_adjustments", invoiced.adjustments),
                        ("credit_ledger", invoiced.ledger),
                        ("invoice_taxes", invoiced.taxes)):
        path = billing_runs.write(lake, table, month, run_id, rows, behind=behind)
        yield dg.MaterializeResult(asset_key=table, metadata={
            **table_metadata(table, rows, path),
            **(money_totals(rows, {"billed": "total", "amount_due": "amount_due"})
               if table == "invoices" else {})})


@dg.asset(partitions_def=MONTHLY, deps=["invoices", "invoice_adjustments", "invoice_taxes"],
          group_name="invoicing", kinds={"duckdb", "parquet"})
def invoice_corrections(context: dg.AssetExecutionContext,
                        store: OrbStore) -> dg.MaterializeResult:
    """Per-line differences between this run and the issued invoices of the month: the
    draft credit notes and adjustment invoices that correct them."""
    month, run_id = billing_month(context), billing_run_id(context)
    lake = store.lake
    run = billing_runs.read_month(
        lake, month, ["line_items", "invoice_adjustments", "invoice_taxes",
                      "rating_exclusions"], run_id)
    rows = compute_corrections(connect(), lake, month, run["line_items"],
                               run["invoice_adjustments"],
                               set(run["rating_exclusions"].column("customer_id").to_pylist()),
                               run["invoice_taxes"])
    path = billing_runs.write(lake, "invoice_corrections", month, run_id, rows)
    net = sum((r["amount"] for r in rows.to_pylist()), Decimal(0))
    return dg.MaterializeResult(metadata={
        **table_metadata("invoice_corrections", rows, path),
        "corrections": len(set(rows.column("correction_id").to_pylist())), "net": str(net)})


@dg.asset(partitions_def=MONTHLY, group_name="invoicing", kinds={"parquet"},
          deps=["usage", "line_items", "sub_line_items", "invoices", "invoice_adjustments",
                "credit_ledger", "invoice_taxes", invoice_corrections])
def billing_run(context: dg.AssetExecutionContext, store: OrbStore) -> dg.MaterializeResult:
    """The run's commit, after every table of its month (and their blocking checks):
    issuing and the readers after it take a month only whole, from its newest completed
    run (storage/billing_runs.py)."""
    check_commit(context, store)
    run_id = billing_run_id(context)
    path = billing_runs.commit(store.lake, billing_month(context), run_id, datetime.now(UTC))
    return dg.MaterializeResult(metadata={"run_id": run_id,
                                          "path": dg.MetadataValue.path(str(path))})


@dg.asset(partitions_def=MONTHLY, deps=[billing_run], group_name="invoicing", kinds={"html"})
def invoice_documents(context: dg.AssetExecutionContext, store: OrbStore) -> dg.MaterializeResult:
    """An HTML draft per unissued invoice and correction: `reports/invoices/<YYYY-MM>/`,
    only those whose content changed rendered again."""
    month = billing_month(context)
    written = render_drafts(connect(), store.lake, store.billing_catalog(context),
                            store.issuer, month)
    return dg.MaterializeResult(metadata={"documents": written.documents,
                                          "rendered": written.rendered,
                                          "removed": written.removed,
                                          "folder": dg.MetadataValue.path(str(written.folder)),
                                          "report": dg.MetadataValue.url(written.folder.as_uri())})
