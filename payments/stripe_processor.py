"""The Stripe adapter, with the official ``stripe`` library.

For an invoice it creates (once) a Stripe customer, then an invoice item for the exact
total and a Stripe invoice that includes it (``charge_automatically``, ``auto_advance``
off: Orb, not Stripe, decides when to retry), checks that the Stripe invoice totals
what we issued, finalizes it and pays it with the customer's default payment method.
How the customer's payment method gets to Stripe (Checkout, a SetupIntent) is outside
this adapter: it never sees card details.

Every mutating call carries an idempotency key derived from our durable ids
(``orb:<invoice number>:<step>:<attempt>``, plus a suffix per call within a step), and
``collect`` looks at the invoice before paying it: an invoice already paid is reported
paid without a second charge, even after Stripe has forgotten the key (24 hours).

Configuration: ``ORB_STRIPE_API_KEY`` (required, never logged or put in a message) and
``ORB_STRIPE_API_BASE`` (another API address, e.g. a local Stripe-compatible server for
tests). Amounts go to Stripe as integers in the currency's minor unit.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import stripe

from payments.processor import (
    CustomerToSync,
    InvoiceToCollect,
    Outcome,
    PaymentError,
    PaymentProcessor,
    Refund,
    RemoteState,
    RemoteStatus,
    from_minor_units,
    to_minor_units,
)

API_KEY_ENV = "ORB_STRIPE_API_KEY"
API_BASE_ENV = "ORB_STRIPE_API_BASE"
STATES: dict[str, RemoteStatus] = {"paid": "paid", "open": "open", "draft": "open",
                                   "void": "void", "uncollectible": "void"}


class StripeProcessor(PaymentProcessor):
    name = "stripe"
    side_effects = True

    def __init__(self, api_key: str, api_base: str = "", max_network_retries: int = 2):
        if not api_key:
            raise PaymentError(f"{API_KEY_ENV} is not set: the Stripe processor needs a "
                               "secret key")
        self._api_key = api_key  # kept only to scrub it from any message
        # The library's own retries resend the same idempotency key: safe.
        self._client = stripe.StripeClient(
            api_key, base_addresses={"api": api_base} if api_base else None,
            max_network_retries=max_network_retries)
        self.api_base = api_base

    @classmethod
    def from_env(cls) -> StripeProcessor:
        return cls(os.environ.get(API_KEY_ENV, ""), os.environ.get(API_BASE_ENV, ""))

    def __repr__(self) -> str:
        return f"StripeProcessor(api_base={self.api_base or 'stripe'!r})"

    @property
    def api(self) -> Any:
        return self._client.v1

    # -- the interface ----------------------------------------------------------------

    def sync_customer(self, customer: CustomerToSync, key: str) -> str:
        params: dict[str, Any] = {"name": customer.name,
                                  "metadata": {"orb_customer_id": customer.customer_id}}
        if customer.email:
            params["email"] = customer.email
        created = self._call("create customer", lambda: self.api.customers.create(
            params=params, options={"idempotency_key": key}))
        return created.id

    def sync_invoice(self, invoice: InvoiceToCollect, customer_ref: str, key: str) -> str:
        minor = to_minor_units(invoice.amount, invoice.currency)
        currency = invoice.currency.lower()
        self._call("create invoice item", lambda: self.api.invoice_items.create(params={
            "customer": customer_ref, "amount": minor, "currency": currency,
            "description": f"Invoice {invoice.number}",
            "metadata": {"orb_invoice_number": invoice.number}},
            options={"idempotency_key": f"{key}:item"}))
        created = self._call("create invoice", lambda: self.api.invoices.create(
            params=self.invoice_params(invoice, customer_ref),
            options={"idempotency_key": f"{key}:create"}))
        if (created.total, created.currency) != (minor, currency):
            # e.g. another pending invoice item of the customer was pulled in
            raise PaymentError(
                f"Stripe invoice {created.id} totals {created.total} {created.currency} "
                f"(minor units), {invoice.number} is {minor} {currency}: not charging it; "
                "fix the Stripe invoice by hand")
        self.finalize(created.id, f"{key}:finalize")
        return created.id

    def collect(self, invoice: InvoiceToCollect, invoice_ref: str, key: str) -> Outcome:
        current = self._retrieve(invoice_ref)
        if current.status == "paid":  # paid before (a crash after paying, or out of band)
            return self._paid(current)
        if STATES.get(current.status) == "void":
            return Outcome("failed", detail=f"Stripe invoice {invoice_ref} is "
                           f"{current.status}", retryable=False)
        try:
            result = self.api.invoices.pay(invoice_ref, options={"idempotency_key": key})
        except stripe.CardError as exc:  # declined: Stripe's answer, not an outage
            return Outcome("failed", detail=self._scrub(f"{exc.code}: {exc.user_message}"))
        except stripe.InvalidRequestError as exc:  # e.g. it was paid in the meantime
            result = self._retrieve(invoice_ref)
            if result.status != "paid":
                raise self._error("pay invoice", exc) from None
        except stripe.StripeError as exc:
            raise self._error("pay invoice", exc) from None
        if result.status == "paid":
            return self._paid(result)
        return Outcome("failed", detail=self._failure(result))

    def fetch_state(self, invoice: InvoiceToCollect, invoice_ref: str) -> RemoteState:
        try:
            remote = self.api.invoices.retrieve(invoice_ref)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return RemoteState("unknown", Decimal(0), invoice.currency)
            raise self._error("retrieve invoice", exc) from None
        except stripe.StripeError as exc:
            raise self._error("retrieve invoice", exc) from None
        currency = remote.currency.upper()
        return RemoteState(STATES.get(remote.status, "open"),
                           from_minor_units(remote.amount_paid, currency), currency,
                           remote.id, _paid_at(remote))

    def refund(self, number: str, payment_ref: str, amount: Decimal, currency: str,
               key: str) -> Refund:
        """Refund ``amount`` of the payment of Stripe invoice ``payment_ref`` through its
        payment intent (``refunds.create``, idempotent by ``key``)."""
        remote = self._retrieve(payment_ref)
        intent = getattr(remote, "payment_intent", None)
        if not isinstance(intent, str) or not intent:
            raise PaymentError(f"Stripe invoice {payment_ref} of {number} has no payment "
                               "intent to refund")
        created = self._call("create refund", lambda: self.api.refunds.create(params={
            "payment_intent": intent, "amount": to_minor_units(amount, currency),
            "metadata": {"orb_invoice_number": number}}, options={"idempotency_key": key}))
        code = created.currency.upper()
        return Refund(created.id, from_minor_units(created.amount, code), code)

    # -- the parts a Stripe-compatible server may need changed (see tests/test_stripe.py)

    def invoice_params(self, invoice: InvoiceToCollect, customer_ref: str) -> dict:
        """The Stripe invoice: charged automatically, but never advanced by Stripe on its
        own, so that the only payment attempts are the ones Orb records."""
        return {"customer": customer_ref, "currency": invoice.currency.lower(),
                "collection_method": "charge_automatically", "auto_advance": False,
                "pending_invoice_items_behavior": "include",
                "description": f"Invoice {invoice.number}",
                "metadata": {"orb_invoice_number": invoice.number}}

    def finalize(self, invoice_ref: str, key: str) -> None:
        self._call("finalize invoice", lambda: self.api.invoices.finalize_invoice(
            invoice_ref, params={"auto_advance": False}, options={"idempotency_key": key}))

    # -- helpers ----------------------------------------------------------------------

    def _retrieve(self, invoice_ref: str) -> Any:
        return self._call("retrieve invoice", lambda: self.api.invoices.retrieve(invoice_ref))

    def _paid(self, remote: Any) -> Outcome:
        currency = remote.currency.upper()
        return Outcome("paid", reference=remote.id, paid_at=_paid_at(remote),
                       amount=from_minor_units(remote.amount_paid, currency), currency=currency)

    def _failure(self, remote: Any) -> str:
        """Why a payment attempt left the invoice unpaid, from its payment intent when
        the API version still links it."""
        intent = getattr(remote, "payment_intent", None)
        if isinstance(intent, str) and intent:
            error = getattr(self._call("retrieve payment intent", lambda: (
                self.api.payment_intents.retrieve(intent))), "last_payment_error", None)
            if error:
                return self._scrub(f"{getattr(error, 'code', '')}: "
                                   f"{getattr(error, 'message', '')}")
        return f"Stripe invoice {remote.id} is still {remote.status} after the attempt"

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except stripe.StripeError as exc:
            raise self._error(what, exc) from None

    def _error(self, what: str, exc: stripe.StripeError) -> PaymentError:
        message = exc.user_message or type(exc).__name__
        request = f" (request {exc.request_id})" if exc.request_id else ""
        return PaymentError(self._scrub(f"Stripe: {what} failed: {type(exc).__name__}: "
                                        f"{message}{request}"))

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "sk_***") if self._api_key else text


def _paid_at(remote: Any) -> datetime | None:
    transitions = getattr(remote, "status_transitions", None)
    paid = getattr(transitions, "paid_at", None) if transitions else None
    return datetime.fromtimestamp(paid, UTC) if paid else None
