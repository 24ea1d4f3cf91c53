"""Prices billed on cycles of their own: one-time fees, N-day and N-month cycles
(Orb's ``cadence`` one_time / custom with ``billing_cycle_configuration``), each against
hand-worked dates and amounts."""

import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from billing.catalog import CatalogError, parse_catalog
from billing.catalog.prices import Price
from billing.charges import billing_windows
from ingestion.batches import ingest_files
from invoicing.assembly import assemble_invoices
from pricing_sql.rating import compute_usage, price_line_items
from storage.duck import connect
from storage.lake import Lake
from storage.tables import USAGE
from tests.batches import batch
from tests.catalogs import catalog, unit

OCTOBER, NOVEMBER, MARCH = date(2026, 10, 1), date(2026, 11, 1), date(2026, 3, 1)
NOW = datetime(2027, 1, 10, tzinfo=UTC)
TOKENS = "SELECT sum(properties.tokens) FROM events WHERE event_name = 'completion'"


def event(key, timestamp, tokens=1):
    return {"event_name": "completion", "timestamp": timestamp, "customer_id": "c1",
            "idempotency_key": key, "properties": {"tokens": tokens}}


def shop(prices, start, timezone="UTC"):
    return catalog(
        plans=[{"id": "p", "name": "P", "currency": "USD", "prices": prices}],
        customers=[{"id": "c1", "name": "c1", "timezone": timezone}],
        subscriptions=[{"id": "s1", "customer_id": "c1", "plan_id": "p",
                        "start_date": start}],
        metrics={"tokens": TOKENS})


def custom(price, duration, unit_name):
    return {**price, "cadence": "custom",
            "billing_cycle_configuration": {"duration": duration, "duration_unit": unit_name}}


def priced(cat, month, lake=None):
    usage = compute_usage(connect(), lake, cat, month).usage if lake else USAGE.empty_table()
    return price_line_items(connect(), cat, month, usage).line_items


def lines_of(cat, month, lake=None):
    """(invoice date, price, service start, service end, quantity, amount) of each line
    of the run for ``month``, in order."""
    return sorted((line["invoice_date"], line["price_id"], line["service_start"],
                   line["service_end"], line["quantity"], line["amount"])
                  for line in priced(cat, month, lake).to_pylist())


def ingest(tmp_path, cat, name, events):
    lake = Lake(tmp_path / "lake")
    ingest_files(connect(), lake, cat, [batch(tmp_path / f"{name}.jsonl", *events)], NOW)
    return lake


# ---- one-time fees ---------------------------------------------------------------------


SETUP = {**unit("setup", "500.00", fixed_quantity=1), "cadence": "one_time"}
PLATFORM = unit("platform", "100.00", fixed_quantity=1)


def test_a_one_time_fee_is_on_the_first_invoice_and_never_again():
    cat = shop([SETUP, PLATFORM], "2026-10-05")
    # October's run: the first invoice (Oct 5) has the setup fee for its one day and the
    # platform fee for Oct 5 - Nov 1, 27 of October's 31 days: 100 x 27 / 31 = 87.0967..
    # -> 87.10; the second (Nov 1, in advance for November) only the platform fee.
    assert lines_of(cat, OCTOBER) == [
        (date(2026, 10, 5), "platform", date(2026, 10, 5), date(2026, 11, 1), 1,
         Decimal("87.10")),
        (date(2026, 10, 5), "setup", date(2026, 10, 5), date(2026, 10, 6), 1,
         Decimal("500.00")),
        (date(2026, 11, 1), "platform", date(2026, 11, 1), date(2026, 12, 1), 1,
         Decimal("100.00"))]
    # November's run (the Dec 1 invoice): no setup fee
    assert lines_of(cat, NOVEMBER) == [
        (date(2026, 12, 1), "platform", date(2026, 12, 1), date(2027, 1, 1), 1,
         Decimal("100.00"))]
    # and not in the month before the subscription starts, nor in a later year
    assert lines_of(cat, date(2026, 9, 1)) == []
    assert [line[1] for line in lines_of(cat, date(2027, 9, 1))] == ["platform"]


def test_a_one_time_fee_is_billed_again_by_a_phase_on_another_plan_only():
    other = {"id": "q", "name": "Q", "currency": "USD",
             "prices": [{**unit("onboarding", "250.00", fixed_quantity=1),
                         "cadence": "one_time"}, unit("support", "10.00", fixed_quantity=1)]}
    cat = catalog(
        plans=[{"id": "p", "name": "P", "currency": "USD", "prices": [SETUP, PLATFORM]},
               other],
        customers=[{"id": "c1", "name": "c1"}],
        subscriptions=[{"id": "s1", "customer_id": "c1", "phases": [
            {"plan_id": "p", "start_date": "2026-09-01", "plan_version": 1},
            {"plan_id": "p", "start_date": "2026-10-10", "plan_version": 1},  # same plan
            {"plan_id": "q", "start_date": "2026-10-20"}]}])
    one_time = [(line[0], line[1], line[5]) for line in lines_of(cat, OCTOBER)
                if line[1] in ("setup", "onboarding")]
    # the setup fee was billed on Sep 1 (August's run); the phase on plan p again on
    # Oct 10 does not bill it again; the phase on plan q bills its onboarding fee
    assert one_time == [(date(2026, 10, 20), "onboarding", Decimal("250.00"))]
    assert [(line[1], line[5]) for line in lines_of(cat, date(2026, 8, 1))
            if line[1] == "setup"] == [("setup", Decimal("500.00"))]


# ---- day cycles --------------------------------------------------------------------------


def test_a_fourteen_day_usage_price_bills_each_window_on_its_own_invoice(tmp_path):
    cat = shop([custom(unit("tokens", "0.10", metric="tokens"), 14, "day")], "2026-10-01")
    lake = ingest(tmp_path, cat, "october", [
        event("a", "2026-10-05T12:00:00Z", 10), event("b", "2026-10-14T23:59:59Z", 4),
        event("c", "2026-10-15T00:00:00Z", 20), event("d", "2026-10-28T12:00:00Z", 3),
        event("e", "2026-10-30T12:00:00Z", 7)])
    # windows from the start, every 14 days: [Oct 1, Oct 15), [Oct 15, Oct 29),
    # [Oct 29, Nov 12), [Nov 12, Nov 26), each invoiced at its end, in arrears.
    # October's run makes the invoices of Oct 15 and Oct 29:
    #   10 + 4 = 14 tokens x 0.10 = 1.40; 20 + 3 = 23 x 0.10 = 2.30
    assert lines_of(cat, OCTOBER, lake) == [
        (date(2026, 10, 15), "tokens", date(2026, 10, 1), date(2026, 10, 15), 14,
         Decimal("1.40")),
        (date(2026, 10, 29), "tokens", date(2026, 10, 15), date(2026, 10, 29), 23,
         Decimal("2.30"))]
    # November's run: Nov 12 (7 tokens x 0.10 = 0.70) and Nov 26 (none)
    assert lines_of(cat, NOVEMBER, lake) == [
        (date(2026, 11, 12), "tokens", date(2026, 10, 29), date(2026, 11, 12), 7,
         Decimal("0.70")),
        (date(2026, 11, 26), "tokens", date(2026, 11, 12), date(2026, 11, 26), 0,
         Decimal("0.00"))]
    invoices = assemble_invoices(connect(), cat, OCTOBER, priced(cat, OCTOBER, lake), [], {},
                                 {}).invoices.to_pylist()
    assert sorted((i["invoice_id"], i["total"]) for i in invoices) == [
        ("c1-20261015-USD", Decimal("1.40")), ("c1-20261029-USD", Decimal("2.30"))]


def test_a_re_rated_month_changes_only_the_window_a_late_event_falls_in(tmp_path):
    cat = shop([custom(unit("tokens", "0.10", metric="tokens"), 14, "day")], "2026-10-01")
    lake = ingest(tmp_path, cat, "october", [event("a", "2026-10-05T12:00:00Z", 10),
                                             event("b", "2026-10-20T12:00:00Z", 3)])
    first = {line["line_item_id"]: line["amount"]
             for line in priced(cat, OCTOBER, lake).to_pylist()}
    # 10 x 0.10 = 1.00 in [Oct 1, Oct 15); 3 x 0.10 = 0.30 in [Oct 15, Oct 29)
    assert first == {"s1:tokens:20261001": Decimal("1.00"),
                     "s1:tokens:20261015": Decimal("0.30")}
    ingest(tmp_path, cat, "late", [event("c", "2026-10-21T08:00:00Z", 5)])
    # re-rated: the second window has 3 + 5 = 8 x 0.10 = 0.80; the first is unchanged
    assert {line["line_item_id"]: line["amount"]
            for line in priced(cat, OCTOBER, lake).to_pylist()} == {
        "s1:tokens:20261001": Decimal("1.00"), "s1:tokens:20261015": Decimal("0.80")}


def test_a_seven_day_cycle_crossing_dst_is_cut_at_local_midnights(tmp_path):
    # New York moves to daylight time at 2:00 on Sunday 2026-03-08.
    cat = shop([custom(unit("tokens", "1.00", metric="tokens"), 7, "day")], "2026-03-01",
               timezone="America/New_York")
    windows = sorted((w.service_start, w.period_start, w.period_end)
                     for w in billing_windows(cat, MARCH))
    # the four windows ending in March: local midnight is 05:00 UTC before the change,
    # 04:00 UTC after, so [Mar 8, Mar 15) lasts 167 hours
    assert windows == [
        (date(2026, 3, 1), datetime(2026, 3, 1, 5, tzinfo=UTC),
         datetime(2026, 3, 8, 5, tzinfo=UTC)),
        (date(2026, 3, 8), datetime(2026, 3, 8, 5, tzinfo=UTC),
         datetime(2026, 3, 15, 4, tzinfo=UTC)),
        (date(2026, 3, 15), datetime(2026, 3, 15, 4, tzinfo=UTC),
         datetime(2026, 3, 22, 4, tzinfo=UTC)),
        (date(2026, 3, 22), datetime(2026, 3, 22, 4, tzinfo=UTC),
         datetime(2026, 3, 29, 4, tzinfo=UTC))]
    lake = ingest(tmp_path, cat, "march", [
        event("a", "2026-03-08T04:30:00Z", 1),  # Mar 7, 23:30 EST: the first window
        event("b", "2026-03-08T05:00:00Z", 2),  # Mar 8, 00:00 EST: the second
        event("c", "2026-03-15T03:30:00Z", 4),  # Mar 14, 23:30 EDT: still the second
        event("d", "2026-03-15T04:30:00Z", 8)])  # Mar 15, 00:30 EDT: the third
    assert [(line[0], line[4], line[5]) for line in lines_of(cat, MARCH, lake)] == [
        (date(2026, 3, 8), 1, Decimal("1.00")),
        (date(2026, 3, 15), 6, Decimal("6.00")),  # 2 + 4 tokens x 1.00
        (date(2026, 3, 22), 8, Decimal("8.00")),
        (date(2026, 3, 29), 0, Decimal("0.00"))]


# ---- month cycles ------------------------------------------------------------------------


def test_a_two_month_fixed_fee_is_billed_in_advance_every_other_month():
    cat = shop([custom(unit("platform", "300.00", fixed_quantity=1), 2, "month")],
               "2026-10-16")
    # two-month cycles from the start's month on cycle day 1: [Oct 1, Dec 1), [Dec 1,
    # Feb 1). The first is prorated: Oct 16 - Dec 1 is 46 of its 61 days,
    # 300 x 46 / 61 = 226.2295.. -> 226.23, invoiced on Oct 16.
    assert lines_of(cat, OCTOBER) == [
        (date(2026, 10, 16), "platform", date(2026, 10, 16), date(2026, 12, 1), 1,
         Decimal("226.23"))]
    # November's run makes the Dec 1 invoice: the full fee for Dec 1 - Feb 1
    assert lines_of(cat, NOVEMBER) == [
        (date(2026, 12, 1), "platform", date(2026, 12, 1), date(2027, 2, 1), 1,
         Decimal("300.00"))]
    assert lines_of(cat, date(2026, 12, 1)) == []  # nothing starts in (Dec 1, Jan 1]


def test_a_custom_cycle_of_three_months_bills_as_the_quarterly_cadence():
    quarterly = {**unit("platform", "300.00", fixed_quantity=1), "cadence": "quarterly"}
    as_custom = custom(unit("platform", "300.00", fixed_quantity=1), 3, "month")
    assert lines_of(shop([quarterly], "2026-10-16"), OCTOBER) == lines_of(
        shop([as_custom], "2026-10-16"), OCTOBER)


# ---- what is refused ---------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "message"), [
    ({"cadence": "custom"}, "a custom cadence needs billing_cycle_configuration"),
    ({"cadence": "monthly", "billing_cycle_configuration": {"duration": 2,
                                                             "duration_unit": "month"}},
     "billing_cycle_configuration 2 month(s) is not the monthly cadence"),
    ({"cadence": "one_time", "billing_cycle_configuration": {"duration": 1,
                                                              "duration_unit": "day"}},
     "a one_time price is billed once"),
    ({"cadence": "one_time", "fixed_price_quantity": None, "billable_metric_id": "tokens"},
     "a one_time price is a fixed fee"),
    ({"invoicing_cycle_configuration": {"duration": 1, "duration_unit": "month"},
      "cadence": "annual"},
     "invoicing_cycle_configuration other than the billing cycle is not supported"),
    ({"cadence": "custom", "billing_cycle_configuration": {"duration": 0,
                                                            "duration_unit": "day"}},
     "greater than or equal to 1"),
])
def test_cycle_refusals(changes, message):
    price = {**unit("fee", "1.00", fixed_quantity=1), **changes}
    price = {k: v for k, v in price.items() if v is not None}
    with pytest.raises(ValidationError, match=re.escape(message)):
        TypeAdapter(Price).validate_python(price)


def test_an_invoicing_cycle_equal_to_the_billing_cycle_is_accepted():
    cycle = {"duration": 14, "duration_unit": "day"}
    price = TypeAdapter(Price).validate_python({
        **unit("fee", "1.00", fixed_quantity=1), "cadence": "custom",
        "billing_cycle_configuration": cycle, "invoicing_cycle_configuration": cycle})
    assert (price.cycle.unit, price.cycle.duration, price.cycle.key) == ("day", 14, "day:14")


def test_a_refused_cycle_names_its_file_and_line():
    price = {**unit("fee", "1.00", fixed_quantity=1), "cadence": "annual",
             "invoicing_cycle_configuration": {"duration": 1, "duration_unit": "month"}}
    text = yaml.safe_dump({"plans": [{"id": "p", "name": "P", "currency": "USD",
                                      "prices": [price]}]}, sort_keys=False)
    with pytest.raises(CatalogError) as error:
        parse_catalog([("plans.yaml", text)])
    # the price's first line, "- id: fee", after plans:, - id: p, name, currency, prices:
    assert error.value.problems == [
        "plans.yaml:6: plans[0].prices[0]: Value error, invoicing_cycle_configuration other "
        "than the billing cycle is not supported: each billing cycle is invoiced once, at its "
        "start (in advance) or end (in arrears)"]

