"""A payment run: collect every open issued invoice, retry failures when due, and
reconcile the processor's state back into the lake (docs/payments.md).

For each issued invoice or adjustment invoice still ``issued`` with a total above
zero, in number order:

1. make sure the customer and the invoice exist on the processor's side (once each);
2. if the last collection attempt has an intent but no outcome (a crash), repeat it
   with the same idempotency key; if it failed and its retry is due, attempt again;
   if nothing was attempted yet, attempt;
3. paid: an outcome record, and the document's ``paid`` status (note: the processor
   and its reference); failed: an outcome record with the next retry time, or none
   when the attempts are used up;
4. an invoice waiting for its retry (or out of retries) is reconciled instead: paid
   on the processor's side -> recorded paid with a reconciliation note; paid a
   different amount, voided, or unknown there -> flagged, never changed.

The run's paid statuses are written at its end, as one change run (one file per issuing
run of the documents, ``invoicing.documents.change_statuses``). Should the run stop
before, the next one finds the payments in the ledger and records them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from billing.catalog import Catalog
from billing.money import quantize
from invoicing import amounts_due, documents
from invoicing.document_model import DocumentStatus, DocumentType
from payments import notice_records, received
from payments.ledger import Ledger
from payments.processor import (
    CustomerToSync,
    InvoiceToCollect,
    Outcome,
    PaymentError,
    PaymentProcessor,
)
from storage.duck import connect
from storage.lake import Lake

log = logging.getLogger(__name__)

# After the n-th failed attempt the next one is due this long after it: attempts on
# day 0, 1, 4 and 11; after the 4th failure the invoice waits for a human.
RETRY_DELAYS = (timedelta(days=1), timedelta(days=3), timedelta(days=7))
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# Credit notes are refunds: not collected.
PAYABLE: tuple[DocumentType, ...] = ("invoice", "adjustment_invoice")


@dataclass
class RunSummary:
    paid: list[str] = field(default_factory=list)
    retry_scheduled: dict[str, datetime] = field(default_factory=dict)  # failed now
    waiting: dict[str, datetime] = field(default_factory=dict)  # retry not due yet
    exhausted: list[str] = field(default_factory=list)  # failed, no retry left
    pending: list[str] = field(default_factory=list)  # nothing to collect yet
    partly_paid: list[str] = field(default_factory=list)  # payments below the amount due
    reconciled: list[str] = field(default_factory=list)  # paid found by reconciliation
    flagged: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # repeated on the next run


def idempotency_key(prefix: str, subject: str, step: str, attempt: int) -> str:
    return f"{prefix}:{subject}:{step}:{attempt}"


def retry_applies(attempt: int, outcome: Mapping | None) -> bool:
    """Whether a collection attempt's failure may be retried: it had a retry scheduled,
    or it was the schedule's last (a past-due notice may announce one more). A failure
    that cannot be retried (the processor's invoice is void) is not."""
    return (outcome is not None and outcome["status"] == "failed"
            and (outcome["next_retry_at"] is not None or attempt >= MAX_ATTEMPTS))


def next_retry(attempt: int, outcome: Mapping | None,
               announced: Sequence[datetime]) -> datetime | None:
    """When a failed attempt is retried: at its scheduled time or at a retry a past-due
    notice announced after it failed, whichever is first (payments/dunning.py); None:
    not retried."""
    if outcome is None or not retry_applies(attempt, outcome):
        return None
    times = [outcome["next_retry_at"], *(t for t in announced if t > outcome["recorded_at"])]
    return min((t for t in times if t is not None), default=None)


def payable_invoices(lake: Lake, status: Mapping[str, DocumentStatus],
                     known: dict[str, received.Known] | None = None
                     ) -> list[InvoiceToCollect]:
    """Every issued invoice and adjustment invoice with something to pay, any status;
    ``amount``: what remains to collect on an open one (its amount due less what was
    paid: invoicing/amounts_due.py), the amount due on a paid or void one."""
    heads = documents.issued_documents(lake)
    amounts = amounts_due.read_amounts_due(lake, heads, status)
    if known is not None:  # for settling the run's payments without reading them again
        known.update((h.number, received.Known(h, status[h.number], amounts[h.number]))
                     for h in heads if h.number in amounts)
    return [InvoiceToCollect(h.number, h.customer_id, h.currency, _in_minor_units(
                amounts[h.number].remaining if status[h.number] == "issued"
                else amounts[h.number].amount_due, h.currency),
                h.invoice_date, h.due_date, status[h.number])
            for h in sorted(heads, key=lambda h: h.number)
            if h.document_type in PAYABLE and h.total > 0]


def _in_minor_units(total: Decimal, currency: str) -> Decimal:
    """100.0000 USD as 100.00, 15000.0000 JPY as 15000: the stored total is rounded
    already, so this only drops zeros (and refuses anything else)."""
    amount = quantize(total, currency)
    if amount != total:
        raise ValueError(f"issued total {total} {currency} is not rounded to its minor unit")
    return amount


def run_payments(lake: Lake, processor: PaymentProcessor, now: datetime,
                 catalog: Catalog | None = None, key_prefix: str = "orb") -> RunSummary:
    with lake.lock("payments"):
        return _Run(lake, processor, now, catalog, key_prefix).run()


class _Run:
    def __init__(self, lake: Lake, processor: PaymentProcessor, now: datetime,
                 catalog: Catalog | None, key_prefix: str):
        self.lake, self.processor, self.now = lake, processor, now
        self.catalog, self.prefix = catalog, key_prefix
        self.con = connect()
        self.ledger = Ledger.read(lake, processor.name)
        self.announced = notice_records.requested_retries(lake)  # by dunning notices
        self.summary = RunSummary()
        self.paid: list[documents.StatusChange] = []
        self.known: dict[str, received.Known] = {}  # each invoice as read at the start

    def run(self) -> RunSummary:
        invoices = payable_invoices(self.lake, documents.statuses(self.con, self.lake),
                                    self.known)
        self.processor.begin_run(invoices)
        try:
            for invoice in invoices:
                if invoice.status != "issued":
                    continue  # paid or void
                try:
                    if invoice.amount == 0:  # the balance, credit notes or payments cover it
                        self._settled(invoice)
                    elif not self.processor.side_effects:
                        self._received(invoice)
                    else:
                        self._invoice(invoice)
                except PaymentError as exc:
                    log.warning("%s: %s", invoice.number, exc)
                    self.summary.errors[invoice.number] = str(exc)
        finally:  # what was paid before a failure is recorded all the same
            documents.change_statuses(self.lake, self.paid, self.now)
        return self.summary

    def _invoice(self, invoice: InvoiceToCollect) -> None:
        attempts = self.ledger.attempts(invoice.number, "collect")
        last = attempts[max(attempts)] if attempts else None
        if last and last.outcome and last.outcome["status"] == "paid":
            # the run stopped between the payment record and the status: finish it
            self._payment(invoice, last.outcome["reference"], last.outcome["amount"],
                          last.outcome["recorded_at"])
            return
        if self.processor.side_effects:
            customer = self._step(f"customer:{invoice.customer_id}", "customer",
                                  lambda key: self.processor.sync_customer(
                                      self._customer(invoice.customer_id), key))
            invoice_ref = self._step(invoice.number, "invoice",
                                     lambda key: self.processor.sync_invoice(
                                         invoice, customer, key))
        else:
            invoice_ref = invoice.number
        if last is None:
            attempt = 1
        elif last.outcome is None:
            attempt = max(attempts)  # a crash after the call: same attempt, same key
        else:
            retry_at = next_retry(max(attempts), last.outcome,
                                  self.announced.get(invoice.number, ()))
            if retry_at is None:
                self.summary.exhausted.append(invoice.number)
                self._reconcile(invoice, invoice_ref)
                return
            if self.now < retry_at:
                self.summary.waiting[invoice.number] = retry_at
                self._reconcile(invoice, invoice_ref)
                return
            attempt = max(attempts) + 1
        self._collect(invoice, invoice_ref, attempt, intent_recorded=attempt in attempts)

    def _collect(self, invoice: InvoiceToCollect, invoice_ref: str, attempt: int,
                 intent_recorded: bool) -> None:
        key = idempotency_key(self.prefix, invoice.number, "collect", attempt)
        if self.processor.side_effects and not intent_recorded:
            self.ledger.write(invoice.number, "collect", attempt, "intent", self.now, key,
                              "started", invoice_ref, invoice.amount, invoice.currency)
        outcome = self.processor.collect(invoice, invoice_ref, key)
        if outcome.status == "pending":
            self.summary.pending.append(invoice.number)
            return
        if outcome.status == "paid" and (outcome.amount, outcome.currency) != (
                invoice.amount, invoice.currency):
            detail = (f"{self.processor.name} collected {outcome.amount} {outcome.currency}, "
                      f"the invoice is {invoice.amount} {invoice.currency}")
            self._record(invoice, "collect", attempt, key, "flagged", outcome, detail=detail)
            self.summary.flagged[invoice.number] = detail
            return
        if outcome.status == "paid":
            self._record(invoice, "collect", attempt, key, "paid", outcome)
            self._payment(invoice, outcome.reference, invoice.amount,
                          outcome.paid_at or self.now)
            return
        retry_at = (self.now + RETRY_DELAYS[attempt - 1]
                    if outcome.retryable and attempt < MAX_ATTEMPTS else None)
        self._record(invoice, "collect", attempt, key, "failed", outcome, retry_at=retry_at)
        if retry_at is None:
            self.summary.exhausted.append(invoice.number)
            self._reconcile(invoice, invoice_ref)  # e.g. voided on the processor's side
        else:
            self.summary.retry_scheduled[invoice.number] = retry_at
        log.info("%s: attempt %d failed (%s); %s", invoice.number, attempt, outcome.detail,
                 f"retry at {retry_at:%Y-%m-%d %H:%M} UTC" if retry_at else "no retry left")

    def _reconcile(self, invoice: InvoiceToCollect, invoice_ref: str) -> None:
        state = self.processor.fetch_state(invoice, invoice_ref)
        if state.status == "open":
            return
        if state.status == "paid" and (state.amount_paid, state.currency) == (
                invoice.amount, invoice.currency):
            attempt = len(self.ledger.attempts(invoice.number, "reconcile")) + 1
            self.ledger.write(invoice.number, "reconcile", attempt, "outcome", self.now,
                              status="paid", reference=state.reference,
                              amount=state.amount_paid, currency=state.currency,
                              detail="paid on the processor's side")
            settled = self._settle(invoice, state.amount_paid, state.currency,
                                   state.paid_at or self.now, state.reference,
                                   f"{self.processor.name}:{state.reference or invoice_ref}",
                                   "reconcile")
            if settled.amounts.remaining == 0:
                self._mark_paid(invoice, state.reference, state.paid_at or self.now,
                                f"reconciled: {self.processor.name}")
            self.summary.reconciled.append(invoice.number)
            return
        detail = (f"{self.processor.name} shows {state.amount_paid} {state.currency} paid, "
                  f"the invoice is {invoice.amount} {invoice.currency}"
                  if state.status == "paid" else
                  f"{self.processor.name} shows the invoice {state.status}; it is issued here")
        self.summary.flagged[invoice.number] = detail
        earlier = self.ledger.attempts(invoice.number, "reconcile")
        last = earlier[max(earlier)].outcome if earlier else None  # written as outcomes only
        if last is not None and last["detail"] == detail:
            return  # flagged already
        self.ledger.write(invoice.number, "reconcile", len(earlier) + 1, "outcome", self.now,
                          status="flagged", reference=state.reference,
                          amount=state.amount_paid, currency=state.currency, detail=detail)
        log.warning("%s flagged: %s", invoice.number, detail)

    # -- helpers ------------------------------------------------------------------------

    def _step(self, subject: str, step: str, call) -> str:
        """A sync step done once: its recorded reference, else the call (intent first)."""
        attempts = self.ledger.attempts(subject, step)
        done = attempts.get(1)
        if done and done.outcome:
            return done.outcome["reference"]
        key = idempotency_key(self.prefix, subject, step, 1)
        if done is None:
            self.ledger.write(subject, step, 1, "intent", self.now, key, "started")
        reference = call(key)
        self.ledger.write(subject, step, 1, "outcome", self.now, key, "ok", reference)
        return reference

    def _record(self, invoice: InvoiceToCollect, step: str, attempt: int, key: str,
                status: str, outcome: Outcome, retry_at: datetime | None = None,
                detail: str = "") -> None:
        self.ledger.write(invoice.number, step, attempt, "outcome", self.now, key, status,
                          outcome.reference, outcome.amount, invoice.currency,
                          detail or outcome.detail, retry_at)

    def _settled(self, invoice: InvoiceToCollect) -> None:
        """Nothing remains to pay: paid, by its last payment (a run that stopped before
        the status, a webhook), else by the balance or credit notes ("settled")."""
        paid = [m for m in received.movements(self.lake, invoice.number) if m.kind == "payment"]
        if paid:
            self._mark_paid(invoice, paid[-1].reference, paid[-1].paid_at, paid[-1].processor)
        else:
            self._mark_paid(invoice, "", self.now, "settled")

    def _received(self, invoice: InvoiceToCollect) -> None:
        """A processor without side effects (payments made elsewhere): record each of its
        payments for the invoice once; paid when they reach the amount due."""
        found = self.processor.received(invoice)
        if not found:
            self.summary.pending.append(invoice.number)
            return
        for payment in found:
            settled = self._settle(invoice, payment.amount, payment.currency, payment.paid_at,
                                   payment.reference, payment.payment_id, "run")
            if settled.amounts.remaining == 0:
                self._mark_paid(invoice, payment.reference, payment.paid_at,
                                self.processor.name)
                return
        self.summary.partly_paid.append(invoice.number)

    def _payment(self, invoice: InvoiceToCollect, reference: str, amount: Decimal,
                 paid_at: datetime) -> None:
        """Record a collected payment once (id ``<processor>:<reference>``, the same id a
        webhook of the processor gives it) and mark the invoice paid if it is."""
        settled = self._settle(invoice, amount, invoice.currency, paid_at, reference,
                               f"{self.processor.name}:{reference}", "run")
        if settled.amounts.remaining == 0:
            self._mark_paid(invoice, reference, paid_at, self.processor.name)

    def _settle(self, invoice: InvoiceToCollect, amount: Decimal, currency: str,
                paid_at: datetime, reference: str, payment_id: str, source: str
                ) -> received.Settled:
        """Record one payment once and settle the invoice from what the run read at its
        start (kept up to date here): no read of the payments per payment. The run's
        paid statuses are written at its end."""
        known = self.known.get(invoice.number)
        settled = received.record_payment(
            self.lake, invoice.number, amount, currency, paid_at, self.now,
            self.processor.name, reference, payment_id, source, mark_paid=False, known=known)
        if known is not None:
            self.known[invoice.number] = dataclasses.replace(known, amounts=settled.amounts)
        return settled

    def _mark_paid(self, invoice: InvoiceToCollect, reference: str, at: datetime,
                   source: str) -> None:
        self.paid.append(documents.StatusChange(invoice.number, "paid", at,
                                                f"{source} {reference}".strip()))
        self.summary.paid.append(invoice.number)

    def _customer(self, customer_id: str) -> CustomerToSync:
        if self.catalog is not None:
            try:
                customer = self.catalog.customer(customer_id)
            except KeyError:
                pass
            else:
                return CustomerToSync(customer_id, customer.name, customer.email)
        return CustomerToSync(customer_id, customer_id)
