"""Draft -> issued -> paid / void, sequential numbers, and re-rating an issued month
into a credit note or an adjustment invoice, through the Dagster pipeline.

Plan "volume" (Orb's bulk model): every unit at 1.00 up to 100 units, at 0.50 once
the total passes 100. October 2026, customer acme (UTC):
  100 calls -> 100 x 1.00 = 100.00 on the invoice dated Nov 1.
  20 late calls arrive after it was issued -> 120 x 0.50 = 60.00: a credit note of -40.00.
"""

import hashlib
import tempfile
from datetime import UTC, date, datetime
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assets.resources import OrbStore
from billing.catalog import Catalog
from invoicing import documents
from invoicing.auto_issue import auto_issue
from invoicing.issuing import compute_corrections, drafts, issue_month
from invoicing.rerate import preview
from pipelines import runner
from pipelines.definitions import build_definitions
from pricing_sql.run_catalog import current_catalog
from reports.documents import issue_and_render, render_issued
from state import Cancel, StateStore
from storage.duck import connect
from storage.lake import Lake
from storage.tables import INVOICE_CORRECTIONS as CORRECTIONS
from tests.batches import batch, calls
from tests.catalogs import write_data_dir
from tests.invoicing import basic, bill
from tests.pdf_pages import page_sizes

OCTOBER = date(2026, 10, 1)
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CATALOG = {
    "metrics": [{"id": "calls", "name": "Calls", "sql": "SELECT count(*) FROM events"}],
    "plans": [{"id": "volume", "name": "Volume", "currency": "USD", "prices": [
        {"id": "volume_calls", "name": "Calls", "model_type": "bulk",
         "billable_metric_id": "calls", "bulk_config": {"tiers": [
             {"maximum_units": 100, "unit_amount": "1.00"},
             {"maximum_units": None, "unit_amount": "0.50"}]}}]}],
    "customers": [{"id": "acme", "name": "Acme", "net_terms": 15}],
    "subscriptions": [{"id": "sub", "customer_id": "acme", "plan_id": "volume",
                       "start_date": "2026-01-01"}],
}


@pytest.fixture
def pipeline(tmp_path):
    write_data_dir(tmp_path, CATALOG)
    (tmp_path / "landing").mkdir()
    batch(tmp_path / "landing" / "october.jsonl", *calls("a", 100, 10))
    store = OrbStore(data_dir=str(tmp_path), max_event_age_days=36500)
    defs = build_definitions(store)
    instance = dg.DagsterInstance.ephemeral()
    runner.bill_months(defs, [OCTOBER], instance)
    return store, defs, instance


def issued_files(store):
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for table in
            ("issued_documents", "issued_lines") for p in
            store.lake.table_dir(table).rglob("*.parquet")}


def test_issue_numbers_and_freezes_drafts(pipeline):
    store, _, _ = pipeline
    con, lake = connect(), store.lake
    (draft,) = drafts(con, lake, OCTOBER)
    assert (draft.head.invoice_id, draft.head.total) == ("acme-20261101-USD",
                                                          Decimal("100.00"))
    ((number, _),) = issue_month(con, lake, OCTOBER, NOW)
    assert number == "INV-000001"
    (head,) = documents.issued_heads(lake).to_pylist()
    assert (head["invoice_date"], head["due_date"], head["total"]) == (
        date(2026, 11, 1), date(2026, 11, 16), Decimal("100.00"))  # net 15
    assert drafts(con, lake, OCTOBER) == []  # nothing left to issue
    assert issue_month(con, lake, OCTOBER, NOW) == []


def test_late_events_on_an_issued_invoice_give_a_credit_note(pipeline, tmp_path):
    store, defs, instance = pipeline
    con, lake = connect(), store.lake
    issue_month(con, lake, OCTOBER, NOW)
    frozen = issued_files(store)
    batch(tmp_path / "landing" / "late.jsonl", *calls("late", 20, 30))
    runner.ingest_landing(defs, instance)

    (change,) = preview(store, OCTOBER)  # the dry run: nothing written yet
    assert (change.before, change.after, change.difference, change.action) == (
        Decimal("100.00"), Decimal("60.00"), Decimal("-40.00"), "credit note")
    assert drafts(con, lake, OCTOBER) == []

    runner.bill_month(defs, OCTOBER, instance)
    (note,) = drafts(con, lake, OCTOBER)
    assert (note.head.document_type, note.head.corrects, note.head.total) == (
        "credit_note", "INV-000001", Decimal("-40.00"))
    assert [(line.line_key, line.billed, line.computed, line.amount)
            for line in note.lines] == [("sub:volume_calls:20261001", Decimal("100.00"),
                                         Decimal("60.00"), Decimal("-40.00"))]
    ((number, _),), folder = issue_and_render(store, OCTOBER)
    assert number == "CN-000001"
    html = (folder / "CN-000001.html").read_text()
    assert "Corrects invoice INV-000001 dated Nov 1, 2026" in html
    assert '<td class="num">$100.00</td>' in html and '<td class="num">$60.00</td>' in html
    assert '<td class="num">-$40.00</td>' in html
    assert (folder / "CN-000001.pdf").read_bytes()[:5] == b"%PDF-"
    # the issued invoice itself never changed
    assert {k: v for k, v in issued_files(store).items() if k in frozen} == frozen
    # re-rating again with nothing new changes nothing
    runner.bill_month(defs, OCTOBER, instance)
    assert drafts(con, lake, OCTOBER) == []
    assert [d.difference for d in preview(store, OCTOBER)] == [Decimal("0.00")]


def test_more_usage_on_an_issued_invoice_gives_an_adjustment_invoice(pipeline, tmp_path):
    store, defs, instance = pipeline
    con, lake = connect(), store.lake
    batch(tmp_path / "landing" / "first.jsonl", *calls("b", 10, 11))  # 110 units: 55.00
    runner.bill_months(defs, [OCTOBER], instance)
    issue_month(con, lake, OCTOBER, NOW)
    batch(tmp_path / "landing" / "late.jsonl", *calls("late", 30, 30))  # 140: 70.00
    runner.bill_months(defs, [OCTOBER], instance)
    (correction,) = drafts(con, lake, OCTOBER)
    assert (correction.head.document_type, correction.head.total) == (
        "adjustment_invoice", Decimal("15.00"))
    ((number, _),) = issue_month(con, lake, OCTOBER, NOW)
    assert number == "INV-000002"  # invoices and adjustment invoices share a sequence


def test_status_changes(pipeline):
    store, defs, instance = pipeline
    con, lake = connect(), store.lake
    issue_month(con, lake, OCTOBER, NOW)
    documents.change_status(lake, "INV-000001", "paid", NOW, "wire 123")
    assert documents.statuses(con, lake) == {"INV-000001": "paid"}
    with pytest.raises(ValueError, match="INV-000001 is paid; only an issued document"):
        documents.change_status(lake, "INV-000001", "void", NOW)
    with pytest.raises(ValueError, match="no issued document 'INV-999999'"):
        documents.change_status(lake, "INV-999999", "paid", NOW)


def test_voided_invoice_is_drafted_again_and_reissued_with_a_new_number(pipeline):
    store, defs, instance = pipeline
    con, lake = connect(), store.lake
    issue_month(con, lake, OCTOBER, NOW)
    documents.change_status(lake, "INV-000001", "void", NOW, "wrong address")
    runner.bill_month(defs, OCTOBER, instance)
    (draft,) = drafts(con, lake, OCTOBER)
    assert (draft.head.document_type, draft.head.total) == ("invoice", Decimal("100.00"))
    ((number, _),) = issue_month(con, lake, OCTOBER, NOW)
    assert number == "INV-000002"
    assert documents.statuses(con, lake) == {"INV-000001": "void", "INV-000002": "issued"}


def _write_run(lake, result, month):
    for table, rows in (("line_items", result.line_items),
                        ("invoice_adjustments", result.adjustment_table),
                        ("invoices", pa.Table.from_pylist(list(result.invoices.values()))),
                        ("invoice_corrections", CORRECTIONS.empty_table())):
        lake.write_partition(table, "billing_month", month, rows)


@settings(max_examples=25, deadline=None)
@given(first=st.lists(st.integers(0, 3000), min_size=3, max_size=3),
       second=st.lists(st.integers(0, 3000), min_size=3, max_size=3),
       pct=st.sampled_from(["0.05", "0.15", "0.5"]))
def test_rerating_without_change_gives_no_corrections(first, second, pct):
    plan = basic(fee="9.99", calls="0.0137", adjustments=[
        {"id": "pct", "adjustment_type": "percentage_discount", "percentage_discount": pct},
        {"id": "min", "adjustment_type": "minimum", "minimum_amount": "20.00"}])
    catalog = Catalog.model_validate({
        "metrics": [{"id": "calls", "name": "calls", "sql": "SELECT count(*) FROM events"}],
        "plans": [plan],
        "customers": [{"id": f"c{i}", "name": f"C{i}"} for i in range(3)],
        "subscriptions": [{"id": f"s{i}", "customer_id": f"c{i}", "plan_id": "basic",
                           "start_date": "2026-01-01"} for i in range(3)]})

    def run(quantities):
        return bill(catalog, OCTOBER, {(f"s{i}:20261001-20261101", "calls"): q
                                       for i, q in enumerate(quantities)})

    with tempfile.TemporaryDirectory() as folder:
        lake, con = Lake(folder), connect()
        issued = run(first)
        _write_run(lake, issued, OCTOBER)
        issue_month(con, lake, OCTOBER, NOW)
        same = compute_corrections(con, lake, OCTOBER, issued.line_items,
                                   issued.adjustment_table, excluded=())
        assert same.num_rows == 0
        # A change is corrected by exactly the difference of the pre-credit totals.
        changed = run(second)
        rows = compute_corrections(con, lake, OCTOBER, changed.line_items,
                                   changed.adjustment_table, excluded=()).to_pylist()
        for invoice_id, head in changed.invoices.items():
            before = issued.invoices[invoice_id]
            net = sum((r["amount"] for r in rows if r["invoice_id"] == invoice_id), Decimal(0))
            assert net == (head["subtotal"] + head["adjustments"]) - (
                before["subtotal"] + before["adjustments"])


def test_a_draft_is_not_issued_before_its_date(pipeline):
    store, _, _ = pipeline
    con, lake = connect(), store.lake
    # The invoice is dated Nov 1: on Oct 31 its usage is not complete yet.
    assert issue_month(con, lake, OCTOBER, datetime(2026, 10, 31, 23, tzinfo=UTC)) == []
    assert len(drafts(con, lake, OCTOBER)) == 1


ZONED = {**CATALOG,
         "customers": [{"id": "berlin", "name": "Berlin", "timezone": "Europe/Berlin"},
                       {"id": "la", "name": "LA", "timezone": "America/Los_Angeles"}],
         "subscriptions": [{"id": f"sub-{c}", "customer_id": c, "plan_id": "volume",
                            "start_date": "2026-01-01"} for c in ("berlin", "la")]}


@pytest.fixture
def zoned(tmp_path):
    """October billed for a customer in Berlin and one in Los Angeles: each draft is dated
    1 November on its customer's calendar, which begins at 23:00 UTC on 31 October in
    Berlin (UTC+1 since 25 October) and at 07:00 UTC on 1 November in Los Angeles (UTC-7
    until 02:00 that day); 2 November begins there at 08:00 UTC (UTC-8)."""
    write_data_dir(tmp_path, ZONED)
    (tmp_path / "landing").mkdir()
    batch(tmp_path / "landing" / "october.jsonl", *calls("b", 1, 10, "berlin"),
          *calls("l", 1, 10, "la"))
    store = OrbStore(data_dir=str(tmp_path), max_event_age_days=36500)
    runner.bill_months(build_definitions(store), [OCTOBER], dg.DagsterInstance.ephemeral())
    return store


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 10 + (day < 10), day, hour, minute, tzinfo=UTC)


def test_a_draft_is_issued_from_its_date_on_the_customers_calendar(zoned):
    con, lake = connect(), zoned.lake
    assert {d.head.customer_id: d.head.invoice_date for d in drafts(con, lake, OCTOBER)} == {
        "berlin": date(2026, 11, 1), "la": date(2026, 11, 1)}

    def issued(at: datetime) -> list[str]:
        return [draft.head.customer_id for _, draft in issue_month(con, lake, OCTOBER, at)]

    assert issued(utc(31, 22, 59)) == []
    assert issued(utc(31, 23)) == ["berlin"]  # UTC's day is still 31 October
    assert issued(utc(1, 6, 59)) == []  # UTC's day is 1 November, LA's is not yet
    assert issued(utc(1, 7)) == ["la"]


def test_auto_issue_counts_the_grace_days_on_the_customers_calendar(zoned):
    con = connect()

    def issued(at: datetime) -> list[str]:
        return [draft.head.customer_id for _, draft in auto_issue(con, zoned.lake, 1,
                                                                  at).issued]

    assert issued(utc(1, 22, 59)) == []
    assert issued(utc(1, 23)) == ["berlin"]  # 2 November in Berlin, not yet in UTC
    assert issued(utc(2, 7, 59)) == []  # UTC's day is 2 November, LA's is not yet
    assert issued(utc(2, 8)) == ["la"]


def test_a_document_prints_the_day_it_was_issued_on_the_customers_calendar(zoned):
    """Issued at 03:00 UTC on 2 November: 04:00 that day in Berlin, still 19:00 on
    1 November in Los Angeles, the calendar the LA invoice prints its dates in."""
    at = utc(2, 3)
    numbers = {draft.head.customer_id: number
               for number, draft in issue_month(connect(), zoned.lake, OCTOBER, at)}
    folder, _ = render_issued(zoned.lake, current_catalog(zoned), zoned.issuer, OCTOBER)
    for customer, day in (("berlin", "Nov 2, 2026"), ("la", "Nov 1, 2026")):
        html = (folder / f"{numbers[customer]}.html").read_text(encoding="utf-8")
        assert f"Invoice date: Nov 1, 2026 · Issued: {day} ·" in html


def test_issue_job_issues_from_dagster(pipeline):
    store, defs, instance = pipeline
    result = defs.resolve_job_def("issue_invoices").execute_in_process(
        instance=instance, run_config={"ops": {"issue": {"config": {"month": "2026-10"}}}})
    assert result.success
    assert documents.statuses(connect(), store.lake) == {"INV-000001": "issued"}
    assert (store.lake.reports / "documents" / "INV-000001.pdf").exists()


def test_an_issued_invoice_the_run_no_longer_makes_is_credited_in_full(pipeline, tmp_path):
    store, defs, instance = pipeline
    con, lake = connect(), store.lake
    issue_month(con, lake, OCTOBER, NOW)
    # The subscription is found to have ended on Oct 1: nothing in October is billable.
    with StateStore.open(store.state_store_url) as state:
        state.apply([Cancel("sub", actor="test", effective=date(2026, 10, 1))],
                    Catalog.model_validate({"plans": CATALOG["plans"]}))
    runner.bill_month(defs, OCTOBER, instance)
    (note,) = drafts(con, lake, OCTOBER)
    assert (note.head.document_type, note.head.corrects, note.head.total) == (
        "credit_note", "INV-000001", Decimal("-100.00"))


def test_rendering_writes_only_missing_documents(pipeline):
    store, _, _ = pipeline
    issued, folder = issue_and_render(store, OCTOBER)
    ((number, _),) = issued
    html = (folder / f"{number}.html").read_bytes()
    (folder / f"{number}.pdf").unlink()
    (folder / f"{number}.html").unlink()
    from reports.documents import render_issued
    catalog = Catalog.model_validate(CATALOG)
    assert render_issued(store.lake, catalog, store.issuer, OCTOBER) == (folder, 1)
    assert (folder / f"{number}.html").read_bytes() == html  # the same document, again
    assert (folder / f"{number}.pdf").read_bytes()[:5] == b"%PDF-"
    assert render_issued(store.lake, catalog, store.issuer, OCTOBER) == (folder, 0)


def test_an_issued_invoice_shows_the_seller_and_buyer_and_its_status(tmp_path):
    """The catalog folder's seller and the customer's billing address and tax id on the
    issued document; a US buyer's PDF is Letter; rendered again once paid, it says so."""
    write_data_dir(tmp_path, CATALOG | {
        "seller": {"name": "Example Cloud, Inc.",
                   "address": {"line1": "500 Howard St", "city": "San Francisco",
                               "state": "CA", "postal_code": "94105", "country": "US"},
                   "tax_id": {"country": "US", "type": "us_ein", "value": "12-3456789"},
                   "pay_link": "https://pay.example.test/{number}"},
        "customers": [{"id": "acme", "name": "Acme", "net_terms": 15,
                       "billing_address": {"line1": "1 Broadway", "city": "New York",
                                           "state": "NY", "postal_code": "10004",
                                           "country": "US"},
                       "tax_id": {"country": "US", "type": "us_ein", "value": "98-7654321"}}]})
    (tmp_path / "landing").mkdir()
    batch(tmp_path / "landing" / "october.jsonl", *calls("a", 100, 10))
    store = OrbStore(data_dir=str(tmp_path), max_event_age_days=36500)
    runner.bill_months(build_definitions(store), [OCTOBER], dg.DagsterInstance.ephemeral())
    ((number, _),), folder = issue_and_render(store, OCTOBER)
    html = (folder / f"{number}.html").read_text()
    for text in ("INV-000001", "500 Howard St", "San Francisco, CA 94105", "EIN 12-3456789",
                 "1 Broadway", "New York, NY 10004", "EIN 98-7654321",
                 "Due 16 November 2026",  # invoice date Nov 1 + net 15
                 "https://pay.example.test/INV-000001", "$100.00"):
        assert text in html, text
    assert "acme-20261101-USD" not in html
    pdf = (folder / f"{number}.pdf").read_bytes()
    assert page_sizes(pdf) == [(612, 792)]  # Letter, in points

    documents.change_status(store.lake, number, "paid", NOW)
    for suffix in (".html", ".pdf"):
        (folder / f"{number}{suffix}").unlink()
    assert render_issued(store.lake, current_catalog(store), store.issuer, OCTOBER) == (
        folder, 1)
    again = (folder / f"{number}.html").read_text()
    assert '<p class="banner paid">Paid</p>' in again
    assert "Due 16 November 2026" not in again and "pay.example.test" not in again
