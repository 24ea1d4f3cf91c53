"""The manual processor, the embedded default: payments received by other means (bank
transfers, cheques) and recorded in a CSV file, one payment per invoice.

    invoice_number,amount,currency,paid_at,reference
    INV-000001,100.00,USD,2026-11-20T10:00:00Z,wire 7781
    INV-000002,15000,JPY,2026-11-21,bank ref 99

``amount`` is the invoice's total exactly, as a decimal with at most the currency's
digits (no partial payments); ``paid_at`` an ISO 8601 date or instant (UTC when it has
no offset). Every problem in the file is reported at once, naming the file and line;
nothing is recorded from a file with problems. A missing file means no payments yet.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from billing.money import UnknownCurrencyError, exponent
from payments.processor import (
    CustomerToSync,
    InvoiceToCollect,
    Outcome,
    PaymentProcessor,
    RemoteState,
)

COLUMNS = ("invoice_number", "amount", "currency", "paid_at", "reference")


class PaymentFileError(ValueError):
    """The payments file has problems; ``problems`` are ``file:line: message`` each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("payments file rejected:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class RecordedPayment:
    invoice_number: str
    amount: Decimal
    currency: str
    paid_at: datetime
    reference: str
    line: int


def read_payments(path: Path) -> dict[str, RecordedPayment]:
    """The file's payments by invoice number, each checked on its own; raises
    PaymentFileError listing every bad line."""
    if not path.exists():
        return {}
    problems: list[str] = []
    payments: dict[str, RecordedPayment] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise PaymentFileError([f"{path}:1: missing column(s) {', '.join(missing)} "
                                    f"(expected {','.join(COLUMNS)})"])
        for row in reader:
            where = f"{path}:{reader.line_num}"
            try:
                payment = _parse(row, reader.line_num)
            except ValueError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if (first := payments.get(payment.invoice_number)) is not None:
                problems.append(f"{where}: {payment.invoice_number} is already paid on "
                                f"line {first.line}")
                continue
            payments[payment.invoice_number] = payment
    if problems:
        raise PaymentFileError(problems)
    return payments


def _parse(row: dict, line: int) -> RecordedPayment:
    values = {c: (row.get(c) or "").strip() for c in COLUMNS}
    if empty := [c for c in ("invoice_number", "amount", "currency", "paid_at")
                 if not values[c]]:
        raise ValueError(f"empty {', '.join(empty)}")
    currency = values["currency"].upper()
    try:
        digits = exponent(currency)
    except UnknownCurrencyError as exc:
        raise ValueError(str(exc)) from None
    try:
        amount = Decimal(values["amount"])
    except InvalidOperation:
        raise ValueError(f"amount {values['amount']!r} is not a decimal number") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"amount {values['amount']!r} must be a positive number")
    places = amount.as_tuple().exponent
    assert isinstance(places, int)  # a finite amount ('n', 'N', 'F' are NaN, sNaN, Infinity)
    if places < -digits:
        raise ValueError(f"amount {values['amount']} has more than {digits} decimal "
                         f"digit(s), the minor unit of {currency}")
    try:
        paid_at = (datetime.fromisoformat(values["paid_at"]) if "T" in values["paid_at"]
                   else datetime.combine(date.fromisoformat(values["paid_at"]),
                                         datetime.min.time()))
    except ValueError:
        raise ValueError(f"paid_at {values['paid_at']!r} is not an ISO 8601 date or "
                         "instant") from None
    paid_at = paid_at.replace(tzinfo=UTC) if paid_at.tzinfo is None else paid_at.astimezone(UTC)
    return RecordedPayment(values["invoice_number"], amount, currency, paid_at,
                           values["reference"], line)


class ManualProcessor(PaymentProcessor):
    """Payments recorded in a file; collecting only looks them up, so nothing is
    recorded for an invoice until its payment appears in the file."""

    name = "manual"
    side_effects = False

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._payments: dict[str, RecordedPayment] | None = None

    def begin_run(self, invoices: list[InvoiceToCollect]) -> None:
        """Read the file and check every payment against its invoice: the number must
        be an issued invoice's, the currency and amount its total's exactly."""
        payments = read_payments(self.path)
        by_number = {i.number: i for i in invoices}
        problems = []
        for payment in payments.values():
            where = f"{self.path}:{payment.line}"
            invoice = by_number.get(payment.invoice_number)
            if invoice is None:
                problems.append(f"{where}: no issued invoice {payment.invoice_number!r}")
            elif (payment.currency, payment.amount) != (invoice.currency, invoice.amount):
                problems.append(
                    f"{where}: {invoice.number} is {invoice.amount} {invoice.currency}, the "
                    f"payment is {payment.amount} {payment.currency} (partial payments and "
                    "over-payments are not supported)")
        if problems:
            raise PaymentFileError(problems)
        self._payments = payments

    def _payment(self, number: str) -> RecordedPayment | None:
        if self._payments is None:
            raise RuntimeError("begin_run must be called before collecting")
        return self._payments.get(number)

    def sync_customer(self, customer: CustomerToSync, key: str) -> str:
        return customer.customer_id

    def sync_invoice(self, invoice: InvoiceToCollect, customer_ref: str, key: str) -> str:
        return invoice.number

    def collect(self, invoice: InvoiceToCollect, invoice_ref: str, key: str) -> Outcome:
        payment = self._payment(invoice.number)
        if payment is None:
            return Outcome("pending", detail="no payment recorded")
        return Outcome("paid", reference=payment.reference or f"{self.path.name}:{payment.line}",
                       amount=payment.amount, currency=payment.currency,
                       paid_at=payment.paid_at)

    def fetch_state(self, invoice: InvoiceToCollect, invoice_ref: str) -> RemoteState:
        payment = self._payment(invoice.number)
        if payment is None:
            return RemoteState("open", Decimal(0), invoice.currency)
        return RemoteState("paid", payment.amount, payment.currency, payment.reference,
                           payment.paid_at)
