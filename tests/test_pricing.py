"""Line items and invoices priced by the pipeline's SQL, against hand-worked amounts."""

from datetime import date
from decimal import Decimal
from fractions import Fraction

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing import money
from billing.charges import billing_windows
from invoicing.assembly import assemble_invoices
from pricing_sql.rating import price_line_items
from storage.duck import connect
from storage.tables import USAGE
from tests.catalogs import catalog, model, one_plan, tiered, unit, usage_rows

OCTOBER = date(2026, 10, 1)
TIERS = [(0, 10, "0.50"), (10, None, "0.10")]


def price(catalog, quantities, metric="calls"):
    """Line items for customers c0.. with the given usage of ``metric``."""
    usage = usage_rows(catalog, OCTOBER, quantities, metric)
    return price_line_items(connect(), catalog, OCTOBER, usage).line_items.to_pylist()


def build_invoices(catalog, lines):
    return assemble_invoices(connect(), catalog, OCTOBER, pa.Table.from_pylist(lines), [], {},
                             {}).invoices.to_pylist()


def amounts(lines):
    return {(line["customer_id"], line["price_id"]): line["amount"] for line in lines}


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("0", "0.00"),
        ("10", "5.00"),  # all ten units in the first tier: 10 x 0.50
        ("15", "5.50"),  # 10 x 0.50 + 5 x 0.10
        ("10.5", "5.05"),  # fractional units: 10 x 0.50 + 0.5 x 0.10
        ("1000", "104.00"),  # 10 x 0.50 + 990 x 0.10
    ],
)
def test_graduated_tiers(quantity, expected):
    lines = price(one_plan([tiered("calls", "calls", TIERS)]), [quantity])
    assert lines[0]["amount"] == Decimal(expected)


def test_tier_breakdown_is_kept_as_sub_line_items():
    catalog = one_plan([tiered("calls", "calls", TIERS), tiered("idle", "tokens", TIERS)])
    usage = usage_rows(catalog, OCTOBER, ["15"])
    details = price_line_items(connect(), catalog, OCTOBER, usage).sub_line_items.to_pylist()
    subs = [(s["line_item_id"], s["first_unit"], s["last_unit"], s["quantity"], s["amount"])
            for s in details]
    assert subs == [("s0:calls:20261001", 0, 10, 10, Decimal("5.00")),
                    ("s0:calls:20261001", 10, None, 5, Decimal("0.50")),
                    ("s0:idle:20261001", 0, 10, 0, 0)]  # no usage: the first tier, at zero


def test_unit_price_rounds_once_per_line_half_up():
    catalog = one_plan([unit("tokens", "0.00002", metric="tokens")], customers=2)
    lines = price(catalog, ["123457", "62500"], metric="tokens")
    # 123457 x 0.00002 = 2.46914 -> 2.47; 62500 x 0.00002 = 1.25 exactly
    assert amounts(lines) == {("c0", "tokens"): Decimal("2.47"),
                              ("c1", "tokens"): Decimal("1.25")}


def test_half_a_cent_rounds_away_from_zero():
    lines = price(one_plan([unit("tokens", "0.001", metric="tokens")]), ["1225"], "tokens")
    assert lines[0]["precise_amount"] == Decimal("1.225")
    assert lines[0]["amount"] == Decimal("1.23")


def test_yen_has_no_minor_unit():
    lines = price(one_plan([unit("calls", "0.25", metric="calls")], currency="JPY"), ["10"])
    assert lines[0]["amount"] == Decimal("3")  # 2.5 yen, half up


def test_fixed_fee_and_zero_usage_lines_and_invoice_total():
    catalog = one_plan([unit("platform", "49.00", fixed_quantity=2),
                        tiered("calls", "calls", TIERS),
                        unit("tokens", "0.001", metric="tokens")])
    lines = price(catalog, ["15"])
    assert amounts(lines) == {("c0", "platform"): Decimal("98.00"),
                              ("c0", "calls"): Decimal("5.50"),
                              ("c0", "tokens"): Decimal("0.00")}
    (invoice,) = build_invoices(catalog, lines)
    # October's usage in arrears and November's fee in advance, on the Nov 1 invoice
    assert invoice["invoice_id"] == "c0-20261101-USD"
    assert invoice["total"] == Decimal("103.50")
    assert invoice["line_count"] == 3


def test_negative_usage_is_billed_as_zero_and_shown_as_such():
    # A metric can sum to less than 0 (refunds as negative amounts). Each usage price rates
    # it as 0; the line keeps the metric's value as its quantity, and the breakdown is the
    # first tier at 0, not a negative amount under a $0.00 line.
    bulk = model("bulk", "bulk", {"tiers": [{"maximum_units": "10", "unit_amount": "0.50"},
                                            {"maximum_units": None, "unit_amount": "0.40"}]},
                 metric="calls")
    catalog = one_plan([bulk, tiered("tiered", "calls", TIERS),
                        unit("unit", "2.00", metric="calls")])
    usage = usage_rows(catalog, OCTOBER, ["-5"])
    priced = price_line_items(connect(), catalog, OCTOBER, usage)
    lines = {x["price_id"]: (x["quantity"], x["precise_amount"], x["amount"])
             for x in priced.line_items.to_pylist()}
    assert lines == {p: (Decimal(-5), 0, Decimal("0.00")) for p in ("bulk", "tiered", "unit")}
    details = [(s["line_item_id"], s["tier_index"], s["quantity"], s["amount"])
               for s in priced.sub_line_items.to_pylist()]
    assert details == [(f"s0:{p}:20261001", 0, 0, 0) for p in ("bulk", "tiered", "unit")]


def test_a_negative_group_does_not_enlarge_a_matrix_allocation():
    matrix = model("m", "matrix_with_allocation", {
        "dimensions": ["region"], "default_unit_amount": "1.00", "allocation": "5",
        "matrix_values": [{"dimension_values": ["eu"], "unit_amount": "3.00"}]}, metric="calls")
    catalog = one_plan([matrix])
    (window,) = [w.window_id for w in billing_windows(catalog, OCTOBER) if not w.in_advance]
    usage = pa.Table.from_pylist([
        {"window_id": window, "metric_id": "calls", "grouping": ["region"],
         "group_values": [region], "quantity": Decimal(q)} for region, q in
        (("eu", "-10"), ("us", "10"))], schema=USAGE)
    (line,) = price_line_items(connect(), catalog, OCTOBER, usage).line_items.to_pylist()
    # eu is rated as 0 and draws nothing; us gets the 5 free units: 5 x 1.00. (Drawing -10
    # would have left 15 free units and us at $0.00.)
    assert (line["quantity"], line["amount"]) == (Decimal(0), Decimal("5.00"))


def test_groups_given_twice_are_merged_before_rating():
    grouped = model("g", "grouped_tiered", {"grouping_key": "region", "tiers": [
        {"tier_lower_bound": "0", "unit_amount": "1.00"},
        {"tier_lower_bound": "10", "unit_amount": "0.50"}]}, metric="calls")
    catalog = one_plan([grouped])
    (window,) = [w.window_id for w in billing_windows(catalog, OCTOBER) if not w.in_advance]
    usage = pa.Table.from_pylist([
        {"window_id": window, "metric_id": "calls", "grouping": ["region"],
         "group_values": ["us"], "quantity": Decimal(q)} for q in ("5", "10")], schema=USAGE)
    (line,) = price_line_items(connect(), catalog, OCTOBER, usage).line_items.to_pylist()
    assert (line["quantity"], line["amount"]) == (Decimal(15), Decimal("12.50"))  # 10 + 2.50


def test_a_filtered_price_bills_and_shows_only_the_matching_usage():
    filtered = model("f", "bulk_with_filters", {
        "filters": [{"property_key": "region", "property_value": "us"}],
        "tiers": [{"unit_amount": "0.50"}, {"tier_lower_bound": "10", "unit_amount": "0.40"}]},
        metric="calls")
    catalog = one_plan([filtered])
    (window,) = [w.window_id for w in billing_windows(catalog, OCTOBER) if not w.in_advance]
    usage = pa.Table.from_pylist([
        {"window_id": window, "metric_id": "calls", "grouping": ["region"],
         "group_values": [region], "quantity": Decimal(q)} for region, q in
        (("us", "11"), ("eu", "500"), (None, "7"))], schema=USAGE)
    priced = price_line_items(connect(), catalog, OCTOBER, usage)
    (line,) = priced.line_items.to_pylist()
    assert (line["quantity"], line["amount"]) == (Decimal(11), Decimal("4.40"))  # 11 x 0.40
    assert [(s["group_values"], s["quantity"]) for s in priced.sub_line_items.to_pylist()] == [
        (["us"], 11)]


def composite_plan(**percent_config):
    usage_only = [{"field": "price_type", "operator": "includes", "values": ["usage_price"]}]
    return one_plan([
        unit("calls", "0.10", metric="calls"),
        unit("platform", "49.00", fixed_quantity=1),
        {**model("fee", "percent", {"percent": "0.1", "minimum_amount": "5.00",
                                    "maximum_amount": "100.00", **percent_config}),
         "composite_price_filters": usage_only},
        model("floor", "minimum_composite", {"minimum_amount": "60.00"}),
    ])


@pytest.mark.parametrize(
    ("calls", "fee", "floor"),
    [
        # calls 1000 x 0.10 = 100.00: the fee is 10% of the usage prices only, 10.00; the
        # floor is 60.00 less everything else on the invoice (100.00 + 49.00), nothing
        ("1000", "10.00", "0.00"),
        # calls 2.00: 10% is 0.20, raised to the minimum 5.00; the floor 60 - 51 = 9.00
        ("20", "5.00", "9.00"),
        # calls 2,000.00: 10% is 200.00, capped at the maximum 100.00
        ("20000", "100.00", "0.00"),
        # no usage: the minimum fee; the floor 60 - 49 (November's fee, same invoice)
        ("0", "5.00", "11.00"),
    ],
)
def test_composite_prices_are_charged_on_the_other_lines(calls, fee, floor):
    catalog = composite_plan()
    lines = price(catalog, [calls])
    assert {k[1]: v for k, v in amounts(lines).items() if k[1] in ("fee", "floor")} == {
        "fee": Decimal(fee), "floor": Decimal(floor)}
    (invoice,) = build_invoices(catalog, lines)
    assert invoice["total"] == sum(x["amount"] for x in lines)


def test_a_percent_without_bounds_rounds_once_half_up():
    # 12.5% of 0.10 (1 call) = 0.0125 -> 0.01; of 0.30 = 0.0375 -> 0.04
    catalog = one_plan([unit("calls", "0.10", metric="calls"),
                        model("fee", "percent", {"percent": "0.125"})], customers=2)
    assert {k: v for k, v in amounts(price(catalog, ["1", "3"])).items() if k[1] == "fee"} == {
        ("c0", "fee"): Decimal("0.01"), ("c1", "fee"): Decimal("0.04")}


def test_a_prorated_composite_minimum_is_prorated_exactly():
    prices = [unit("calls", "0.10", metric="calls"),
              model("floor", "minimum_composite", {"minimum_amount": "31.00", "prorated": True}),
              model("fee", "percent", {"percent": "0.1", "minimum_amount": "31.00"})]
    lines = amounts(price(prorated_catalog(15, prices), ["1"]))
    # from October 15th, 17 of 31 days: 31.00 x 17/31 = 17.00, less the calls' 0.10;
    # the percent's minimum is not prorated (0.01 is under it)
    assert lines[("c0", "floor")] == Decimal("16.90")
    assert lines[("c0", "fee")] == Decimal("31.00")


def test_a_composite_takes_no_metric_and_filters_what_it_can():
    with pytest.raises(ValueError, match="takes no billable_metric_id"):
        one_plan([model("fee", "percent", {"percent": "0.1"}, metric="calls")])
    bad_filter = [{"field": "item_id", "operator": "includes", "values": ["x"]}]
    with pytest.raises(ValueError, match="cannot filter on item_id: this catalog has no items"):
        one_plan([{**model("fee", "percent", {"percent": "0.1"}),
                   "composite_price_filters": bad_filter}])


tier_bounds = st.lists(st.integers(1, 10_000), min_size=0, max_size=4, unique=True).map(sorted)
unit_amounts = st.decimals(min_value=0, max_value=100, places=6, allow_nan=False)
quantities = st.decimals(min_value=0, max_value=1_000_000, places=3, allow_nan=False)


def graduated(quantity, tiers):
    """Independent reference: walk the tiers and charge the units inside each."""
    total = Decimal(0)
    for first, last, amount in tiers:
        top = quantity if last is None else min(quantity, Decimal(last))
        total += max(top - first, 0) * Decimal(amount)
    return total


@settings(max_examples=60, deadline=None)
@given(bounds=tier_bounds, rates=st.lists(unit_amounts, min_size=5, max_size=5),
       usage=st.lists(quantities, min_size=1, max_size=8),
       currency=st.sampled_from(["USD", "JPY", "KWD"]))
def test_graduated_pricing_properties(bounds, rates, usage, currency):
    edges = [0, *bounds]
    tiers = [(lo, hi, str(rate)) for lo, hi, rate in
             zip(edges, [*bounds, None], rates, strict=False)]
    catalog = one_plan([tiered("calls", "calls", tiers), unit("fee", "0.333", fixed_quantity=1)],
                       currency=currency, customers=len(usage))
    every_line = price(catalog, [str(q) for q in usage])
    lines = sorted((x for x in every_line if x["price_id"] == "calls"),
                   key=lambda x: int(x["customer_id"][1:]))
    half_unit = money.minor_unit(currency) / 2
    for quantity, line in zip(usage, lines, strict=True):
        precise = graduated(quantity, tiers)
        assert line["precise_amount"] == precise
        assert line["amount"] == money.quantize(precise, currency)
        assert abs(line["amount"] - precise) <= half_unit
    # Graduated pricing never charges less for more usage.
    by_quantity = sorted(zip(usage, (line["amount"] for line in lines), strict=True))
    assert all(a[1] <= b[1] for a, b in zip(by_quantity, by_quantity[1:], strict=False))
    invoices = build_invoices(catalog, every_line)
    for invoice in invoices:
        own = [x for x in every_line if x["invoice_id"] == invoice["invoice_id"]]
        # the total is off the precise sum by at most half a minor unit per line
        assert abs(invoice["total"] - sum(x["precise_amount"] for x in own)) <= (
            half_unit * len(own))
    fee = money.quantize(Decimal("0.333"), currency)
    assert {i["invoice_id"]: i["total"] for i in invoices} == {
        line["invoice_id"]: line["amount"] + fee for line in lines}


@settings(max_examples=30, deadline=None)
@given(rate=unit_amounts, usage=quantities)
def test_one_tier_tiered_equals_unit(rate, usage):
    as_tiered = price(one_plan([tiered("calls", "calls", [(0, None, str(rate))])]), [str(usage)])
    as_unit = price(one_plan([unit("calls", str(rate), metric="calls")]), [str(usage)])
    assert as_tiered[0]["amount"] == as_unit[0]["amount"]


def prorated_catalog(start_day, prices):
    return catalog(
        plans=[{"id": "p", "name": "P", "currency": "USD", "prices": prices}],
        customers=[{"id": "c0", "name": "C0", "timezone": "Europe/Berlin"}],
        subscriptions=[{"id": "s0", "customer_id": "c0", "plan_id": "p",
                        "start_date": f"2026-10-{start_day:02d}"}],
    )


def test_proration_counts_local_days():
    # From October 15th: 17 of October's 31 days.
    prices = [
        model("seats", "unit_with_proration", {"unit_amount": "10.00"}, metric="calls"),
        model("fee", "unit", {"unit_amount": "20.00", "prorated": True}, fixed_quantity=1),
        unit("flat", "20.00", fixed_quantity=1),
    ]
    lines = {line["line_item_id"]: line for line in price(prorated_catalog(15, prices), ["1"])}
    seats = lines["s0:seats:20261015"]
    assert seats["amount"] == Decimal("5.48")  # 10 x 17/31 = 5.4838...
    assert (seats["prorated_days"], seats["period_days"]) == (17, 31)
    assert lines["s0:fee:20261015"]["amount"] == Decimal("10.97")  # 20 x 17/31 = 10.9677...
    # A fixed fee always prorates over a partial cycle, flagged or not; it is billed in
    # advance, on an invoice dated the start, and November's comes in full on Nov 1.
    assert lines["s0:flat:20261015"]["amount"] == Decimal("10.97")
    assert lines["s0:flat:20261015"]["invoice_id"] == "c0-20261015-USD"
    assert lines["s0:flat:20261101"]["amount"] == Decimal("20.00")


def test_tiered_and_bulk_with_proration_prorate_by_local_days():
    prices = [
        model("tiered", "tiered_with_proration", {"tiers": [
            {"tier_lower_bound": "0", "unit_amount": "1.00"},
            {"tier_lower_bound": "10", "unit_amount": "0.50"}]}, metric="calls"),
        model("bulk", "bulk_with_proration", {"tiers": [
            {"unit_amount": "0.50"}, {"tier_lower_bound": "10", "unit_amount": "0.40"}]},
              metric="tokens"),
    ]
    tiered_line = amounts(price(prorated_catalog(15, prices), ["15"]))[("c0", "tiered")]
    bulk_line = amounts(price(prorated_catalog(15, prices), ["101"], "tokens"))[("c0", "bulk")]
    # from October 15th, 17 of 31 days: (10 x 1.00 + 5 x 0.50) x 17/31 = 6.8548...
    assert tiered_line == Decimal("6.85")
    # 101 x 0.40 = 40.40 x 17/31 = 22.1548...
    assert bulk_line == Decimal("22.15")


def grouped_usage(catalog, rows):
    (window,) = [w.window_id for w in billing_windows(catalog, OCTOBER) if not w.in_advance]
    return pa.Table.from_pylist([
        {"window_id": window, "metric_id": "calls", "grouping": ["region"],
         "group_values": [region], "quantity": Decimal(q)} for region, q in rows], schema=USAGE)


def test_a_prorated_group_minimum_prorates_the_minimum_only():
    minimum = model("m", "grouped_with_prorated_minimum", {
        "grouping_key": "region", "minimum": "31.00", "unit_rate": "1.00"}, metric="calls")
    catalog = prorated_catalog(15, [minimum])
    (line,) = price_line_items(connect(), catalog, OCTOBER, grouped_usage(
        catalog, [("us", "5"), ("eu", "20")])).line_items.to_pylist()
    # from October 15th, 17 of 31 days: each region at least 31.00 x 17/31 = 17.00 and
    # its usage in full: us 5 -> 17.00, eu 20 -> 20.00; before proration, 31 + 31
    assert (line["amount"], line["precise_amount"]) == (Decimal("37.00"), 62)
    assert (line["prorated_days"], line["period_days"]) == (17, 31)


def test_a_prorated_group_minimum_rounds_exactly():
    # From October 27th, 5 of 31 days: 0.031 x 5/31 = 0.005 exactly, which rounds up to
    # 0.01; the usage, 0.001 x 0.000001, is under it.
    minimum = model("m", "grouped_with_prorated_minimum", {
        "grouping_key": "region", "minimum": "0.031", "unit_rate": "0.000001"}, metric="calls")
    catalog = prorated_catalog(27, [minimum])
    (line,) = price_line_items(connect(), catalog, OCTOBER, grouped_usage(
        catalog, [("us", "0.001")])).line_items.to_pylist()
    assert line["amount"] == Decimal("0.01")


def test_prorated_half_cent_rounds_up_exactly():
    # From October 27th: 5 days; 0.031 x 5 / 31 = 0.005 exactly, which rounds up to 0.01.
    # A floating point or truncated 5/31 would land just under 0.005 and round down.
    priced = model("p1", "unit_with_proration", {"unit_amount": "0.031"}, metric="calls")
    (line,) = price(prorated_catalog(27, [priced]), ["1"])  # a usage price: one line
    assert line["amount"] == Decimal("0.01")


@settings(max_examples=40, deadline=None)
@given(start=st.integers(1, 31), rate=unit_amounts, usage=quantities)
def test_prorated_amount_is_the_exactly_rounded_fraction(start, rate, usage):
    priced = model("p1", "unit_with_proration", {"unit_amount": str(rate)}, metric="calls")
    (line,) = price(prorated_catalog(start, [priced]), [str(usage)])
    exact = Fraction(usage * rate) * (32 - start) / 31
    cents = int(exact * 100 + Fraction(1, 2))  # half up, for a non-negative amount
    assert line["amount"] == Decimal(cents) / 100


LOWER_TIERS = [{"tier_lower_bound": "0", "unit_amount": "0.5"},
               {"tier_lower_bound": "100", "unit_amount": "0.25"}]
# Ungrouped models whose amount never falls as usage grows ...
MONOTONE = [
    unit("unit", "0.3", metric="calls"),
    tiered("tiered", "calls", TIERS),
    model("package", "package", {"package_amount": "2", "package_size": "7"}, metric="calls"),
    model("threshold", "threshold_total_amount", {"consumption_table": [
        {"threshold": "10", "total_amount": "5"}, {"threshold": "500", "total_amount": "40"}]},
          metric="calls"),
    model("tiered_package", "tiered_package", {"package_size": "10", "tiers": [
        {"tier_lower_bound": "0", "per_unit": "3"}, {"tier_lower_bound": "100", "per_unit": "1"}]},
          metric="calls"),
    model("package_alloc", "package_with_allocation",
          {"allocation": "50", "package_amount": "2", "package_size": "3"}, metric="calls"),
    model("unit_percent", "unit_with_percent", {"unit_amount": "0.5", "percent": "20"},
          metric="calls"),
    model("bps", "bps", {"bps": 125}, metric="calls"),
    model("tiered_bps", "tiered_bps", {"tiers": [
        {"minimum_amount": "0", "maximum_amount": "100", "bps": 125},
        {"minimum_amount": "100", "maximum_amount": None, "bps": 100}]}, metric="calls"),
    model("unit_proration", "unit_with_proration", {"unit_amount": "0.7"}, metric="calls"),
    model("tiered_proration", "tiered_with_proration", {"tiers": LOWER_TIERS}, metric="calls"),
]
# ... and those that also raise a group to its tier's minimum ...
MINIMUMS = [
    model("with_minimum", "tiered_with_minimum", {"tiers": [
        {**t, "minimum_amount": m} for t, m in zip(LOWER_TIERS, ["3", "80"], strict=True)]},
          metric="calls"),
    model("package_minimum", "tiered_package_with_minimum", {"package_size": "10", "tiers": [
        {"tier_lower_bound": "0", "per_unit": "3", "minimum_amount": "7"},
        {"tier_lower_bound": "100", "per_unit": "1", "minimum_amount": "40"}]}, metric="calls"),
]
# ... and volume models, which promise no such thing: 10 units at 0.50 cost more than 10.5
# at 0.40.
VOLUME = [
    model("bulk", "bulk", {"tiers": [{"maximum_units": "10", "unit_amount": "0.5"},
                                     {"maximum_units": None, "unit_amount": "0.4"}]},
          metric="calls"),
    model("bulk_proration", "bulk_with_proration", {"tiers": [
        {"unit_amount": "0.5"}, {"tier_lower_bound": "10", "unit_amount": "0.4"}]},
          metric="calls"),
]


@settings(max_examples=25, deadline=None)
@given(usage=st.lists(quantities, min_size=2, max_size=6))
def test_breakdowns_add_up_and_pricing_is_monotone(usage):
    catalog = one_plan(MONOTONE + MINIMUMS + VOLUME, customers=len(usage))
    priced = price_line_items(connect(), catalog, OCTOBER,
                              usage_rows(catalog, OCTOBER, [str(q) for q in usage]))
    lines = priced.line_items.to_pylist()
    details: dict[str, Decimal] = {}
    for sub in priced.sub_line_items.to_pylist():
        details[sub["line_item_id"]] = details.get(sub["line_item_id"], 0) + sub["amount"]
    minimums = {p["id"] for p in MINIMUMS}
    for line in lines:
        breakdown = details[line["line_item_id"]]
        if line["price_id"] in minimums:  # the minimum raises the line, never lowers it
            assert line["precise_amount"] >= breakdown
        else:
            assert line["precise_amount"] == breakdown
    for priced_model in MONOTONE + MINIMUMS:
        own = sorted((q, line["amount"]) for q, line in zip(
            usage, sorted((x for x in lines if x["price_id"] == priced_model["id"]),
                          key=lambda x: int(x["customer_id"][1:])), strict=True))
        assert all(a[1] <= b[1] for a, b in zip(own, own[1:], strict=False)), priced_model["id"]


REGION_TIERS = [{"tier_lower_bound": "0", "unit_amount": "0.5"},
                {"tier_lower_bound": "100", "unit_amount": "0.25"}]
REGION_CELLS = [{"dimension_values": ["us"], "unit_amount": "0.7"},
                {"dimension_values": ["eu"], "unit_amount": "0.2"}]
# Models grouped by region whose amount never falls as one group's usage grows ...
GROUPED_MONOTONE = [
    model("grouped_tiered", "grouped_tiered", {"grouping_key": "region", "tiers": REGION_TIERS},
          metric="calls"),
    model("grouped_alloc", "grouped_allocation", {"grouping_key": "region", "allocation": "50",
                                                  "overage_unit_rate": "0.3"}, metric="calls"),
    model("matrix", "matrix", {"dimensions": ["region"], "default_unit_amount": "0.4",
                               "matrix_values": REGION_CELLS}, metric="calls"),
    model("matrix_alloc", "matrix_with_allocation", {
        "dimensions": ["region"], "default_unit_amount": "0.4", "matrix_values": REGION_CELLS,
        "allocation": "150"}, metric="calls"),
    model("grouped_package", "grouped_tiered_package", {
        "grouping_key": "region", "package_size": "10", "tiers": [
            {"tier_lower_bound": "0", "per_unit": "3"},
            {"tier_lower_bound": "100", "per_unit": "1"}]}, metric="calls"),
    model("display_names", "matrix_with_display_name", {"dimension": "region", "unit_amounts": [
        {"dimension_value": "us", "display_name": "US", "unit_amount": "0.6"}]}, metric="calls"),
    model("scalable", "scalable_matrix_with_unit_pricing", {
        "first_dimension": "region", "unit_price": "0.5", "matrix_scaling_factors": [
            {"first_dimension_value": "eu", "scaling_factor": "1.5"}]}, metric="calls"),
    model("max_group", "max_group_tiered_package", {
        "grouping_key": "region", "package_size": "5", "tiers": [
            {"tier_lower_bound": "0", "unit_amount": "1"},
            {"tier_lower_bound": "100", "unit_amount": "0.5"}]}, metric="calls"),
    model("cumulative_alloc", "cumulative_grouped_allocation", {
        "grouping_key": "region", "cumulative_allocation": "120", "group_allocation": "70",
        "unit_amount": "0.3"}, metric="calls"),
    model("filtered", "bulk_with_filters", {
        "filters": [{"property_key": "region", "property_value": "eu"}],
        "tiers": [{"unit_amount": "0.5"}]}, metric="calls"),
    model("tiered_matrix", "grouped_tiered_matrix", {
        "dimension": "region", "default_unit_amount": "0.4", "tiers": [
            {"dimension_value": "us", **t} for t in REGION_TIERS]}, metric="calls"),
    model("tiered_matrix_alloc", "tiered_matrix_with_allocation", {
        "dimensions": ["region"], "default_unit_amount": "0.4", "allocation": "90",
        "tiers": [{"dimension_values": ["eu"], **t} for t in REGION_TIERS]}, metric="calls"),
]
# ... and those that promise no such thing: a bigger allowance lowers metered_allowance;
# a bigger total may move cumulative_grouped_bulk's groups to a cheaper tier.
GROUPED_OTHERS = [
    model("allowance", "metered_allowance", {
        "grouping_key": "region", "consumption_grouping_value": "us",
        "allowance_grouping_value": "eu", "unit_amount": "0.3"}, metric="calls"),
    model("cumulative_bulk", "cumulative_grouped_bulk", {"group": "region", "dimension_values": [
        {"grouping_key": region, "tier_lower_bound": bound, "unit_amount": rate}
        for bound, rates in (("0", ("1", "2")), ("150", ("0.5", "1.5")))
        for region, rate in zip(("us", "eu"), rates, strict=True)]}, metric="calls"),
]
REGIONS = ("us", "eu", "apac")


@settings(max_examples=25, deadline=None)
@given(base=st.lists(quantities, min_size=3, max_size=3), more=quantities,
       region=st.sampled_from(REGIONS))
def test_grouped_breakdowns_add_up_and_pricing_is_monotone(base, more, region):
    # c0 has the base usage; c1 the same and `more` in one region
    catalog = one_plan(GROUPED_MONOTONE + GROUPED_OTHERS, customers=2)
    windows = {w.subscription_id: w.window_id
               for w in billing_windows(catalog, OCTOBER) if not w.in_advance}
    grown = [q + (more if r == region else 0) for r, q in zip(REGIONS, base, strict=True)]
    usage = pa.Table.from_pylist([
        {"window_id": windows[sub], "metric_id": "calls", "grouping": ["region"],
         "group_values": [r], "quantity": q}
        for sub, quantities_ in (("s0", base), ("s1", grown))
        for r, q in zip(REGIONS, quantities_, strict=True)], schema=USAGE)
    priced = price_line_items(connect(), catalog, OCTOBER, usage)
    details: dict[str, Decimal] = {}
    for sub in priced.sub_line_items.to_pylist():
        details[sub["line_item_id"]] = details.get(sub["line_item_id"], 0) + sub["amount"]
    amounts_of: dict[str, dict[str, Decimal]] = {}
    for line in priced.line_items.to_pylist():
        assert line["precise_amount"] == details[line["line_item_id"]], line["price_id"]
        amounts_of.setdefault(line["price_id"], {})[line["customer_id"]] = line["amount"]
    for priced_model in GROUPED_MONOTONE:
        own = amounts_of[priced_model["id"]]
        assert own["c0"] <= own["c1"], priced_model["id"]
