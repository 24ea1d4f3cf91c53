"""A fixed fee's quantity changed mid-period (Orb's update_fixed_fee_quantity,
docs/invoicing.md#fixed-fee-quantity-changes): rated from the catalog models, then
through the state store and the snapshots billing runs keep. Every amount is worked out
by hand in the comments. November 2026 has 30 days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import dagster as dg
import pytest
from click.testing import CliRunner

import storage.lake
from assets.resources import OrbStore
from billing.catalog import Customer, Subscription
from cli.main import main
from invoicing import balance
from invoicing.issuing import issue_month
from payments.receivables import open_receivables
from pipelines import runner
from pipelines.definitions import build_definitions
from pricing_sql import run_catalog
from pricing_sql.rating import price_line_items
from pricing_sql.run_catalog import billing_catalog, plans_and_metrics
from revenue.compute import register_revenue_lines
from state import (
    AddCustomer,
    CreateSubscription,
    SetQuantity,
    StateError,
    StateStore,
    lake_snapshot,
)
from storage.duck import connect
from storage.settings import Settings
from tests.catalogs import model, unit
from tests.clocks import Clock
from tests.invoicing import bill, shop, totals, usage_table
from tests.test_balance import issue
from tests.test_checks import evaluations

OCTOBER, NOVEMBER = date(2026, 10, 1), date(2026, 11, 1)


def team(seat: dict | None = None) -> dict:
    """$10.00 a seat a month, 5 seats, in advance; and calls at $0.10 in arrears."""
    return {"id": "team", "name": "Team", "currency": "USD", "prices": [
        seat or unit("seat", "10.00", fixed_quantity=5), unit("calls", "0.10", metric="calls")]}


def seats_from(*changes: tuple[str, int], seat: dict | None = None):
    """The catalog with the subscription's seat quantity changed on each (day, quantity)."""
    return shop([team(seat)], {"plan_id": "team", "start_date": "2026-01-01",
                               "fixed_fee_quantities": [
                                   {"price_id": "seat", "start_date": day, "quantity": q}
                                   for day, q in changes]})


def test_an_increase_mid_period_bills_the_prorated_difference_on_its_day():
    catalog = seats_from(("2026-11-11", 8))
    # Nov 1 (October's run): November's fee in advance at Nov 1's quantity, 5 x 10 = 50.00.
    assert totals(bill(catalog, OCTOBER)) == {"c-20261101-USD": Decimal("50.00")}
    november = bill(catalog, NOVEMBER)
    # Nov 11: 3 more seats for Nov 11..30, 20 of November's 30 days: 3 x 10 x 20/30 = 20.00
    # (Orb's immediate invoice for the difference). Dec 1: December at 8 seats, 80.00.
    assert totals(november) == {"c-20261111-USD": Decimal("20.00"),
                                "c-20261201-USD": Decimal("80.00")}
    line = november.lines["s:seat:20261111"]
    assert (line["quantity"], line["precise_amount"], line["prorated_days"],
            line["period_days"], line["service_start"], line["service_end"]) == (
        Decimal(3), Decimal(30), 20, 30, date(2026, 11, 11), date(2026, 12, 1))
    # the breakdown: the 8 seats priced, less the 5 already invoiced, unprorated
    details = price_line_items(connect(), catalog, NOVEMBER, usage_table({})).sub_line_items
    assert [(r["quantity"], r["amount"]) for r in details.to_pylist()
            if r["line_item_id"] == "s:seat:20261111"] == [
        (Decimal(8), Decimal(80)), (Decimal(-5), Decimal(-50))]


def test_a_decrease_mid_period_is_credited_on_the_next_invoice():
    catalog = seats_from(("2026-11-11", 4))
    assert totals(bill(catalog, OCTOBER)) == {"c-20261101-USD": Decimal("50.00")}
    november = bill(catalog, NOVEMBER, {("s:20261101-20261201", "calls"): 100})
    # No invoice on Nov 11. Dec 1: 1 seat fewer for Nov 11..30, -(1 x 10 x 20/30) =
    # -6.666.. -> -6.67; November's calls 100 x 0.10 = 10.00; December at 4 seats, 40.00:
    # 43.33.
    assert totals(november) == {"c-20261201-USD": Decimal("43.33")}
    assert (november.lines["s:seat:20261111"]["amount"],
            november.lines["s:seat:20261111"]["invoice_id"]) == (Decimal("-6.67"),
                                                                 "c-20261201-USD")


def test_a_change_on_the_first_day_of_the_period_is_not_prorated():
    catalog = seats_from(("2026-11-01", 8))
    october = bill(catalog, OCTOBER)
    # Nov 1: November's fee at 8 seats in full, 8 x 10 = 80.00; nothing in November's run
    # but December's fee.
    assert totals(october) == {"c-20261101-USD": Decimal("80.00")}
    assert (october.lines["s:seat:20261101"]["prorated_days"],
            october.lines["s:seat:20261101"]["period_days"]) == (30, 30)
    assert totals(bill(catalog, NOVEMBER)) == {"c-20261201-USD": Decimal("80.00")}


def test_a_fee_in_arrears_charges_each_quantity_for_its_days():
    seat = unit("seat", "10.00", fixed_quantity=5) | {"billed_in_advance": False}
    november = bill(seats_from(("2026-11-11", 8), seat=seat), NOVEMBER)
    # Dec 1: Nov 1..10 at 5 seats, 5 x 10 x 10/30 = 16.666.. -> 16.67; Nov 11..30 at 8,
    # 8 x 10 x 20/30 = 53.333.. -> 53.33: 70.00.
    assert totals(november) == {"c-20261201-USD": Decimal("70.00")}
    assert [(line["service_start"], line["quantity"], line["amount"])
            for key, line in sorted(november.lines.items()) if line["price_id"] == "seat"] == [
        (date(2026, 11, 1), Decimal(5), Decimal("16.67")),
        (date(2026, 11, 11), Decimal(8), Decimal("53.33"))]


def test_the_difference_of_a_tiered_fee_is_the_difference_of_its_prices():
    seat = model("seat", "tiered", {"tiers": [
        {"first_unit": 0, "last_unit": 5, "unit_amount": "10.00"},
        {"first_unit": 5, "unit_amount": "5.00"}]}, fixed_quantity=5)
    november = bill(seats_from(("2026-11-11", 8), seat=seat), NOVEMBER)
    # 8 seats: 5 x 10 + 3 x 5 = 65.00; 5 seats: 50.00; the difference for 20 of 30 days:
    # 15 x 20/30 = 10.00 on Nov 11; December at 8 seats, 65.00.
    assert totals(november) == {"c-20261111-USD": Decimal("10.00"),
                                "c-20261201-USD": Decimal("65.00")}


def test_several_changes_in_one_period_and_a_later_correction():
    # recorded in this order: 8 from Nov 11, 6 from Nov 21, then 7 from Nov 11, which takes
    # the place of both (a correction starting on or before them)
    catalog = seats_from(("2026-11-11", 8), ("2026-11-21", 6), ("2026-11-11", 7))
    # Nov 11: 2 more seats for 20 of 30 days, 2 x 10 x 20/30 = 13.333.. -> 13.33.
    # Dec 1: December at 7 seats, 70.00.
    assert totals(bill(catalog, NOVEMBER)) == {"c-20261111-USD": Decimal("13.33"),
                                               "c-20261201-USD": Decimal("70.00")}
    catalog = seats_from(("2026-11-11", 8), ("2026-11-21", 6))
    # Nov 11: +3 for 20 days, 20.00. Dec 1: -2 for Nov 21..30, 10 days, -(2 x 10 x 10/30) =
    # -6.666.. -> -6.67, and December at 6 seats, 60.00: 53.33.
    assert totals(bill(catalog, NOVEMBER)) == {"c-20261111-USD": Decimal("20.00"),
                                               "c-20261201-USD": Decimal("53.33")}


def test_a_change_without_a_price_is_every_fixed_fees():
    catalog = shop([{"id": "team", "name": "Team", "currency": "USD", "prices": [
        unit("seat", "10.00", fixed_quantity=5), unit("platform", "20.00", fixed_quantity=1),
        unit("calls", "0.10", metric="calls")]}],
        {"plan_id": "team", "start_date": "2026-01-01",
         "fixed_fee_quantities": [{"start_date": "2026-11-11", "quantity": 2}]})
    november = bill(catalog, NOVEMBER)
    # Nov 11: the platform goes 1 -> 2, +1 x 20 x 20/30 = 13.333.. -> 13.33.
    # Dec 1: seats go 5 -> 2, -(3 x 10 x 20/30) = -20.00; December at 2 seats, 20.00, and
    # 2 platforms, 40.00: 40.00.
    assert totals(november) == {"c-20261111-USD": Decimal("13.33"),
                                "c-20261201-USD": Decimal("40.00")}


CATALOG_YAML = """\
metrics:
  - {id: calls, name: Calls, sql: SELECT count(*) FROM events}
plans:
  - id: team
    name: Team
    currency: USD
    prices:
      - {id: seat, name: Seats, model_type: unit, fixed_price_quantity: 5,
         unit_config: {unit_amount: "10.00"}}
      - {id: calls, name: Calls, billable_metric_id: calls, model_type: unit,
         unit_config: {unit_amount: "0.10"}}
"""


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    monkeypatch.delenv("ORB_STATE_URL", raising=False)
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "plans.yaml").write_text(CATALOG_YAML)
    return Settings(data_dir=str(tmp_path))


def test_a_change_recorded_after_the_fact_and_re_rated(deployment):
    clock = Clock("2026-10-15T00:00:00+00:00")
    references = plans_and_metrics(deployment)
    with StateStore.open(deployment.state_store_url, clock) as store:
        store.apply([AddCustomer(Customer(id="c", name="C", timezone="Europe/Berlin"), "ana"),
                     CreateSubscription(Subscription(id="s", customer_id="c", plan_id="team",
                                                     start_date=date(2026, 10, 1)), "ana")],
                    references)
        lake_snapshot.take(store, deployment.lake, OCTOBER, "october-1")
        # On Dec 5 the change is recorded, effective Nov 11 in the customer's time zone.
        clock.now = datetime.fromisoformat("2026-12-05T09:00:00+00:00")
        store.apply([SetQuantity("s", Decimal(8), "bob", "seat", date(2026, 11, 11))],
                    references)
        lake_snapshot.take(store, deployment.lake, NOVEMBER, "november-1")
        lake_snapshot.take(store, deployment.lake, OCTOBER, "october-2")

    november = billing_catalog(deployment, NOVEMBER, "november-1")
    assert [(q.price_id, q.start_date, q.quantity)
            for q in november.subscriptions[0].fixed_fee_quantities] == [
        ("seat", date(2026, 11, 11), Decimal(8))]
    # Nov 11: 3 x 10 x 20/30 = 20.00; Dec 1: 8 x 10 = 80.00 (as in the first test).
    assert totals(bill(november, NOVEMBER)) == {"c-20261111-USD": Decimal("20.00"),
                                                "c-20261201-USD": Decimal("80.00")}
    # October re-rated with the store as it is now sees Nov 1's quantity as it was, 5:
    # the Nov 1 invoice stays 5 x 10 = 50.00 (no calls); its first snapshot, kept, knew
    # no change at all. (October's own fee was invoiced on Oct 1, in September's run.)
    for run in ("october-2", "october-1"):
        assert totals(bill(billing_catalog(deployment, OCTOBER, run), OCTOBER)) == {
            "c-20261101-USD": Decimal("50.00")}


def test_a_runs_catalog_built_from_the_snapshot_it_took_is_the_one_read_back(deployment,
                                                                             monkeypatch):
    references = plans_and_metrics(deployment)
    with StateStore.open(deployment.state_store_url, Clock("2026-10-15T00:00:00Z")) as store:
        store.apply([AddCustomer(Customer(id="c", name="C", timezone="Europe/Berlin"), "ana"),
                     CreateSubscription(Subscription(id="s", customer_id="c", plan_id="team",
                                                     start_date=date(2026, 10, 1)), "ana"),
                     SetQuantity("s", Decimal(8), "bob", "seat", date(2026, 10, 11))],
                    references)
    run_catalog.take_snapshot(deployment, OCTOBER, "october-1")
    handed = billing_catalog(deployment, OCTOBER, "october-1")
    run_catalog._BUILT.clear()  # built again, from the lake's files, not memory
    monkeypatch.setattr(storage.lake, "_WRITTEN", storage.lake._WrittenFiles(limit=0))
    read = billing_catalog(deployment, OCTOBER, "october-1")
    assert read is not handed
    assert (read.customers, read.subscriptions) == (handed.customers, handed.subscriptions)
    assert [(q.start_date, q.quantity) for q in read.subscriptions[0].fixed_fee_quantities] == [
        (date(2026, 10, 11), Decimal(8))]


def test_only_a_fixed_fee_of_the_subscription_takes_a_quantity(deployment):
    references = plans_and_metrics(deployment)
    with StateStore.open(deployment.state_store_url, Clock("2026-10-15T00:00:00Z")) as store:
        store.apply([AddCustomer(Customer(id="c", name="C"), "ana"),
                     CreateSubscription(Subscription(id="s", customer_id="c", plan_id="team",
                                                     start_date=date(2026, 10, 1)), "ana")],
                    references)
        with pytest.raises(StateError) as refused:
            store.apply([SetQuantity("s", Decimal(2), "bob", "calls"),
                         SetQuantity("s", Decimal(2), "bob", "gold_seat")], references)
    assert refused.value.problems == [
        "price_id: price 'calls' is not a fixed fee (it has no fixed_price_quantity)",
        "price_id: price 'gold_seat' is not on the subscription's plans"]


def test_the_cli_sets_a_quantity(deployment):
    data = ("--data-dir", deployment.data_dir)

    def orb(*args: str):
        return CliRunner().invoke(main, [*args, *data], catch_exceptions=False)

    assert orb("customers", "add", "c", "--name", "C").exit_code == 0
    assert orb("subscriptions", "create", "s", "--customer", "c", "--plan", "team",
               "--start", "2026-10-01").exit_code == 0
    done = orb("subscriptions", "set-quantity", "s", "--price", "seat", "--quantity", "8",
               "--effective", "2026-11-11", "--actor", "bob")
    assert done.exit_code == 0, done.output
    assert "quantity 8 of seat on subscription s, effective 2026-11-11" in done.output
    refused = orb("subscriptions", "set-quantity", "s", "--price", "calls", "--quantity", "2")
    assert refused.exit_code == 1
    assert "--price: price 'calls' is not a fixed fee" in refused.output
    with StateStore.open(deployment.state_store_url) as store:
        (sub,) = store.snapshot().subscriptions()
    assert [(q.price_id, q.start_date, q.quantity) for q in sub.fixed_fee_quantities] == [
        ("seat", date(2026, 11, 11), Decimal(8))]


def test_a_credit_larger_than_its_invoice_is_carried_to_the_customer_balance():
    catalog = seats_from(("2026-11-11", 0))
    november = bill(catalog, NOVEMBER)
    # Dec 1: the 5 seats go for Nov 11..30, 20 of 30 days, -(5 x 10 x 20/30) = -33.333..
    # -> -33.33 (half away from zero); December at 0 seats, 0 x 10 = 0.00; no calls. The
    # lines sum to -33.33, so +33.33 is carried to the balance: total 0.00, not -33.33.
    assert november.lines["s:seat:20261111"]["amount"] == Decimal("-33.33")
    assert totals(november) == {"c-20261201-USD": Decimal("0.00")}
    (carried,) = november.adjustments
    assert (carried["invoice_id"], carried["adjustment_type"], carried["base"],
            carried["amount"]) == ("c-20261201-USD", "carried_to_balance", Decimal("-33.33"),
                                   Decimal("33.33"))
    head = november.invoices["c-20261201-USD"]
    assert (head["subtotal"], head["adjustments"], head["total"]) == (
        Decimal("-33.33"), Decimal("33.33"), Decimal("0.00"))
    # A credit the invoice covers moves nothing: -6.67 beside December's 40.00 (above).
    assert bill(seats_from(("2026-11-11", 4)), NOVEMBER).adjustments == []
    # the same inputs give the same drafts
    assert bill(catalog, NOVEMBER).adjustments == november.adjustments
    # Revenue does not share the carried credit: the credit line stays -33.33 (-3333
    # cents) of revenue, the fee 0, rather than both netting to 0.
    con = connect()
    register_revenue_lines(con, catalog, november.line_items, november.adjustment_table)
    assert con.sql("SELECT line_item_id, CAST(net_minor AS INTEGER) FROM revenue_lines "
                   "WHERE invoice_id = 'c-20261201-USD' AND amount_minor <> 0").fetchall() == [
        ("s:seat:20261111", -3333)]


def test_the_billing_run_passes_and_issuing_credits_the_balance_once(deployment):
    references = plans_and_metrics(deployment)
    with StateStore.open(deployment.state_store_url, Clock("2026-10-15T00:00:00Z")) as store:
        store.apply([AddCustomer(Customer(id="c", name="C"), "ana"),
                     CreateSubscription(Subscription(id="s", customer_id="c", plan_id="team",
                                                     start_date=date(2026, 10, 1)), "ana"),
                     SetQuantity("s", Decimal(0), "bob", "seat", date(2026, 11, 11))],
                    references)
    orb_store = OrbStore(data_dir=deployment.data_dir)
    defs = build_definitions(orb_store)
    instance = dg.DagsterInstance.ephemeral()
    runner.bill_months(defs, [NOVEMBER], instance)  # raises if a blocking check fails
    assert evaluations(defs, instance, "invoice_totals_add_up") == ["SUCCEEDED"]
    lake = orb_store.lake
    # Dec 1 (as in the test above): credit -33.33, carried +33.33, total 0.00.
    at = datetime(2026, 12, 2, 9, tzinfo=UTC)
    ((number, draft),) = issue_month(connect(), lake, NOVEMBER, at)
    assert [(line.line_key, line.amount) for line in draft.lines if line.amount] == [
        ("s:seat:20261111", Decimal("-33.33")),
        (balance.CARRIED_LINE, Decimal("33.33"))]
    assert draft.head.total == Decimal("0.00")
    assert issue_month(connect(), lake, NOVEMBER, at) == []  # nothing left to issue
    # issuing wrote -33.33 (credit the customer holds) once, and writes it once only
    (refund,) = balance.read(lake, "c")
    assert (refund.transaction_id, refund.action, refund.amount, refund.invoice_number) == (
        f"refund~{number}", "prorated_refund", Decimal("-33.33"), number)
    heads = [draft.head.issued(number, at)]
    assert balance.apply_on_issue(lake, heads, {}, at, {number: Decimal("33.33")}) == []
    assert balance.balance(lake, "c", "USD") == Decimal("-33.33")
    # the next invoice, 50.00, draws on it: 33.33 applied, 50.00 - 33.33 = 16.67 due
    later = issue(lake, "50.00", customer="c", at=at + timedelta(days=30))
    assert balance.applied_to(balance.read(lake, "c")) == {later: Decimal("33.33")}
    assert balance.balance(lake, "c", "USD") == Decimal("0.00")
    assert [(r.number, r.amount_due) for r in open_receivables(lake, date(2027, 1, 2))] == [
        (later, Decimal("16.67"))]
