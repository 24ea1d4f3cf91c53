"""Orb's official Python SDK (``orb-billing``) drives the API served by the real ``orb
serve`` on loopback (docs/api.md): a customer's journey through customers, plans, metrics
and subscriptions, errors as the SDK's typed exceptions, and another tenant's key that
finds none of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime

import orb
import pytest
from orb.types import BillableMetric, Customer, MutatedSubscription, Plan, Subscription
from orb.types.shared.price import TieredPrice, UnitPrice

from tests.api_tenants import API_VARIABLES, create_key, make_tenants
from tests.servers import free_port, wait_until_listening


@dataclass(frozen=True)
class Server:
    url: str
    admin: str
    reader: str
    tenant_b: str

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
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in API_VARIABLES}
    log = a / "serve.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--data-dir", str(a), "--port",
             str(port)], env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until_listening(port, process, "orb serve", log.read_text)
        yield Server(f"http://127.0.0.1:{port}/v1", *keys)
    finally:
        process.terminate()
        process.wait(timeout=30)


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
