"""The Orb-compatible API (docs/api.md) in-process: tenants, keys and roles, isolation over
every route with a path id (read from the app's route table), idempotency, the audit trail,
errors in Orb's shape, and ``orb serve`` refusing to listen beyond loopback unguarded."""

from __future__ import annotations

import hashlib
import hmac
import re
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from rich.console import Console
from starlette.testclient import TestClient

from api.access import ApiConfig
from api.app import create_app
from api.registry import Registry, registry_url
from api.schema import VERSION_TABLE, metadata
from assets.resources import OrbStore
from cli.main import main
from cli.summary import print_summary, summarize
from invoicing.issuing import issue_month
from pipelines import runner
from pipelines.definitions import build_definitions
from storage.duck import connect
from tests.api_tenants import API_VARIABLES, create_key, make_tenants, orb
from tests.scenario import OCTOBER

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
ORB = "https://docs.withorb.com/reference/error-responses#"
ACME = {"name": "Acme", "email": "ap@acme.test", "timezone": "Europe/Berlin",
        "external_customer_id": "acme-1"}


@pytest.fixture
def tenants(tmp_path, monkeypatch):
    for variable in API_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    return make_tenants(tmp_path)


def client_for(data_dir, require_auth=True):
    registry = Registry.open(registry_url(data_dir), data_dir, clock=lambda: NOW)
    return TestClient(create_app(ApiConfig(registry, require_auth, clock=lambda: NOW)))


@pytest.fixture
def client(tenants):
    return client_for(tenants[0])


def bearer(secret):
    return {"Authorization": f"Bearer {secret}"}


def test_a_customer_and_its_subscription_in_orb_shapes(tenants, client):
    admin = bearer(create_key(tenants[0], "admin"))
    created = client.post("/v1/customers", json=ACME, headers=admin)
    assert created.status_code == 200
    customer = created.json()
    assert re.fullmatch(r"cus_[0-9a-f]{16}", customer["id"])
    assert {k: customer[k] for k in ("name", "email", "timezone", "external_customer_id",
                                     "balance", "currency", "metadata", "net_terms")} == {
        "name": "Acme", "email": "ap@acme.test", "timezone": "Europe/Berlin",
        "external_customer_id": "acme-1", "balance": "0.00", "currency": None,
        "metadata": {}, "net_terms": 30}
    sub = client.post("/v1/subscriptions", headers=admin, json={
        "external_customer_id": "acme-1", "plan_id": "starter",
        "start_date": "2026-10-01"}).json()
    # 1 October in Berlin (UTC+2 in summer time) began at 22:00 UTC the day before; the
    # period under way on 10 November runs 1 November to 1 December, Berlin midnights (UTC+1)
    assert (sub["customer"]["id"], sub["plan"]["id"], sub["status"], sub["start_date"],
            sub["end_date"], sub["billing_cycle_day"]) == (
        customer["id"], "starter", "active", "2026-09-30T22:00:00Z", None, 1)
    assert (sub["current_billing_period_start_date"],
            sub["current_billing_period_end_date"]) == ("2026-10-31T23:00:00Z",
                                                        "2026-11-30T23:00:00Z")
    prices = {p["id"]: p for p in sub["plan"]["prices"]}
    assert prices["starter_platform"]["unit_config"]["unit_amount"] == "49.00"
    assert (prices["starter_platform"]["price_type"],
            prices["starter_platform"]["billing_mode"]) == ("fixed_price", "in_advance")
    assert prices["starter_calls"]["billable_metric"] == {"id": "calls"}
    assert prices["starter_calls"]["tiered_config"]["tiers"][1] == {
        "first_unit": "1000", "last_unit": None, "unit_amount": "0.002"}


def test_cancel_options(tenants, client):
    admin = bearer(create_key(tenants[0], "admin"))
    utc = client.post("/v1/customers", headers=admin,
                      json={"name": "U", "email": "u@x.test"}).json()["id"]
    berlin = client.post("/v1/customers", headers=admin, json=ACME).json()["id"]

    def subscribe(customer_id, plan_id="starter"):
        return client.post("/v1/subscriptions", headers=admin, json={
            "customer_id": customer_id, "plan_id": plan_id,
            "start_date": "2026-10-01"}).json()["id"]

    def cancel(sub_id, **body):
        return client.post(f"/v1/subscriptions/{sub_id}/cancel", headers=admin, json=body)

    # the month under way on 10 November ends 1 December; the yearly plan's term is a
    # year from 1 October
    monthly = cancel(subscribe(utc), cancel_option="end_of_subscription_term").json()
    assert (monthly["end_date"], monthly["status"]) == ("2026-12-01T00:00:00Z", "active")
    yearly = cancel(subscribe(utc, "a_yearly"), cancel_option="end_of_subscription_term")
    assert yearly.json()["end_date"] == "2027-10-01T00:00:00Z"
    # immediately at 12:00 UTC on 10 November ends at the next Berlin midnight, 23:00 UTC
    now = cancel(subscribe(berlin), cancel_option="immediate").json()
    assert now["end_date"] == "2026-11-10T23:00:00Z"
    requested = subscribe(berlin)
    on_day = cancel(requested, cancel_option="requested_date", cancellation_date="2027-01-01")
    assert on_day.json()["end_date"] == "2026-12-31T23:00:00Z"
    # a date with requested_date only, and one the subscription cannot end on
    missing = cancel(requested, cancel_option="requested_date")
    assert missing.status_code == 400
    assert missing.json()["detail"].startswith("body.cancellation_date:")
    before_start = cancel(requested, cancel_option="requested_date",
                          cancellation_date="2026-09-01")
    assert before_start.status_code == 400
    assert before_start.json()["detail"] == ("body.cancellation_date: Value error, end_date "
                                             "2026-09-01 must be after the last phase's start "
                                             "2026-10-01")


def test_refused_writes_name_the_field(tenants, client):
    admin = bearer(create_key(tenants[0], "admin"))
    bad_zone = client.post("/v1/customers", headers=admin,
                           json={**ACME, "timezone": "Mars/Olympus"})
    assert bad_zone.status_code == 400
    assert bad_zone.json()["type"] == ORB + "400-request-validation-errors"
    assert bad_zone.json()["detail"].startswith("body.timezone:")
    unsupported = client.post("/v1/customers", headers=admin, json={**ACME, "metadata": {}})
    assert unsupported.json()["validation_errors"] == [
        "body.metadata: not a field this server takes (docs/api.md lists what differs from Orb)"]
    client.post("/v1/customers", headers=admin, json=ACME)
    taken = client.post("/v1/customers", headers=admin, json={**ACME, "name": "Other"})
    assert taken.status_code == 400 and "acme-1" in taken.json()["detail"]
    customer_id = client.get("/v1/customers", headers=admin).json()["data"][0]["id"]
    unknown_plan = client.post("/v1/subscriptions", headers=admin, json={
        "customer_id": customer_id, "plan_id": "gold", "start_date": "2026-10-01"})
    assert unknown_plan.status_code == 400
    assert unknown_plan.json()["detail"] == "body.plan_id: unknown plan 'gold'"
    no_name = client.put(f"/v1/customers/{customer_id}", headers=admin, json={"name": None})
    assert no_name.json()["detail"] == "body.name: cannot be null; leave it out to keep it"
    assert client.get("/v1/customers?limit=0", headers=admin).json()["detail"].startswith(
        "query.limit:")
    assert client.get("/v1/customers?cursor=bm9wZQ", headers=admin).status_code == 400
    malformed = client.post("/v1/customers", headers={**admin, "Content-Type":
                                                      "application/json"}, content=b"{")
    assert malformed.status_code == 400
    assert malformed.json()["type"] == ORB + "400-request-validation-errors"
    nowhere = client.get("/v1/nowhere/nope", headers=admin)
    assert (nowhere.status_code, nowhere.json()["type"]) == (404, ORB + "404-url-not-found")


def test_pages_walk_every_customer_newest_first(tenants, client):
    admin = bearer(create_key(tenants[0], "admin"))
    ids = [client.post("/v1/customers", headers=admin,
                       json={"name": f"C{i}", "email": f"c{i}@x.test"}).json()["id"]
           for i in range(3)]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/customers", headers=admin, params=params).json()
        seen += [c["id"] for c in page["data"]]
        pages += 1
        cursor = page["pagination_metadata"]["next_cursor"]
        assert page["pagination_metadata"]["has_more"] == (cursor is not None)
        if cursor is None:
            break
    assert (seen, pages) == (ids[::-1], 2)


def test_roles(tenants, client):
    reader = bearer(create_key(tenants[0], "read_only"))
    operator = bearer(create_key(tenants[0], "billing_operator"))
    admin = bearer(create_key(tenants[0], "admin"))
    refused = client.post("/v1/customers", headers=reader, json=ACME)
    assert (refused.status_code, refused.json()["type"]) == (403, ORB + "403-permission-denied")
    assert client.get("/v1/customers", headers=reader).status_code == 200
    assert client.post("/v1/customers", headers=operator, json=ACME).status_code == 200
    assert client.get("/v1/audit_events", headers=operator).status_code == 403
    assert client.get("/v1/audit_events", headers=reader).status_code == 403
    assert client.get("/v1/audit_events", headers=admin).status_code == 200


def test_keys_are_required_kept_hashed_and_revocable(tenants, client):
    a = tenants[0]
    secret = create_key(a, "admin")
    for headers in ({}, {"Authorization": "Basic eDp5"}, bearer("orb_sk_unknown")):
        refused = client.get("/v1/customers", headers=headers)
        assert (refused.status_code, refused.json()["type"]) == (
            401, ORB + "401-authentication-error")
    assert client.get("/v1/customers", headers=bearer(secret)).status_code == 200
    # only HMAC-SHA256(pepper, secret) is kept
    pepper = (a / "api.pepper").read_bytes().strip()
    with sqlite3.connect(a / "api.db") as db:
        (key_id, kept), = db.execute("SELECT key_id, secret_hash FROM api_keys").fetchall()
    assert kept == hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()
    assert secret not in (a / "api.db").read_bytes().decode("latin-1")
    assert key_id in orb(["keys", "list", "--data-dir", str(a)])
    orb(["keys", "revoke", key_id, "--data-dir", str(a)])
    revoked = client.get("/v1/customers", headers=bearer(secret))
    assert (revoked.status_code, revoked.json()["detail"]) == (
        401, "the API key is unknown or revoked")


def test_without_required_auth_a_keyless_request_is_the_default_tenants_admin(tenants):
    open_client = client_for(tenants[0], require_auth=False)
    created = open_client.post("/v1/customers", json=ACME)
    assert created.status_code == 200
    assert open_client.get("/v1/customers/external_customer_id/acme-1").json()["id"] == \
        created.json()["id"]
    (event,) = open_client.get("/v1/audit_events").json()["data"]
    assert (event["key_id"], event["role"]) == (None, "admin")
    # a key given must still be valid
    assert open_client.get("/v1/customers", headers=bearer("orb_sk_x")).status_code == 401


# Each path parameter, filled with a tenant-A resource of its kind.
def _a_ids(client, admin, tenant):
    customer = client.post("/v1/customers", headers=admin, json=ACME).json()
    sub = client.post("/v1/subscriptions", headers=admin, json={
        "customer_id": customer["id"], "plan_id": "starter",
        "start_date": "2026-10-01"}).json()
    # October billed through the pipeline, issued, re-rated: tenant A's documents
    credit_note_id = _a_credit_note(client, admin, tenant)
    invoice = client.get("/v1/invoices", headers=admin).json()["data"][0]
    client.post("/v1/ingest", headers=admin, json={"events": [AMENDED | {
        "idempotency_key": "evt-a", "customer_id": customer["id"]}]})
    backfill = client.post("/v1/events/backfills", headers=admin, json={
        "timeframe_start": "2026-11-01T00:00:00Z", "timeframe_end": "2026-11-02T00:00:00Z"})
    alert = client.post(f"/v1/alerts/customer_id/{customer['id']}", headers=admin, json={
        "currency": "USD", "type": "credit_balance_depleted"}).json()
    endpoint = client.post("/v1/webhook_endpoints", headers=admin, json={
        "url": "http://127.0.0.1:9/hooks"}).json()
    top_up = client.post(f"/v1/customers/{customer['id']}/credits/top_ups", headers=admin,
                         json={"amount": "10", "currency": "USD", "threshold": "0",
                               "per_unit_cost_basis": "0", "invoice_settings": {
                                   "auto_collection": False, "net_terms": 0}}).json()
    change = client.post("/v1/subscriptions", json={
        "customer_id": customer["id"], "plan_id": "starter", "start_date": "2026-10-01"},
        headers=admin | {"Create-Pending-Subscription-Change": "true"}).json()
    return {"alert_id": alert["id"], "webhook_endpoint_id": endpoint["id"],
            "alert_configuration_id": alert["id"],
            "customer_id": customer["id"], "external_customer_id": "acme-1",
            "subscription_id": sub["id"], "plan_id": "a_yearly",
            "external_plan_id": "a_yearly", "metric_id": "a_seats", "invoice_id": invoice["id"],
            "price_id": "yearly_fee", "external_price_id": "yearly_fee",
            "credit_note_id": credit_note_id, "event_id": "evt-a",
            "backfill_id": backfill.json()["id"],
            "dimensional_price_group_id": "a_by_team", "top_up_id": top_up["id"],
            "subscription_change_id": change["pending_subscription_change"]["id"],
            "external_dimensional_price_group_id": "a_team_ext"}


# an event as ingested, and as PUT /events/{event_id} takes its amendment
AMENDED = {"event_name": "call", "timestamp": "2026-11-10T11:00:00Z", "properties": {}}


def _a_credit_note(client, admin, tenant):
    """A credit note of tenant A: another customer's 1 November invoice (November's fee in
    advance) issued, its subscription then cancelled in October, October re-rated and
    its correction issued."""
    other = client.post("/v1/customers", headers=admin, json={
        "name": "Noted", "email": "n@x.test"}).json()
    sub = client.post("/v1/subscriptions", headers=admin, json={
        "customer_id": other["id"], "plan_id": "starter", "start_date": "2026-10-01"}).json()
    store = OrbStore(data_dir=str(tenant))
    runner.bill_months(build_definitions(store), [OCTOBER], dg.DagsterInstance.ephemeral())
    issue_month(connect(), store.lake, OCTOBER, NOW)
    client.post(f"/v1/subscriptions/{sub['id']}/cancel", headers=admin, json={
        "cancel_option": "requested_date", "cancellation_date": "2026-10-16"})
    runner.bill_months(build_definitions(store), [OCTOBER], dg.DagsterInstance.ephemeral())
    issue_month(connect(), store.lake, OCTOBER, NOW)
    return client.get("/v1/credit_notes", headers=admin).json()["data"][0]["id"]


def test_a_tenant_never_sees_anothers_resources_on_any_route(tenants, client):
    admin_a = bearer(create_key(tenants[0], "admin"))
    admin_b = bearer(create_key(tenants[0], "admin", tenant="b"))
    ids = _a_ids(client, admin_a, tenants[0])
    # every route with a path id, as the app publishes them (its OpenAPI document)
    routes = {path: [m.upper() for m in methods]
              for path, methods in client.app.openapi()["paths"].items() if "{" in path}
    assert len(routes) >= 7  # the table is read, not empty
    for route, methods in routes.items():
        missing = set(re.findall(r"{(\w+)}", route)) - set(ids)
        assert not missing, f"{route}: give this test a tenant-A id for {missing}"
        path = route.format(**ids)
        for method in methods:
            # a body that would be valid, so that only the id can make it fail
            body = ({"cancel_option": "immediate"} if path.endswith("/cancel")
                    else {"change_option": "immediate", "plan_id": "starter"}
                    if path.endswith("/schedule_plan_change")
                    else {"payment_received_date": "2026-11-05"}
                    if path.endswith("/mark_paid")
                    else {"price_id": "starter_platform", "quantity": 2}
                    if path.endswith("/update_fixed_fee_quantity")
                    else AMENDED | {"customer_id": ids["customer_id"]}
                    if re.fullmatch(r"/v1/events/[^/]+", path) and method == "PUT"
                    else {"name": "Renamed"} if method == "PUT" else None)
            # and a body no route takes: the path's ids are checked first (api/access.py)
            for sent in (body, {"not_a_field": 1}) if method != "GET" else (body,):
                theirs = client.request(method, path, headers=admin_b, json=sent)
                assert (theirs.status_code, theirs.json()["type"]) == (
                    404, ORB + "404-resource-not-found"), (method, path, theirs.json())
            if method == "GET":  # the id is real: tenant A's key gets it
                assert client.get(path, headers=admin_a).status_code == 200, path
    # tenant B's catalog is its own: the same plan id, B's price
    plan_b = client.get("/v1/plans/starter", headers=admin_b).json()
    assert plan_b["prices"][0]["unit_config"]["unit_amount"] == "99.00"
    assert client.get("/v1/customers", headers=admin_b).json()["data"] == []


def test_idempotency_key_replays_or_conflicts(tenants, client):
    admin = bearer(create_key(tenants[0], "admin"))
    first = client.post("/v1/customers", headers={**admin, "Idempotency-Key": "k1"},
                        json=ACME)
    again = client.post("/v1/customers", headers={**admin, "Idempotency-Key": "k1"},
                        json=ACME)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(client.get("/v1/customers", headers=admin).json()["data"]) == 1
    other = client.post("/v1/customers", headers={**admin, "Idempotency-Key": "k1"},
                        json={**ACME, "name": "Other"})
    assert (other.status_code, other.json()["type"]) == (409, ORB + "409-resource-conflict")
    # a refused request is not kept: corrected, the same key goes through
    bad = {"name": "N", "email": "n@x.test", "timezone": "Nowhere/Land"}
    assert client.post("/v1/customers", headers={**admin, "Idempotency-Key": "k2"},
                       json=bad).status_code == 400
    fixed = client.post("/v1/customers", headers={**admin, "Idempotency-Key": "k2"},
                        json={**bad, "timezone": "UTC"})
    assert fixed.status_code == 200 and "Idempotent-Replayed" not in fixed.headers
    # a PUT too (the SDK sends a key with every write)
    path = f"/v1/customers/{first.json()['id']}"
    renamed = client.put(path, headers={**admin, "Idempotency-Key": "k3"}, json={"name": "R"})
    replayed = client.put(path, headers={**admin, "Idempotency-Key": "k3"}, json={"name": "R"})
    assert replayed.json() == renamed.json() and replayed.headers["Idempotent-Replayed"] == "true"
    assert client.put(path, headers={**admin, "Idempotency-Key": "k3"},
                      json={"name": "S"}).status_code == 409
    # keys are per tenant
    admin_b = bearer(create_key(tenants[0], "admin", tenant="b"))
    theirs = client.post("/v1/customers", headers={**admin_b, "Idempotency-Key": "k1"},
                         json=ACME)
    assert theirs.status_code == 200 and theirs.json()["id"] != first.json()["id"]


def test_every_write_is_audited(tenants, client):
    a = tenants[0]
    admin_secret = create_key(a, "admin")
    admin = bearer(admin_secret)
    customer = client.post("/v1/customers", headers=admin, json=ACME).json()
    client.put(f"/v1/customers/{customer['id']}", headers=admin, json={"name": "Acme GmbH"})
    sub = client.post("/v1/subscriptions", headers=admin, json={
        "customer_id": customer["id"], "plan_id": "starter", "start_date": "2026-10-01"}).json()
    client.post(f"/v1/subscriptions/{sub['id']}/cancel", headers=admin,
                json={"cancel_option": "requested_date", "cancellation_date": "2027-01-01"})
    # a refused write changes nothing, so it is not an audit event
    client.post("/v1/customers", headers=admin, json={**ACME, "timezone": "Nowhere/Land"})
    events = client.get("/v1/audit_events", headers=admin).json()["data"]
    key_id = events[0]["key_id"]
    assert key_id.startswith("key_")
    assert [(e["method"], e["path"], e["resource"], e["resource_id"], e["role"], e["key_id"],
             e["created_at"]) for e in events] == [
        ("POST", "/v1/customers", "customer", customer["id"], "admin", key_id,
         "2026-11-10T12:00:00Z"),
        ("PUT", f"/v1/customers/{customer['id']}", "customer", customer["id"], "admin",
         key_id, "2026-11-10T12:00:00Z"),
        ("POST", "/v1/subscriptions", "subscription", sub["id"], "admin", key_id,
         "2026-11-10T12:00:00Z"),
        ("POST", f"/v1/subscriptions/{sub['id']}/cancel", "subscription", sub["id"], "admin",
         key_id, "2026-11-10T12:00:00Z"),
    ]
    assert (events[0]["before"], events[0]["after"]["name"]) == (None, "Acme")
    assert (events[1]["before"]["name"], events[1]["after"]["name"]) == ("Acme", "Acme GmbH")
    assert (events[3]["before"]["end_date"], events[3]["after"]["end_date"]) == (
        None, "2026-12-31T23:00:00Z")
    page = client.get("/v1/audit_events?limit=3", headers=admin).json()
    rest = client.get("/v1/audit_events", headers=admin,
                      params={"cursor": page["pagination_metadata"]["next_cursor"]}).json()
    assert [e["id"] for e in page["data"] + rest["data"]] == [e["id"] for e in events]
    # tenant B's admin sees none of A's trail; the CLI shows every tenant's
    admin_b = bearer(create_key(a, "admin", tenant="b"))
    assert client.get("/v1/audit_events", headers=admin_b).json()["data"] == []
    shown = orb(["audit", "--data-dir", str(a)])
    assert shown.count(key_id) == 4 and '["name"]' in shown


def test_serve_refuses_to_listen_beyond_loopback_unguarded(tenants, monkeypatch):
    a = tenants[0]

    def serve():
        return CliRunner().invoke(main, ["serve", "--data-dir", str(a), "--host", "0.0.0.0"])

    no_keys = serve()
    assert no_keys.exit_code == 1 and "no API key exists" in no_keys.output
    create_key(a, "admin")
    monkeypatch.setenv("ORB_API_REQUIRE_AUTH", "0")
    unguarded = serve()
    assert unguarded.exit_code == 1 and "ORB_API_REQUIRE_AUTH is off" in unguarded.output


def test_tenants_and_keys_cli_refusals(tenants):
    a = tenants[0]
    runner = CliRunner()
    unknown = runner.invoke(main, ["keys", "create", "--tenant", "c", "--role", "admin",
                                   "--data-dir", str(a)])
    assert unknown.exit_code == 1 and "unknown tenant 'c'" in unknown.output
    twice = runner.invoke(main, ["tenants", "add", "b", "--tenant-data-dir", str(a),
                                 "--data-dir", str(a)])
    assert twice.exit_code == 1 and "tenant 'b' exists already" in twice.output
    assert runner.invoke(main, ["keys", "revoke", "key_nope", "--data-dir",
                                str(a)]).exit_code == 1
    assert str(tenants[1]) in orb(["tenants", "list", "--data-dir", str(a)])


def test_a_server_fault_is_an_orb_500_without_the_traceback(tenants):
    a = tenants[0]
    admin = bearer(create_key(a, "admin"))
    (a / "catalog" / "catalog.yaml").write_text("plans: [{id: broken}]\n")
    registry = Registry.open(registry_url(a), a)
    client = TestClient(create_app(ApiConfig(registry)), raise_server_exceptions=False)
    fault = client.get("/v1/plans", headers=admin)
    assert fault.status_code == 500
    assert fault.json() == {
        "type": ORB + "500-internal-server-error", "status": 500,
        "title": "Internal server error",
        "detail": "the server failed to answer this request; it is logged"}


def test_the_registry_migrations_create_exactly_the_declared_tables(tmp_path, monkeypatch):
    monkeypatch.delenv("ORB_API_KEY_PEPPER", raising=False)
    registry = Registry.open(f"sqlite:///{tmp_path / 'api.db'}", tmp_path)
    with registry.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, metadata) == []


def test_invoices_of_a_billed_and_issued_month(billed, monkeypatch):
    """tests/scenario.py's October (hand-worked in tests/test_pipeline.py), billed through
    Dagster; Tokyo's two invoices issued on 2 November, New York's left a draft:
      INV-000001  tokyo  dated Oct 15 (Tokyo midnight: 2026-10-14T15:00Z), due Nov 14:
                  the platform fee for 17 of October's 31 days, 1000 x 17/31 -> 548 yen
      INV-000002  tokyo  dated Nov 1 (2026-10-31T15:00Z), due Dec 1: 10 calls x 0.25 ->
                  3 yen, November's fee 1000: 1003 yen
      ny-20261101-USD  draft, dated Nov 1 (New York, still EDT: 2026-11-01T04:00Z):
                  20.00 + 5.60 + 1.23 = 26.83"""
    for variable in API_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    store, _, _ = billed
    root = store.lake.root
    issue_month(connect(), store.lake, OCTOBER, datetime(2026, 11, 2, 9, tzinfo=UTC), {"tokyo"})
    client = client_for(root)
    reader = bearer(create_key(root, "read_only"))
    operator = bearer(create_key(root, "billing_operator"))

    def ids(**params):
        answer = client.get("/v1/invoices", headers=reader, params=params)
        assert answer.status_code == 200, answer.json()
        return [i["id"] for i in answer.json()["data"]]

    listed = client.get("/v1/invoices", headers=reader).json()["data"]
    assert [(i["id"], i["status"], i["invoice_number"], i["invoice_date"], i["due_date"],
             i["currency"], i["subtotal"], i["total"], i["amount_due"]) for i in listed] == [
        ("ny-20261101-USD", "draft", "", "2026-11-01T04:00:00Z", "2026-12-01T05:00:00Z",
         "USD", "26.83", "26.83", "26.83"),
        ("INV-000002", "issued", "INV-000002", "2026-10-31T15:00:00Z", "2026-11-30T15:00:00Z",
         "JPY", "1003", "1003", "1003"),
        ("INV-000001", "issued", "INV-000001", "2026-10-14T15:00:00Z", "2026-11-13T15:00:00Z",
         "JPY", "548", "548", "548"),
    ]
    ny = listed[0]
    assert (ny["customer"], ny["subscription"], ny["issued_at"]) == (
        {"id": "ny", "external_customer_id": "acme"}, {"id": "sub_ny"}, None)
    assert sorted((line["price"]["id"], line["quantity"], line["amount"])
                  for line in ny["line_items"]) == [
        ("pro_calls", "16", "5.60"), ("pro_platform", "1", "20.00"),
        ("pro_tokens", "1225", "1.23")]
    first = client.get("/v1/invoices/INV-000001", headers=reader).json()
    (fee,) = first["line_items"]
    assert (fee["name"], fee["start_date"], fee["end_date"],
            fee["price"]["unit_config"]["unit_amount"], first["issued_at"]) == (
        "jp_platform", "2026-10-14T15:00:00Z", "2026-10-31T15:00:00Z", "1000",
        "2026-11-02T09:00:00Z")

    # Orb's filters, and pages of two
    assert ids(customer_id="tokyo") == ["INV-000002", "INV-000001"]
    assert ids(external_customer_id="acme") == ["ny-20261101-USD"]
    assert ids(**{"status[]": ["draft", "paid"]}) == ["ny-20261101-USD"]
    assert ids(**{"invoice_date[gte]": "2026-10-31T15:00:00Z"}) == ["ny-20261101-USD",
                                                                     "INV-000002"]
    assert ids(**{"invoice_date[lt]": "2026-10-31T15:00:00Z"}) == ["INV-000001"]
    assert ids(**{"due_date[lt]": "2026-11-15"}) == ["INV-000001"]
    assert ids(due_date="2026-12-01") == ["ny-20261101-USD", "INV-000002"]
    page = client.get("/v1/invoices", headers=reader, params={"limit": 2}).json()
    rest = client.get("/v1/invoices", headers=reader, params={
        "cursor": page["pagination_metadata"]["next_cursor"]}).json()
    assert [i["id"] for i in page["data"] + rest["data"]] == [i["id"] for i in listed]
    assert client.get("/v1/invoices", headers=reader, params={"amount": "3"}).json()[
        "validation_errors"] == ["query.amount: not a filter this server takes (docs/api.md "
                                 "lists what differs from Orb)"]

    # paid and void, as `orb invoices pay|void` make them; refused where they cannot be
    assert client.post("/v1/invoices/INV-000001/void", headers=reader).status_code == 403
    paid = client.post("/v1/invoices/INV-000001/mark_paid", headers=operator,
                       json={"payment_received_date": "2026-11-05", "external_id": "wire-7"})
    assert (paid.json()["status"], paid.json()["paid_at"]) == ("paid", "2026-11-10T12:00:00Z")
    voided = client.post("/v1/invoices/INV-000002/void", headers=operator).json()
    assert (voided["status"], voided["voided_at"]) == ("void", "2026-11-10T12:00:00Z")
    again = client.post("/v1/invoices/INV-000001/void", headers=operator).json()
    assert again["detail"] == ("path.invoice_id: INV-000001 is paid; only an issued document "
                               "can be marked void")
    draft = client.post("/v1/invoices/ny-20261101-USD/void", headers=operator)
    assert (draft.status_code, draft.json()["detail"]) == (
        400, "path.invoice_id: invoice 'ny-20261101-USD' is a draft; only an issued invoice "
             "can be marked void")
    unknown = client.get("/v1/invoices/INV-000404", headers=reader)
    assert (unknown.status_code, unknown.json()["type"]) == (404, ORB + "404-resource-not-found")
    # the CLI reads the same statuses; the voided invoice is drafted afresh
    shown = orb(["invoices", "list", "--data-dir", str(root)])
    assert re.search(r"INV-000001 .* paid", shown) and re.search(r"INV-000002 .* void", shown)
    assert ids(**{"status[]": "draft"}) == ["ny-20261101-USD", "tokyo-20261101-JPY"]
    audit = client.get("/v1/audit_events", headers=bearer(create_key(root, "admin"))).json()
    assert [(e["method"], e["path"], e["resource"], e["resource_id"], e["role"],
             e["before"]["status"], e["after"]["status"]) for e in audit["data"]] == [
        ("POST", "/v1/invoices/INV-000001/mark_paid", "invoice", "INV-000001",
         "billing_operator", "issued", "paid"),
        ("POST", "/v1/invoices/INV-000002/void", "invoice", "INV-000002", "billing_operator",
         "issued", "void")]


def test_the_billing_summary_prints_a_curl_that_answers(billed, monkeypatch):
    """What `make demo` and `orb bill` print: how to start the API, make a key, and one
    curl; the curl's request, with the key made as printed, gets the newest invoice."""
    for variable in API_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    store, _, _ = billed
    console = Console(record=True, width=80)
    print_summary(summarize(store.lake, [OCTOBER]), console)
    lines = console.export_text().splitlines()
    serve, key, curl = (line.strip() for line in lines[-3:])
    root = store.lake.root
    assert serve.startswith(f"API:       {Path(sys.executable).parent / 'orb'} serve "
                            f"--data-dir {root} ")
    made = re.fullmatch(r"KEY=\$\((\S+) (keys create .*) \| tail -n 1\)", key)
    assert made is not None
    secret = orb(made[2].split()).strip().splitlines()[-1]
    url = re.fullmatch(r"curl -H \"Authorization: Bearer \$KEY\" '(http://127.0.0.1:8089"
                       r"(/v1/\S+))'", curl)
    assert url is not None
    answer = client_for(root).get(url[2], headers=bearer(secret))
    assert answer.status_code == 200
    assert [i["id"] for i in answer.json()["data"]] == ["ny-20261101-USD"]
