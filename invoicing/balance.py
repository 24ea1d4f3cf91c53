"""The customer balance: Orb's balance transactions, per customer and currency, append-only.

``balance_transactions/transaction_id=<id>/data.parquet``, one transaction per file,
written once (``Lake.write_partition``); a transaction whose file exists is not written
again, so every writer is idempotent by id. Orb's sign: the balance is what the customer
owes outside invoices, so a **negative balance is credit the customer holds**; each
transaction's ``amount`` is the signed change (``decrement``: more credit).

Who writes: issuing applies the customer's credit to each new invoice
(``applied_to_invoice``, at issue: the invoice's amount due is its total less it); a
credit note against a paid invoice credits the balance (``credit_note_applied``); the
payment layer moves an overpayment's excess to it (``overpayment_refund``); a person
adjusts it (``manual_adjustment``, API and CLI); voiding an invoice gives back what
was applied to it (``return_from_voiding``); issuing a document whose credit exceeded
what it charged credits the excess its ``carried_to_balance`` line holds
(``prorated_refund``, invoicing/sql/carried_to_balance.sql). Prepaid credit grants
(``invoicing/credit_grants.py``) are a different thing and never touch it, as in Orb.
Every write holds ``lake.lock("balance")``, so a balance read and the transaction it
decides are one step.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

import pyarrow as pa

from billing import money
from invoicing.document_model import DocumentStatus, IssuedHead
from storage.lake import Lake
from storage.tables import BALANCE_TRANSACTIONS as SCHEMA
from storage.tables import TABLES

TABLE = "balance_transactions"
KEY = TABLES[TABLE].key
# Orb's CustomerBalanceTransaction actions that this system writes.
Action = Literal["applied_to_invoice", "manual_adjustment", "credit_note_applied",
                 "overpayment_refund", "return_from_voiding", "prorated_refund"]
PAYABLE = ("invoice", "adjustment_invoice")
# The adjustment that carries an invoice's excess credit to the balance
# (carried_to_balance.sql) and the key of its document line (document_lines.sql).
CARRIED_ID, CARRIED_SOURCE = "customer_balance", "excess credit"
CARRIED_LINE = f"adjustment:{CARRIED_SOURCE}:{CARRIED_ID}"


class BalanceError(ValueError):
    """A balance transaction refused: names what and why."""


@dataclass(frozen=True)
class Transaction:
    """A row of ``balance_transactions``."""

    transaction_id: str
    customer_id: str
    currency: str
    action: str
    amount: Decimal  # signed change of the balance; negative adds credit
    invoice_number: str | None
    credit_note_number: str | None
    description: str | None
    created_at: datetime

    @property
    def type(self) -> Literal["increment", "decrement"]:
        return "increment" if self.amount > 0 else "decrement"


@dataclass(frozen=True)
class Entry:
    """A transaction with the balance before and after it (Orb's starting/ending)."""

    transaction: Transaction
    starting_balance: Decimal
    ending_balance: Decimal


def read(lake: Lake, customer_id: str | None = None) -> list[Transaction]:
    """Every transaction (of one customer), in (created_at, id) order."""
    rows = lake.read_all(TABLE, SCHEMA).to_pylist()
    found = [Transaction(**{**row, "amount": money.quantize(row["amount"], row["currency"])})
             for row in rows if customer_id is None or row["customer_id"] == customer_id]
    return sorted(found, key=lambda t: (t.created_at, t.transaction_id))


def entries(transactions: Iterable[Transaction]) -> list[Entry]:
    """The transactions with running balances per customer and currency, oldest first."""
    running: defaultdict[tuple[str, str], Decimal] = defaultdict(Decimal)
    result = []
    for t in transactions:
        start = running[(t.customer_id, t.currency)]
        running[(t.customer_id, t.currency)] = start + t.amount
        result.append(Entry(t, start, start + t.amount))
    return result


def balances(transactions: Iterable[Transaction]) -> dict[tuple[str, str], Decimal]:
    """(customer, currency) -> balance."""
    result: defaultdict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for t in transactions:
        result[(t.customer_id, t.currency)] += t.amount
    return dict(result)


def balance(lake: Lake, customer_id: str, currency: str) -> Decimal:
    return balances(read(lake, customer_id)).get((customer_id, currency), Decimal(0))


def applied_to(transactions: Iterable[Transaction]) -> dict[str, Decimal]:
    """Invoice number -> the balance applied to it at issue (positive)."""
    result: defaultdict[str, Decimal] = defaultdict(Decimal)
    for t in transactions:
        if t.action == "applied_to_invoice" and t.invoice_number:
            result[t.invoice_number] += t.amount
    return dict(result)


def write(lake: Lake, transaction: Transaction) -> bool:
    """Append one transaction; False (nothing written) when its id exists already.
    The caller holds ``lake.lock("balance")``."""
    if lake.partition_file(TABLE, KEY, transaction.transaction_id).exists():
        return False
    money.check_magnitude(abs(transaction.amount))
    if transaction.amount != money.quantize(transaction.amount, transaction.currency):
        raise BalanceError(f"balance transaction {transaction.transaction_id}: "
                           f"{transaction.amount} {transaction.currency} is finer than the "
                           "currency's minor unit")
    lake.write_partition(TABLE, KEY, transaction.transaction_id,
                         pa.Table.from_pylist([asdict(transaction)], schema=SCHEMA))
    return True


def adjust(lake: Lake, customer_id: str, currency: str, amount: Decimal,
           kind: Literal["increment", "decrement"], description: str | None,
           at: datetime) -> Entry:
    """A manual adjustment (Orb's POST balance_transactions): ``amount`` > 0, its
    direction by ``kind``; ``decrement`` gives the customer credit."""
    code = money.currency_code(currency)
    amount = money.check_amount(amount, code)
    signed = amount if kind == "increment" else -amount
    with lake.lock("balance"):
        before = balance(lake, customer_id, code)
        # ids sort in the order written: ties of created_at list in that order
        t = Transaction(f"btx_{time.time_ns():016x}{uuid.uuid4().hex[:6]}", customer_id, code,
                        "manual_adjustment", signed, None, None, description, at)
        write(lake, t)
    return Entry(t, before, before + signed)


def credit(lake: Lake, transaction_id: str, customer_id: str, currency: str,
           amount: Decimal, action: Action, at: datetime, invoice_number: str | None = None,
           credit_note_number: str | None = None, description: str | None = None) -> bool:
    """Give the customer ``amount`` (> 0) of credit, once per ``transaction_id``: an
    overpayment's excess, a credit note on a paid invoice, a voided invoice's balance."""
    if amount <= 0:
        raise BalanceError(f"{transaction_id}: a credit to the balance must be above zero, "
                           f"not {amount} {currency}")
    with lake.lock("balance"):
        return write(lake, Transaction(transaction_id, customer_id, currency, action, -amount,
                                       invoice_number, credit_note_number, description, at))


def credit_note_to_balance(lake: Lake, credit_note: IssuedHead, at: datetime,
                           description: str | None = None) -> bool:
    """A credit note against a paid invoice credits the customer's balance with its
    amount (Orb's ``credit_note_applied``), once per credit note. Helper for issuing and
    for credit notes made by hand; one against an unpaid invoice is not a balance
    transaction: it lowers that invoice's amount due instead (payments/receivables.py)."""
    return credit(lake, f"cn~{credit_note.number}", credit_note.customer_id,
                  credit_note.currency, -credit_note.total, "credit_note_applied", at,
                  credit_note.corrects, credit_note.number, description)


def return_from_voiding(lake: Lake, numbers: Iterable[str], at: datetime
                        ) -> list[Transaction]:
    """The balance applied to invoices just voided goes back to their customers
    (``return_from_voiding``, id ``void~<number>``: once). A crash after the void and
    before this leaves it used; voiding again is refused, so it is given back by hand
    (``orb balance adjust``)."""
    wanted = set(numbers)
    written = []
    with lake.lock("balance"):
        for t in read(lake):
            if t.action == "applied_to_invoice" and t.invoice_number in wanted:
                back = Transaction(f"void~{t.invoice_number}", t.customer_id, t.currency,
                                   "return_from_voiding", -t.amount, t.invoice_number, None,
                                   None, at)
                if write(lake, back):
                    written.append(back)
    return written


def apply_on_issue(lake: Lake, issued: Iterable[IssuedHead],
                   status: Mapping[str, DocumentStatus], at: datetime,
                   carried: Mapping[str, Decimal] | None = None) -> list[Transaction]:
    """Right after an issuing run commits: apply each customer's credit balance to its
    new invoices with something to pay, in number order (``applied_to_invoice``, id
    ``applied~<number>``), credit the balance with each credit note whose invoice
    is paid (``status``: the corrected invoices' statuses), and with what ``carried``
    (number -> its ``CARRIED_LINE`` amount) moved off each document (``prorated_refund``,
    id ``refund~<number>``; a correction's is the change of it, either sign). A crash
    before this leaves the invoices with nothing applied (amount due = total) and the
    credit on the balance for the next invoice: never applied twice, never lost; a
    carried credit or a credit note's is then not written, and is given by hand
    (``orb balance adjust``), as for ``return_from_voiding``."""
    written: list[Transaction] = []
    heads = sorted(issued, key=lambda h: h.number)
    carried = carried or {}
    with lake.lock("balance"):
        current = balances(read(lake))

        def record(t: Transaction) -> None:
            if write(lake, t):
                current[(t.customer_id, t.currency)] = (
                    current.get((t.customer_id, t.currency), Decimal(0)) + t.amount)
                written.append(t)

        for head in heads:
            key = (head.customer_id, head.currency)
            # first: a correction taking carried credit back must not be paid with it
            if carried.get(head.number):
                record(Transaction(f"refund~{head.number}", head.customer_id, head.currency,
                                   "prorated_refund", -carried[head.number],
                                   head.corrects or head.number, None,
                                   "credit over the invoice's charges", at))
            if head.document_type in PAYABLE and head.total > 0 and current.get(key, 0) < 0:
                record(Transaction(f"applied~{head.number}", head.customer_id, head.currency,
                                   "applied_to_invoice", min(-current[key], head.total),
                                   head.number, None, None, at))
            elif (head.document_type == "credit_note" and head.total < 0 and head.corrects
                  and status.get(head.corrects) == "paid"):
                record(Transaction(f"cn~{head.number}", head.customer_id, head.currency,
                                   "credit_note_applied", head.total, head.corrects,
                                   head.number, None, at))
    return written
