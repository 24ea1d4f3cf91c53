"""Credit top-ups (docs/api.md#top-ups) through the API in-process: Orb's create, list and
delete by Orb id and external id, refusals naming the field, and the evaluation that
grants ``amount`` credits and bills their purchase once per crossing of the threshold.

Tenant A's "starter" plan is in USD; Acme is in Berlin, whose today at NOW is 10 Nov 2026.
  Balance 120.00 (a grant) > threshold 100: nothing. A decrement of 30.00 (usage drawn
  by hand): 120 - 30 = 90.00 <= 100, so the top-up fires: a grant of 200 credits at cost
  basis 0.10 and a purchase of 200 x 0.10 = 20.00. Balance 90 + 200 = 290.00.
  Evaluated again: 290 > 100, re-armed, nothing granted. A decrement of 200.00:
  290 - 200 = 90.00 <= 100 again, a second crossing: a second grant and purchase.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from invoicing import credit_grants, one_off, top_ups
from state import StateStore
from state import top_ups as stored
from storage.settings import Settings
from tests.api_tenants import API_VARIABLES, create_key, make_tenants, orb
from tests.test_api import ACME, NOW, ORB, bearer, client_for

TOP_UP = {"amount": "200", "currency": "USD", "threshold": "100",
          "per_unit_cost_basis": "0.10",
          "invoice_settings": {"auto_collection": False, "net_terms": 0, "memo": "Top-up"}}


@pytest.fixture
def acme(tmp_path, monkeypatch):
    """Tenant A's client, an admin key's headers and Acme, billed in USD from October."""
    for variable in API_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    data_dir, _ = make_tenants(tmp_path)
    client, admin = client_for(data_dir), bearer(create_key(data_dir, "admin"))
    customer = client.post("/v1/customers", headers=admin, json=ACME).json()
    client.post("/v1/subscriptions", headers=admin, json={
        "customer_id": customer["id"], "plan_id": "starter", "start_date": "2026-10-01"})
    return client, admin, customer["id"], Settings.from_env(data_dir), data_dir


def _entry(client, admin, customer_id, **entry):
    answer = client.post(f"/v1/customers/{customer_id}/credits/ledger_entry", headers=admin,
                         json={"currency": "USD", **entry})
    assert answer.status_code == 200, answer.json()
    return answer.json()


def _balance(deployment, customer_id, now=NOW):
    with StateStore.open(deployment.state_store_url) as store:
        customers = {c.id: c for c in store.snapshot().customers()}
    return credit_grants.balances_in_effect(deployment.lake, {(customer_id, "USD")},
                                            customers, now)[(customer_id, "USD")]


def test_a_top_up_grants_and_bills_once_per_crossing(acme):
    client, admin, customer_id, deployment, _ = acme
    _entry(client, admin, customer_id, entry_type="increment", amount=120)
    created = client.post(f"/v1/customers/{customer_id}/credits/top_ups", headers=admin,
                          json=TOP_UP).json()
    assert {k: v for k, v in created.items() if k != "id"} == {
        "amount": "200.00", "currency": "USD", "threshold": "100.00",
        "per_unit_cost_basis": "0.10", "expires_after": None, "expires_after_unit": None,
        "invoice_settings": {"auto_collection": False, "net_terms": 0, "memo": "Top-up",
                             "require_successful_payment": None}}
    # 120.00 > 100: evaluated after the answer, nothing fired
    assert _balance(deployment, customer_id) == Decimal("120.00")

    _entry(client, admin, customer_id, entry_type="decrement", amount=30)  # 120 - 30 = 90
    # 90 <= 100: 200 credits granted (90 + 200 = 290), 200 x 0.10 = 20.00 billed
    assert _balance(deployment, customer_id) == Decimal("290.00")
    with StateStore.open(deployment.state_store_url) as store:
        (first,) = stored.fired(store.engine, [created["id"]])
    grant = next(g for g in credit_grants.read_grants(deployment.lake)
                 if g.grant_id == first.grant_id)
    assert (grant.amount, grant.cost_basis, first.balance, first.purchase_amount) == (
        Decimal("200.00"), Decimal("0.10"), Decimal("90.00"), Decimal("20.00"))
    purchase = one_off.read(deployment.lake)[first.invoice_id].draft
    assert (purchase.head.customer_id, purchase.head.total, purchase.details.memo,
            [(line.quantity, line.amount) for line in purchase.lines]) == (
        customer_id, Decimal("20.00"), "Top-up", [(Decimal("200.00"), Decimal("20.00"))])

    # evaluated again: 290 > 100 re-arms it; no grant, no purchase
    assert top_ups.evaluate(deployment, NOW) == top_ups.Evaluated(fired=0, rearmed=1)
    assert top_ups.evaluate(deployment, NOW) == top_ups.Evaluated()
    assert _balance(deployment, customer_id) == Decimal("290.00")

    _entry(client, admin, customer_id, entry_type="decrement", amount=200)  # 290 - 200 = 90
    with StateStore.open(deployment.state_store_url) as store:
        fired = stored.fired(store.engine, [created["id"]])
    # a second crossing: a second grant (90 + 200 = 290) and a second purchase
    assert [(t.sequence, t.purchase_amount) for t in fired] == [
        (1, Decimal("20.00")), (3, Decimal("20.00"))]
    assert len({t.invoice_id for t in fired}) == 2
    assert _balance(deployment, customer_id) == Decimal("290.00")


def test_top_ups_are_replaced_listed_deleted_and_checked(acme):
    client, admin, customer_id, deployment, data_dir = acme
    base = f"/v1/customers/{customer_id}/credits/top_ups"
    first = client.post(base, headers=admin, json=TOP_UP).json()
    # Acme has no credits: 0.00 <= 100 fires it as soon as it is made: 0 + 200 = 200.00
    assert _balance(deployment, customer_id) == Decimal("200.00")
    # a new one in the same currency replaces it (Orb's rule); by external id, the same list
    second = client.post("/v1/customers/external_customer_id/acme-1/credits/top_ups",
                         headers=admin, json=TOP_UP | {"threshold": "50"}).json()
    listed = client.get(base, headers=admin).json()["data"]
    assert [(t["id"], t["threshold"]) for t in listed] == [(second["id"], "50.00")]
    assert client.delete(f"{base}/{first['id']}", headers=admin).status_code == 404
    assert client.delete(f"{base}/{second['id']}", headers=admin).status_code == 200
    assert client.get(base, headers=admin).json()["data"] == []

    refused = client.post(base, headers=admin, json=TOP_UP | {
        "currency": "EUR", "amount": "0.001", "expires_after": 2}).json()
    assert refused["type"] == ORB + "400-request-validation-errors"
    assert refused["validation_errors"] == [
        "body.amount 0.001 has more than 2 decimal digit(s), the minor unit of EUR",
        "body.expires_after_unit: give it with expires_after, and only then"]
    refused = client.post(base, headers=admin, json=TOP_UP | {"currency": "EUR"}).json()
    assert refused["validation_errors"] == [
        f"body.currency: customer '{customer_id}' is billed in USD; a top-up's credits pay "
        "only invoices in EUR"]

    # the CLI, the same functions: 200.00 <= 250 fires at creation: 200 + 50 = 250.00,
    # and 50 x 1 = 50.00 billed. Still at the threshold: evaluated again, nothing (once
    # per crossing: it re-arms only above 250)
    output = orb(["credits", "top-up", "create", "--customer", customer_id, "--currency",
                  "usd", "--amount", "50", "--threshold", "250", "--cost-basis", "1",
                  "--data-dir", str(data_dir)])
    created = output.split()[0]
    assert output.splitlines()[1] == "balance at or below the threshold: fired"
    listed = json.loads(orb(["credits", "top-up", "list", "--format", "json",
                             "--data-dir", str(data_dir)]))
    assert [(t["id"], t["currency"], t["amount"], t["threshold"]) for t in listed] == [
        (created, "USD", "50.00", "250.00")]
    assert orb(["credits", "top-up", "evaluate", "--data-dir", str(data_dir)]) == (
        "0 fired, 0 re-armed\n")
    # the CLI's grant is effective on the real today (the API's clock is NOW)
    assert _balance(deployment, customer_id, datetime.now(UTC)) == Decimal("250.00")
    with StateStore.open(deployment.state_store_url) as store:
        (fired,) = stored.fired(store.engine, [created])
    assert one_off.read(deployment.lake)[fired.invoice_id].draft.head.total == Decimal("50.00")
    assert orb(["credits", "top-up", "delete", created, "--customer", customer_id,
                "--data-dir", str(data_dir)]) == f"{created} deleted\n"
