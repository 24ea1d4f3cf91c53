"""Subscriptions billed by rule: proration, plan changes, trials, cadences, anchors,
versions and coupons. Every amount is worked out by hand in the comments."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from billing.charges import billing_windows
from billing.cycles import billing_periods, cycle_date
from ingestion.batches import ingest_files
from pricing_sql.rating import compute_usage
from storage.duck import connect
from storage.lake import Lake
from tests.batches import batch, ev
from tests.catalogs import catalog, unit
from tests.invoicing import basic, bill, shop, totals

SEPTEMBER, OCTOBER, NOVEMBER = date(2026, 9, 1), date(2026, 10, 1), date(2026, 11, 1)


def test_mid_month_start_prorates_the_fee_billed_in_advance():
    catalog = shop([basic()], {"plan_id": "basic", "start_date": "2026-09-10"})
    result = bill(catalog, SEPTEMBER, {("s:20260910-20261001", "calls"): 50})
    # Sep 10: the fee for Sep 10 - Oct 1, 21 of September's 30 days: 30 x 21/30 = 21.00.
    # Oct 1: September's usage, 50 x 0.10 = 5.00, plus October's fee in full: 35.00.
    assert totals(result) == {"c-20260910-USD": Decimal("21.00"),
                              "c-20261001-USD": Decimal("35.00")}
    fee = result.lines["s:basic_fee:20260910"]
    assert (fee["prorated_days"], fee["period_days"]) == (21, 30)
    assert result.lines["s:basic_calls:20260910"]["invoice_id"] == "c-20261001-USD"


UPGRADE = {"phases": [{"plan_id": "basic", "start_date": "2026-01-01"},
                      {"plan_id": "pro", "start_date": "2026-10-16"}]}


def test_upgrade_mid_period():
    catalog = shop([basic(), basic("100.00", "0.05", "pro")], UPGRADE)
    result = bill(catalog, OCTOBER, {("s:20261001-20261016", "calls"): 200,
                                     ("s:20261016-20261101", "calls"): 100})
    # Oct 16: pro's fee for Oct 16 - Nov 1, 16 of 31 days: 100 x 16/31 = 51.6129 -> 51.61.
    # Nov 1: basic usage Oct 1-16, 200 x 0.10 = 20.00; pro usage Oct 16 - Nov 1,
    #        100 x 0.05 = 5.00; pro's November fee 100.00: 125.00.
    assert totals(result) == {"c-20261016-USD": Decimal("51.61"),
                              "c-20261101-USD": Decimal("125.00")}
    # The October fee of basic was billed in advance on Oct 1 (the September run). Run
    # again with the change, it covers only Oct 1-16: 30 x 15/31 = 14.516 -> 14.52; the
    # difference becomes a credit note if that invoice was issued (test_lifecycle.py).
    september = bill(catalog, SEPTEMBER)
    assert september.lines["s:basic_fee:20261001"]["amount"] == Decimal("14.52")


def test_trial_then_paid():
    catalog = shop([basic()], {"plan_id": "basic", "start_date": "2026-10-01",
                               "trial_end_date": "2026-10-15"})
    assert bill(catalog, SEPTEMBER).invoices == {}  # nothing is due on Oct 1
    result = bill(catalog, OCTOBER, {("s:20261015-20261101", "calls"): 30})
    # Oct 15: the fee from the trial's end, 17 of 31 days: 30 x 17/31 = 16.4516 -> 16.45.
    # Nov 1: usage from Oct 15 only, 30 x 0.10 = 3.00, plus November's fee: 33.00.
    assert totals(result) == {"c-20261015-USD": Decimal("16.45"),
                              "c-20261101-USD": Decimal("33.00")}


def test_trial_plan_as_a_phase():
    trial = {"id": "trial", "name": "Trial", "currency": "USD",
             "prices": [unit("trial_calls", "0.00", metric="calls")]}
    catalog = shop([trial, basic()], {"phases": [
        {"plan_id": "trial", "start_date": "2026-10-01"},
        {"plan_id": "basic", "start_date": "2026-10-15"}]})
    result = bill(catalog, OCTOBER, {("s:20261001-20261015", "calls"): 500,
                                     ("s:20261015-20261101", "calls"): 30})
    # The 500 trial calls are priced at 0.00; the paid part is as with trial_end_date.
    assert totals(result) == {"c-20261015-USD": Decimal("16.45"),
                              "c-20261101-USD": Decimal("33.00")}


def test_cancellation_prorates_the_last_fee_and_bills_usage_at_the_end():
    catalog = shop([basic()], {"plan_id": "basic", "start_date": "2026-01-01",
                               "end_date": "2026-10-21"})
    result = bill(catalog, OCTOBER, {("s:20261001-20261021", "calls"): 40})
    # The final invoice is dated the end, Oct 21: usage Oct 1-21, 40 x 0.10 = 4.00.
    # No November fee. (October's fee, billed on Oct 1, re-rates to 30 x 20/31 = 19.35.)
    assert totals(result) == {"c-20261021-USD": Decimal("4.00")}
    assert bill(catalog, SEPTEMBER).lines["s:basic_fee:20261001"]["amount"] == Decimal("19.35")


def test_annual_fee_in_advance_on_the_anniversary():
    plan = {"id": "yearly", "name": "Yearly", "currency": "USD", "prices": [
        {**unit("yearly_fee", "1200.00", fixed_quantity=1), "cadence": "annual"},
        unit("yearly_calls", "0.10", metric="calls")]}
    catalog = shop([plan], {"plan_id": "yearly", "start_date": "2026-03-15",
                            "align_billing_with_subscription_start_date": True})
    # Mar 15: the year Mar 15 2026 - Mar 15 2027 in advance, in full.
    assert totals(bill(catalog, date(2026, 3, 1))) == {"c-20260315-USD": Decimal("1200.00")}
    # Apr 15: usage Mar 15 - Apr 15 only; the annual fee is not due again until 2027.
    april = bill(catalog, date(2026, 4, 1), {("s:20260315-20260415", "calls"): 70})
    assert totals(april) == {"c-20260415-USD": Decimal("7.00")}


def test_quarterly_fee_in_arrears_prorated_over_a_partial_quarter():
    plan = {"id": "q", "name": "Q", "currency": "USD", "prices": [
        {**unit("q_fee", "90.00", fixed_quantity=1), "cadence": "quarterly",
         "billed_in_advance": False}]}
    catalog = shop([plan], {"plan_id": "q", "start_date": "2026-02-10"})
    # The quarter Feb 1 - May 1 2026 has 28 + 31 + 30 = 89 days, of which Feb 10 - May 1
    # are 80: 90 x 80/89 = 80.8988 -> 80.90, on the invoice dated May 1 (April's run).
    assert bill(catalog, date(2026, 2, 1)).invoices == {}
    assert bill(catalog, date(2026, 3, 1)).invoices == {}
    assert totals(bill(catalog, date(2026, 4, 1))) == {"c-20260501-USD": Decimal("80.90")}


def test_billing_cycle_day_past_the_month_end_falls_on_the_last_day():
    assert cycle_date(date(2026, 2, 1), 31) == date(2026, 2, 28)
    assert list(billing_periods(date(2026, 1, 31), 31, 1, date(2026, 1, 31), None,
                                date(2026, 1, 31), date(2026, 4, 1))) == [
        (date(2026, 1, 31), date(2026, 2, 28)), (date(2026, 2, 28), date(2026, 3, 31)),
        (date(2026, 3, 31), date(2026, 4, 30))]


def test_billing_cycle_day_15():
    catalog = shop([basic()], {"plan_id": "basic", "start_date": "2026-01-01",
                               "billing_cycle_day": 15})
    result = bill(catalog, OCTOBER, {("s:20260915-20261015", "calls"): 10})
    # Oct 15: usage Sep 15 - Oct 15 (1.00) and the fee for Oct 15 - Nov 15 (30.00).
    assert totals(result) == {"c-20261015-USD": Decimal("31.00")}


def test_dst_month_in_a_non_utc_zone():
    catalog = shop([basic()], {"plan_id": "basic", "start_date": "2026-11-10"},
                   timezone="America/New_York")
    result = bill(catalog, NOVEMBER)
    # November 2026 in New York has 30 local days although DST ends on Nov 1 (721 hours):
    # proration counts days. Nov 10 - Dec 1 is 21 days: 30 x 21/30 = 21.00.
    fee = result.lines["s:basic_fee:20261110"]
    assert fee["amount"] == Decimal("21.00")
    assert (fee["prorated_days"], fee["period_days"]) == (21, 30)


def test_dst_month_counts_usage_between_local_midnights(tmp_path):
    catalog = shop([basic()], {"plan_id": "basic", "start_date": "2026-01-01"},
                   timezone="America/New_York")
    lake = Lake(tmp_path)
    # DST ends on Nov 1 2026: November is [Nov 1 04:00Z (EDT), Dec 1 05:00Z (EST)).
    ingest_files(connect(), lake, catalog, [batch(
        tmp_path / "nov.jsonl",
        ev("oct-31-late", ts="2026-11-01T03:59:59Z", customer="c"),  # Oct 31, 23:59:59 EDT
        ev("nov-1-first", ts="2026-11-01T04:00:00Z", customer="c"),  # Nov 1, 00:00 EDT
        ev("nov-30-late", ts="2026-12-01T04:59:59Z", customer="c"),  # Nov 30, 23:59:59 EST
        ev("dec-1-first", ts="2026-12-01T05:00:00Z", customer="c"),  # Dec 1, 00:00 EST
    )], datetime(2026, 12, 2, tzinfo=UTC))
    usage = compute_usage(connect(), lake, catalog, NOVEMBER).usage.to_pylist()
    assert [(u["window_id"], u["quantity"]) for u in usage] == [
        ("s:20261101-20261201", Decimal(2))]


def test_plan_version_takes_effect_for_periods_starting_on_its_date():
    v2 = {"version": 2, "effective_from": "2026-11-01",
          "prices": [unit("basic_fee_v2", "35.00", fixed_quantity=1),
                     unit("basic_calls_v2", "0.08", metric="calls")]}
    catalog = shop([basic(versions=[v2])], {"plan_id": "basic", "start_date": "2026-01-01"})
    result = bill(catalog, OCTOBER, {("s:20261001-20261101", "calls"): 100})
    # October's usage at version 1 (100 x 0.10 = 10.00), November's fee at version 2.
    assert totals(result) == {"c-20261101-USD": Decimal("45.00")}
    pinned = shop([basic(versions=[v2])], {"plan_id": "basic", "start_date": "2026-01-01",
                                            "plan_version": 1})
    assert totals(bill(pinned, OCTOBER, {("s:20261001-20261101", "calls"): 100})) == {
        "c-20261101-USD": Decimal("40.00")}


def test_coupon_applies_for_its_duration():
    coupon = {"id": "welcome", "name": "Welcome", "percentage_discount": "0.2",
              "duration_in_months": 2}
    catalog = shop([basic()], {"plan_id": "basic", "start_date": "2026-09-01",
                               "coupons": [{"coupon_id": "welcome"}]}, coupons=[coupon])
    # The coupon covers charges whose service starts in [Sep 1, Nov 1).
    # Oct 1: September usage 5.00 + October fee 30.00 = 35.00, less 20 % (7.00) = 28.00.
    september = bill(catalog, SEPTEMBER, {("s:20260901-20261001", "calls"): 50})
    assert totals(september) == {"c-20261001-USD": Decimal("28.00")}
    # Nov 1: October usage 5.00 is covered (-1.00), November's fee is not: 34.00.
    october = bill(catalog, OCTOBER, {("s:20261001-20261101", "calls"): 50})
    assert totals(october) == {"c-20261101-USD": Decimal("34.00")}
    (adjustment,) = october.adjustments
    assert adjustment["line_item_ids"] == ["s:basic_calls:20261001"]
    # Dec 1: nothing covered.
    november = bill(catalog, NOVEMBER, {("s:20261101-20261201", "calls"): 50})
    assert totals(november) == {"c-20261201-USD": Decimal("35.00")}


@pytest.mark.parametrize(("subscription", "message"), [
    ({"plan_id": "basic"}, "plan_id and start_date, or phases"),
    ({"plan_id": "basic", "start_date": "2026-01-01",
      "phases": [{"plan_id": "basic", "start_date": "2026-01-01"}]}, "not both"),
    ({"phases": [{"plan_id": "basic", "start_date": "2026-02-01"},
                 {"plan_id": "basic", "start_date": "2026-01-01"}]}, "strictly increasing"),
    ({"plan_id": "basic", "start_date": "2026-01-01", "trial_end_date": "2025-12-01"},
     "trial_end_date"),
    ({"plan_id": "basic", "start_date": "2026-01-01", "billing_cycle_day": 5,
      "align_billing_with_subscription_start_date": True}, "not both"),
])
def test_invalid_subscriptions_are_refused(subscription, message):
    with pytest.raises(ValueError, match=message):
        shop([basic()], subscription)


def test_subscriptions_alike_share_a_calendar_but_keep_their_names_zones_and_ends():
    # Four subscriptions on one usage price from 2026-01-01. A run computes one calendar
    # for subscriptions whose dates, plan and time zone agree (billing/charges.py), so
    # each one that differs comes after one it would wrongly share with.
    cat = catalog(
        plans=[{"id": "p", "name": "P", "currency": "USD",
                "prices": [unit("calls", "0.01", metric="calls")]}],
        customers=[{"id": c, "name": c, "timezone": tz} for c, tz in (
            ("a", "UTC"), ("b", "UTC"), ("n", "America/New_York"), ("c", "UTC"))],
        subscriptions=[{"id": f"s{c}", "customer_id": c, "plan_id": "p",
                        "start_date": "2026-01-01"} for c in "abn"]
        + [{"id": "sc", "customer_id": "c", "plan_id": "p", "start_date": "2026-01-01",
            "end_date": "2026-10-16"}])
    utc = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    # New York is on daylight time (UTC-4) at both local midnights; sc's usage is
    # invoiced when it ends.
    new_york = datetime(2026, 10, 1, 4, tzinfo=UTC), datetime(2026, 11, 1, 4, tzinfo=UTC)
    assert {(w.subscription_id, w.customer_id, w.invoice_id, w.window_id, w.period_start,
             w.period_end) for w in billing_windows(cat, OCTOBER)} == {
        ("sa", "a", "a-20261101-USD", "sa:20261001-20261101", *utc),
        ("sb", "b", "b-20261101-USD", "sb:20261001-20261101", *utc),
        ("sn", "n", "n-20261101-USD", "sn:20261001-20261101", *new_york),
        ("sc", "c", "c-20261016-USD", "sc:20261001-20261016", utc[0],
         datetime(2026, 10, 16, tzinfo=UTC)),
    }
