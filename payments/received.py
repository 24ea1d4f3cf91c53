"""Money received for invoices and refunded on them: ``invoice_payments``, append-only.

One row per movement, ``invoice_payments/payment_id=<id>/data.parquet``, written once:
a movement whose id exists is not recorded again, so the payment run, the payments
file, a replayed Stripe webhook and the API can all report the same payment and it
counts once. Ids are the processor's: ``stripe:<Stripe invoice id>`` for a Stripe
invoice paid (by the run or by its ``invoice.paid`` webhook alike), ``stripe:<re_…>``
for a Stripe refund, ``manual:<digest of the file line>``, ``api:<uuid>``.

``settle`` is what follows a payment: when the invoice's payments reach its amount due
it is paid, and what is over goes to the customer's balance (``overpayment_refund``),
to be applied to the next invoice. Every writer holds ``lake.lock("received")``.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Literal

import pyarrow as pa

from billing import money
from invoicing import amounts_due, balance, documents
from invoicing.document_model import IssuedHead
from storage.lake import Lake
from storage.tables import INVOICE_PAYMENTS as SCHEMA
from storage.tables import TABLES

TABLE = "invoice_payments"
KEY = TABLES[TABLE].key


class PaymentRefused(ValueError):
    """A payment or refund that cannot be recorded; the message names the invoice."""


@dataclass(frozen=True)
class Movement:
    """A row of ``invoice_payments``: a payment (amount > 0) or a refund (amount < 0)."""

    payment_id: str
    kind: Literal["payment", "refund"]
    number: str
    customer_id: str
    currency: str
    amount: Decimal
    processor: str
    reference: str
    paid_at: datetime
    recorded_at: datetime
    source: str


@dataclass(frozen=True)
class Settled:
    """After a payment: the invoice's amounts, whether it became paid now, and what
    went to the balance."""

    amounts: amounts_due.InvoiceAmounts
    became_paid: bool
    to_balance: Decimal


def line_id(number: str, amount: Decimal, currency: str, paid_at: datetime,
            reference: str) -> str:
    """A payments-file line's id: the same line read again is the same payment."""
    text = "|".join((number, str(amount), currency, paid_at.isoformat(), reference))
    return "manual:" + hashlib.sha256(text.encode()).hexdigest()[:24]


def exists(lake: Lake, payment_id: str) -> bool:
    return lake.partition_file(TABLE, KEY, payment_id).exists()


def _write(lake: Lake, movement: Movement) -> bool:
    if exists(lake, movement.payment_id):
        return False
    if "/" in movement.payment_id or movement.amount == 0:
        raise PaymentRefused(f"{movement.number}: bad movement {movement.payment_id!r} "
                             f"of {movement.amount}")
    money.check_amount(abs(movement.amount), movement.currency)
    lake.write_partition(TABLE, KEY, movement.payment_id,
                         pa.Table.from_pylist([asdict(movement)], schema=SCHEMA))
    return True


def _head(lake: Lake, number: str) -> IssuedHead:
    head = next((h for h in documents.issued_documents(lake) if h.number == number), None)
    if head is None or head.document_type not in amounts_due.PAYABLE:
        raise PaymentRefused(f"no issued invoice {number!r}")
    return head


def _amounts(lake: Lake, head: IssuedHead) -> amounts_due.InvoiceAmounts:
    heads = [h for h in documents.issued_documents(lake)
             if h.number == head.number or h.corrects == head.number]
    status = {h.number: s for h in heads if (s := documents.status_of(lake, h.number))}
    return amounts_due.read_amounts_due(lake, heads, status)[head.number]


@dataclass(frozen=True)
class Known:
    """What a caller that read every invoice once (the payment run) knows of one: its
    head, status and amounts before the payment, so that settling reads nothing."""

    head: IssuedHead
    status: str
    amounts: amounts_due.InvoiceAmounts


def record_payment(lake: Lake, number: str, amount: Decimal, currency: str, paid_at: datetime,
                   at: datetime, processor: str, reference: str, payment_id: str,
                   source: str, mark_paid: bool = True, known: Known | None = None) -> Settled:
    """Record a payment of ``amount`` on invoice ``number`` once (a payment whose id is
    recorded already is not written again: the invoice is only settled) and settle the
    invoice. ``mark_paid`` False: the caller writes the ``paid`` status itself (the
    payment run batches them)."""
    with lake.lock("received"):
        head = known.head if known else _head(lake, number)
        if currency != head.currency:
            raise PaymentRefused(f"{number} is in {head.currency}, the payment is in "
                                 f"{currency} (a payment must be in the invoice's currency)")
        status = known.status if known else documents.status_of(lake, number)
        if status == "void":
            raise PaymentRefused(f"{number} is void: a payment for a void invoice is refused")
        if amount <= 0:
            raise PaymentRefused(f"{number}: a payment must be above zero, not {amount}")
        written = _write(lake, Movement(payment_id, "payment", number, head.customer_id,
                                        currency, amount, processor, reference, paid_at, at,
                                        source))
        before = known.amounts if known else None
        return _settle(lake, head, status == "paid", payment_id, at, paid_at,
                       f"{processor} {reference}".strip(), mark_paid,
                       before and replace(before, paid=before.paid + (amount if written else 0)))


def _settle(lake: Lake, head: IssuedHead, was_paid: bool, payment_id: str, at: datetime,
            paid_at: datetime, note: str, mark_paid: bool,
            amounts: amounts_due.InvoiceAmounts | None) -> Settled:
    """``amounts``: the invoice's with this payment counted, when the caller knows them;
    else read."""
    amounts = amounts or _amounts(lake, head)
    over = amounts.paid - amounts.amount_due
    if over > 0:  # an overpayment, or a payment on a paid invoice: to the balance
        balance.credit(lake, f"over~{payment_id}", head.customer_id, head.currency, over,
                       "overpayment_refund", at, head.number,
                       description=f"overpayment of {head.number}")
        amounts = replace(amounts, paid=amounts.amount_due)
    amounts = replace(amounts, remaining=max(amounts.amount_due - amounts.paid, Decimal(0)))
    became_paid = not was_paid and amounts.remaining == 0
    if became_paid and mark_paid:
        documents.change_status(lake, head.number, "paid", paid_at, note)
    return Settled(amounts, became_paid, max(over, Decimal(0)))


def record_refund(lake: Lake, number: str, amount: Decimal, at: datetime, processor: str,
                  reference: str, refund_id: str, source: str) -> Movement | None:
    """Record a refund of ``amount`` (> 0) on invoice ``number`` once (None: recorded
    already). At most what was paid on it net of earlier refunds; the document keeps its
    status (a refund of a paid invoice does not reopen it: docs/payments.md)."""
    with lake.lock("received"):
        head = _head(lake, number)
        if amount <= 0:
            raise PaymentRefused(f"{number}: a refund must be above zero, not {amount}")
        if exists(lake, refund_id):
            return None
        _check_refund(lake, head, amount)
        movement = Movement(refund_id, "refund", number, head.customer_id, head.currency,
                            -amount, processor, reference, at, at, source)
        _write(lake, movement)
        return movement


def _check_refund(lake: Lake, head: IssuedHead, amount: Decimal) -> None:
    paid = _amounts(lake, head).paid
    if amount > paid:
        raise PaymentRefused(f"{head.number}: refund of {amount} {head.currency} is more than "
                             f"the {paid} {head.currency} paid on it")


def check_refund(lake: Lake, number: str, amount: Decimal) -> None:
    """Refuse a refund of more than what was paid on the invoice, net of refunds."""
    if amount <= 0:
        raise PaymentRefused(f"{number}: a refund must be above zero, not {amount}")
    _check_refund(lake, _head(lake, number), amount)


def movements(lake: Lake, number: str | None = None) -> list[Movement]:
    """The movements (of one invoice), in (paid_at, id) order, at the currency's unit."""
    return [Movement(**{**row, "amount": money.quantize(row["amount"], row["currency"])})
            for row in amounts_due.payment_rows(lake) if number is None or row["number"] == number]
