"""Assemble a billing run's invoices: priced lines, then adjustments, then prepaid credits,
then taxes, then what a credit leaves below zero carried to the customer balance.

Every step is set-based SQL over all of the run's invoices at once (``invoicing/sql/``):
the adjustments each invoice takes, in Orb's order (``applied_adjustments.sql``), its
totals, the prepaid credits drawn from each customer's grants
(``credit_drawdown.sql``), and the tax on what is left (``invoicing/taxes/``). Python
only hands over the adjustment terms, the grants and their balances as tables. The rules
are in docs/invoicing.md.
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
from invoicing.balance import CARRIED_ID, CARRIED_SOURCE
from invoicing.sql import load_sql
from invoicing.taxes.provider import TaxProvider, invoice_taxes
from invoicing.usage_discounts import usage_discount_lines
from storage.tables import AMOUNT
from storage.tables import CREDIT_LEDGER as LEDGER
from storage.tables import INVOICE_ADJUSTMENTS as ADJUSTMENTS

# An adjustment's amount or fraction, to 18 places (a third off: "0.333333333333333333").
PARAMETER = pa.decimal128(38, 18)
PARAMETERS = {"usage_discount": "usage_discount", "amount_discount": "amount_discount",
              "percentage_discount": "percentage_discount", "minimum": "minimum_amount",
              "maximum": "maximum_amount"}
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
    taxes: pa.Table  # invoice_taxes: the run's tax lines


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
    """The adjustment terms with each adjustment's type and parameter: its amount, its
    fraction for a percentage discount, its units for a usage discount."""
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
                      line_items: pa.Table, catalog: Catalog,
                      windows: Sequence[BillingWindow]) -> None:
    """The temp table ``adjustment_scopes``: each adjustment on each invoice with the
    lines it covers (adjustment_scopes.sql), a usage discount with what it takes off
    them (``usage_discounts.py``, pricing lines of ``windows`` again)."""
    con.register("adjustment_terms", terms_table(terms))
    con.register("line_items", line_items)
    con.execute(load_sql("adjustment_lines"))
    con.register("usage_discount_lines", usage_discount_lines(con, catalog, windows))
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
    adjustment_scopes(con, terms, line_items, catalog, windows)
    return applied_adjustments(con)


def previously_invoiced(con: duckdb.DuckDBPyConnection, line_items: pa.Table) -> pa.Table:
    """What the period's threshold invoices among ``line_items`` billed, taken off the
    next invoice of the period line by line (threshold_deductions.sql; docs/invoicing.md
    #threshold-invoices): after every other adjustment, none of whose bases it changes.
    Registers ``line_items``."""
    con.register("line_items", line_items)
    return con.sql(load_sql("threshold_deductions")).to_arrow_table().cast(ADJUSTMENTS)


def invoice_totals(con: duckdb.DuckDBPyConnection, line_items: pa.Table,
                   adjustments: pa.Table) -> None:
    """The temp table ``invoice_totals``: each invoice before credits (invoice_totals.sql)."""
    con.register("line_items", line_items)
    con.register("invoice_adjustments", adjustments)
    con.execute(load_sql("invoice_totals"))


def totals_by_key(con: duckdb.DuckDBPyConnection, terms: list[AdjustmentTerm],
                  line_items: pa.Table, catalog: Catalog,
                  windows: Sequence[BillingWindow]) -> dict[str, Decimal]:
    """Each invoice's total before credits (subtotal + adjustments), summed by the key
    after the last ``@`` of its id: an on-demand rating (the API's costs, the alerts)
    names its invoices ``<invoice>@<key>``, one key per period or day it rates."""
    adjustments = ADJUSTMENTS.empty_table()
    if terms:
        adjustment_scopes(con, terms, line_items, catalog, windows)
        adjustments = applied_adjustments(con)
    invoice_totals(con, line_items, adjustments)
    totals: dict[str, Decimal] = {}
    for invoice_id, subtotal, adjusted in con.sql(
            "SELECT invoice_id, subtotal, adjustments FROM invoice_totals").fetchall():
        key = invoice_id.rsplit("@", 1)[1]
        totals[key] = totals.get(key, Decimal(0)) + subtotal + adjusted
    return totals


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


def carried_to_balance(con: duckdb.DuckDBPyConnection, heads: pa.Table) -> pa.Table:
    """The adjustment of +excess on each invoice of ``heads`` (invoice_heads) that a
    credit would make negative (carried_to_balance.sql): the excess goes to the customer
    balance when it is issued."""
    con.register("invoice_heads_before", heads)
    return con.sql(load_sql("carried_to_balance"), params={
        "adjustment_id": CARRIED_ID, "source": CARRIED_SOURCE}).to_arrow_table().cast(ADJUSTMENTS)


def invoice_heads(con: duckdb.DuckDBPyConnection, catalog: Catalog) -> pa.Table:
    """The invoices, from ``invoice_totals``, ``credit_entries`` and ``invoice_taxes``
    (invoices.sql)."""
    con.register("customer_terms", pa.Table.from_arrays(
        [pa.array([c.id for c in catalog.customers], pa.string()),
         pa.array([c.net_terms for c in catalog.customers], TERMS.field("net_terms").type)],
        schema=TERMS))
    return con.sql(load_sql("invoices")).to_arrow_table()


def assemble_invoices(con: duckdb.DuckDBPyConnection, catalog: Catalog, month: date,
                      line_items: pa.Table, grants: list[Grant],
                      balances: dict[str, Decimal],
                      issued_credits: dict[str, Decimal],
                      tax_provider: TaxProvider | None = None) -> Invoiced:
    """Invoices of the run for ``month``. ``balances``: each grant's balance before this
    run; ``issued_credits``: credits on invoices already issued, which stay as issued;
    ``tax_provider``: instead of the catalog's (``invoicing/taxes/provider.py``)."""
    adjustments = pa.concat_tables([
        invoice_adjustments(con, catalog, billing_windows(catalog, month), line_items),
        previously_invoiced(con, line_items)])
    invoice_totals(con, line_items, adjustments)
    ledger = draw_credits(con, month, grants, balances, issued_credits)
    taxes = invoice_taxes(con, catalog, tax_provider)  # after credits: Orb's order
    heads = invoice_heads(con, catalog)
    carried = carried_to_balance(con, heads)
    if carried.num_rows:  # untaxed, and after credits: only the heads' adjustments change
        adjustments = pa.concat_tables([adjustments, carried])
        invoice_totals(con, line_items, adjustments)
        heads = invoice_heads(con, catalog)
    return Invoiced(heads, adjustments, ledger, taxes)
