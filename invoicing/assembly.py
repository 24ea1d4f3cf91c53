"""Assemble a billing run's invoices: priced lines, then adjustments, then prepaid credits.

Adjustments and credit drawdowns are ordered folds over a handful of amounts per
invoice (``billing/adjustments.py``, ``billing/credits.py``); the sums around them
are SQL over all invoices at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal

import duckdb
import pyarrow as pa

from billing.adjustments import Scope, apply_adjustments
from billing.catalog import Catalog
from billing.charges import BillingWindow, adjustment_terms, billing_windows, run_span
from billing.credits import Creditable, Grant, applied_by_invoice, draw_down
from invoicing.sql import load_sql
from storage.tables import AMOUNT
from storage.tables import CREDIT_LEDGER as LEDGER
from storage.tables import INVOICE_ADJUSTMENTS as ADJUSTMENTS

CREDITS = pa.schema([("invoice_id", pa.string()), ("credits_applied", AMOUNT)])
TERMS = pa.schema([("customer_id", pa.string()), ("net_terms", pa.int32())])


@dataclass(frozen=True)
class Invoiced:
    invoices: pa.Table
    adjustments: pa.Table
    ledger: pa.Table  # this run's credit ledger entries


TERMS_SCHEMA = pa.schema([
    ("invoice_id", pa.string()),
    ("subscription_id", pa.string()),
    ("source", pa.string()),
    ("adjustment_id", pa.string()),
    ("plan_id", pa.string()),
    ("plan_version", pa.int32()),
    ("applies_to_price_ids", pa.list_(pa.string())),
    ("valid_from", pa.date32()),
    ("valid_until", pa.date32()),
])


def invoice_adjustments(con: duckdb.DuckDBPyConnection, catalog: Catalog,
                        windows: Sequence[BillingWindow], line_items: pa.Table) -> pa.Table:
    """Every adjustment applied on the run's invoices, in the order applied."""
    terms = adjustment_terms(catalog, windows)
    if not terms:
        return ADJUSTMENTS.empty_table()
    by_key = {(t.invoice_id, t.subscription_id, t.source, t.adjustment.id): t.adjustment
              for t in terms}
    con.register("adjustment_terms", pa.Table.from_pylist([
        {"invoice_id": t.invoice_id, "subscription_id": t.subscription_id, "source": t.source,
         "adjustment_id": t.adjustment.id, "plan_id": t.plan_id, "plan_version": t.plan_version,
         "applies_to_price_ids": t.adjustment.applies_to_price_ids, "valid_from": t.valid_from,
         "valid_until": t.valid_until} for t in terms], schema=TERMS_SCHEMA))
    con.register("line_items", line_items)
    scopes = defaultdict(list)
    currency = {}
    for row in con.sql(load_sql("adjustment_scopes")).to_arrow_table().to_pylist():
        key = (row["invoice_id"], row["subscription_id"], row["source"], row["adjustment_id"])
        scopes[row["invoice_id"]].append(Scope(by_key[key], row["source"],
                                               tuple(row["line_item_ids"]),
                                               row["lines_amount"]))
        currency[row["invoice_id"]] = row["currency"]
    rows = [{"invoice_id": invoice, **applied.__dict__}
            for invoice in sorted(scopes)
            for applied in apply_adjustments(scopes[invoice], currency[invoice])]
    return pa.Table.from_pylist(rows, schema=ADJUSTMENTS)


def assemble_invoices(con: duckdb.DuckDBPyConnection, catalog: Catalog, month: date,
                      line_items: pa.Table, grants: list[Grant],
                      balances: dict[str, Decimal],
                      issued_credits: dict[str, Decimal]) -> Invoiced:
    """Invoices of the run for ``month``. ``balances``: each grant's balance before this
    run; ``issued_credits``: credits on invoices already issued, which stay as issued."""
    adjustments = invoice_adjustments(con, catalog, billing_windows(catalog, month),
                                      line_items)
    con.register("line_items", line_items)
    con.register("invoice_adjustments", adjustments)
    con.execute(load_sql("invoice_totals"))
    # Only the invoices of customers with grants reach Python.
    holders = sorted({g.customer_id for g in grants})
    creditable = [
        Creditable(row["invoice_id"], row["customer_id"], row["currency"], row["invoice_date"],
                   issued_credits.get(row["invoice_id"], row["creditable"]))
        for row in con.sql("SELECT invoice_id, customer_id, currency, invoice_date, creditable "
                           "FROM invoice_totals WHERE list_contains($holders, customer_id)",
                           params={"holders": holders}).to_arrow_table().to_pylist()
    ]
    entries = draw_down(grants, balances, creditable, run_span(month))
    ledger = pa.Table.from_pylist([asdict(e) for e in entries], schema=LEDGER)
    con.register("invoice_credits", pa.Table.from_pylist(
        [{"invoice_id": k, "credits_applied": v} for k, v in applied_by_invoice(entries).items()],
        schema=CREDITS))
    con.register("customer_terms", pa.Table.from_pylist(
        [{"customer_id": c.id, "net_terms": c.net_terms} for c in catalog.customers],
        schema=TERMS))
    return Invoiced(con.sql(load_sql("invoices")).to_arrow_table(), adjustments, ledger)
