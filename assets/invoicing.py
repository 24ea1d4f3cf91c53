"""Invoicing domain: draft invoices from line items, and one HTML document per invoice."""

from itertools import groupby
from operator import itemgetter

import dagster as dg

from assets.partitions import MONTHLY, billing_month
from pipelines.resources import OrbStore
from pricing_sql.rating import build_invoices
from reports.render import render_invoice
from storage.duck import connect


@dg.asset(partitions_def=MONTHLY, deps=["line_items"], group_name="invoicing",
          kinds={"duckdb", "parquet"})
def invoices(context: dg.AssetExecutionContext, store: OrbStore) -> dg.MaterializeResult:
    """One draft invoice per customer and currency; total = sum of rounded lines."""
    month = billing_month(context)
    lines = store.lake.read_partition("line_items", "billing_month", month)
    table = build_invoices(connect(), lines)
    path = store.lake.write_partition("invoices", "billing_month", month, table)
    return dg.MaterializeResult(metadata={"invoices": table.num_rows,
                                          "path": dg.MetadataValue.path(str(path))})


@dg.asset(partitions_def=MONTHLY, deps=[invoices, "sub_line_items"], group_name="invoicing",
          kinds={"html"})
def invoice_documents(context: dg.AssetExecutionContext, store: OrbStore) -> dg.MaterializeResult:
    """An HTML invoice per customer: reports/invoices/<YYYY-MM>/<invoice_id>.html."""
    month = billing_month(context)
    lake = store.lake
    catalog = store.catalog()
    heads = lake.read_partition("invoices", "billing_month", month).to_pylist()
    lines = lake.read_partition("line_items", "billing_month", month).to_pylist()
    details = lake.read_partition("sub_line_items", "billing_month", month).to_pylist()
    # Both tables are sorted by their ids, so groupby sees each id's rows together.
    by_line = {key: list(rows) for key, rows in groupby(details, key=itemgetter("line_item_id"))}
    for line in lines:
        line["sub_line_items"] = by_line.get(line["line_item_id"], [])
    by_invoice = {key: list(rows) for key, rows in groupby(lines, key=itemgetter("invoice_id"))}
    documents = {
        f"{head['invoice_id']}.html": render_invoice(
            head, by_invoice[head["invoice_id"]], catalog.customer(head["customer_id"]),
            store.issuer)
        for head in heads
    }
    folder = lake.replace_directory(lake.reports / "invoices" / month.strftime("%Y-%m"), documents)
    return dg.MaterializeResult(metadata={"documents": len(documents),
                                          "folder": dg.MetadataValue.path(str(folder))})
