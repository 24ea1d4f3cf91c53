"""Assemble a billing run's invoices: priced lines, then adjustments, then prepaid credits.

Every step is set-based SQL over all of the run's invoices at once (``invoicing/sql/``):
the adjustments each invoice takes, in Orb's order (``applied_adjustments.sql``), its
totals, and the prepaid credits drawn from each customer's grants
(``credit_drawdown.sql``). Python only hands over the adjustment terms, the grants and
their balances as tables. The rules are in docs/invoicing.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import duckdb
import pyarrow as pa

from billing.catalog import Catalog
from billing.charges import (
    AdjustmentTerm,
    BillingWindow,
    adjustment_terms,
    billing_windows,
    run_span,
)
from billing.credits import Grant
from invoicing.sql import load_sql
from storage.tables import AMOUNT
from storage.tables import CREDIT_LEDGER as LEDGER
from storage.tables import INVOICE_ADJUSTMENTS as ADJUSTMENTS

# An adjustment's amount or fraction, to 18 places (a third off: "0.333333333333333333").
PARAMETER = pa.decimal128(38, 18)
PARAMETERS = {"amount_discount": "amount_discount", "percentage_discount": "percentage_discount",
              "minimum": "minimum_amount", "maximum": "maximum_amount"}
TERMS = pa.schema([("customer_id", pa.string()), ("net_terms", pa.int32())])
BALANCES = pa.schema([
    ("grant_id", pa.string()),
    ("customer_id", pa.string()),
    ("currency", pa.string()),
    ("effective_date", pa.date32()),
    ("expiry_date", pa.date32()),
    ("balance", AMOUNT),
])
ISSUED_CREDITS = pa.schema([("invoice_id", pa.string()), ("credits_applied", AMOUNT)])


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
    ("adjustment_type", pa.string()),
    ("parameter", PARAMETER),
    ("plan_id", pa.string()),
    ("plan_version", pa.int32()),
    ("applies_to_price_ids", pa.list_(pa.string())),
    ("valid_from", pa.date32()),
    ("valid_until", pa.date32()),
])


def terms_table(terms: list[AdjustmentTerm]) -> pa.Table:
    """The adjustment terms with each adjustment's type and parameter: its amount, or
    its fraction for a percentage discount."""
    parameters: dict[int, Decimal] = {}  # many terms share one adjustment (a plan's)
    for t in terms:
        if id(t.adjustment) not in parameters:
            parameters[id(t.adjustment)] = getattr(
                t.adjustment, PARAMETERS[t.adjustment.adjustment_type])
    return pa.Table.from_pydict({
        "invoice_id": [t.invoice_id for t in terms],
        "subscription_id": [t.subscription_id for t in terms],
        "source": [t.source for t in terms],
        "adjustment_id": [t.adjustment.id for t in terms],
        "adjustment_type": [t.adjustment.adjustment_type for t in terms],
        "parameter": [parameters[id(t.adjustment)] for t in terms],
        "plan_id": [t.plan_id for t in terms],
        "plan_version": [t.plan_version for t in terms],
        "applies_to_price_ids": [t.adjustment.applies_to_price_ids for t in terms],
        "valid_from": [t.valid_from for t in terms],
        "valid_until": [t.valid_until for t in terms],
    }, schema=TERMS_SCHEMA)


def adjustment_scopes(con: duckdb.DuckDBPyConnection, terms: list[AdjustmentTerm],
                      line_items: pa.Table) -> None:
    """The temp table ``adjustment_scopes``: each adjustment on each invoice with the
    lines it covers (adjustment_scopes.sql)."""
    con.register("adjustment_terms", terms_table(terms))
    con.register("line_items", line_items)
    con.execute(load_sql("adjustment_scopes"))


def applied_adjustments(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Every adjustment applied on the run's invoices, in the order applied, from
    ``adjustment_scopes`` (applied_adjustments.sql)."""
    return con.sql(load_sql("applied_adjustments")).to_arrow_table().cast(ADJUSTMENTS)


def invoice_adjustments(con: duckdb.DuckDBPyConnection, catalog: Catalog,
                        windows: Sequence[BillingWindow], line_items: pa.Table) -> pa.Table:
    """Every adjustment applied on the run's invoices, in the order applied."""
    terms = adjustment_terms(catalog, windows)
    if not terms:
        return ADJUSTMENTS.empty_table()
    adjustment_scopes(con, terms, line_items)
    return applied_adjustments(con)


def invoice_totals(con: duckdb.DuckDBPyConnection, line_items: pa.Table,
                   adjustments: pa.Table) -> None:
    """The temp table ``invoice_totals``: each invoice before credits (invoice_totals.sql)."""
    con.register("line_items", line_items)
    con.register("invoice_adjustments", adjustments)
    con.execute(load_sql("invoice_totals"))


def draw_credits(con: duckdb.DuckDBPyConnection, month: date, grants: list[Grant],
                 balances: dict[str, Decimal], issued_credits: dict[str, Decimal]) -> pa.Table:
    """The run's credit ledger entries (credit_drawdown.sql): drawdowns against the
    invoices of ``invoice_totals``, then expiries. ``balances``: each grant's balance
    before the run (its amount when missing); ``issued_credits``: credits on invoices
    already issued, which stay as issued. Registers the entries as ``credit_entries``."""
    con.register("credit_balances", pa.Table.from_pydict({
        "grant_id": [g.grant_id for g in grants],
        "customer_id": [g.customer_id for g in grants],
        "currency": [g.currency for g in grants],
        "effective_date": [g.effective_date for g in grants],
        "expiry_date": [g.expiry_date for g in grants],
        "balance": [balances.get(g.grant_id, g.amount) for g in grants],
    }, schema=BALANCES))
    con.register("issued_credits", pa.Table.from_pydict({
        "invoice_id": list(issued_credits), "credits_applied": list(issued_credits.values()),
    }, schema=ISSUED_CREDITS))
    after, through = run_span(month)
    ledger = con.sql(load_sql("credit_drawdown"),
                     params={"after": after, "through": through}).to_arrow_table().cast(LEDGER)
    con.register("credit_entries", ledger)
    return ledger


def invoice_heads(con: duckdb.DuckDBPyConnection, catalog: Catalog) -> pa.Table:
    """The invoices, from ``invoice_totals`` and ``credit_entries`` (invoices.sql)."""
    con.register("customer_terms", pa.Table.from_pylist(
        [{"customer_id": c.id, "net_terms": c.net_terms} for c in catalog.customers],
        schema=TERMS))
    return con.sql(load_sql("invoices")).to_arrow_table()


def assemble_invoices(con: duckdb.DuckDBPyConnection, catalog: Catalog, month: date,
                      line_items: pa.Table, grants: list[Grant],
                      balances: dict[str, Decimal],
                      issued_credits: dict[str, Decimal]) -> Invoiced:
    """Invoices of the run for ``month``. ``balances``: each grant's balance before this
    run; ``issued_credits``: credits on invoices already issued, which stay as issued."""
    adjustments = invoice_adjustments(con, catalog, billing_windows(catalog, month),
                                      line_items)
    invoice_totals(con, line_items, adjustments)
    ledger = draw_credits(con, month, grants, balances, issued_credits)
    return Invoiced(invoice_heads(con, catalog), adjustments, ledger)
