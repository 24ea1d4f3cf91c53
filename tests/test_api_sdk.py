"""Orb's official Python SDK (``orb-billing``) drives the API served by the real ``orb
serve`` on loopback (docs/api.md): a customer's journey through customers, plans, metrics
and subscriptions, errors as the SDK's typed exceptions, and another tenant's key that
finds none of it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import orb
import pytest
from orb.types import BillableMetric, Customer, MutatedSubscription, Plan, Subscription
from orb.types.shared import Address, CustomerTaxID, Invoice
from orb.types.shared.price import TieredPrice, UnitPrice

from assets.resources import OrbStore
from invoicing.issuing import issue_month
from pipelines import runner
from pipelines.definitions import build_definitions
from storage.duck import connect
from tests.api_tenants import API_VARIABLES, create_key, make_tenants, serve
from tests.api_tenants import orb as orb_cli
from tests.scenario import OCTOBER, write_scenario


@dataclass(frozen=True)
class Server:
    url: str
    admin: str
    reader: str
    tenant_b: str
    data_dir: Path

    def client(self, key: str) -> orb.Orb:
        # no retries: a refused request is the answer under test
        return orb.Orb(api_key=key, base_url=self.url, max_retries=0)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        for variable in API_VARIABLES:
            patch.delenv(variable, raising=False)
        a, _ = make_tenants(tmp_path_factory.mktemp("api"))
        keys = (create_key(a, "admin"), create_key(a, "read_only"),
                create_key(a, "billing_operator", tenant="b"))
    with serve(a) as root:
        yield Server(f"{root}/v1", *keys, a)


def test_a_customer_journey_through_the_official_sdk(server):
    client = server.client(server.admin)
    acme = client.customers.create(email="ap@acme.test", name="Acme",
                                   external_customer_id="acme-1", timezone="Europe/Berlin")
    assert isinstance(acme, Customer)
    assert (acme.name, acme.email, acme.external_customer_id, acme.timezone, acme.balance,
            acme.metadata) == ("Acme", "ap@acme.test", "acme-1", "Europe/Berlin", "0.00", {})
    assert acme.id.startswith("cus_") and isinstance(acme.created_at, datetime)
    assert client.customers.fetch(acme.id) == acme
    assert client.customers.fetch_by_external_id("acme-1") == acme
    updated = client.customers.update(acme.id, name="Acme GmbH", email="billing@acme.test")
    assert (updated.id, updated.name, updated.email, updated.external_customer_id) == (
        acme.id, "Acme GmbH", "billing@acme.test", "acme-1")
    assert client.customers.fetch(acme.id).name == "Acme GmbH"

    others = [client.customers.create(email=f"c{i}@x.test", name=f"C{i}").id
              for i in range(2)]
    first = client.customers.list(limit=1)
    assert (len(first.data), first.pagination_metadata.has_more) == (1, True)
    # the SDK follows next_cursor page by page: every customer, newest first
    assert [c.id for c in client.customers.list(limit=1)] == [others[1], others[0], acme.id]

    starter = client.plans.fetch("starter")
    assert isinstance(starter, Plan)
    assert (starter.name, starter.currency, starter.external_plan_id) == (
        "Starter", "USD", "starter")
    platform, calls = starter.prices
    assert isinstance(platform, UnitPrice) and isinstance(calls, TieredPrice)
    assert (platform.unit_config.unit_amount, platform.price_type, platform.billing_mode,
            platform.cadence) == ("49.00", "fixed_price", "in_advance", "monthly")
    assert calls.billable_metric is not None and calls.billable_metric.id == "calls"
    assert [t.unit_amount for t in calls.tiered_config.tiers] == ["0.00", "0.002"]
    assert [p.id for p in client.plans.list()] == ["starter", "a_yearly"]
    metric = client.metrics.fetch("calls")
    assert isinstance(metric, BillableMetric)
    assert (metric.name, metric.sql, metric.status) == (
        "API calls", "SELECT count(*) FROM events", "active")
    assert [m.id for m in client.metrics.list()] == ["calls", "a_seats"]

    sub = client.subscriptions.create(customer_id=acme.id, plan_id="starter",
                                      start_date="2026-10-01")
    assert isinstance(sub, MutatedSubscription)
    # 1 October began in Berlin (UTC+2 in summer time) at 22:00 UTC on 30 September
    assert (sub.customer.id, sub.plan.id if sub.plan else None, sub.start_date, sub.end_date,
            sub.billing_cycle_day) == (acme.id, "starter",
                                       datetime(2026, 9, 30, 22, tzinfo=UTC), None, 1)
    fetched = client.subscriptions.fetch(sub.id)
    assert isinstance(fetched, Subscription) and fetched.id == sub.id
    assert [s.id for s in client.subscriptions.list(customer_id=[acme.id])] == [sub.id]
    assert [s.id for s in client.subscriptions.list(customer_id=[others[0]])] == []

    cancelled = client.subscriptions.cancel(sub.id, cancel_option="requested_date",
                                            cancellation_date="2027-01-01")
    # Berlin's 1 January (UTC+1) begins at 23:00 UTC on 31 December
    assert cancelled.end_date == datetime(2026, 12, 31, 23, tzinfo=UTC)
    assert client.subscriptions.fetch(sub.id).end_date == datetime(2026, 12, 31, 23, tzinfo=UTC)


def test_addresses_and_tax_ids_through_the_sdk(server):
    client = server.client(server.admin)
    created = client.customers.create(
        email="compta@bonjour.test", name="Bonjour SAS", timezone="Europe/Paris",
        billing_address={"line1": "8 rue de Rivoli", "city": "Paris", "postal_code": "75004",
                         "country": "FR"},
        tax_id={"country": "FR", "type": "eu_vat", "value": "FR40303265045"})
    assert created.billing_address == Address(line1="8 rue de Rivoli", line2=None,
                                              city="Paris", state=None, postal_code="75004",
                                              country="FR")
    assert created.tax_id == CustomerTaxID(country="FR", type="eu_vat", value="FR40303265045")
    assert created.shipping_address is None
    updated = client.customers.update(created.id, tax_id=None,
                                      shipping_address={"line1": "1 quai", "country": "FR"})
    assert updated.tax_id is None and updated.billing_address == created.billing_address
    assert (updated.shipping_address.line1, updated.shipping_address.country) == ("1 quai", "FR")
    assert client.customers.fetch(created.id) == updated
    with pytest.raises(orb.RequestValidationError) as invalid:
        client.customers.update(created.id, billing_address={"country": "France"})
    assert invalid.value.detail.startswith(
        "body.billing_address.country: Value error, country must be an ISO 3166-1 alpha-2 "
        "code such as US or FR, got 'France'")


def test_errors_arrive_as_the_sdks_typed_exceptions(server):
    client = server.client(server.admin)
    with pytest.raises(orb.ResourceNotFound) as unknown:
        client.customers.fetch("cus_nope")
    assert (unknown.value.status_code, unknown.value.detail) == (
        404, "customer 'cus_nope' does not exist")
    with pytest.raises(orb.RequestValidationError) as invalid:
        client.customers.create(email="x@x.test", name="X", timezone="Mars/Olympus")
    assert invalid.value.status_code == 400 and invalid.value.detail.startswith("body.timezone:")
    with pytest.raises(orb.OrbAuthenticationError):
        server.client("orb_sk_not_a_key").customers.list()
    with pytest.raises(orb.PermissionDeniedError) as denied:
        server.client(server.reader).customers.create(email="r@x.test", name="R")
    assert denied.value.status_code == 403
    # without any key at all (the SDK always sends one)
    with pytest.raises(urllib.error.HTTPError) as keyless:
        urllib.request.urlopen(f"{server.url}/customers", timeout=30)
    assert keyless.value.code == 401
    assert json.load(keyless.value)["type"] == (
        "https://docs.withorb.com/reference/error-responses#401-authentication-error")
    # the OpenAPI document is public
    with urllib.request.urlopen(f"{server.url}/openapi.json", timeout=30) as response:
        assert "/v1/customers/{customer_id}" in json.load(response)["paths"]


def test_idempotency_through_the_sdk(server):
    client = server.client(server.admin)
    first = client.customers.create(email="i@x.test", name="Idem", idempotency_key="sdk-1")
    again = client.customers.create(email="i@x.test", name="Idem", idempotency_key="sdk-1")
    assert again == first
    with pytest.raises(orb.ResourceConflict):
        client.customers.create(email="i@x.test", name="Other", idempotency_key="sdk-1")


def test_another_tenants_key_finds_nothing(server):
    ours = server.client(server.admin).customers.create(email="t@x.test", name="Ours")
    theirs = server.client(server.tenant_b)
    with pytest.raises(orb.NotFoundError):
        theirs.customers.fetch(ours.id)
    created = theirs.customers.create(email="b@x.test", name="B's own")
    assert [c.id for c in theirs.customers.list()] == [created.id]
    with pytest.raises(orb.NotFoundError):
        server.client(server.admin).customers.fetch(created.id)
    # B's catalog is its own: the same plan id with B's price
    platform = theirs.plans.fetch("starter").prices[0]
    assert isinstance(platform, UnitPrice) and platform.unit_config.unit_amount == "99.00"


@pytest.fixture(scope="module")
def billed_key(server, tmp_path_factory):
    """A billing operator's key of tenant ``billed``: tests/scenario.py's October billed
    through Dagster, Tokyo's two invoices issued on 2 November, New York's a draft."""
    root = tmp_path_factory.mktemp("billed")
    write_scenario(root)
    store = OrbStore(data_dir=str(root), max_event_age_days=36500)
    runner.bill_months(build_definitions(store), [OCTOBER], dg.DagsterInstance.ephemeral())
    issue_month(connect(), store.lake, OCTOBER, datetime(2026, 11, 2, 9, tzinfo=UTC), {"tokyo"})
    orb_cli(["tenants", "add", "billed", "--tenant-data-dir", str(root),
             "--data-dir", str(server.data_dir)])
    return create_key(server.data_dir, "billing_operator", tenant="billed")


def test_invoices_through_the_sdk(server, billed_key):
    """The amounts of tests/test_pipeline.py, worked out there by hand: Tokyo's 15 October
    invoice is 17 of October's 31 days of a 1000 yen fee, 548 yen; its 1 November one is
    10 calls x 0.25 = 3 yen and November's 1000; New York's draft 20.00 + 5.60 + 1.23."""
    client = server.client(billed_key)
    listed = list(client.invoices.list())
    assert all(isinstance(i, Invoice) for i in listed)
    assert [(i.id, i.status, i.total) for i in listed] == [
        ("ny-20261101-USD", "draft", "26.83"), ("INV-000002", "issued", "1003"),
        ("INV-000001", "issued", "548")]
    assert [i.id for i in client.invoices.list(customer_id="tokyo", status=["issued"])] == [
        "INV-000002", "INV-000001"]
    first = client.invoices.fetch("INV-000001")
    # Tokyo's 15 October began at 15:00 UTC the day before
    assert (first.invoice_number, first.currency, first.customer.id, first.invoice_date,
            first.issued_at) == ("INV-000001", "JPY", "tokyo",
                                 datetime(2026, 10, 14, 15, tzinfo=UTC),
                                 datetime(2026, 11, 2, 9, tzinfo=UTC))
    (fee,) = first.line_items
    assert isinstance(fee.price, UnitPrice)
    assert (fee.amount, fee.price.unit_config.unit_amount) == ("548", "1000")
    ny = client.invoices.fetch("ny-20261101-USD")
    assert sorted(line.amount for line in ny.line_items) == ["1.23", "20.00", "5.60"]

    paid = client.invoices.mark_paid("INV-000001", payment_received_date="2026-11-05")
    assert isinstance(paid, Invoice) and paid.status == "paid" and paid.paid_at is not None
    voided = client.invoices.void("INV-000002")
    assert voided.status == "void" and voided.voided_at is not None
    assert client.invoices.fetch("INV-000002").status == "void"
    with pytest.raises(orb.BadRequestError):
        client.invoices.void("INV-000001")  # paid
    with pytest.raises(orb.ResourceNotFound):
        client.invoices.fetch("INV-000404")
    with pytest.raises(orb.ResourceNotFound):  # another tenant's invoice
        server.client(server.admin).invoices.fetch("INV-000001")


def test_a_fixed_fee_quantity_through_the_sdk(server):
    client = server.client(server.admin)
    customer = client.customers.create(email="seats@x.test", name="Seats", timezone="UTC")
    sub = client.subscriptions.create(customer_id=customer.id, plan_id="starter",
                                      start_date="2026-10-01")
    assert sub.fixed_fee_quantity_schedule == []
    changed = client.subscriptions.update_fixed_fee_quantity(
        sub.id, price_id="starter_platform", quantity=3, effective_date="2026-10-11")
    assert isinstance(changed, MutatedSubscription)
    # 1 from the start (the catalog's fixed_price_quantity), 3 from Oct 11 on (UTC)
    assert [(e.price_id, e.quantity, e.start_date, e.end_date)
            for e in changed.fixed_fee_quantity_schedule] == [
        ("starter_platform", 1, datetime(2026, 10, 1, tzinfo=UTC),
         datetime(2026, 10, 11, tzinfo=UTC)),
        ("starter_platform", 3, datetime(2026, 10, 11, tzinfo=UTC), None)]
    assert client.subscriptions.fetch(sub.id).fixed_fee_quantity_schedule == (
        changed.fixed_fee_quantity_schedule)
    with pytest.raises(orb.RequestValidationError) as usage_price:
        client.subscriptions.update_fixed_fee_quantity(sub.id, price_id="starter_calls",
                                                       quantity=2, change_option="immediate")
    assert usage_price.value.detail == (
        "body.price_id: price 'starter_calls' is not a fixed fee (it has no "
        "fixed_price_quantity)")
    with pytest.raises(orb.RequestValidationError) as backdated:
        client.subscriptions.update_fixed_fee_quantity(
            sub.id, price_id="starter_platform", quantity=2, effective_date="2020-01-01",
            allow_invoice_credit_or_void=False)
    assert backdated.value.detail.startswith("body.effective_date: 2020-01-01 is before today")


def test_one_off_invoice_metadata_and_credit_note_through_the_sdk(server):
    """A one-off invoice of 3 x 12.50 = 37.50 (docs/invoicing.md), its metadata in Orb's
    rules (a null value deletes its key), issued, then 12.50 of its line credited."""
    client = server.client(server.admin)
    customer = client.customers.create(email="po@x.test", name="PO", timezone="UTC")
    draft = client.invoices.create(
        currency="USD", invoice_date="2026-11-15", customer_id=customer.id, net_terms=0,
        memo="Thank you", metadata={"PO number": "PO-1"},
        line_items=[{"name": "Onboarding", "quantity": 3, "item_id": "onboarding",
                     "model_type": "unit", "unit_config": {"unit_amount": "12.50"},
                     "start_date": "2026-11-01", "end_date": "2026-11-30"}])
    assert isinstance(draft, Invoice)
    assert (draft.status, draft.total, draft.memo, draft.metadata, draft.invoice_source) == (
        "draft", "37.50", "Thank you", {"PO number": "PO-1"}, "one_off")
    updated = client.invoices.update(draft.id, metadata={"PO number": "PO-2", "team": "ops"})
    assert updated.metadata == {"PO number": "PO-2", "team": "ops"}
    assert client.invoices.update(draft.id, metadata={"team": None}).metadata == {
        "PO number": "PO-2"}
    issued = client.invoices.issue(draft.id)
    assert (issued.status, issued.invoice_number, issued.metadata) == (
        "issued", issued.id, {"PO number": "PO-2"})
    (line,) = issued.line_items
    note = client.credit_notes.create(line_items=[{"amount": "12.50",
                                                   "invoice_line_item_id": line.id}],
                                      reason="duplicate", memo="Billed twice")
    assert (note.total, note.reason, note.memo, note.invoice_id) == (
        "12.50", "Duplicate", "Billed twice", issued.id)
    assert [(n.id, n.reason) for n in client.invoices.fetch(issued.id).credit_notes] == [
        (note.id, "Duplicate")]
    with pytest.raises(orb.BadRequestError) as refused:  # 37.50 - 12.50 = 25.00 left
        client.credit_notes.create(line_items=[{"amount": "25.01",
                                                "invoice_line_item_id": line.id}],
                                   reason="duplicate")
    assert "can still be credited: 25.00" in str(refused.value)
