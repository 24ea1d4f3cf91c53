"""Refunds, full and partial, through the processor that took the payment, recorded in
``invoice_payments`` (a negative movement) and ``payment_attempts`` (docs/payments.md).

With a processor that has side effects (Stripe), the refund's intent is recorded with its
idempotency key ``<prefix>:<number>:refund:<n>`` before the call and its outcome after,
as for a collection: a refund whose outcome was lost is repeated with the same key (and
the same amount) before any other, and the processor answers with the first refund. The
manual processor moves no money: a refund made by bank transfer is only recorded, under
its reference.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from payments import received
from payments.ledger import Ledger
from payments.processor import PaymentProcessor
from payments.received import Movement, PaymentRefused
from payments.run import idempotency_key
from storage.lake import Lake


def refund(lake: Lake, processor: PaymentProcessor, number: str, amount: Decimal,
           at: datetime, reference: str = "", key_prefix: str = "orb") -> Movement:
    """Refund ``amount`` of invoice ``number``'s payments; the recorded refund."""
    with lake.lock("payments"):
        paid = [m for m in received.movements(lake, number)
                if m.kind == "payment" and m.processor == processor.name]
        if not paid:
            raise PaymentRefused(f"{number} has no {processor.name} payment to refund")
        if not processor.side_effects:
            if not reference:
                raise PaymentRefused(f"{number}: a manual refund needs the reference of the "
                                     "transfer that paid it back")
            recorded = received.record_refund(
                lake, number, amount, at, processor.name, reference,
                f"{processor.name}:{number}:refund:{reference}", "cli")
            if recorded is None:
                raise PaymentRefused(f"{number}: refund {reference!r} is recorded already")
            return recorded
        ledger = Ledger.read(lake, processor.name)
        attempts = ledger.attempts(number, "refund")
        last = attempts[max(attempts)] if attempts else None
        if last is not None and last.intent is not None and last.outcome is None:
            attempt = max(attempts)  # a refund whose outcome was lost: same key, same amount
            if last.intent["amount"] != amount:
                raise PaymentRefused(
                    f"{number}: refund {attempt} of {last.intent['amount']} "
                    f"{last.intent['currency']} has no recorded outcome; repeat it first")
        else:
            attempt = len(attempts) + 1
            # bounded before the call: at most what was paid, net of earlier refunds
            received.check_refund(lake, number, amount)
        key = idempotency_key(key_prefix, number, "refund", attempt)
        payment = paid[-1]
        if attempt not in attempts:
            ledger.write(number, "refund", attempt, "intent", at, key, "started",
                         payment.reference, amount, payment.currency)
        done = processor.refund(number, payment.reference, amount, payment.currency, key)
        ledger.write(number, "refund", attempt, "outcome", at, key, "refunded", done.reference,
                     done.amount, done.currency)
        movement = received.record_refund(lake, number, done.amount, at, processor.name,
                                          done.reference, f"{processor.name}:{done.reference}",
                                          "cli")
        return movement or next(m for m in received.movements(lake, number)
                                if m.payment_id == f"{processor.name}:{done.reference}")
