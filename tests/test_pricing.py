"""Line items and invoices priced by the pipeline's SQL, against hand-worked amounts."""

from datetime import date
from decimal import Decimal
from fractions import Fraction

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing import money
from invoicing.assembly import assemble_invoices
from pricing_sql.rating import price_line_items
from storage.duck import connect
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
