"""What must hold of a billing run's invoices before they are rendered or issued."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pyarrow as pa

from invoicing.sql import load_sql
from storage.billing_runs import MonthTables, read_month
from storage.duck import connect
from storage.lake import Lake
from storage.tables import AMOUNT

CHECKED = ("invoices", "line_items", "invoice_adjustments", "invoice_taxes")


def total_failures(run: MonthTables) -> list[tuple]:
    """Invoices of the run whose subtotal is not the sum of their rounded lines, whose
    total is not subtotal + adjustments - credits + tax, or that are negative
    (``check_invoice_totals.sql``); empty when every invoice adds up. ``run``: at least
    ``CHECKED`` of one billing run, as issuing reads them too."""
    con = connect()
    for table in CHECKED:
        con.register(table, run[table])
    invoices = run["invoices"]
    if "tax" not in invoices.schema.names:  # a month billed before taxes: none
        con.register("invoices", invoices.append_column(
            "tax", pa.repeat(pa.scalar(Decimal(0), AMOUNT), invoices.num_rows)))
    return con.sql(load_sql("check_invoice_totals")).fetchall()


def invoice_total_failures(lake: Lake, month: date, run_id: str) -> list[tuple]:
    """``total_failures`` of the invoices billing run ``run_id`` wrote for ``month``."""
    return total_failures(read_month(lake, month, CHECKED, run_id))
