"""The payment processor interface: what a gateway must do for a payment run.

A run (payments/run.py) asks a processor, for each issued invoice still open, to make
sure the customer and the invoice exist on its side, then to collect the amount due,
and, for reconciliation, what it knows of the invoice. Every call that may change
something on the processor's side gets an idempotency key derived from our own durable
ids (docs/payments.md): called again with the same key it must return the first result
instead of acting twice. Amounts are Decimal in the currency's units (never floats).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from billing.money import exponent
from invoicing.document_model import DocumentStatus

RemoteStatus = Literal["paid", "open", "void", "unknown"]


class PaymentError(RuntimeError):
    """A processor call went wrong in a way that says nothing about whether money moved
    (a network error, an outage): the run keeps the intent and repeats the call, with the
    same idempotency key, next time. Messages never carry credentials."""


@dataclass(frozen=True)
class CustomerToSync:
    customer_id: str
    name: str
    email: str | None = None


@dataclass(frozen=True)
class InvoiceToCollect:
    """An issued invoice (or adjustment invoice) and the amount to collect: its total;
    ``status`` is its document status (only ``issued`` ones are collected)."""

    number: str
    customer_id: str
    currency: str
    amount: Decimal
    invoice_date: date
    due_date: date
    status: DocumentStatus


@dataclass(frozen=True)
class Outcome:
    """The result of one collection attempt.

    ``paid``: the amount was collected (``reference`` names the payment); ``failed``: it
    was refused (a declined card), ``retryable`` says whether trying again later may
    help; ``pending``: nothing to collect yet (e.g. no payment recorded in the file)."""

    status: Literal["paid", "failed", "pending"]
    reference: str = ""
    amount: Decimal | None = None
    currency: str | None = None
    paid_at: datetime | None = None
    detail: str = ""
    retryable: bool = True


@dataclass(frozen=True)
class RemoteState:
    """What the processor knows of an invoice, for reconciliation.

    ``status``: ``paid``, ``open`` (nothing paid yet), ``void`` (cancelled on the
    processor's side) or ``unknown`` (the processor has no such invoice)."""

    status: RemoteStatus
    amount_paid: Decimal
    currency: str
    reference: str = ""
    paid_at: datetime | None = None


@dataclass(frozen=True)
class ReceivedPayment:
    """A payment made outside the processor's calls (a bank transfer in the payments
    file): ``payment_id`` names it for good, so reading it again records nothing new."""

    payment_id: str
    amount: Decimal
    currency: str
    paid_at: datetime
    reference: str


@dataclass(frozen=True)
class Refund:
    """A refund the processor made: its id (``re_…``), amount and currency."""

    reference: str
    amount: Decimal
    currency: str


class PaymentProcessor(abc.ABC):
    """A payment gateway. Subclasses set ``name`` and implement the four calls.

    ``side_effects`` is False for a processor that only reads payments recorded
    elsewhere (the manual one): the run then records only what it finds. A processor
    with side effects has each call's intent recorded, with its idempotency key, before
    the call, and its outcome after."""

    name: str = ""
    side_effects: bool = True

    def begin_run(self, invoices: list[InvoiceToCollect]) -> None:  # noqa: B027
        """Called once per run with every issued invoice that may be paid (open or not),
        before any other call; a processor may check its inputs against them here."""

    @abc.abstractmethod
    def sync_customer(self, customer: CustomerToSync, key: str) -> str:
        """Create the customer on the processor's side; returns its reference (id)."""

    @abc.abstractmethod
    def sync_invoice(self, invoice: InvoiceToCollect, customer_ref: str, key: str) -> str:
        """Create the invoice for exactly ``invoice.amount``; returns its reference."""

    @abc.abstractmethod
    def collect(self, invoice: InvoiceToCollect, invoice_ref: str, key: str) -> Outcome:
        """Collect the invoice. Called again with the same key after a crash, it must
        not charge twice: it returns the first attempt's result."""

    @abc.abstractmethod
    def fetch_state(self, invoice: InvoiceToCollect, invoice_ref: str) -> RemoteState:
        """The processor's view of the invoice (read only)."""

    def received(self, invoice: InvoiceToCollect) -> list[ReceivedPayment]:
        """A processor without side effects: the payments made for ``invoice``, in order
        (the run records each once and collects nothing)."""
        raise NotImplementedError(f"{self.name} collects payments itself")

    def refund(self, number: str, payment_ref: str, amount: Decimal, currency: str,
               key: str) -> Refund:
        """Give back ``amount`` of the payment ``payment_ref`` (what ``collect`` returned);
        idempotent by ``key``. The manual processor only records refunds made elsewhere."""
        raise NotImplementedError(f"{self.name} cannot refund")


def to_minor_units(amount: Decimal, currency: str) -> int:
    """``Decimal('12.34')`` USD -> 1234, ``Decimal('1500')`` JPY -> 1500. An amount with
    more digits than the currency's minor unit is refused, never rounded."""
    scaled = amount.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} {currency} is not a whole number of minor units")
    return int(scaled)


def from_minor_units(minor: int, currency: str) -> Decimal:
    """1234 USD -> Decimal('12.34'); 1500 JPY -> Decimal('1500')."""
    return Decimal(int(minor)).scaleb(-exponent(currency))
