"""The manual processor, the embedded default: payments received by other means (bank
transfers, cheques) and recorded in a CSV file, one payment per line.

    invoice_number,amount,currency,paid_at,reference
    INV-000001,100.00,USD,2026-11-20T10:00:00Z,wire 7781
    INV-000002,15000,JPY,2026-11-21,bank ref 99

``amount`` is a decimal above zero with at most the currency's digits: an invoice may
be paid in several lines (partial payments), and what is paid over its amount due goes to
the customer's balance; ``currency`` an ISO 4217 code in any case (``usd`` is
``USD``), the invoice's; ``paid_at`` an ISO 8601 date or instant (UTC when it has no
offset). The file is checked in one pass, each line on its own and against the issued
invoices (unknown, void, another currency), and every problem is reported
at once, naming the file and line; nothing is recorded from a file with problems. A
missing file means no payments yet.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from billing import money
from payments.processor import (
    CustomerToSync,
    InvoiceToCollect,
    Outcome,
    PaymentProcessor,
    ReceivedPayment,
    RemoteState,
)
from payments.received import line_id

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

    @property
    def payment_id(self) -> str:
        """The line's id: the same line kept in the file is the same payment."""
        return line_id(self.invoice_number, self.amount, self.currency, self.paid_at,
                       self.reference)


def read_payments(path: Path, invoices: Mapping[str, InvoiceToCollect]
                  ) -> dict[str, list[RecordedPayment]]:
    """The file's payments by invoice number, in line order, each line checked on its own
    and against ``invoices`` (by number); raises PaymentFileError listing every problem of
    every line."""
    if not path.exists():
        return {}
    problems: list[str] = []
    payments: dict[str, list[RecordedPayment]] = {}
    first_line: dict[str, int] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise PaymentFileError([f"{path}:1: missing column(s) {', '.join(missing)} "
                                    f"(expected {','.join(COLUMNS)})"])
        for row in reader:
            line = reader.line_num
            payment, found = _check(row, line, invoices)
            if payment is not None:
                if payment.payment_id in first_line:
                    found.append(f"the same payment as line {first_line[payment.payment_id]}"
                                 " (give each payment its own reference)")
                else:
                    first_line[payment.payment_id] = line
            problems += [f"{path}:{line}: {problem}" for problem in found]
            if payment is not None and not found:
                payments.setdefault(payment.invoice_number, []).append(payment)
    if problems:
        raise PaymentFileError(problems)
    return payments


def _check(row: dict, line: int, invoices: Mapping[str, InvoiceToCollect]
           ) -> tuple[RecordedPayment | None, list[str]]:
    """One line's payment, or every problem of the line: each field on its own, then the
    payment against its invoice."""
    values = {c: (row.get(c) or "").strip() for c in COLUMNS}
    problems = []
    if empty := [c for c in ("invoice_number", "amount", "currency", "paid_at")
                 if not values[c]]:
        problems.append(f"empty {', '.join(empty)}")
    currency: str | None = None
    amount: Decimal | None = None
    paid_at: datetime | None = None
    if values["currency"]:
        try:
            currency = money.currency_code(values["currency"])
        except money.UnknownCurrencyError as exc:
            problems.append(str(exc))
    if values["amount"]:
        try:
            amount = _amount(values["amount"], currency)
        except ValueError as exc:
            problems.append(str(exc))
    if values["paid_at"]:
        try:
            paid_at = _instant(values["paid_at"])
        except ValueError:
            problems.append(f"paid_at {values['paid_at']!r} is not an ISO 8601 date or "
                            "instant")
    if number := values["invoice_number"]:
        invoice = invoices.get(number)
        if invoice is None:
            problems.append(f"no issued invoice {number!r}")
        elif invoice.status == "void":
            problems.append(f"{number} is void: a payment for a void invoice is refused")
        elif currency is not None and currency != invoice.currency:
            problems.append(f"{number} is in {invoice.currency}, the payment is in "
                            f"{currency} (a payment must be in the invoice's currency)")
    if problems or currency is None or amount is None or paid_at is None:
        return None, problems
    return RecordedPayment(number, amount, currency, paid_at, values["reference"], line), []


def _amount(text: str, currency: str | None) -> Decimal:
    """The amount at the currency's minor unit; only its magnitude when the currency is
    unknown, so that the line's other problems are reported all the same."""
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"amount {text!r} is not a decimal number") from None
    if currency is None:
        money.check_magnitude(amount)
        return amount
    return money.check_amount(amount, currency)


def _instant(text: str) -> datetime:
    """An ISO 8601 instant (UTC without an offset) or a date (midnight UTC)."""
    at = (datetime.fromisoformat(text) if "T" in text
          else datetime.combine(date.fromisoformat(text), datetime.min.time()))
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


class ManualProcessor(PaymentProcessor):
    """Payments recorded in a file; the run records each line once (``received``), so
    nothing is recorded for an invoice until a payment for it appears in the file."""

    name = "manual"
    side_effects = False

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._payments: dict[str, list[RecordedPayment]] | None = None

    def begin_run(self, invoices: list[InvoiceToCollect]) -> None:
        """Read the file and check every payment against its invoice (read_payments)."""
        self._payments = read_payments(self.path, {i.number: i for i in invoices})

    def _lines(self, number: str) -> list[RecordedPayment]:
        if self._payments is None:
            raise RuntimeError("begin_run must be called before collecting")
        return self._payments.get(number, [])

    def received(self, invoice: InvoiceToCollect) -> list[ReceivedPayment]:
        return [ReceivedPayment(p.payment_id, p.amount, p.currency, p.paid_at,
                                p.reference or f"{self.path.name}:{p.line}")
                for p in self._lines(invoice.number)]

    def sync_customer(self, customer: CustomerToSync, key: str) -> str:
        return customer.customer_id

    def sync_invoice(self, invoice: InvoiceToCollect, customer_ref: str, key: str) -> str:
        return invoice.number

    def collect(self, invoice: InvoiceToCollect, invoice_ref: str, key: str) -> Outcome:
        return Outcome("pending", detail="payments come from the file (received)")

    def fetch_state(self, invoice: InvoiceToCollect, invoice_ref: str) -> RemoteState:
        lines = self._lines(invoice.number)
        paid = sum((p.amount for p in lines), Decimal(0))
        return RemoteState("paid" if lines else "open", paid, invoice.currency)
