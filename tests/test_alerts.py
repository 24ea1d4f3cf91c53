"""Alerts evaluated after ingestion batches (docs/webhooks.md#alerts), worked by hand: a
batch that crosses a threshold in its middle, one that lands exactly on it, two
thresholds in one period, a period boundary in the customer's time zone, a cost alert in
dollars, and credit balances depleted, dropped and recovered.

The customer is in New York (EDT, UTC-4 in October, EST from 1 November 02:00 local):
its October is [2026-10-01T04:00Z, 2026-11-01T04:00Z). Plan ``pro`` charges a 20.00
platform fee in advance and 0.50 a call; ``calls`` counts ``api_request`` events."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import dagster as dg
import pytest
from click.testing import CliRunner

from assets.resources import OrbStore
from cli.main import main
from ingestion.batches import Window, ingest_files
from invoicing import credit_grants
from pipelines import runner
from pipelines.alerts import alerts_after_billing
from pipelines.definitions import build_definitions
from pricing_sql.run_catalog import current_catalog
from state import StateError, StateStore
from state import alerts as stored
from state.database import reading
from state.outbox import StoredEvent, read
from storage.duck import connect
from storage.settings import Settings
from tests.api_tenants import orb
from tests.batches import batch
from tests.catalogs import unit, write_data_dir
from webhooks.alerts import EVENT_TYPES, after_batches, batch_customers, evaluate

CATALOG = {
    "metrics": [{"id": "calls", "name": "Calls",
                 "sql": "SELECT count(*) FROM events WHERE event_name = 'api_request'"}],
    "plans": [{"id": "pro", "name": "Pro", "currency": "USD", "prices": [
        unit("pro_platform", "20.00", fixed_quantity=1),
        unit("pro_calls", "0.50", metric="calls")]}],
    "customers": [{"id": "ny", "name": "New York Co", "external_customer_id": "acme",
                   "timezone": "America/New_York"}],
    "subscriptions": [{"id": "sub_ny", "customer_id": "ny", "plan_id": "pro",
                       "start_date": "2026-01-01"}],
}
OCT_20 = datetime(2026, 10, 20, 12, tzinfo=UTC)
OCTOBER_START = datetime(2026, 10, 1, 4, tzinfo=UTC)  # midnight in New York
NOVEMBER_START = datetime(2026, 11, 1, 4, tzinfo=UTC)
_keys = itertools.count()


@pytest.fixture
def deployment(tmp_path):
    write_data_dir(tmp_path, CATALOG)
    return Settings(data_dir=str(tmp_path))


def _ingest(settings: Settings, calls: int, at: str, now: datetime) -> str:
    """``calls`` api_request events of ``ny`` at ``at``, as one batch; its id."""
    rows = [{"event_name": "api_request", "timestamp": at, "customer_id": "ny",
             "idempotency_key": f"call-{next(_keys)}", "properties": {}}
            for _ in range(calls)]
    path = batch(settings.lake.root / f"batch-{next(_keys)}.jsonl", *rows)
    result = ingest_files(connect(), settings.lake, current_catalog(settings), [path], now,
                          Window())
    assert result[0].accepted == calls
    return result[0].batch_id


def _alert(settings: Settings, alert_id: str, kind: str, thresholds: list[str],
           metric: str | None = None, currency: str | None = None,
           now: datetime = OCTOBER_START) -> stored.Alert:
    subscription = None if kind.startswith("credit") else "sub_ny"
    with StateStore.open(settings.state_store_url) as store:
        return stored.create(store.engine, stored.NewAlert(
            alert_id, kind, "ny" if subscription is None else None, subscription, metric,
            currency), thresholds, {"calls"}, "test", now)


def _events(settings: Settings) -> list[StoredEvent]:
    with StateStore.open(settings.state_store_url) as store, reading(store.engine) as con:
        return read(con, types=list(EVENT_TYPES.values()))  # not the store's own events


def _usage(event: StoredEvent) -> tuple[str, float, float, str, str]:
    p = event.event.payload["properties"]
    return (event.event.type, p["evaluated_quantity"], p["quantity_threshold"],
            p["timeframe_start"], p["timeframe_end"])


def test_a_batch_crossing_a_threshold_in_its_middle_fires_once_with_the_value_after_it(
        deployment):
    _alert(deployment, "a_usage", "usage_exceeded", ["10"], metric="calls")
    _ingest(deployment, 6, "2026-10-10T12:00:00Z", OCT_20)
    assert evaluate(deployment, OCT_20).events == 0  # 6 < 10
    batch_id = _ingest(deployment, 8, "2026-10-11T12:00:00Z", OCT_20)
    assert batch_customers(connect(), deployment.lake, [batch_id]) == ["ny"]
    # the 4th call of this batch is the 10th of the month; the event tells 6 + 8 = 14
    assert evaluate(deployment, OCT_20, ["ny"]).events == 1
    assert evaluate(deployment, OCT_20, ["ny"]).events == 0  # evaluated again: nothing
    [fired] = _events(deployment)
    assert _usage(fired) == ("subscription.usage_exceeded", 14.0, 10.0,
                             "2026-10-01T04:00:00Z", "2026-11-01T04:00:00Z")
    body = fired.event.payload
    # the subscription as every outbox event has it (state.events), as of the event
    assert {k: body["subscription"][k] for k in ("id", "customer", "plan", "status",
                                                 "start_date")} == {
        "id": "sub_ny", "customer": {"id": "ny", "external_customer_id": "acme"},
        "plan": {"id": "pro", "external_plan_id": None}, "status": "active",
        "start_date": "2026-01-01T05:00:00Z"}  # midnight EST
    assert body["properties"]["billable_metric_id"] == "calls"
    assert body["properties"]["alert_configuration"]["thresholds"] == [{"value": "10"}]
    assert fired.event.customer_id == "ny" and fired.event.subscription_id == "sub_ny"


def test_usage_exactly_at_the_threshold_fires_and_one_below_does_not(deployment):
    _alert(deployment, "a_usage", "usage_exceeded", ["10"], metric="calls")
    _ingest(deployment, 9, "2026-10-10T12:00:00Z", OCT_20)
    assert evaluate(deployment, OCT_20).events == 0  # 9 < 10
    _ingest(deployment, 1, "2026-10-10T13:00:00Z", OCT_20)
    assert evaluate(deployment, OCT_20).events == 1  # 10 >= 10: Orb fires at or above
    assert [_usage(e)[1:3] for e in _events(deployment)] == [(10.0, 10.0)]


def test_two_thresholds_in_a_period_fire_each_once(deployment):
    _alert(deployment, "a_usage", "usage_exceeded", ["10", "20"], metric="calls")
    _ingest(deployment, 12, "2026-10-10T12:00:00Z", OCT_20)
    assert evaluate(deployment, OCT_20).events == 1  # 12: crosses 10
    _ingest(deployment, 10, "2026-10-12T12:00:00Z", OCT_20)
    assert evaluate(deployment, OCT_20).events == 1  # 22: crosses 20; 10 fired already
    assert evaluate(deployment, OCT_20).events == 0
    assert [_usage(e)[1:3] for e in _events(deployment)] == [(12.0, 10.0), (22.0, 20.0)]


def test_thresholds_crossed_by_one_batch_make_one_event_for_the_greatest(deployment):
    _alert(deployment, "a_usage", "usage_exceeded", ["10", "20"], metric="calls")
    _ingest(deployment, 25, "2026-10-10T12:00:00Z", OCT_20)
    assert evaluate(deployment, OCT_20).events == 1
    assert [_usage(e)[1:3] for e in _events(deployment)] == [(25.0, 20.0)]
    _ingest(deployment, 5, "2026-10-11T12:00:00Z", OCT_20)
    assert evaluate(deployment, OCT_20).events == 0  # both fired this period


def test_a_new_period_re_arms_the_threshold(deployment):
    _alert(deployment, "a_usage", "usage_exceeded", ["10"], metric="calls")
    oct_31 = datetime(2026, 11, 1, 3, 45, tzinfo=UTC)  # 23:45 on 31 October in New York
    # 03:30Z on 1 November is still 31 October in New York: October's usage
    _ingest(deployment, 10, "2026-11-01T03:30:00Z", oct_31)
    assert evaluate(deployment, oct_31).events == 1
    nov_1 = datetime(2026, 11, 1, 12, tzinfo=UTC)
    # November so far has none of those 10: nothing until it has 10 of its own
    assert evaluate(deployment, nov_1).events == 0
    _ingest(deployment, 10, "2026-11-01T04:00:00Z", nov_1)  # 00:00 in New York
    assert evaluate(deployment, nov_1).events == 1
    assert evaluate(deployment, nov_1).events == 0
    assert [_usage(e)[1:] for e in _events(deployment)] == [
        (10.0, 10.0, "2026-10-01T04:00:00Z", "2026-11-01T04:00:00Z"),
        # November's end is 1 December 00:00 EST = 05:00Z
        (10.0, 10.0, "2026-11-01T04:00:00Z", "2026-12-01T05:00:00Z")]


def test_a_cost_alert_counts_the_invoice_so_far_in_dollars(deployment):
    _alert(deployment, "a_cost", "cost_exceeded", ["25.00", "30"])
    _ingest(deployment, 14, "2026-10-10T12:00:00Z", OCT_20)
    # 20.00 platform fee + 14 calls x 0.50 = 20.00 + 7.00 = 27.00: past 25, not 30
    assert evaluate(deployment, OCT_20).events == 1
    [fired] = _events(deployment)
    assert fired.event.type == "subscription.cost_exceeded"
    properties = fired.event.payload["properties"]
    assert (properties["amount_threshold"], Decimal(properties["evaluated_amount"])) == (
        "25", Decimal("27.00"))
    _ingest(deployment, 6, "2026-10-11T12:00:00Z", OCT_20)
    # 27.00 + 6 x 0.50 = 30.00: exactly at 30
    assert evaluate(deployment, OCT_20).events == 1
    assert Decimal(_events(deployment)[-1].event.payload["properties"]
                   ["evaluated_amount"]) == Decimal("30.00")


def _decrement(settings: Settings, amount: str) -> None:
    credit_grants.decrement(connect(), settings.lake, "ny", "USD", Decimal(amount),
                            date(2026, 10, 20), "test", "test", OCT_20)


def test_credit_balance_dropped_depleted_and_recovered(deployment):
    lake = deployment.lake
    credit_grants.record_grant(lake, current_catalog(deployment), "ny", "USD",
                               Decimal("100.00"), Decimal(0), date(2026, 10, 1), None)
    _alert(deployment, "a_dropped", "credit_balance_dropped", ["50", "20"], currency="usd")
    _alert(deployment, "a_depleted", "credit_balance_depleted", [], currency="USD")
    _alert(deployment, "a_recovered", "credit_balance_recovered", [], currency="USD")
    assert evaluate(deployment, OCT_20).events == 0  # 100.00: above 50, not 0
    _decrement(deployment, "60.00")
    assert evaluate(deployment, OCT_20).events == 1  # 100 - 60 = 40 <= 50
    _decrement(deployment, "20.00")
    assert evaluate(deployment, OCT_20).events == 1  # 40 - 20 = 20 <= 20: at it
    _decrement(deployment, "20.00")
    assert evaluate(deployment, OCT_20).events == 1  # 20 - 20 = 0: depleted
    assert evaluate(deployment, OCT_20).events == 0  # still 0: nothing new
    credit_grants.record_grant(lake, current_catalog(deployment), "ny", "USD",
                               Decimal("5.00"), Decimal(0), date(2026, 10, 1), None)
    assert evaluate(deployment, OCT_20).events == 1  # 0 -> 5.00: recovered
    _decrement(deployment, "5.00")
    assert evaluate(deployment, OCT_20).events == 1  # 5 -> 0: depleted again (re-armed)
    told = [(e.event.type, e.event.payload["properties"].get("balance_threshold"))
            for e in _events(deployment)]
    assert told == [("customer.credit_balance_dropped", "50"),
                    ("customer.credit_balance_dropped", "20"),
                    ("customer.credit_balance_depleted", None),
                    ("customer.credit_balance_recovered", None),
                    ("customer.credit_balance_depleted", None)]
    first = _events(deployment)[0].event.payload
    assert {k: first["customer"][k] for k in ("id", "external_customer_id", "timezone")} == {
        "id": "ny", "external_customer_id": "acme", "timezone": "America/New_York"}
    assert first["properties"]["pricing_unit"]["id"] == "USD"
    assert first["properties"]["alert_configuration"]["balance_alert_status"] == [
        {"in_alert": False, "threshold_value": "20"},
        {"in_alert": True, "threshold_value": "50"}]


def test_a_refused_alert_names_every_problem(deployment):
    with pytest.raises(StateError) as refused:
        _alert(deployment, "bad", "usage_exceeded", ["-1", "x", "5", "5"], metric="nope")
    assert refused.value.problems == [
        "metric_id: unknown metric 'nope'",
        "thresholds.0.value: '-1' must be a number, zero or more",
        "thresholds.1.value: 'x' is not a number",
        "thresholds.3.value: '5' is given twice"]
    with pytest.raises(StateError) as refused:
        _alert(deployment, "bad", "credit_balance_dropped", [])
    assert refused.value.problems == [
        "currency: a credit_balance_dropped alert needs the currency of the balance it "
        "watches", "thresholds: a credit_balance_dropped alert needs at least one threshold"]
    _alert(deployment, "a_cost", "cost_exceeded", ["1"])
    with pytest.raises(StateError, match="already the cost_exceeded alert"):
        _alert(deployment, "a_cost_2", "cost_exceeded", ["2"])


def test_a_disabled_alert_is_not_evaluated_and_updated_thresholds_are(deployment):
    _alert(deployment, "a_usage", "usage_exceeded", ["100"], metric="calls")
    _ingest(deployment, 12, "2026-10-10T12:00:00Z", OCT_20)
    with StateStore.open(deployment.state_store_url) as store:
        stored.change(store.engine, "a_usage", "test", OCT_20, enabled=False)
        stored.change(store.engine, "a_usage", "test", OCT_20, thresholds=["10"])
        assert evaluate(deployment, OCT_20).alerts == 0
        alert = stored.change(store.engine, "a_usage", "test", OCT_20, enabled=True)
    assert (alert.enabled, alert.thresholds) == (True, (Decimal(10),))
    assert evaluate(deployment, OCT_20).events == 1


def test_the_cli_creates_lists_updates_disables_and_evaluates(deployment):
    data = ["--data-dir", deployment.data_dir]
    alert_id = orb(["alerts", "create", "--type", "usage_exceeded", "--subscription", "sub_ny",
                    "--metric", "calls", "--threshold", "10", "--actor", "ana", *data]).strip()
    dropped = orb(["alerts", "create", "--type", "credit_balance_dropped",
                   "--external-customer", "acme", "--currency", "USD", "--threshold", "5",
                   *data]).strip()
    listed = json.loads(orb(["alerts", "list", "--customer", "ny", "--format", "json", *data]))
    assert [(r["alert_id"], r["type"], r["thresholds"], r["enabled"]) for r in listed] == [
        (alert_id, "usage_exceeded", "10", True), (dropped, "credit_balance_dropped", "5", True)]
    assert orb(["alerts", "update", alert_id, "--threshold", "20", "--threshold", "7.50",
                *data]).strip() == f"{alert_id}: thresholds 7.5, 20"
    assert orb(["alerts", "disable", alert_id, *data]).strip() == f"{alert_id} disabled"
    shown = json.loads(orb(["alerts", "show", alert_id, *data]))
    assert (shown["enabled"], shown["thresholds"], shown["customer"]) == (
        False, [{"value": 7.5}, {"value": 20.0}], {"id": "ny", "external_customer_id": "acme"})
    refused = CliRunner().invoke(main, ["alerts", "create", "--type", "usage_exceeded",
                                        "--subscription", "sub_ny", "--metric", "calls",
                                        "--threshold", "1", "--threshold", "-2", *data])
    assert refused.exit_code == 1
    assert "--threshold #2: '-2' must be a number, zero or more" in refused.output
    refused = CliRunner().invoke(main, ["alerts", "create", "--type", "credit_balance_depleted",
                                        "--customer", "ny", "--subscription", "sub_ny",
                                        "--currency", "USD", *data])
    assert (refused.exit_code, refused.output) == (1, (
        "Error: nothing was written:\n  --subscription: a credit_balance_depleted alert is a "
        "customer's; give the customer only\n"))
    # disabled, the usage alert is not evaluated; the dropped one has no grant to watch
    assert orb(["alerts", "evaluate", *data]).strip() == \
        "1 alerts evaluated, 0 events appended"


def test_the_ingestion_job_evaluates_the_alerts_of_its_batches(deployment):
    """Through Dagster, on the real clock: 4 calls a minute ago, in the period under way."""
    _alert(deployment, "a_usage", "usage_exceeded", ["3"], metric="calls")
    now = datetime.now(UTC)
    deployment.lake.landing.mkdir()
    batch(deployment.lake.landing / "calls.jsonl", *[
        {"event_name": "api_request", "timestamp": (now - timedelta(minutes=1)).isoformat(),
         "customer_id": "ny", "idempotency_key": f"job-call-{i}", "properties": {}}
        for i in range(4)])
    defs = build_definitions(OrbStore(data_dir=deployment.data_dir))
    instance = dg.DagsterInstance.ephemeral()
    runner.ingest_landing(defs, instance)
    assert [_usage(e)[1:3] for e in _events(deployment)] == [(4.0, 3.0)]  # 4 >= 3
    # the job the billing runs' sensor starts evaluates every alert: nothing new
    done = defs.resolve_job_def("evaluate_alerts").execute_in_process(instance=instance)
    assert done.success and len(_events(deployment)) == 1
    # a successful run asks for one evaluation, keyed by that run
    success = next(e for e in done.all_events if e.event_type_value == "PIPELINE_SUCCESS")
    request = alerts_after_billing(dg.build_run_status_sensor_context(
        sensor_name="alerts_after_billing", dagster_instance=instance,
        dagster_run=done.dagster_run, dagster_event=success))
    assert request.run_key == done.run_id


def test_an_evaluation_after_a_batch_reports_its_failure_rather_than_raising(tmp_path):
    """The ingestion job's op and the API's background task call this once the batch is
    committed: a store it cannot open is a failure returned (and logged), not raised."""
    (tmp_path / "not-a-folder").write_text("")
    broken = Settings(data_dir=str(tmp_path),
                      state_url=f"sqlite:///{tmp_path}/not-a-folder/state.db")
    done = after_batches(broken, ["b1"], OCT_20)
    assert (done.alerts, done.events, list(done.failures)) == (0, 0, ["*"])
    assert "not-a-folder" in done.failures["*"]
