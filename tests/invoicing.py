"""Helpers for invoicing tests: bill a catalog for a month from usage given per window."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pyarrow as pa

from billing.catalog import Catalog
from billing.credits import Grant
from invoicing.assembly import assemble_invoices, draw_credits
from pricing_sql.rating import price_line_items
from storage.duck import connect
from storage.tables import AMOUNT
from storage.tables import USAGE as USAGE_SCHEMA
from tests.catalogs import unit


@dataclass
class Bill:
    invoices: dict  # invoice id -> head
    lines: dict  # line item id -> line
    adjustments: list[dict]
    ledger: list[dict]
    line_items: pa.Table
    adjustment_table: pa.Table


def usage_table(quantities: dict[tuple[str, str], object]) -> pa.Table:
    """``{(window_id, metric): quantity}`` as the usage table."""
    return pa.Table.from_pylist(
        [{"window_id": window, "metric_id": metric, "grouping": [], "group_values": [],
          "quantity": Decimal(str(q))} for (window, metric), q in quantities.items()],
        schema=USAGE_SCHEMA)


def bill(catalog, month: date, usage: dict | None = None, grants: list[Grant] = (),
         balances: dict | None = None) -> Bill:
    con = connect()
    priced = price_line_items(con, catalog, month, usage_table(usage or {}))
    invoiced = assemble_invoices(con, catalog, month, priced.line_items, list(grants),
                                 balances or {}, {})
    return Bill({r["invoice_id"]: r for r in invoiced.invoices.to_pylist()},
                {r["line_item_id"]: r for r in priced.line_items.to_pylist()},
                invoiced.adjustments.to_pylist(), invoiced.ledger.to_pylist(),
                priced.line_items, invoiced.adjustments)


def totals(result: Bill) -> dict[str, Decimal]:
    return {key: head["total"] for key, head in result.invoices.items()}


def basic(fee="30.00", calls="0.10", plan_id="basic", **extra):
    return {"id": plan_id, "name": plan_id, "currency": "USD", "prices": [
        unit(f"{plan_id}_fee", fee, fixed_quantity=1),
        unit(f"{plan_id}_calls", calls, metric="calls")], **extra}


def shop(plans, subscription, coupons=(), timezone="UTC"):
    return Catalog.model_validate({
        "metrics": [{"id": "calls", "name": "calls", "sql": "SELECT count(*) FROM events"}],
        "plans": plans,
        "customers": [{"id": "c", "name": "C", "timezone": timezone}],
        "subscriptions": [{"id": "s", "customer_id": "c", **subscription}],
        "coupons": list(coupons),
    })


@dataclass(frozen=True)
class Creditable:
    """An invoice as the credit drawdown sees it."""

    invoice_id: str
    customer_id: str
    currency: str
    invoice_date: date
    amount: Decimal  # the most credits may pay on this invoice


CREDITABLE = pa.schema([("invoice_id", pa.string()), ("customer_id", pa.string()),
                        ("currency", pa.string()), ("invoice_date", pa.date32()),
                        ("creditable", AMOUNT)])


def drawdown(grants: list[Grant], balances: dict, invoices: list[Creditable], month: date,
             issued: dict | None = None, con=None) -> pa.Table:
    """The credit ledger of the run for ``month`` whose invoices may take these amounts."""
    con = con or connect()
    con.register("invoice_totals", pa.Table.from_pylist(
        [{"invoice_id": i.invoice_id, "customer_id": i.customer_id, "currency": i.currency,
          "invoice_date": i.invoice_date, "creditable": i.amount} for i in invoices],
        schema=CREDITABLE))
    return draw_credits(con, month, list(grants), balances, issued or {})
