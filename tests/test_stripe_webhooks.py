"""Refunds through Stripe (localstripe) and Stripe's payment webhooks through the API
(payments/refunds.py, payments/stripe_webhooks.py, api/stripe_webhooks.py).

The webhooks are signed here the way Stripe signs them (``t=<time>,v1=<HMAC-SHA256 of
"<t>.<body>">`` with the endpoint secret) and checked by the stripe library on the
server's side; localstripe sends no webhooks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from invoicing import documents
from payments import ledger, received
from payments.received import PaymentRefused
from payments.refunds import refund
from payments.run import run_payments
from payments.stripe_webhooks import SECRET_ENV
from storage.lake import Lake
from tests.api_tenants import API_VARIABLES, make_tenants
from tests.test_api import client_for
from tests.test_balance import issue
from tests.test_stripe import LocalStripe, localstripe, server  # noqa: F401 (fixtures)

SECRET = "whsec_test_orb_123"
AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_a_partial_then_a_full_refund_through_stripe(tmp_path, server):  # noqa: F811
    lake = Lake(tmp_path)
    number = issue(lake, "100.00")
    processor = LocalStripe(server, {})
    assert run_payments(lake, processor, AT).paid == [number]
    (stripe_invoice,) = [m.reference for m in received.movements(lake)]

    partial = refund(lake, processor, number, Decimal("30.00"), AT)
    rest = refund(lake, processor, number, Decimal("70.00"), AT)
    # 100.00 paid - 30.00 - 70.00 = 0.00 left to refund: one cent more is refused
    with pytest.raises(PaymentRefused, match=f"{number}: refund of 0.01 USD is more than "
                                             "the 0.00 USD paid on it"):
        refund(lake, processor, number, Decimal("0.01"), AT)
    assert sorted((m.kind, m.amount) for m in received.movements(lake)) == [
        ("payment", Decimal("100.00")), ("refund", Decimal("-70.00")),
        ("refund", Decimal("-30.00"))]
    assert (partial.payment_id, rest.payment_id) == (f"stripe:{partial.reference}",
                                                     f"stripe:{rest.reference}")
    # Stripe's side: two refunds of the invoice's payment, 3000 and 7000 cents
    intent = processor.api.invoices.retrieve(stripe_invoice).payment_intent
    refunds = processor.api.refunds.list(params={"payment_intent": intent}).data
    assert sorted((r.id, r.amount, r.currency) for r in refunds) == sorted(
        [(partial.reference, 3000, "usd"), (rest.reference, 7000, "usd")])
    # each call carried its key, recorded before the call
    keys = [r["idempotency_key"] for r in ledger.read_all(lake).to_pylist()
            if r["step"] == "refund" and r["phase"] == "intent"]
    assert keys == [f"orb:{number}:refund:1", f"orb:{number}:refund:2"]
    assert documents.status_of(lake, number) == "paid"  # a refund does not reopen it


def signed(event: dict, secret: str = SECRET, at: int | None = None) -> tuple[bytes, str]:
    body = json.dumps(event).encode()
    t = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return body, f"t={t},v1={mac}"


def paid_event(event_id: str, number: str, amount: int) -> dict:
    return {"id": event_id, "object": "event", "type": "invoice.paid", "data": {"object": {
        "id": "in_test_1", "object": "invoice", "currency": "usd", "amount_paid": amount,
        "metadata": {"orb_invoice_number": number},
        "status_transitions": {"paid_at": int(AT.timestamp())}}}}


def test_a_replayed_signed_webhook_is_recorded_once_and_a_bad_signature_refused(
        tmp_path, monkeypatch):
    for variable in API_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    data_dir = make_tenants(tmp_path)[0]
    lake = Lake(data_dir)
    number = issue(lake, "100.00")
    client = client_for(data_dir, require_auth=False)

    body, signature = signed(paid_event("evt_1", number, 10000))
    first = client.post("/stripe/webhooks", content=body,
                        headers={"Stripe-Signature": signature})
    again = client.post("/stripe/webhooks", content=body,
                        headers={"Stripe-Signature": signature})
    assert [first.json()["outcome"], again.json()["outcome"]] == ["recorded", "replayed"]
    # 10000 cents = 100.00 USD, once: paid, nothing to the balance
    assert [(m.payment_id, m.amount, m.source) for m in received.movements(lake)] == [
        ("stripe:in_test_1", Decimal("100.00"), "webhook:evt_1")]
    assert documents.status_of(lake, number) == "paid"
    # another event about the same Stripe payment counts once too
    body, signature = signed(paid_event("evt_2", number, 10000))
    assert client.post("/stripe/webhooks", content=body,
                       headers={"Stripe-Signature": signature}).json()["outcome"] == "recorded"
    assert len(received.movements(lake)) == 1

    for bad in (signed(paid_event("evt_3", number, 10000), secret="whsec_other"),
                signed(paid_event("evt_3", number, 10000), at=int(time.time()) - 3600),
                (b'{"id": "evt_3"}', signature)):
        refused = client.post("/stripe/webhooks", content=bad[0],
                              headers={"Stripe-Signature": bad[1]})
        assert refused.status_code == 400, refused.text
    assert len(received.movements(lake)) == 1
    assert "event:evt_3" not in {r["subject"] for r in ledger.read_all(lake).to_pylist()}
