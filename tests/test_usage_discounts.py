"""Orb's usage discount: units taken off a usage line's quantity before it is priced,
the first adjustment in Orb's order (usage, amount, percentage discounts, minimums,
maximums). Every invoice here is the one dated Nov 1 that bills October's usage."""

import re
import tempfile
from datetime import UTC, date, datetime
from decimal import Decimal

import orb
import pyarrow as pa
import pytest
from orb.types.shared import PlanPhaseUsageDiscountAdjustment
from pydantic import TypeAdapter, ValidationError

from billing.catalog import Catalog, Customer, Subscription
from billing.catalog.adjustments import Adjustment
from billing.catalog.models import Plan
from billing.catalog.orb_import import convert
from invoicing.issuing import compute_corrections, issue_month
from state import AddAdjustment, AddCustomer, CreateSubscription, StateError, StateStore
from storage.duck import connect
from storage.lake import Lake
from storage.tables import INVOICE_CORRECTIONS
from tests.api_tenants import API_VARIABLES, create_key, make_tenants, serve
from tests.invoicing import bill, shop, totals
from tests.test_orb_import import orb_plan, orb_price

OCTOBER = date(2026, 10, 1)
NOV_1 = "c-20261101-USD"
WINDOW = "s:20261001-20261101"


def unit_price(price_id, amount, metric="calls"):
    return {"id": price_id, "name": price_id, "model_type": "unit",
            "unit_config": {"unit_amount": amount}, "billable_metric_id": metric}


def usage_discount(units, adjustment_id="units_off", **extra):
    return {"id": adjustment_id, "adjustment_type": "usage_discount", "usage_discount": units,
            **extra}


def catalog_of(prices, adjustments=(), subscription_adjustments=()):
    catalog = shop([{"id": "p", "name": "P", "currency": "USD", "prices": prices,
                     "adjustments": list(adjustments)}],
                   {"plan_id": "p", "start_date": "2026-01-01",
                    "adjustments": list(subscription_adjustments)})
    return catalog.model_copy(update={"metrics": [
        *catalog.metrics, catalog.metrics[0].model_copy(update={"id": "tokens"})]})


def applied(result):
    return [(a["adjustment_id"], a["adjustment_type"], a["base"], a["amount"])
            for a in result.adjustments]


def test_100_units_off_a_unit_price():
    # 1,000 calls at $0.01 = $10.00; 100 units off: 900 x 0.01 = $9.00, so -$1.00.
    result = bill(catalog_of([unit_price("calls", "0.01")], [usage_discount(100)]),
                  OCTOBER, {(WINDOW, "calls"): 1000})
    assert applied(result) == [("units_off", "usage_discount", Decimal("10.00"),
                                Decimal("-1.00"))]
    assert totals(result) == {NOV_1: Decimal("9.00")}
    # the line itself keeps its quantity and amount: the discount is an adjustment
    (line,) = result.lines.values()
    assert (line["quantity"], line["amount"]) == (Decimal(1000), Decimal("10.00"))


def test_on_a_tiered_price_the_units_come_off_the_top_tiers():
    # Tiers: 0-1,000 at $0.10, above at $0.05. 1,050 calls: 100.00 + 50 x 0.05 = 102.50.
    # 100 units off: 950 calls = 950 x 0.10 = 95.00: the 50 units of the second tier
    # (2.50) and 50 of the first (5.00) come off: -7.50.
    tiered = {"id": "calls", "name": "Calls", "model_type": "tiered",
              "billable_metric_id": "calls", "tiered_config": {"tiers": [
                  {"first_unit": 0, "last_unit": 1000, "unit_amount": "0.10"},
                  {"first_unit": 1000, "unit_amount": "0.05"}]}}
    result = bill(catalog_of([tiered], [usage_discount(100)]), OCTOBER,
                  {(WINDOW, "calls"): 1050})
    assert applied(result) == [("units_off", "usage_discount", Decimal("102.50"),
                                Decimal("-7.50"))]
    assert totals(result) == {NOV_1: Decimal("95.00")}


def test_in_orbs_order_before_a_percentage_discount_and_a_minimum():
    # Ids chosen so that id order is not Orb's order. 1,000 calls at $0.05 = $50.00.
    # usage discount first: 800 x 0.05 = 40.00 -> -10.00; then 10 % of 40.00 -> -4.00;
    # then the $45.00 minimum sees 36.00 -> +9.00. Total 50 - 10 - 4 + 9 = 45.00.
    result = bill(catalog_of([unit_price("calls", "0.05")], [
        {"id": "a_floor", "adjustment_type": "minimum", "minimum_amount": "45.00"},
        {"id": "b_ten", "adjustment_type": "percentage_discount", "percentage_discount": "0.1"},
        usage_discount(200, "z_units")]), OCTOBER, {(WINDOW, "calls"): 1000})
    assert applied(result) == [
        ("z_units", "usage_discount", Decimal("50.00"), Decimal("-10.00")),
        ("b_ten", "percentage_discount", Decimal("40.00"), Decimal("-4.00")),
        ("a_floor", "minimum", Decimal("36.00"), Decimal("9.00"))]
    assert totals(result) == {NOV_1: Decimal("45.00")}


def test_applies_to_price_ids_limits_it_and_each_line_loses_its_own_units():
    # calls: 1,000 at $0.01 = 10.00, untouched. tokens: 1,000 at $0.02 = 20.00, 100 off:
    # 900 x 0.02 = 18.00 -> -2.00. Total 10 + 20 - 2 = 28.00.
    prices = [unit_price("calls", "0.01"), unit_price("tokens", "0.02", metric="tokens")]
    usage = {(WINDOW, "calls"): 1000, (WINDOW, "tokens"): 1000}
    only_tokens = bill(catalog_of(prices, [usage_discount(100, applies_to_price_ids=["tokens"])]),
                       OCTOBER, usage)
    assert applied(only_tokens) == [("units_off", "usage_discount", Decimal("20.00"),
                                     Decimal("-2.00"))]
    assert only_tokens.adjustments[0]["line_item_ids"] == ["s:tokens:20261001"]
    assert totals(only_tokens) == {NOV_1: Decimal("28.00")}
    # Invoice-level: 100 units off each usage line: -1.00 on calls, -2.00 on tokens.
    both = bill(catalog_of(prices, [usage_discount(100)]), OCTOBER, usage)
    assert applied(both) == [("units_off", "usage_discount", Decimal("30.00"),
                              Decimal("-3.00"))]
    assert totals(both) == {NOV_1: Decimal("27.00")}


def test_a_discount_larger_than_the_usage_floors_the_line_at_zero():
    # 50 calls at $0.01 = 0.50; 100 units off: 0 calls, 0.00 -> -0.50, never below zero.
    result = bill(catalog_of([unit_price("calls", "0.01")], [usage_discount(100)]),
                  OCTOBER, {(WINDOW, "calls"): 50})
    assert applied(result) == [("units_off", "usage_discount", Decimal("0.50"),
                                Decimal("-0.50"))]
    assert totals(result) == {NOV_1: Decimal("0.00")}


def test_two_usage_discounts_on_a_line_apply_one_after_the_other():
    # Tiers 0-1,000 at $0.10, above at $0.05; 1,100 calls: 100.00 + 5.00 = 105.00.
    # The plan's (id a) first: 1,000 calls = 100.00 -> -5.00; then the subscription's (b):
    # 900 calls = 90.00 -> -10.00, with a base of 105.00 - 5.00 = 100.00.
    tiered = {"id": "calls", "name": "Calls", "model_type": "tiered",
              "billable_metric_id": "calls", "tiered_config": {"tiers": [
                  {"first_unit": 0, "last_unit": 1000, "unit_amount": "0.10"},
                  {"first_unit": 1000, "unit_amount": "0.05"}]}}
    result = bill(catalog_of([tiered], [usage_discount(100, "a")],
                             [usage_discount(100, "b")]), OCTOBER, {(WINDOW, "calls"): 1100})
    assert applied(result) == [("a", "usage_discount", Decimal("105.00"), Decimal("-5.00")),
                               ("b", "usage_discount", Decimal("100.00"), Decimal("-10.00"))]
    assert [a["source"] for a in result.adjustments] == ["plan p v1", "subscription s"]
    assert totals(result) == {NOV_1: Decimal("90.00")}


def test_a_bulk_price_never_costs_more_for_the_discount():
    # Bulk: every unit at 1.00 up to 100 units, at 0.50 above. 120 calls = 60.00; 100
    # units off leave 20 calls = 20.00 (cheaper): -40.00. 30 units off leave 90 = 90.00,
    # dearer than 60.00: the discount takes 0 off, never adds.
    bulk = {"id": "calls", "name": "Calls", "model_type": "bulk", "billable_metric_id": "calls",
            "bulk_config": {"tiers": [{"maximum_units": 100, "unit_amount": "1.00"},
                                      {"unit_amount": "0.50"}]}}
    usage = {(WINDOW, "calls"): 120}
    assert applied(bill(catalog_of([bulk], [usage_discount(100)]), OCTOBER, usage)) == [
        ("units_off", "usage_discount", Decimal("60.00"), Decimal("-40.00"))]
    assert applied(bill(catalog_of([bulk], [usage_discount(30)]), OCTOBER, usage)) == [
        ("units_off", "usage_discount", Decimal("60.00"), Decimal("0.00"))]


def test_a_prorated_price_is_prorated_after_the_discount():
    # unit_with_proration at $0.31, subscription from Oct 17: 15 of October's 31 days.
    # 1,000 calls: 310.00 x 15/31 = 150.00; 100 off: 279.00 x 15/31 = 135.00 -> -15.00.
    prorated = {"id": "calls", "name": "Calls", "model_type": "unit_with_proration",
                "billable_metric_id": "calls",
                "unit_with_proration_config": {"unit_amount": "0.31"}}
    catalog = shop([{"id": "p", "name": "P", "currency": "USD", "prices": [prorated],
                     "adjustments": [usage_discount(100)]}],
                   {"plan_id": "p", "start_date": "2026-10-17"})
    result = bill(catalog, OCTOBER, {("s:20261017-20261101", "calls"): 1000})
    assert applied(result) == [("units_off", "usage_discount", Decimal("150.00"),
                                Decimal("-15.00"))]


def test_a_rerated_invoice_is_corrected_by_the_discounts_change():
    # Tiers 0-1,000 at $0.02, above at $0.01, 100 units off. Issued on 1,000 calls:
    # 20.00 less 100 x 0.02 = 2.00 -> 18.00. 50 late calls: 1,050 calls = 20.50, and
    # 950 calls = 19.00 after the discount, -1.50: the line is 0.50 more and the
    # discount 0.50 less, an adjustment invoice of +1.00 (19.00 - 18.00).
    tiered = {"id": "calls", "name": "Calls", "model_type": "tiered",
              "billable_metric_id": "calls", "tiered_config": {"tiers": [
                  {"first_unit": 0, "last_unit": 1000, "unit_amount": "0.02"},
                  {"first_unit": 1000, "unit_amount": "0.01"}]}}
    catalog = catalog_of([tiered], [usage_discount(100)])
    with tempfile.TemporaryDirectory() as folder:
        lake, con = Lake(folder), connect()
        issued = bill(catalog, OCTOBER, {(WINDOW, "calls"): 1000})
        assert totals(issued) == {NOV_1: Decimal("18.00")}
        for table, rows in (("line_items", issued.line_items),
                            ("invoice_adjustments", issued.adjustment_table),
                            ("invoices", pa.Table.from_pylist(list(issued.invoices.values()))),
                            ("invoice_corrections", INVOICE_CORRECTIONS.empty_table())):
            lake.write_partition(table, "billing_month", OCTOBER, rows)
        issue_month(con, lake, OCTOBER, datetime(2026, 11, 2, tzinfo=UTC))
        rerated = bill(catalog, OCTOBER, {(WINDOW, "calls"): 1050})
        assert applied(rerated) == [("units_off", "usage_discount", Decimal("20.50"),
                                     Decimal("-1.50"))]
        rows = compute_corrections(con, lake, OCTOBER, rerated.line_items,
                                   rerated.adjustment_table, excluded=()).to_pylist()
    assert sorted((r["kind"], r["billed"], r["computed"], r["amount"]) for r in rows) == [
        ("adjustment", Decimal("-2.00"), Decimal("-1.50"), Decimal("0.50")),
        ("line", Decimal("20.00"), Decimal("20.50"), Decimal("0.50"))]
    assert {r["document_type"] for r in rows} == {"adjustment_invoice"}


# -- what a usage discount may apply to -------------------------------------------------

GROUPED = {"id": "by_region", "name": "By region", "model_type": "grouped_tiered",
           "billable_metric_id": "calls", "grouped_tiered_config": {
               "grouping_key": "region",
               "tiers": [{"tier_lower_bound": "0", "unit_amount": "0.01"}]}}
FEE = {"id": "fee", "name": "Fee", "model_type": "unit", "unit_config": {"unit_amount": "5"},
       "fixed_price_quantity": 1}


def refusal(prices, adjustment) -> str:
    with pytest.raises(ValidationError) as caught:
        catalog_of(prices, [adjustment])
    return str(caught.value)


def test_a_plan_refuses_a_usage_discount_on_what_it_cannot_reduce():
    assert ("usage discount 'units_off' cannot apply to price 'fee': it is not a usage price"
            in refusal([FEE, unit_price("calls", "0.01")],
                       usage_discount(10, applies_to_price_ids=["fee"])))
    assert ("usage discount 'units_off' cannot apply to price 'by_region': it prices each "
            "group of region apart, and a usage discount takes units off one quantity; name "
            "the prices it applies to in applies_to_price_ids"
            in refusal([GROUPED, unit_price("calls", "0.01")], usage_discount(10)))
    assert "Input should be greater than 0" in refusal(
        [unit_price("calls", "0.01")], usage_discount(0))
    # an invoice-level one leaves fixed fees alone: 1,000 calls at 0.01 - 100 off = 9.00,
    # plus November's fee of 5.00 billed in advance on the same invoice
    result = bill(catalog_of([FEE, unit_price("calls", "0.01")], [usage_discount(100)]),
                  OCTOBER, {(WINDOW, "calls"): 1000})
    assert result.adjustments[0]["line_item_ids"] == ["s:calls:20261001"]
    assert totals(result) == {NOV_1: Decimal("14.00")}


def test_the_state_store_refuses_a_subscription_usage_discount_it_cannot_apply(tmp_path):
    references = Catalog.model_validate({"plans": [
        {"id": "p", "name": "P", "currency": "USD",
         "prices": [FEE, unit_price("calls", "0.01"), GROUPED]}]})
    units = TypeAdapter(Adjustment).validate_python(
        usage_discount("250", applies_to_price_ids=["calls"]))
    assert units.usage_discount == Decimal(250)
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        store.apply([AddCustomer(Customer(id="c", name="C"), actor="t"),
                     CreateSubscription(Subscription(id="s", customer_id="c", plan_id="p",
                                                     start_date=date(2026, 10, 1),
                                                     adjustments=[units]), actor="t")],
                    references)
        with pytest.raises(StateError) as caught:
            store.apply([AddAdjustment("s", TypeAdapter(Adjustment).validate_python(
                usage_discount(5, "bad", applies_to_price_ids=["by_region"])), "t")],
                references)
        assert caught.value.problems == [
            "adjustment: usage discount 'bad' cannot apply to price 'by_region': it prices "
            "each group of region apart, and a usage discount takes units off one quantity"]
        (sub,) = store.snapshot().subscriptions()
    assert sub.adjustments == [units]


def test_an_orb_plans_usage_discount_is_imported_exactly():
    # Orb's PlanPhaseUsageDiscountAdjustment, its units a JSON number (2.5 read as written)
    calls = orb_price("calls", "unit", {"unit_amount": "0.01"})
    adjustment = {"id": "adj_1", "adjustment_type": "usage_discount", "usage_discount": 2.5,
                  "applies_to_price_ids": ["calls"], "filters": [], "is_invoice_level": False,
                  "plan_phase_order": None, "reason": None, "replaces_adjustment_id": None}
    out = convert([("plans.json", orb_plan("p", [calls], [adjustment]))])
    assert out.refused == []
    (plan,) = out.plans
    (imported,) = Plan.model_validate(plan).adjustments
    assert (imported.adjustment_type, imported.usage_discount, imported.applies_to_price_ids) == (
        "usage_discount", Decimal("2.5"), ["calls"])


# -- through Orb's official SDK ----------------------------------------------------------

@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        for variable in API_VARIABLES:
            patch.delenv(variable, raising=False)
        data_dir, _ = make_tenants(tmp_path_factory.mktemp("api"))
        key = create_key(data_dir, "admin")
    with serve(data_dir) as root:
        yield orb.Orb(api_key=key, base_url=f"{root}/v1", max_retries=0)


def test_a_subscription_created_with_a_usage_discount_through_the_sdk(client):
    customer = client.customers.create(email="ap@acme.test", name="Acme")
    sub = client.subscriptions.create(
        customer_id=customer.id, plan_id="starter", start_date="2026-10-01",
        add_adjustments=[{"adjustment": {"adjustment_type": "usage_discount",
                                         "usage_discount": 1500,
                                         "applies_to_price_ids": ["starter_calls"]}}])
    (interval,) = sub.adjustment_intervals
    assert isinstance(interval.adjustment, PlanPhaseUsageDiscountAdjustment)
    assert (interval.adjustment.usage_discount, interval.adjustment.applies_to_price_ids,
            interval.adjustment.is_invoice_level, interval.start_date, interval.end_date) == (
        1500, ["starter_calls"], False, datetime(2026, 10, 1, tzinfo=UTC), None)
    assert interval.id == interval.adjustment.id and interval.id.startswith("adj_")
    assert client.subscriptions.fetch(sub.id).adjustment_intervals == sub.adjustment_intervals


def test_what_a_usage_discount_cannot_take_is_refused_through_the_sdk(client):
    customer = client.customers.create(email="b@acme.test", name="B")

    def refused(adjustment) -> list[str]:
        with pytest.raises(orb.BadRequestError) as caught:
            client.subscriptions.create(customer_id=customer.id, plan_id="starter",
                                        add_adjustments=[{"adjustment": adjustment}])
        return caught.value.body["validation_errors"]

    (problem,) = refused({"adjustment_type": "usage_discount", "usage_discount": 10,
                          "applies_to_price_ids": ["starter_platform"]})
    assert re.fullmatch(
        r"body\.add_adjustments\.0\.adjustment: usage discount 'adj_[0-9a-f]{16}' cannot "
        r"apply to price 'starter_platform': it is not a usage price \(a usage discount "
        r"takes units off usage\)", problem)
    assert refused({"adjustment_type": "usage_discount", "usage_discount": 10,
                    "filters": [{"field": "price_id", "operator": "includes",
                                 "values": ["starter_calls"]}]}) == [
        "body.add_adjustments.0.adjustment.filters: price filters are not supported; name "
        "the prices in applies_to_price_ids"]
    assert refused({"adjustment_type": "usage_discount", "usage_discount": -5}) == [
        "body.add_adjustments.0.adjustment.usage_discount: Input should be greater than 0"]
    assert refused({"adjustment_type": "tiered_percentage_discount", "tiers": []})[0].startswith(
        "body.add_adjustments.0.adjustment.adjustment_type: Input tag "
        "'tiered_percentage_discount' found using 'adjustment_type' does not match")
    assert client.subscriptions.list(customer_id=[customer.id]).data == []
