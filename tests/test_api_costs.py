"""Costs, usage, the upcoming invoice, plan changes and issuing through Orb's official SDK
(docs/api.md#costs-usage-and-the-upcoming-invoice), against the API served by uvicorn on
loopback over tests/scenario.py's October, billed through Dagster, with the server's
clock on 20 October 2026 12:00 UTC (08:00 in New York), inside that month."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import dagster as dg
import httpx
import orb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uvicorn
from orb.types.shared import Invoice

from api.access import ApiConfig
from api.app import create_app
from api.registry import Registry, registry_url
from assets.resources import OrbStore
from pipelines import runner
from pipelines.definitions import build_definitions
from tests.api_tenants import API_VARIABLES, create_key
from tests.api_tenants import orb as orb_cli
from tests.catalogs import unit, write_data_dir
from tests.scenario import CATALOG, COLUMNS, OCTOBER, event, write_scenario
from tests.servers import free_port

NOW = datetime(2026, 10, 20, 12, tzinfo=UTC)
# New York's days begin at 04:00 UTC in October (EDT)
NY = {day: datetime(2026, 10, day, 4, tzinfo=UTC) for day in range(1, 22)}
MAX = {"id": "max", "name": "Max", "currency": "USD", "prices": [
    unit("max_platform", "50.00", fixed_quantity=1), unit("max_calls", "0.20", metric="calls")]}
# a plan with a monthly minimum of 10.00 on its invoice
FLOOR = {"id": "floor", "name": "Floor", "currency": "USD",
         "prices": [unit("floor_calls", "0.50", metric="calls")],
         "adjustments": [{"id": "floor_min", "adjustment_type": "minimum",
                          "minimum_amount": "10.00"}]}
# London and Lisbon are on UTC here: customers whose days are UTC days
LONDON = {"customers": [{"id": "ldn", "name": "London Ltd", "timezone": "UTC"},
                        {"id": "lis", "name": "Lisboa Lda", "timezone": "UTC"}],
          "subscriptions": [{"id": "sub_ldn", "customer_id": "ldn", "plan_id": "pro",
                             "start_date": "2026-10-01"},
                            {"id": "sub_lis", "customer_id": "lis", "plan_id": "floor",
                             "start_date": "2026-10-01"}]}


def _london_events() -> bytes:
    # 4 calls on 5 October (on pro), 6 on 25 October (after the change to max on the 16th)
    rows = ([event(f"ldn-a{i}", "api_request", "2026-10-05T10:00:00Z", "ldn") for i in range(4)]
            + [event(f"ldn-b{i}", "api_request", "2026-10-25T10:00:00Z", "ldn")
               for i in range(6)]
            # Lisbon: 3 calls on 2 October, 30 on 12 October
            + [event(f"lis-a{i}", "api_request", "2026-10-02T10:00:00Z", "lis") for i in range(3)]
            + [event(f"lis-b{i}", "api_request", "2026-10-12T10:00:00Z", "lis")
               for i in range(30)])
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=pa.schema([(c, pa.string())
                                                                 for c in COLUMNS])), sink)
    return sink.getvalue().to_pybytes()


def bill_october(root) -> None:
    store = OrbStore(data_dir=str(root), max_event_age_days=36500)
    runner.bill_months(build_definitions(store), [OCTOBER], dg.DagsterInstance.ephemeral())


class Keys:
    def __init__(self, url: str, operator: str, reader: str, admin: str, other: str):
        self.url, self.operator, self.reader, self.admin, self.other = (
            url, operator, reader, admin, other)

    def client(self, key: str | None = None) -> orb.Orb:
        return orb.Orb(api_key=key or self.operator, base_url=self.url, max_retries=0)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """The scenario (plus plan ``max`` and London's subscription) billed for October
    through Dagster; keys of the default tenant and of tenant ``b``."""
    root = tmp_path_factory.mktemp("costs")
    a, b = root / "a", root / "b"
    write_data_dir(a, {**CATALOG, "plans": [*CATALOG["plans"], MAX, FLOOR],
                       "customers": CATALOG["customers"] + LONDON["customers"],
                       "subscriptions": CATALOG["subscriptions"] + LONDON["subscriptions"]})
    write_scenario(a, catalog=False)
    (a / "landing" / "batch-3.parquet").write_bytes(_london_events())
    write_data_dir(b, {"metrics": CATALOG["metrics"], "plans": CATALOG["plans"]})
    with pytest.MonkeyPatch.context() as patch:
        for variable in API_VARIABLES:
            patch.delenv(variable, raising=False)
        bill_october(a)
        orb_cli(["tenants", "add", "b", "--tenant-data-dir", str(b), "--data-dir", str(a)])
        keys = [create_key(a, role) for role in ("billing_operator", "read_only", "admin")]
        keys.append(create_key(a, "billing_operator", tenant="b"))
        registry = Registry.open(registry_url(a), a, clock=lambda: NOW)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(
            create_app(ApiConfig(registry, clock=lambda: NOW)), host="127.0.0.1", port=port,
            log_level="warning"))
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


def _costs(data) -> list[tuple[datetime, datetime, str, str, dict[str, tuple[float, str]]]]:
    return [(p.timeframe_start, p.timeframe_end, p.subtotal, p.total,
             {c.price_id: (c.quantity, c.subtotal) for c in p.per_price_costs}) for p in data]


def test_customer_costs_cumulative_by_hand(api):
    keys, _ = api
    data = keys.client().customers.costs.list("ny").data
    # the billing period under way, 1 October, to the end of today (20 October): 20 days
    assert len(data) == 20
    assert {p.timeframe_start for p in data} == {NY[1]}
    assert [p.timeframe_end for p in data] == [NY[d] for d in range(2, 22)]
    costs = _costs(data)
    # (the SDK reads a quantity as a float; the server sends exact decimal strings)
    # 1 October: the platform fee, 1 x 20.00, billed in advance for the month
    assert costs[0][2:] == ("20.00", "20.00", {"pro_platform": (1, "20.00"),
                                               "pro_calls": (0, "0.00"),
                                               "pro_tokens": (0, "0.00")})
    # 4 October: 1200 tokens (5 Oct 00:00 UTC is 4 Oct 20:00 EDT) x 0.001 = 1.20
    assert costs[3][2:4] == ("21.20", "21.20")
    assert costs[3][4]["pro_tokens"] == (1200, "1.20")
    # 10 October: 15 calls, 10 x 0.50 + 5 x 0.10 = 5.50; 1225 tokens x 0.001 = 1.225,
    # rounded 1.23; 20.00 + 5.50 + 1.23 = 26.73, so through today
    assert costs[9][2:] == ("26.73", "26.73", {"pro_platform": (1, "20.00"),
                                               "pro_calls": (15, "5.50"),
                                               "pro_tokens": (1225, "1.23")})
    assert costs[19][2:] == costs[9][2:]
    assert data[9].per_price_costs[1].price.id == "pro_calls"
    # the same by external id, and for the customer's one subscription
    assert _costs(keys.client().customers.costs.list_by_external_id("acme").data) == costs
    assert _costs(keys.client().subscriptions.fetch_costs("sub_ny").data) == costs


def test_periodic_costs_are_each_days_own(api):
    keys, _ = api
    data = keys.client().customers.costs.list(
        "ny", view_mode="periodic", timeframe_start="2026-10-01",
        timeframe_end="2026-10-11").data
    assert [(p.timeframe_start, p.timeframe_end) for p in data] == [
        (NY[d], NY[d + 1]) for d in range(1, 11)]
    # 1 Oct: the fee 20.00; 4 Oct: 1.20 of tokens; 5 Oct: 1.23 - 1.20 = 0.03;
    # 10 Oct: the 5.50 of calls; every other day 0.00
    assert [p.subtotal for p in data] == ["20.00", "0.00", "0.00", "1.20", "0.03", "0.00",
                                         "0.00", "0.00", "0.00", "5.50"]
    assert sum(Decimal(p.total) for p in data) == Decimal("26.73")
    assert {c.price_id: c.quantity for c in data[4].per_price_costs}["pro_tokens"] == 25


def test_a_minimum_is_in_the_total_not_the_subtotal(api):
    """Orb's own example: usage below the minimum commitment costs the minimum."""
    keys, _ = api
    client = keys.client()
    cumulative = client.subscriptions.fetch_costs("sub_lis", timeframe_end="2026-10-13").data
    # 1 Oct: no calls, the 10.00 minimum; 2 Oct: 3 x 0.50 = 1.50, still 10.00;
    # 12 Oct: 33 x 0.50 = 16.50, above the minimum
    assert [(p.subtotal, p.total) for p in cumulative] == (
        [("0.00", "10.00")] + [("1.50", "10.00")] * 10 + [("16.50", "16.50")])
    periodic = client.subscriptions.fetch_costs("sub_lis", timeframe_end="2026-10-13",
                                                view_mode="periodic").data
    # each day's difference: the minimum on day one, then nothing until 12 October's
    # 15.00 of calls, of which 6.50 more than the minimum already counted
    assert [(p.subtotal, p.total) for p in periodic] == (
        [("0.00", "10.00"), ("1.50", "0.00")] + [("0.00", "0.00")] * 9
        + [("15.00", "6.50")])


def test_usage_per_day_and_over_the_period(api):
    keys, _ = api
    client = keys.client()
    daily = client.subscriptions.fetch_usage("sub_ny", granularity="day", view_mode="periodic")
    by_metric = {m.billable_metric.id: m for m in daily.data}
    assert sorted(by_metric) == ["calls", "tokens"]
    assert by_metric["calls"].billable_metric.name == "API calls"
    calls = [(u.timeframe_start, u.quantity) for u in by_metric["calls"].usage]
    # 15 calls at 12:00-12:14 UTC on 10 October (08:xx EDT); none on other days
    assert calls == [(NY[d], 15 if d == 10 else 0) for d in range(1, 21)]
    tokens = [u.quantity for u in by_metric["tokens"].usage]
    assert (tokens[3], tokens[4], tokens.count(0)) == (1200, 25, 18)
    whole = client.subscriptions.fetch_usage("sub_ny")  # cumulative, the period so far
    assert {m.billable_metric.id: [(u.timeframe_start, u.timeframe_end, u.quantity)
                                   for u in m.usage] for m in whole.data} == {
        "calls": [(NY[1], NY[21], 15)], "tokens": [(NY[1], NY[21], 1225)]}
    with pytest.raises(orb.BadRequestError):
        client.subscriptions.fetch_usage("sub_ny", group_by="region",
                                         billable_metric_id="calls")


def test_upcoming_invoice_is_the_runs_draft(api):
    keys, _ = api
    client = keys.client()
    upcoming = client.invoices.fetch_upcoming(subscription_id="sub_ny")
    # New York's 1 November invoice: October's 16 calls (the 15 and one at 23:30 EDT on
    # 31 October: 10 x 0.50 + 6 x 0.10 = 5.60), its 1225 tokens (1.23) and November's fee
    # in advance (20.00): 26.83, as tests/test_pipeline.py works out
    assert (upcoming.id, upcoming.status, upcoming.total, upcoming.target_date) == (
        "ny-20261101-USD", "draft", "26.83", datetime(2026, 11, 1, 4, tzinfo=UTC))
    # what the Dagster run drafted, as sent, field for field
    raw = client.invoices.with_raw_response
    drafted = raw.fetch("ny-20261101-USD").http_response.json()
    assert raw.fetch_upcoming(subscription_id="sub_ny").http_response.json() == {
        **drafted, "target_date": "2026-11-01T04:00:00Z"}


def test_issue_one_draft(api):
    keys, _ = api
    client = keys.client()
    # Tokyo's 15 October invoice: 17 of October's 31 days of 1000 yen, 548 yen
    issued = client.invoices.issue("tokyo-20261015-JPY")
    assert isinstance(issued, Invoice)
    assert (issued.id, issued.invoice_number, issued.status, issued.total, issued.issued_at) == (
        "INV-000001", "INV-000001", "issued", "548", NOW)
    assert client.invoices.fetch("INV-000001").status == "issued"
    with pytest.raises(orb.NotFoundError):  # no longer a draft
        client.invoices.fetch("tokyo-20261015-JPY")
    with pytest.raises(orb.BadRequestError) as later:  # dated 1 November, after now
        client.invoices.issue("tokyo-20261101-JPY")
    assert "2026-11-01" in later.value.detail
    with pytest.raises(orb.BadRequestError):
        client.invoices.issue("INV-000001")  # issued already


def _upcoming_lines(client: orb.Orb, subscription_id: str) -> tuple[str, list[tuple]]:
    invoice = client.invoices.fetch_upcoming(subscription_id=subscription_id)
    return invoice.total, sorted((line.price.id if line.price else None, line.quantity,
                                  line.amount) for line in invoice.line_items)


def test_a_plan_change_is_billed_at_both_plans_then_unscheduled(api):
    keys, root = api
    client = keys.client()
    changed = client.subscriptions.schedule_plan_change(
        "sub_ldn", change_option="requested_date", change_date="2026-10-16",
        external_plan_id="max")
    assert changed.plan is not None and changed.plan.id == "max"  # in effect today
    # London's 1 November invoice: pro's calls of 1-15 October, 4 x 0.50 = 2.00, and its
    # tokens, none; max's calls of 16-31 October, 6 x 0.20 = 1.20, and max's fee for
    # November in advance, 50.00: 2.00 + 1.20 + 50.00 = 53.20
    both = ("53.20", [("max_calls", "6", "1.20"), ("max_platform", "1", "50.00"),
                      ("pro_calls", "4", "2.00"), ("pro_tokens", "0", "0.00")])
    assert _upcoming_lines(client, "sub_ldn") == both
    # a billing run of October now drafts the same
    with pytest.MonkeyPatch.context() as patch:
        for variable in API_VARIABLES:
            patch.delenv(variable, raising=False)
        bill_october(root)
    raw = client.invoices.with_raw_response
    drafted = raw.fetch("ldn-20261101-USD").http_response.json()
    assert raw.fetch_upcoming(subscription_id="sub_ldn").http_response.json() == {
        **drafted, "target_date": "2026-11-01T00:00:00Z"}

    # back to pro when the term ends (1 November): November's fee is pro's 20.00
    client.subscriptions.schedule_plan_change("sub_ldn", change_option="end_of_subscription_term",
                                              plan_id="pro")
    assert _upcoming_lines(client, "sub_ldn") == (
        "23.20", [("max_calls", "6", "1.20"), ("pro_calls", "4", "2.00"),
                  ("pro_platform", "1", "20.00"), ("pro_tokens", "0", "0.00")])
    unscheduled = client.subscriptions.unschedule_pending_plan_changes("sub_ldn")
    assert unscheduled.plan is not None and unscheduled.plan.id == "max"
    assert _upcoming_lines(client, "sub_ldn") == both
    with pytest.raises(orb.BadRequestError):  # nothing pending any more
        client.subscriptions.unschedule_pending_plan_changes("sub_ldn")

    # every write is in the audit trail, with the subscription before and after
    audit = httpx.get(f"{keys.url}/audit_events", params={"limit": 100},
                      headers={"Authorization": f"Bearer {keys.admin}"}).json()["data"]
    ours = [(e["path"], e["before"]["plan"]["id"], e["after"]["plan"]["id"]) for e in audit
            if e["resource_id"] == "sub_ldn"]
    assert ours == [("/v1/subscriptions/sub_ldn/schedule_plan_change", "pro", "max"),
                    ("/v1/subscriptions/sub_ldn/schedule_plan_change", "max", "max"),
                    ("/v1/subscriptions/sub_ldn/unschedule_pending_plan_changes", "max", "max")]


def test_another_tenant_finds_none_and_a_reader_writes_nothing(api):
    keys, _ = api
    other, reader = keys.client(keys.other), keys.client(keys.reader)
    for call in (lambda c: c.customers.costs.list("ny"),
                 lambda c: c.customers.costs.list_by_external_id("acme"),
                 lambda c: c.subscriptions.fetch_costs("sub_ny"),
                 lambda c: c.subscriptions.fetch_usage("sub_ny"),
                 lambda c: c.invoices.fetch_upcoming(subscription_id="sub_ny"),
                 lambda c: c.invoices.issue("ny-20261101-USD"),
                 lambda c: c.subscriptions.schedule_plan_change(
                     "sub_ny", change_option="immediate", plan_id="pro"),
                 lambda c: c.subscriptions.unschedule_pending_plan_changes("sub_ny")):
        with pytest.raises(orb.NotFoundError):
            call(other)
    assert reader.customers.costs.list("ny").data  # reads are a reader's
    for call in (lambda c: c.invoices.issue("ny-20261101-USD"),
                 lambda c: c.subscriptions.schedule_plan_change(
                     "sub_ny", change_option="immediate", plan_id="pro"),
                 lambda c: c.subscriptions.unschedule_pending_plan_changes("sub_ny")):
        with pytest.raises(orb.PermissionDeniedError):
            call(reader)


def test_prices_list_and_fetch_through_the_sdk(api):
    keys, _ = api
    client = keys.client(keys.reader)
    # every plan's prices, in the catalog's order: pro, jp, max, floor
    assert [p.id for p in client.prices.list(limit=100)] == [
        "pro_platform", "pro_calls", "pro_tokens", "jp_platform", "jp_calls",
        "max_platform", "max_calls", "floor_calls"]
    calls = client.prices.fetch("pro_calls")
    assert (calls.price_model_type, calls.currency, calls.price_type,
            calls.billable_metric.id) == (
        "tiered", "USD", "usage_price", "calls")
    assert [(t.first_unit, t.last_unit, t.unit_amount) for t in calls.tiered_config.tiers] == [
        (0, 10, "0.50"), (10, None, "0.10")]
    assert client.prices.external_price_id.fetch("jp_calls").currency == "JPY"
    with pytest.raises(orb.NotFoundError):
        keys.client(keys.other).prices.fetch("max_calls")  # tenant b has no plan max


def _evaluate(client, price_id, start, end, **options):
    return [(g.grouping_values, g.quantity, g.amount) for g in client.prices.evaluate(
        price_id, timeframe_start=start, timeframe_end=end, **options).data]


def test_evaluate_a_price_over_one_customers_events(api):
    keys, _ = api
    client = keys.client(keys.reader)  # an evaluation only reads
    # New York's calls from 00:00 UTC on 1 October to 00:00 UTC on 1 November: 15 on the
    # 10th and one at 03:59:59 on the 1st (its 30 September, but inside this timeframe);
    # the one at 03:30 on 1 November is not: 16 calls, 10 x 0.50 + 6 x 0.10 = 5.60
    october = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
    assert _evaluate(client, "pro_calls", *october, customer_id="ny") == [([], 16, "5.60")]
    # half-open: the calls at 12:05 to 12:09 on the 10th, not the one at 12:10: 5 x 0.50
    assert _evaluate(client, "pro_calls", "2026-10-10T12:05:00Z", "2026-10-10T12:10:00Z",
                     external_customer_id="acme") == [([], 5, "2.50")]
    # tokens grouped by their own property: 1200 x 0.001 = 1.20; 25 x 0.001 = 0.025,
    # rounded half up to 0.03
    assert _evaluate(client, "pro_tokens", *october, customer_id="ny",
                     grouping_keys=["tokens"]) == [(["1200"], 1200, "1.20"),
                                                  (["25"], 25, "0.03")]
    # filtered: only the event of more than 100 tokens
    assert _evaluate(client, "pro_tokens", *october, customer_id="ny",
                     filter="properties.tokens > 100") == [([], 1200, "1.20")]
    # no events: the price at no usage; a fixed fee: its quantity
    assert _evaluate(client, "pro_calls", "2026-10-02T00:00:00Z", "2026-10-03T00:00:00Z",
                     customer_id="ny") == [([], 0, "0.00")]
    assert _evaluate(client, "pro_platform", *october, customer_id="ny") == [
        ([], 1, "20.00")]


def test_evaluate_refuses_what_it_cannot_evaluate(api):
    keys, _ = api
    client = keys.client()
    october = {"timeframe_start": "2026-10-01T00:00:00Z",
               "timeframe_end": "2026-11-01T00:00:00Z"}
    with pytest.raises(orb.BadRequestError) as bad_filter:
        client.prices.evaluate("pro_calls", customer_id="ny",
                               filter="read_parquet('x') = 1", **october)
    assert bad_filter.value.body["detail"].startswith("body.filter: line 1, column 1:")
    with pytest.raises(orb.BadRequestError) as backwards:
        client.prices.evaluate("pro_calls", customer_id="ny",
                               timeframe_start="2026-11-01T00:00:00Z",
                               timeframe_end="2026-10-01T00:00:00Z")
    assert backwards.value.body["detail"] == (
        "body.timeframe_end: 2026-10-01T00:00:00+00:00 is not after timeframe_start "
        "2026-11-01T00:00:00+00:00")
    with pytest.raises(orb.BadRequestError):
        client.prices.evaluate("pro_calls", **october)  # whose events?
    with pytest.raises(orb.NotFoundError):  # tenant b's key: not its customer
        keys.client(keys.other).prices.evaluate("pro_calls", customer_id="ny", **october)
