"""Revenue tables and report on a hand-worked scenario (docs/revenue.md), plus properties.

Plans (USD, calendar months, customers in UTC):
  basic  $30/month fee in advance, $0.10/call in arrears
  pro    $100/month fee in advance, $0.05/call in arrears
  annual $1,200/year fee in advance
Customers:
  a  basic from Sep 1, upgrades to pro on Oct 16 (expansion); calls: 100 in September,
     50 on basic Oct 1-16, 200 on pro Oct 16 - Nov 1, none later
  b  pro from Sep 1, downgrades to basic on Nov 1 (contraction); no calls
  c  basic from Sep 1, cancelled: end date Nov 1 (churn in November); no calls
  d  annual from Oct 1 (new in October; $1,200 in advance, deferred)
Runs (the run for M makes the invoices dated after M's 1st up to the next 1st):
  Aug: Sep 1 fees in advance: a 30.00, b 100.00, c 30.00                      = 160.00
  Sep: Oct 1: a Sep usage 100 x 0.10 = 10.00, a basic fee for Oct 1-16
       30 x 15/31 = 14.516 -> 14.52, b Oct fee 100.00, c Oct fee 30.00, b and c Sep
       usage 0.00, d annual fee 1,200.00 (Oct 1, 2026 - Oct 1, 2027)          = 1,354.52
  Oct: Oct 16: a pro fee 100 x 16/31 = 51.61; Nov 1: a basic usage 50 x 0.10 = 5.00,
       a pro usage 200 x 0.05 = 10.00, a pro Nov fee 100.00, b basic Nov fee 30.00,
       b and c Oct usage 0.00                                                = 196.61
  Nov: Dec 1: a Dec fee 100.00, b Dec fee 30.00, Nov usage 0.00               = 130.00
MRR at month end (fees in effect on the last day, normalized by cadence, + usage whose
service ends in the month):
  Aug: nothing (every service starts Sep 1)                                   = 0
  Sep: a 30 + 10 usage = 40, b 100, c 30                                      = 170
  Oct: a pro 100 (the Oct 16 line's full-period rate, not 51.61) + 5 + 10 = 115,
       b 100, c 30, d 1200 / 12 = 100                                          = 345
  Nov: a 100 + 0 = 100, b basic 30, c 0, d 100                                 = 230
Movements: Sep new a +40, b +100, c +30 (= 170 - 0); Oct expansion a +75, new d +100
  (= 345 - 170); Nov contraction a -15, contraction b -70, churn c -30 (= 230 - 345).
Cohorts (first month with MRR): Sep {a, b, c} starting 170: Oct 245/170 = 1.44117 -> 1.4412,
  Nov 130/170 = 0.76470 -> 0.7647; Oct {d} starting 100: Nov 100/100 = 1.0000.
Recognition, ratably by day, cumulative rounding in cents, catch-up to the billing run:
  d's 120,000 cents over 365 days: through Oct (31 days) 120000 x 31/365 = 10191.78 ->
  10192; through Nov (61) 20054.79 -> 20055, so Nov 9863; through Dec (92) 30246.58 ->
  30247, Dec 10192; Jan (123) 40438.36 -> 10191; Feb (151) 49643.84 -> 49644, 9206;
  Mar (182) 59835.62 -> 10192; Apr (212) 69698.63 -> 9863; May (243) 79890.41 -> 10191;
  Jun (273) 89753.42 -> 9863; Jul (304) 99945.21 -> 10192; Aug (335) 110136.99 -> 10192;
  Sep (365) 120000 -> 9863; the twelve sum to 120,000.
  Aug: billed 160.00, recognized 0 (fees for September)                deferred 160.00
  Sep: billed 1,354.52, recognized the Sep fees 160 + a's usage 10 = 170.00
                                                 deferred 160 + 1354.52 - 170 = 1,344.52
  Oct: billed 196.61, recognized 14.52 + 100 + 30 + d 101.92 + 51.61 + 5 + 10 = 313.05
                                            deferred 1344.52 + 196.61 - 313.05 = 1,228.08
       (= d's 1,098.08 left + the November fees 130)
  Nov: billed 130.00, recognized 100 + 30 + d 98.63 = 228.63
                                             deferred 1228.08 + 130 - 228.63 = 1,129.45
       scheduled: Dec 130 + 101.92 = 231.92, Jan 101.91, Feb 92.06, Mar 101.92,
       Apr 98.63, May 101.91, Jun 98.63, Jul 101.92, Aug 101.92, Sep 98.63 (sum 1,129.45)
"""

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.periods import add_months
from invoicing.assembly import assemble_invoices
from invoicing.documents import StatusChange, change_statuses
from pricing_sql.rating import price_line_items
from reports.revenue_report import write_revenue_report
from revenue.compute import compute_revenue, register_revenue_lines
from revenue.sql import load_sql
from storage.duck import connect
from storage.lake import Lake
from storage.tables import DOCUMENT_EVENTS as EVENTS
from storage.tables import ISSUED_DOCUMENTS as HEADS
from storage.tables import REVENUE_SCHEMAS as SCHEMAS
from tests.catalogs import catalog, unit
from tests.invoicing import usage_table

D = Decimal
AUG, SEP, OCT, NOV = (date(2026, m, 1) for m in (8, 9, 10, 11))
RUNS = (AUG, SEP, OCT, NOV)


def fee(price_id, amount, cadence="monthly"):
    return {**unit(price_id, amount, fixed_quantity=1), "cadence": cadence}


PLANS = [
    {"id": "basic", "name": "Basic", "currency": "USD",
     "prices": [fee("basic_fee", "30.00"), unit("basic_calls", "0.10", metric="calls")]},
    {"id": "pro", "name": "Pro", "currency": "USD",
     "prices": [fee("pro_fee", "100.00"), unit("pro_calls", "0.05", metric="calls")]},
    {"id": "annual", "name": "Annual", "currency": "USD",
     "prices": [fee("annual_fee", "1200.00", cadence="annual")]},
]
CATALOG = catalog(
    plans=PLANS,
    customers=[{"id": c, "name": c.upper(), "timezone": "UTC"} for c in "abcd"],
    subscriptions=[
        {"id": "sa", "customer_id": "a", "phases": [
            {"plan_id": "basic", "start_date": "2026-09-01"},
            {"plan_id": "pro", "start_date": "2026-10-16"}]},
        {"id": "sb", "customer_id": "b", "phases": [
            {"plan_id": "pro", "start_date": "2026-09-01"},
            {"plan_id": "basic", "start_date": "2026-11-01"}]},
        {"id": "sc", "customer_id": "c", "plan_id": "basic", "start_date": "2026-09-01",
         "end_date": "2026-11-01"},
        {"id": "sd", "customer_id": "d", "plan_id": "annual", "start_date": "2026-10-01"},
    ],
    metrics=("calls",),
)
CALLS = {("sa:20260901-20261001", "calls"): 100, ("sa:20261001-20261016", "calls"): 50,
         ("sa:20261016-20261101", "calls"): 200}


def bill_runs(lake: Lake, plan_catalog=CATALOG, usage=None, runs=RUNS) -> None:
    """Price and invoice each run without Dagster and write its partitions to ``lake``."""
    for month in runs:
        con = connect()
        priced = price_line_items(con, plan_catalog, month, usage_table(usage or CALLS))
        invoiced = assemble_invoices(con, plan_catalog, month, priced.line_items, [], {}, {})
        lake.write_partition("line_items", "billing_month", month, priced.line_items)
        lake.write_partition("invoice_adjustments", "billing_month", month,
                             invoiced.adjustments)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    lake = Lake(tmp_path_factory.mktemp("revenue"))
    bill_runs(lake)
    for month in RUNS:
        for table, rows in compute_revenue(connect(), lake, CATALOG, month).items():
            lake.write_partition(table, "billing_month", month, rows)
    return lake


def rows(lake, table, month):
    return lake.read_partition(table, "billing_month", month).to_pylist()


def test_the_runs_bill_the_hand_worked_lines(lake):
    billed = {m: sum((r["amount"] for r in rows(lake, "line_items", m)), D(0)) for m in RUNS}
    assert billed == {AUG: D("160"), SEP: D("1354.52"), OCT: D("196.61"), NOV: D("130")}


def test_mrr_per_customer_and_month(lake):
    mrr = {m: {r["customer_id"]: (r["fixed_mrr"], r["usage_mrr"], r["mrr"], r["arr"])
               for r in rows(lake, "mrr", m)} for m in RUNS}
    assert mrr[AUG] == {}
    assert mrr[SEP] == {"a": (D("30"), D("10"), D("40"), D("480")),
                        "b": (D("100"), D("0"), D("100"), D("1200")),
                        "c": (D("30"), D("0"), D("30"), D("360"))}
    assert mrr[OCT] == {"a": (D("100"), D("15"), D("115"), D("1380")),
                        "b": (D("100"), D("0"), D("100"), D("1200")),
                        "c": (D("30"), D("0"), D("30"), D("360")),
                        "d": (D("100"), D("0"), D("100"), D("1200"))}
    assert mrr[NOV] == {"a": (D("100"), D("0"), D("100"), D("1200")),
                        "b": (D("30"), D("0"), D("30"), D("360")),
                        "d": (D("100"), D("0"), D("100"), D("1200"))}
    cohorts = {r["customer_id"]: r["cohort_month"] for r in rows(lake, "mrr", NOV)}
    assert cohorts == {"a": SEP, "b": SEP, "d": OCT}


def test_mrr_movements(lake):
    def movements(month):
        return {(r["customer_id"], r["movement"]): r["amount"]
                for r in rows(lake, "mrr_movements", month)}

    assert movements(AUG) == {}
    assert movements(SEP) == {("a", "new"): D("40"), ("b", "new"): D("100"),
                              ("c", "new"): D("30")}
    assert movements(OCT) == {("a", "expansion"): D("75"), ("d", "new"): D("100")}
    assert movements(NOV) == {("a", "contraction"): D("-15"), ("b", "contraction"): D("-70"),
                              ("c", "churn"): D("-30")}


def test_cohort_retention(lake):
    nrr = {(r["cohort_month"], r["billing_month"]): (r["customers"], r["retained_customers"],
                                                     r["starting_mrr"], r["mrr"], r["nrr"])
           for m in RUNS for r in rows(lake, "cohort_retention", m)}
    assert nrr == {
        (SEP, SEP): (3, 3, D("170"), D("170"), D("1")),
        (SEP, OCT): (3, 3, D("170"), D("245"), D("1.4412")),
        (SEP, NOV): (3, 2, D("170"), D("130"), D("0.7647")),
        (OCT, OCT): (1, 1, D("100"), D("100"), D("1")),
        (OCT, NOV): (1, 1, D("100"), D("100"), D("1")),
    }


def test_recognized_and_deferred_revenue(lake):
    actual = {m: [(r["deferred_opening"], r["billed"], r["recognized"], r["deferred"])
                  for r in rows(lake, "revenue_recognition", m) if r["status"] == "actual"]
              for m in RUNS}
    assert actual == {
        AUG: [(D("0"), D("160"), D("0"), D("160"))],
        SEP: [(D("160"), D("1354.52"), D("170"), D("1344.52"))],
        OCT: [(D("1344.52"), D("196.61"), D("313.05"), D("1228.08"))],
        NOV: [(D("1228.08"), D("130"), D("228.63"), D("1129.45"))],
    }
    scheduled = {r["month"]: r["recognized"] for r in rows(lake, "revenue_recognition", NOV)
                 if r["status"] == "scheduled"}
    assert scheduled == {
        date(2026, 12, 1): D("231.92"), date(2027, 1, 1): D("101.91"),
        date(2027, 2, 1): D("92.06"), date(2027, 3, 1): D("101.92"),
        date(2027, 4, 1): D("98.63"), date(2027, 5, 1): D("101.91"),
        date(2027, 6, 1): D("98.63"), date(2027, 7, 1): D("101.92"),
        date(2027, 8, 1): D("101.92"), date(2027, 9, 1): D("98.63")}
    assert sum(scheduled.values()) == D("1129.45")


def test_revenue_by_dimension(lake):
    by = defaultdict(dict)
    for r in rows(lake, "revenue_by_dimension", OCT):
        by[r["dimension"]][r["key"]] = (r["fixed_fees"], r["usage_fees"], r["billed"])
    assert by["plan"] == {"pro": (D("151.61"), D("10"), D("161.61")),
                          "basic": (D("30"), D("5"), D("35"))}
    assert by["metric"] == {None: (D("181.61"), D("0"), D("181.61")),
                            "calls": (D("0"), D("15"), D("15"))}
    assert by["customer"] == {"a": (D("151.61"), D("15"), D("166.61")),
                              "b": (D("30"), D("0"), D("30")),
                              "c": (D("0"), D("0"), D("0"))}
    assert set(by["price"]) == {"pro_fee", "basic_fee", "pro_calls", "basic_calls"}


def test_billed_vs_collected_uses_the_latest_status(tmp_path):
    lake = Lake(tmp_path)
    bill_runs(lake, runs=(SEP,))
    at = datetime(2026, 10, 2, tzinfo=UTC)
    heads = [{"number": n, "document_type": kind, "invoice_id": n, "correction_id": None,
              "corrects": None, "customer_id": "a", "currency": "USD", "billing_month": SEP,
              "invoice_date": OCT, "due_date": OCT, "issued_at": at, "subtotal": D(total),
              "adjustments": D(0), "credits_applied": D(0), "total": D(total)}
             for n, kind, total in (("INV-1", "invoice", "100"), ("INV-2", "invoice", "40"),
                                    ("INV-3", "invoice", "7"), ("CN-1", "credit_note", "-10"))]
    run = "20261002T000000-00000000"  # one issuing run: events, then heads (its commit)
    lake.write_file("document_events", "issue_run", run, "issued.parquet", pa.Table.from_pylist(
        [{"seq": 1, "number": h["number"], "status": "issued", "changed_at": at, "note": ""}
         for h in heads], schema=EVENTS))
    lake.write_partition("issued_documents", "issue_run", run,
                         pa.Table.from_pylist(heads, schema=HEADS))
    change_statuses(lake, [StatusChange("INV-1", "paid", at), StatusChange("INV-3", "void", at)],
                    at)
    row, = compute_revenue(connect(), lake, CATALOG, SEP)["billed_vs_collected"].to_pylist()
    # billed: 100 + 40 - 10 (INV-3 is void); collected: INV-1; outstanding: INV-2 and CN-1
    assert (row["documents"], row["paid_documents"], row["void_documents"]) == (4, 1, 1)
    assert (row["billed"], row["collected"], row["outstanding"], row["voided"]) == (
        D("130"), D("100"), D("30"), D("7"))


def test_adjustments_are_shared_by_largest_remainder():
    """A $1.00 discount on three $1.00 lines: 33 cents each and the cent left over to the
    first line id (equal remainders)."""
    three = catalog(
        plans=[{"id": "three", "name": "Three", "currency": "USD", "prices": [
            fee("f1", "1.00"), fee("f2", "1.00"), fee("f3", "1.00")],
            "adjustments": [{"id": "off", "adjustment_type": "amount_discount",
                             "amount_discount": "1.00"}]}],
        customers=[{"id": "x", "name": "X", "timezone": "UTC"}],
        subscriptions=[{"id": "sx", "customer_id": "x", "plan_id": "three",
                        "start_date": "2026-09-01"}],
        metrics=("calls",))
    con = connect()
    priced = price_line_items(con, three, AUG, usage_table({}))
    invoiced = assemble_invoices(con, three, AUG, priced.line_items, [], {}, {})
    register_revenue_lines(con, three, priced.line_items, invoiced.adjustments)
    shares = dict(con.sql("SELECT price_id, CAST(adjustment_minor AS INTEGER) "
                          "FROM revenue_lines").fetchall())
    assert shares == {"f1": -34, "f2": -33, "f3": -33}


movement_histories = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d", "e"]),
    st.lists(st.integers(min_value=0, max_value=50_000), min_size=4, max_size=4),
    max_size=5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(movement_histories)
def test_movements_sum_to_the_change_in_mrr(histories):
    """Any MRR history in cents: each month's movements sum to its MRR change, and every
    customer whose MRR changed has exactly one movement."""
    months = [date(2026, m, 1) for m in (1, 2, 3, 4)]
    history = pa.Table.from_pylist(
        [{"month": month, "customer_id": customer, "currency": "USD", "currency_exponent": 2,
          "fixed_minor": cents, "usage_minor": 0, "mrr_minor": cents}
         for customer, values in histories.items() for month, cents in zip(months, values,
                                                                            strict=True)
         if cents],
        schema=pa.schema([("month", pa.date32()), ("customer_id", pa.string()),
                          ("currency", pa.string()), ("currency_exponent", pa.int32()),
                          ("fixed_minor", pa.int64()), ("usage_minor", pa.int64()),
                          ("mrr_minor", pa.int64())]))
    con = connect()
    con.register("mrr_history", history)
    con.execute(load_sql("revenue_macros"))
    for index, month in enumerate(months[1:], start=1):
        moved = con.sql(load_sql("revenue_movements"), params={"month": month}).to_arrow_table()
        amounts = moved.column("amount").to_pylist()
        change = sum(D(v[index] - v[index - 1]) for v in histories.values()) / 100
        assert sum(amounts, D(0)) == change
        changed = {c for c, v in histories.items() if v[index] != v[index - 1]}
        assert sorted(moved.column("customer_id").to_pylist()) == sorted(changed)
        for row in moved.to_pylist():
            values = histories[row["customer_id"]]
            assert row["movement"] == (
                ("reactivation" if any(values[:index - 1]) else "new") if not values[index - 1]
                else "churn" if not values[index]
                else "expansion" if values[index] > values[index - 1] else "contraction")


line_strategy = st.tuples(
    st.integers(min_value=-10**9, max_value=10**9),  # net amount in minor units
    st.dates(min_value=date(2024, 1, 1), max_value=date(2027, 12, 31)),  # service start
    st.integers(min_value=1, max_value=800),  # service days
    st.integers(min_value=-3, max_value=3),  # billing run, in months from the start's month
    st.sampled_from([0, 2, 3]),  # currency exponent
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line_strategy, min_size=1, max_size=8))
def test_recognized_over_all_months_equals_billed(lines):
    """Each line's monthly recognized amounts sum exactly to its net amount, none is
    recognized before its billing run, and each month gets at most one minor unit more
    than its exact share (cumulative rounding)."""
    table = pa.Table.from_pylist([
        {"line_item_id": f"l{i}", "invoice_id": f"i{i}", "customer_id": "c",
         "currency": "USD", "currency_exponent": exponent, "net_minor": net,
         "service_start": start, "service_end": start + timedelta(days=days),
         "billing_month": add_months(start, run)}
        for i, (net, start, days, run, exponent) in enumerate(lines)])
    con = connect()
    con.register("revenue_lines", table)
    con.execute(load_sql("revenue_macros"))
    con.execute(load_sql("revenue_recognition_schedule"))
    schedule = con.sql("SELECT line_item_id, month, billing_month, month_days, recognized_minor,"
                       " service_month FROM recognition_schedule").fetchall()
    totals = defaultdict(int)
    for line_id, month, run, month_days, recognized, _service_month in schedule:
        assert month >= run
        net, start, days, *_ = lines[int(line_id[1:])]
        assert abs(D(recognized) - D(net) * month_days / days) <= 1
        totals[line_id] += recognized
    assert dict(totals) == {f"l{i}": line[0] for i, line in enumerate(lines)}


def test_the_report_shows_the_numbers(lake):
    path, headline = write_revenue_report(connect(), lake, NOV)
    assert path == lake.reports / "revenue" / "2026-11.html"
    assert headline == {"USD": "230.0000"}
    html = path.read_text()
    assert '<td class="num" id="mrr-USD">$230.00</td>' in html
    assert '<td class="num">$2,760.00</td>' in html  # ARR
    assert '<td class="num">-$115.00</td>' in html  # MRR change
    for movement, customers, amount in (("contraction", 2, "-$85.00"),
                                        ("churn", 1, "-$30.00")):
        assert (f'<tr><td>{movement}</td><td class="num">{customers}</td>'
                f'<td class="num">{amount}</td></tr>') in html
    assert '<td class="num">$1,129.45</td>' in html  # deferred at the end of November
    assert "76.5 %" in html and "144.1 %" in html  # the September cohort's NRR
    assert html.count("<svg") == 2  # MRR, recognition (nothing issued, no usage rows)
    assert write_revenue_report(connect(), lake, NOV)[0].read_text() == html  # deterministic


def test_tables_have_their_schemas(lake):
    for table, schema in SCHEMAS.items():
        assert lake.read_partition(table, "billing_month", NOV).schema.equals(schema), table
