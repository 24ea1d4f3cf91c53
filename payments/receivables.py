"""Open receivables: issued invoices and adjustment invoices, not void, not paid in full.

For dunning, the aging of accounts receivable, the payment run and the API. The amounts
are those of ``invoicing.amounts_due`` (amount due after the balance applied and credit
notes, paid net of refunds and overpayments). ``past_due``: the invoice is still open
after its due date, i.e. ``as_of`` is later than ``due_date``; ``as_of`` is the day in
the customer's time zone (``billing.periods.local_day``), since due dates are the customer's
calendar days. A derived state: the document's status stays ``issued`` (docs/payments.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from invoicing import amounts_due, documents
from storage.duck import connect
from storage.lake import Lake


@dataclass(frozen=True)
class Receivable:
    number: str
    customer_id: str
    currency: str
    invoice_date: date
    due_date: date
    amount_due: Decimal  # total less the balance applied and credit notes
    paid: Decimal  # net of refunds
    remaining: Decimal  # amount_due - paid, > 0
    past_due: bool


def is_past_due(due_date: date, as_of: date) -> bool:
    """Past due from the day after the due date on: due Nov 30 is past due on Dec 1."""
    return as_of > due_date


def open_receivables(lake: Lake, as_of: date | Callable[[str], date]) -> list[Receivable]:
    """Every open receivable, in number order, past due as of the day ``as_of``, or of
    each customer's day (``as_of(customer_id)``: their today on their calendar)."""
    day_of = as_of if callable(as_of) else lambda _customer: as_of
    heads = documents.issued_documents(lake)
    status = documents.statuses(connect(), lake)
    amounts = amounts_due.read_amounts_due(lake, heads, status)
    return [Receivable(h.number, h.customer_id, h.currency, h.invoice_date, h.due_date,
                       a.amount_due, a.paid, a.remaining,
                       is_past_due(h.due_date, day_of(h.customer_id)))
            for h in sorted(heads, key=lambda h: h.number)
            if (a := amounts.get(h.number)) is not None and status.get(h.number) == "issued"
            and a.remaining > 0]
