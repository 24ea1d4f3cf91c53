"""Stripe's payment webhooks: verified with the stripe library, recorded exactly once.

Stripe signs each delivery (``Stripe-Signature``: a timestamp and an HMAC-SHA256 of
``<timestamp>.<body>`` with the endpoint's secret, ``ORB_STRIPE_WEBHOOK_SECRET``);
``stripe.Webhook.construct_event`` checks it, and a timestamp more than 5 minutes off
(the library's tolerance), so a captured delivery cannot be replayed later. A verified
event is handled under the payment run's lock and recorded in ``payment_attempts`` as
``event:<event id>~webhook~1~outcome``: an event whose record exists is answered and
not handled again (Stripe delivers at least once, and retries).

What each event does, with the same recording code the payment run uses
(payments/received.py), so a payment the run collected and its webhook count once
(both are ``stripe:<Stripe invoice id>``):

- ``invoice.paid`` (and ``payment_intent.succeeded`` naming an invoice): the invoice's
  payment, ``amount_paid``; paid when it reaches the amount due;
- ``charge.refunded``: each refund of the charge (``stripe:<re_…>``);
- ``invoice.payment_failed``: recorded (the run decides on retries);
- anything else: recorded as ignored.

The Stripe invoice is ours by its ``metadata.orb_invoice_number`` (set when it was
created), else by the invoice id the run recorded when it synced it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe

from payments import received
from payments.ledger import Ledger
from payments.processor import from_minor_units
from storage.lake import Lake

SECRET_ENV = "ORB_STRIPE_WEBHOOK_SECRET"
PROCESSOR = "stripe"


class WebhookRefused(ValueError):
    """Not a verified Stripe event (no secret, bad signature, stale or not JSON)."""


@dataclass(frozen=True)
class Handled:
    event_id: str
    type: str
    outcome: str  # recorded | replayed | ignored
    detail: str = ""


def verify(payload: bytes, signature: str, secret: str | None = None) -> dict[str, Any]:
    """The event in ``payload`` (plain JSON) if ``signature`` is Stripe's for it, else
    WebhookRefused."""
    secret = secret if secret is not None else os.environ.get(SECRET_ENV, "")
    if not secret:
        raise WebhookRefused(f"{SECRET_ENV} is not set: Stripe webhooks are refused")
    try:
        stripe.Webhook.construct_event(payload, signature, secret)
        event: dict[str, Any] = json.loads(payload)
        return event
    except stripe.SignatureVerificationError:
        raise WebhookRefused("the Stripe-Signature header does not match the body") from None
    except ValueError:
        raise WebhookRefused("the body is not a Stripe event") from None


def handle(lake: Lake, payload: bytes, signature: str, now: datetime,
           secret: str | None = None) -> Handled:
    """Verify and record one delivery; a delivery of an event recorded already is a
    replay and changes nothing."""
    event = verify(payload, signature, secret)
    event_id, kind = str(event["id"]), str(event["type"])
    subject = f"event:{event_id}"
    with lake.lock("payments"):
        ledger = Ledger.read(lake, PROCESSOR)
        if ledger.attempts(subject, "webhook"):
            return Handled(event_id, kind, "replayed")
        try:
            outcome, detail, number = _apply(lake, ledger, event, now)
        except received.PaymentRefused as exc:  # e.g. a void invoice: kept, not retried
            outcome, detail, number = "refused", str(exc), ""
        ledger.write(subject, "webhook", 1, "outcome", now, event_id, outcome,
                     reference=number, detail=f"{kind}: {detail}")
    return Handled(event_id, kind, outcome, detail)


def _apply(lake: Lake, ledger: Ledger, event: dict[str, Any], now: datetime
           ) -> tuple[str, str, str]:
    """(outcome, detail, our invoice number) of one new event."""
    obj = event["data"]["object"]
    event_id, kind = event["id"], event["type"]
    if kind in ("invoice.paid", "payment_intent.succeeded"):
        invoice = obj if kind == "invoice.paid" else None
        stripe_invoice = obj.get("id") if invoice is not None else obj.get("invoice")
        if not stripe_invoice:
            return "ignored", "no Stripe invoice", ""
        number = _number(ledger, invoice, stripe_invoice)
        if number is None:
            return "ignored", f"Stripe invoice {stripe_invoice} is not one of ours", ""
        currency = obj["currency"].upper()
        amount = from_minor_units(obj["amount_paid"] if invoice is not None
                                  else obj["amount_received"], currency)
        paid_at = _paid_at(obj) or now
        settled = received.record_payment(
            lake, number, amount, currency, paid_at, now, PROCESSOR, stripe_invoice,
            f"{PROCESSOR}:{stripe_invoice}", f"webhook:{event_id}")
        return "recorded", (f"{amount} {currency}, remaining {settled.amounts.remaining}"), number
    if kind == "charge.refunded":
        stripe_invoice = obj.get("invoice")
        number = _number(ledger, None, stripe_invoice) if stripe_invoice else None
        if number is None:
            return "ignored", "the charge is not for one of our invoices", ""
        currency = obj["currency"].upper()
        refunds = (obj.get("refunds") or {}).get("data") or []
        for refund in refunds:
            received.record_refund(lake, number, from_minor_units(refund["amount"], currency),
                                   now, PROCESSOR, refund["id"], f"{PROCESSOR}:{refund['id']}",
                                   f"webhook:{event_id}")
        return "recorded", f"{len(refunds)} refund(s)", number
    if kind == "invoice.payment_failed":
        number = _number(ledger, obj, obj.get("id")) or ""
        return "recorded", "payment failed on Stripe's side", number
    return "ignored", "not a payment event", ""


def _number(ledger: Ledger, invoice: dict[str, Any] | None, stripe_invoice: str) -> str | None:
    """Our invoice number of a Stripe invoice: its metadata, else the synced id."""
    metadata = (invoice.get("metadata") or {}) if invoice is not None else {}
    if number := metadata.get("orb_invoice_number"):
        return str(number)
    return next((r["subject"] for r in ledger.records if r["step"] == "invoice"
                 and r["phase"] == "outcome" and r["reference"] == stripe_invoice), None)


def _paid_at(obj: dict[str, Any]) -> datetime | None:
    paid = (obj.get("status_transitions") or {}).get("paid_at")
    return datetime.fromtimestamp(paid, UTC) if paid else None
