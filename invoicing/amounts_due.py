"""What each issued invoice asks for and what was paid on it, derived, never stored on
the document (issued documents never change; docs/invoicing.md "Customer balance").

    amount due = total - balance applied at issue - credit notes issued while it was unpaid
    paid       = payments - refunds - excess moved to the balance (overpayments)
    remaining  = amount due - paid, never below zero

The balance applied comes from ``balance_transactions`` (``applied_to_invoice``), the
payments and refunds from ``invoice_payments`` (written by payments/received.py), the
excess from ``overpayment_refund`` transactions. A credit note against a paid invoice
went to the balance (``credit_note_applied``), so it does not lower the amount due.
Everything is Decimal at the currency's minor unit: the inputs are, and only sums and
differences are taken, so nothing is rounded here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from billing import money
from invoicing import balance
from invoicing.document_model import DocumentStatus, IssuedHead
from storage.lake import Lake
from storage.tables import INVOICE_PAYMENTS

PAYABLE = ("invoice", "adjustment_invoice")


@dataclass(frozen=True)
class InvoiceAmounts:
    number: str
    total: Decimal
    balance_applied: Decimal  # > 0: the customer's credit balance used at issue
    credited: Decimal  # > 0: credit notes against it while unpaid
    amount_due: Decimal
    paid: Decimal  # net of refunds and of the excess moved to the balance
    remaining: Decimal


def payment_rows(lake: Lake) -> list[dict]:
    """Every row of ``invoice_payments`` (payments and refunds), in (paid_at, id) order."""
    rows = lake.read_all("invoice_payments", INVOICE_PAYMENTS).to_pylist()
    return sorted(rows, key=lambda r: (r["paid_at"], r["payment_id"]))


def amounts_due(heads: Iterable[IssuedHead], status: Mapping[str, DocumentStatus],
                transactions: Iterable[balance.Transaction], payments: Iterable[dict]
                ) -> dict[str, InvoiceAmounts]:
    """The amounts of each invoice and adjustment invoice of ``heads``."""
    heads = list(heads)
    transactions = list(transactions)
    applied = balance.applied_to(transactions)
    to_balance = {t.credit_note_number for t in transactions
                  if t.action == "credit_note_applied" and t.credit_note_number}
    excess: defaultdict[str, Decimal] = defaultdict(Decimal)
    for t in transactions:
        if t.action == "overpayment_refund" and t.invoice_number:
            excess[t.invoice_number] -= t.amount  # a credit: negative amount
    credited: defaultdict[str, Decimal] = defaultdict(Decimal)
    for h in heads:
        if (h.document_type == "credit_note" and h.corrects and h.number not in to_balance
                and status.get(h.number) != "void"):
            credited[h.corrects] -= h.total
    paid: defaultdict[str, Decimal] = defaultdict(Decimal)
    for p in payments:
        paid[p["number"]] += p["amount"]
    result = {}
    for h in heads:
        if h.document_type not in PAYABLE:
            continue
        used = applied.get(h.number, Decimal(0))
        due = max(h.total - used - credited[h.number], Decimal(0))
        net = paid[h.number] - excess[h.number]
        values = (h.total, used, credited[h.number], due, net, max(due - net, Decimal(0)))
        # sums of amounts at the minor unit: quantize only drops the lake's extra zeros
        result[h.number] = InvoiceAmounts(h.number, *(money.quantize(v, h.currency)
                                                      for v in values))
    return result


def read_amounts_due(lake: Lake, heads: Iterable[IssuedHead],
                     status: Mapping[str, DocumentStatus]) -> dict[str, InvoiceAmounts]:
    return amounts_due(heads, status, balance.read(lake), payment_rows(lake))
