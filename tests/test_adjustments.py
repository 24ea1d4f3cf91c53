"""Discounts, minimums and maximums in Orb's order, and prepaid credits with expiry."""

from datetime import date
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.credits import Grant
from invoicing.credit_grants import read_grants, record_grant
from invoicing.issuing import invoice_run
from storage.duck import connect
from storage.lake import Lake
from tests.invoicing import Creditable, basic, bill, drawdown, shop, totals

SEPTEMBER, OCTOBER = date(2026, 9, 1), date(2026, 10, 1)
NOV_1 = "c-20261101-USD"


def compute(adjustments, prices=None):
    plan = {"id": "compute", "name": "Compute", "currency": "USD", "adjustments": adjustments,
            "prices": prices or [{"id": "hours", "name": "Compute hours", "model_type": "unit",
                                  "unit_config": {"unit_amount": "0.10"},
                                  "billable_metric_id": "calls"}]}
    return shop([plan], {"plan_id": "compute", "start_date": "2026-01-01"})


def test_orbs_published_example_discount_then_minimum_then_maximum():
    # docs.withorb.com, invoice calculation examples, example 2: 200 compute hours at
    # $0.10 = $20.00; 10 % discount -> $18.00; $50 minimum -> true-up $32.00; the
    # $500 maximum is not reached: $50.00.
    catalog = compute([
        {"id": "max", "adjustment_type": "maximum", "maximum_amount": "500.00"},
        {"id": "ten", "adjustment_type": "percentage_discount", "percentage_discount": "0.1"},
        {"id": "min", "adjustment_type": "minimum", "minimum_amount": "50.00"},
    ])
    result = bill(catalog, OCTOBER, {("s:20261001-20261101", "calls"): 200})
    assert [(a["adjustment_id"], a["base"], a["amount"]) for a in result.adjustments] == [
        ("ten", Decimal("20.00"), Decimal("-2.00")),
        ("min", Decimal("18.00"), Decimal("32.00")),
        ("max", Decimal("50.00"), Decimal("0.00")),
    ]
    head = result.invoices[NOV_1]
    assert (head["subtotal"], head["adjustments"], head["total"]) == (
        Decimal("20.00"), Decimal("30.00"), Decimal("50.00"))


def test_price_level_adjustments_and_an_invoice_minimum():
    prices = [{"id": "a", "name": "A", "model_type": "unit", "unit_config": {"unit_amount": "1.00"},
               "billable_metric_id": "calls"},
              {"id": "b", "name": "B", "model_type": "unit",
               "unit_config": {"unit_amount": "0.01"}, "billable_metric_id": "tokens"}]
    catalog = compute([
        {"id": "five_off_a", "adjustment_type": "amount_discount", "amount_discount": "5.00",
         "applies_to_price_ids": ["a"]},
        {"id": "cap_b", "adjustment_type": "maximum", "maximum_amount": "100.00",
         "applies_to_price_ids": ["b"]},
        {"id": "floor", "adjustment_type": "minimum", "minimum_amount": "100.00"},
    ], prices)
    catalog = catalog.model_copy(update={"metrics": [
        *catalog.metrics, catalog.metrics[0].model_copy(update={"id": "tokens"})]})
    result = bill(catalog, OCTOBER, {("s:20261001-20261101", "calls"): 30,
                                     ("s:20261001-20261101", "tokens"): 15000})
    # A: 30 x 1.00 = 30.00, less 5.00. B: 15,000 x 0.01 = 150.00, capped at 100 (-50.00).
    # The invoice minimum sees 30 + 150 - 5 = 175 (the discount on A is inside its
    # scope), above 100: no true-up. Total 30 + 150 - 5 + 0 - 50 = 125.00.
    assert [(a["adjustment_id"], a["amount"]) for a in result.adjustments] == [
        ("five_off_a", Decimal("-5.00")), ("floor", Decimal("0.00")),
        ("cap_b", Decimal("-50.00"))]
    assert totals(result) == {NOV_1: Decimal("125.00")}


def test_amount_discount_never_takes_an_invoice_below_zero():
    catalog = compute([{"id": "big", "adjustment_type": "amount_discount",
                        "amount_discount": "100.00"}])
    result = bill(catalog, OCTOBER, {("s:20261001-20261101", "calls"): 30})
    assert totals(result) == {NOV_1: Decimal("0.00")}  # 3.00 - 3.00


def test_credits_expire_across_periods(tmp_path):
    lake = Lake(tmp_path)
    plan = basic(fee="25.00", calls="1.00")
    catalog = shop([plan], {"plan_id": "basic", "start_date": "2026-01-01"})
    record_grant(lake, catalog, "c", "USD", Decimal("50.00"), Decimal(1), date(2026, 9, 1),
                 date(2026, 10, 20), grant_id="g1")
    record_grant(lake, catalog, "c", "USD", Decimal("10.00"), Decimal(0), date(2026, 10, 5),
                 None, grant_id="g2")
    con = connect()

    def run(month, calls):
        priced = bill(catalog, month, {(f"s:{month:%Y%m%d}-"
                                         f"{date(2026, month.month + 1, 1):%Y%m%d}", "calls"):
                                        calls})
        invoiced = invoice_run(con, lake, catalog, month, priced.line_items)
        lake.write_partition("credit_ledger", "billing_month", month, invoiced.ledger)
        return invoiced.invoices.to_pylist()[0], invoiced.ledger.to_pylist()

    # Oct 1 invoice: usage 30 x 1.00 = 30.00 + fee 25.00. Credits pay usage only: g1
    # (effective Sep 1 < Oct 1 <= expiry Oct 20) pays 30.00; total 25.00.
    head, ledger = run(SEPTEMBER, 30)
    assert (head["subtotal"], head["credits_applied"], head["total"]) == (
        Decimal("55.00"), Decimal("30.00"), Decimal("25.00"))
    assert [(e["entry_type"], e["grant_id"], e["amount"]) for e in ledger] == [
        ("drawdown", "g1", Decimal("-30.00"))]
    # Nov 1 invoice: usage 40.00 + fee 25.00. g1's last 20.00 expired on Oct 20; g2
    # (effective Oct 5) pays 10.00; total 55.00.
    head, ledger = run(OCTOBER, 40)
    assert (head["subtotal"], head["credits_applied"], head["total"]) == (
        Decimal("65.00"), Decimal("10.00"), Decimal("55.00"))
    assert sorted((e["entry_type"], e["grant_id"], e["entry_date"], e["amount"])
                  for e in ledger) == [
        ("drawdown", "g2", date(2026, 11, 1), Decimal("-10.00")),
        ("expiry", "g1", date(2026, 10, 20), Decimal("-20.00"))]
    assert [g.grant_id for g in read_grants(lake)] == ["g1", "g2"]


def test_soonest_expiring_grant_is_drawn_first():
    grants = [Grant("a", "c", "USD", Decimal(10), Decimal(1), date(2026, 1, 1),
                    date(2026, 12, 31)),
              Grant("b", "c", "USD", Decimal(10), Decimal(1), date(2026, 2, 1),
                    date(2026, 11, 30)),
              Grant("n", "c", "USD", Decimal(10), Decimal(1), date(2025, 1, 1), None)]
    invoice = Creditable("i", "c", "USD", date(2026, 11, 1), Decimal(25))
    entries = drawdown(grants, {}, [invoice], OCTOBER).to_pylist()
    assert [(e["grant_id"], e["amount"]) for e in entries] == [
        ("b", Decimal(-10)), ("a", Decimal(-10)), ("n", Decimal(-5))]


amounts = st.decimals(min_value=0, max_value=1000, places=2)


@settings(max_examples=40, deadline=None)
@given(calls=st.integers(0, 5000), fee=amounts, pct=st.sampled_from(["0.05", "0.1", "0.333"]),
       minimum=amounts, maximum=amounts, discount=amounts, credit=amounts)
def test_total_is_lines_plus_adjustments_less_credits(calls, fee, pct, minimum, maximum,
                                                      discount, credit):
    adjustments = [{"id": "pct", "adjustment_type": "percentage_discount",
                    "percentage_discount": pct}]
    if discount:
        adjustments.append({"id": "off", "adjustment_type": "amount_discount",
                            "amount_discount": str(discount)})
    if minimum:
        adjustments.append({"id": "min", "adjustment_type": "minimum",
                            "minimum_amount": str(minimum)})
    if maximum:
        adjustments.append({"id": "max", "adjustment_type": "maximum",
                            "maximum_amount": str(maximum)})
    plan = basic(fee=str(fee), calls="0.013", adjustments=adjustments)
    catalog = shop([plan], {"plan_id": "basic", "start_date": "2026-01-01"})
    grants = [Grant("g", "c", "USD", credit, Decimal(1), date(2026, 1, 1), None)] if credit else []
    result = bill(catalog, OCTOBER, {("s:20261001-20261101", "calls"): calls}, grants)
    head = result.invoices[NOV_1]
    lines = sum(line["amount"] for line in result.lines.values())
    adjusted = sum(a["amount"] for a in result.adjustments)
    assert head["subtotal"] == lines
    assert head["total"] == lines + adjusted - head["credits_applied"]
    # every amount is in whole cents; credits never exceed usage or the adjusted total
    assert all(a["amount"] == a["amount"].quantize(Decimal("0.01")) for a in result.adjustments)
    usage = result.lines["s:basic_calls:20261001"]["amount"]
    assert 0 <= head["credits_applied"] <= min(credit, usage, max(lines + adjusted, 0))
