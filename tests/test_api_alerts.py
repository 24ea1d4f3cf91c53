"""Alerts through Orb's official SDK (docs/api.md#alerts) against the API served by uvicorn
on loopback, its clock on 20 October 2026 12:00 UTC: create for a subscription, a
customer and an external customer, list with filters and pages, fetch, update, disable
and enable, refusals, the audit trail, another tenant, and an ingest request whose batch
fires a usage alert after the answer."""

from __future__ import annotations

import threading
import time

import httpx
import orb
import pytest
import uvicorn
from orb.types import Alert

from api.access import ApiConfig
from api.app import create_app
from api.registry import Registry, registry_url
from state import StateStore
from state.database import reading
from state.outbox import read
from storage.settings import Settings
from tests.api_tenants import API_VARIABLES, create_key
from tests.api_tenants import orb as orb_cli
from tests.catalogs import write_data_dir
from tests.servers import free_port
from tests.test_alerts import CATALOG, OCT_20


class Keys:
    def __init__(self, url: str, operator: str, reader: str, admin: str, other: str):
        self.url, self.operator, self.reader, self.admin, self.other = (
            url, operator, reader, admin, other)

    def client(self, key: str | None = None) -> orb.Orb:
        return orb.Orb(api_key=key or self.operator, base_url=self.url, max_retries=0)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    root = tmp_path_factory.mktemp("alerts")
    a, b = root / "a", root / "b"
    write_data_dir(a, CATALOG)
    write_data_dir(b, {"metrics": CATALOG["metrics"], "plans": CATALOG["plans"]})
    with pytest.MonkeyPatch.context() as patch:
        for variable in API_VARIABLES:
            patch.delenv(variable, raising=False)
        orb_cli(["tenants", "add", "b", "--tenant-data-dir", str(b), "--data-dir", str(a)])
        keys = [create_key(a, role) for role in ("billing_operator", "read_only", "admin")]
        keys.append(create_key(a, "billing_operator", tenant="b"))
        registry = Registry.open(registry_url(a), a, clock=lambda: OCT_20)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(
            create_app(ApiConfig(registry, clock=lambda: OCT_20)), host="127.0.0.1",
            port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        for _ in range(600):
            if server.started:
                break
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        try:
            yield Keys(f"http://127.0.0.1:{port}/v1", *keys), a
        finally:
            server.should_exit = True
            thread.join(timeout=30)


def test_alerts_created_listed_fetched_updated_disabled_and_enabled(api):
    keys, _ = api
    client = keys.client()
    usage = client.alerts.create_for_subscription(
        "sub_ny", type="usage_exceeded", metric_id="calls",
        thresholds=[{"value": 10}, {"value": 2.5}])
    assert isinstance(usage, Alert)
    assert (usage.type, usage.enabled, usage.metric.id, usage.subscription.id) == (
        "usage_exceeded", True, "calls", "sub_ny")
    assert (usage.customer.id, usage.customer.external_customer_id) == ("ny", "acme")
    assert [t.value for t in usage.thresholds] == [2.5, 10.0]  # kept in order
    assert usage.balance_alert_status is None and usage.currency is None
    dropped = client.alerts.create_for_customer("ny", type="credit_balance_dropped",
                                                currency="usd", thresholds=[{"value": 50}])
    assert (dropped.currency, dropped.subscription, dropped.metric) == ("USD", None, None)
    # no grant, no evaluation yet: nothing is in alert
    assert [(s.in_alert, s.threshold_value) for s in dropped.balance_alert_status] == [
        (False, 50.0)]
    depleted = client.alerts.create_for_external_customer(
        "acme", type="credit_balance_depleted", currency="USD")
    assert depleted.thresholds is None and depleted.customer.id == "ny"
    # newest first, one at a time through the SDK's pages
    listed = [a.id for a in client.alerts.list(customer_id="ny", limit=1)]
    assert listed == [depleted.id, dropped.id, usage.id]
    assert [a.id for a in client.alerts.list(external_customer_id="acme")] == listed
    assert [a.id for a in client.alerts.list(subscription_id="sub_ny")] == [usage.id]
    assert [a.id for a in client.alerts.list(customer_id="ny",
                                             created_at_gt=usage.created_at)] == []
    assert client.alerts.retrieve(usage.id) == usage
    updated = client.alerts.update(usage.id, thresholds=[{"value": 100}])
    assert [t.value for t in updated.thresholds] == [100.0]
    assert client.alerts.disable(usage.id).enabled is False
    assert client.alerts.retrieve(usage.id).enabled is False
    enabled = client.alerts.enable(usage.id, subscription_id="sub_ny")
    assert (enabled.enabled, [t.value for t in enabled.thresholds]) == (True, [100.0])
    # each write is in the audit trail with the alert before and after
    audit = httpx.get(f"{keys.url}/audit_events?limit=100",
                      headers={"Authorization": f"Bearer {keys.admin}"}).json()["data"]
    trail = [(e["method"], e["resource_id"], e["before"] and e["before"]["enabled"],
              e["after"]["enabled"]) for e in audit if e["resource"] == "alert"]
    assert trail == [("POST", usage.id, None, True), ("POST", dropped.id, None, True),
                     ("POST", depleted.id, None, True), ("PUT", usage.id, True, True),
                     ("POST", usage.id, True, False), ("POST", usage.id, False, True)]


def test_refusals_name_the_field_and_other_tenants_find_nothing(api):
    keys, _ = api
    client = keys.client()
    with pytest.raises(orb.BadRequestError) as bad:
        client.alerts.create_for_subscription("sub_ny", type="usage_exceeded",
                                              metric_id="nope", thresholds=[{"value": -1}])
    assert bad.value.body["validation_errors"] == [
        "body.metric_id: unknown metric 'nope'",
        "body.thresholds.0.value: -1 must be a number, zero or more"]
    with pytest.raises(orb.BadRequestError) as bad:
        client.alerts.create_for_customer("ny", type="credit_balance_depleted",
                                          currency="XYZ", thresholds=[{"value": 1}])
    assert bad.value.body["validation_errors"] == [
        "body.currency: unknown ISO 4217 currency code 'XYZ'",
        "body.thresholds: a credit_balance_depleted alert watches a balance of zero and "
        "takes no thresholds"]
    with pytest.raises(orb.BadRequestError, match="give one of customer_id"):
        client.alerts.list()
    naive = httpx.get(f"{keys.url}/alerts", params={"customer_id": "ny", "created_at[gt]":
                                                    "2026-10-01T00:00:00"},
                      headers={"Authorization": f"Bearer {keys.operator}"})
    assert naive.status_code == 400  # an instant needs its offset
    assert naive.json()["validation_errors"][0].startswith("query.created_at[gt]: ")
    with pytest.raises(orb.NotFoundError):
        client.alerts.create_for_subscription("sub_nope", type="cost_exceeded",
                                              thresholds=[{"value": 1}])
    with pytest.raises(orb.PermissionDeniedError):
        keys.client(keys.reader).alerts.create_for_customer(
            "ny", type="credit_balance_recovered", currency="USD")
    cost = client.alerts.create_for_subscription("sub_ny", type="cost_exceeded",
                                                 thresholds=[{"value": 1000}])
    other = keys.client(keys.other)
    with pytest.raises(orb.NotFoundError):
        other.alerts.retrieve(cost.id)
    with pytest.raises(orb.NotFoundError):
        other.alerts.disable(cost.id)
    assert list(other.alerts.list(customer_id="ny")) == []


def test_an_ingest_request_fires_its_customers_usage_alert_after_the_answer(api):
    keys, data_dir = api
    client = keys.client()
    # the subscription's one usage alert on calls (the first test's), at 3 now
    [alert] = [a for a in client.alerts.list(subscription_id="sub_ny")
               if a.type == "usage_exceeded"]
    client.alerts.update(alert.id, thresholds=[{"value": 3}])
    client.events.ingest(events=[
        {"event_name": "api_request", "timestamp": "2026-10-20T10:00:00Z",
         "customer_id": "ny", "idempotency_key": f"alert-call-{i}", "properties": {}}
        for i in range(4)])
    settings = Settings(data_dir=str(data_dir))
    told = []
    for _ in range(600):  # the background task runs once the answer is sent
        with StateStore.open(settings.state_store_url) as store, \
                reading(store.engine) as con:
            told = read(con, types=["subscription.usage_exceeded"])
        if told:
            break
        time.sleep(0.05)
    # the 4 calls of 20 October (New York's October so far): at or past 3
    [event] = told
    properties = event.event.payload["properties"]
    assert (properties["alert_configuration"]["id"], properties["evaluated_quantity"],
            properties["quantity_threshold"]) == (alert.id, 4.0, 3.0)
