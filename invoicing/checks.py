"""What must hold of a billing run's invoices before they are rendered or issued."""

from __future__ import annotations

from datetime import date

from invoicing.sql import load_sql
from storage.duck import connect
from storage.lake import Lake
from storage.tables import TABLES


def invoice_total_failures(lake: Lake, month: date) -> list[tuple]:
    """Invoices of the run whose subtotal is not the sum of their rounded lines, whose
    total is not subtotal + adjustments - credits, or that are negative
    (``check_invoice_totals.sql``); empty when every invoice adds up."""
    con = connect()
    for table in ("invoices", "line_items", "invoice_adjustments"):
        con.register(table, lake.read_partition(table, TABLES[table].key, month))
    return con.sql(load_sql("check_invoice_totals")).fetchall()
