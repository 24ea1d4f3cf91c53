"""Documents made by hand (docs/invoicing.md#documents-made-by-hand): manual credit notes,
one-off invoices, auto-issue after a grace period, memos and custom fields.

Tiny lakes, no billing run except for auto-issue (one customer, one month)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import dagster as dg
import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from assets.resources import OrbStore
from billing.catalog import Catalog
from cli.main import main
from invoicing import balance, credit_notes, documents, invoice_metadata, one_off
from invoicing.amounts_due import read_amounts_due
from invoicing.auto_issue import auto_issue
from invoicing.credit_notes import CreditLine, CreditNoteRefused
from invoicing.issuing import drafts
from pipelines import runner
from pipelines.definitions import build_definitions
from reports.documents import render_issued
from storage.duck import connect
from storage.lake import Lake
from tests.batches import batch, calls
from tests.catalogs import write_data_dir
from tests.pdf_pages import page_texts

AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
NOV = date(2026, 11, 1)
CUSTOMERS = Catalog.model_validate({"customers": [
    {"id": "acme", "name": "Acme", "timezone": "UTC", "net_terms": 15}]})


def one_line(lake: Lake, name: str, quantity: str, unit: str, **options) -> tuple[str, str | None]:
    return one_off.create(lake, "acme", "USD", NOV, [one_off.OneOffLine(
        name, Decimal(quantity), Decimal(unit), NOV, date(2026, 11, 30))], 15, AT,
        timezone="UTC", **options)


def test_one_off_invoice_is_a_draft_then_issued_once_and_numbered(tmp_path):
    lake = Lake(tmp_path)
    invoice_id, number = one_line(lake, "Onboarding", "3", "12.50")
    assert number is None  # a draft until issued (will_auto_issue off)
    (draft,) = one_off.drafts(lake)
    # 3 x 12.50 = 37.50, one line, rounded once; the total is the sum of the lines
    assert [(line.name, line.quantity, line.amount) for line in draft.lines] == [
        ("Onboarding", Decimal("3"), Decimal("37.50"))]
    assert (draft.head.invoice_id, draft.head.total, draft.head.due_date) == (
        invoice_id, Decimal("37.50"), date(2026, 11, 16))  # Nov 1 + net 15
    assert one_off.issue(lake, invoice_id, AT, "UTC") == "INV-000001"
    assert one_off.drafts(lake) == []
    with pytest.raises(one_off.OneOffRefused, match="issued already, as INV-000001"):
        one_off.issue(lake, invoice_id, AT, "UTC")
    # the next invoice, issued on creation, takes the next number of the INV series
    assert one_line(lake, "Setup", "1", "5.00", will_auto_issue=True)[1] == "INV-000002"
    (head,) = [h for h in documents.issued_documents(lake) if h.invoice_id == invoice_id]
    assert (head.document_type, head.subtotal, head.total) == (
        "invoice", Decimal("37.50"), Decimal("37.50"))


def test_a_one_off_invoice_is_due_from_its_day_on_the_customers_calendar(tmp_path):
    """An invoice date is a day of the customer's calendar. 23:30 UTC on 30 November is
    00:30 on 1 December in Berlin and 15:30 on 30 November in Los Angeles."""
    lake, at = Lake(tmp_path), datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    december = date(2026, 12, 1)

    def dated(day: date, timezone: str) -> str:
        return one_off.create(lake, "acme", "USD", day, [one_off.OneOffLine(
            "Fee", Decimal(1), Decimal(1), day, day)], 0, at, timezone=timezone)[0]

    assert one_off.issue(lake, dated(december, "Europe/Berlin"), at,
                         "Europe/Berlin") == "INV-000001"
    for day, timezone in ((date(2026, 12, 2), "Europe/Berlin"),
                          (december, "America/Los_Angeles")):
        with pytest.raises(one_off.OneOffRefused, match=f"is dated {day}: it can be issued "
                           "from that day on"):
            one_off.issue(lake, dated(day, timezone), at, timezone)


def test_one_off_refusals_name_the_field(tmp_path):
    lake = Lake(tmp_path)
    with pytest.raises(one_off.OneOffRefused) as refused:
        one_off.create(lake, "acme", "USD", NOV, [
            one_off.OneOffLine("Fee", Decimal("-1"), Decimal("1"), NOV, NOV),
            one_off.OneOffLine("Fee", Decimal("1"), Decimal("1"), NOV, date(2026, 10, 1))],
            15, AT, timezone="UTC")
    assert "line_items[0]: quantity" in str(refused.value)
    assert "line_items[1].end_date: 2026-10-01 is before start_date 2026-11-01" in str(
        refused.value)
    assert lake.all_files("one_off_invoices") == []  # nothing written


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 1_000_000)),
                min_size=1, max_size=5))
def test_one_off_total_is_the_sum_of_lines_rounded_once(tmp_path_factory, lines):
    """Each line is quantity/100 x unit/10000 rounded half up once; the total adds them."""
    lake = Lake(tmp_path_factory.mktemp("one_off"))
    items = [one_off.OneOffLine("x", Decimal(q) / 100, Decimal(u) / 10000, NOV, NOV)
             for q, u in lines]
    one_off.create(lake, "acme", "USD", NOV, items, 0, AT, timezone="UTC")
    (draft,) = one_off.drafts(lake)
    expected = [(i.quantity * i.unit_amount).quantize(Decimal("0.01"), "ROUND_HALF_UP")
                for i in items]
    assert [line.amount for line in draft.lines] == expected
    assert draft.head.total == sum(expected)


def test_manual_credit_note_on_a_paid_invoice_credits_the_balance(tmp_path):
    lake = Lake(tmp_path)
    invoice_id, number = one_line(lake, "Platform", "1", "100.00", will_auto_issue=True)
    assert number == "INV-000001"
    documents.change_status(lake, number, "paid", AT)
    line = f"{invoice_id}:0"
    note, draft = credit_notes.issue_credit_note(
        lake, number, [CreditLine(line, Decimal("25.00"))], "duplicate", "Billed twice", AT)
    # 25.00 off the 100.00 line: CN-000001 of -25.00, and Orb's balance -25.00 (credit)
    assert (note, draft.head.document_type, draft.head.corrects, draft.head.total) == (
        "CN-000001", "credit_note", "INV-000001", Decimal("-25.00"))
    assert documents.issued_details(lake, [note])[note].reason == "duplicate"
    assert balance.balance(lake, "acme", "USD") == Decimal("-25.00")

    # the line can still be credited 100.00 - 25.00 = 75.00, no more
    with pytest.raises(CreditNoteRefused) as refused:
        credit_notes.issue_credit_note(lake, number, [CreditLine(line, Decimal("75.01"))],
                                       "order_change", None, AT)
    assert str(refused.value) == (
        f"line_items[0].amount: 75.01 USD is more than line '{line}' (Platform) of invoice "
        "INV-000001 can still be credited: 75.00 (billed 100.00, less earlier credit notes)")
    with pytest.raises(CreditNoteRefused, match="has no line 'nope'"):
        credit_notes.issue_credit_note(lake, number, [CreditLine("nope", Decimal("1"))],
                                       "duplicate", None, AT)
    with pytest.raises(CreditNoteRefused, match=r"INV-000001 still bills: 75\.00"):
        credit_notes.issue_credit_note(lake, number, [CreditLine(None, Decimal("80.00"))],
                                       "duplicate", None, AT)
    # two issuing runs at one instant: their order among the runs is not the numbers'
    # two issuing runs at one instant, read back in the order they were issued
    assert [h.number for h in documents.issued_documents(lake)] == ["INV-000001", "CN-000001"]
    # the rest, as a whole: CN-000002, balance -25.00 - 75.00 = -100.00
    assert credit_notes.issue_credit_note(lake, number, [CreditLine(None, Decimal("75.00"))],
                                          "order_change", None, AT)[0] == "CN-000002"
    assert balance.balance(lake, "acme", "USD") == Decimal("-100.00")


def test_manual_credit_note_on_an_unpaid_invoice_lowers_what_is_due(tmp_path):
    lake = Lake(tmp_path)
    invoice_id, number = one_line(lake, "Platform", "1", "100.00", will_auto_issue=True)
    credit_notes.issue_credit_note(lake, number, [CreditLine(f"{invoice_id}:0",
                                                             Decimal("25.00"))],
                                   "product_unsatisfactory", None, AT)
    heads = documents.issued_documents(lake)
    due = read_amounts_due(lake, heads, documents.statuses(connect(), lake))[number]
    assert (due.credited, due.amount_due) == (Decimal("25.00"), Decimal("75.00"))  # 100 - 25
    assert balance.balance(lake, "acme", "USD") == Decimal("0")  # no balance transaction


def test_memo_and_custom_field_on_the_page_fixed_at_issue(tmp_path):
    lake = Lake(tmp_path)
    invoice_id, _ = one_line(lake, "Platform", "1", "100.00", memo="Thank you for your order",
                             metadata={"PO number": "PO-1234"})
    number = one_off.issue(lake, invoice_id, AT, "UTC")
    # metadata changed after issue: the API shows it, the document keeps what it printed
    assert invoice_metadata.record_update(lake, invoice_id, {"PO number": None}, AT) == {}
    credit_notes.issue_credit_note(lake, number, [CreditLine(f"{invoice_id}:0",
                                                             Decimal("10.00"))],
                                   "order_change", "Seat count lowered", AT)
    folder, written = render_issued(lake, CUSTOMERS, "Example Cloud, Inc.", NOV)
    assert written == 2
    html = (folder / f"{number}.html").read_text()
    assert "PO number: PO-1234" in html and "Thank you for your order" in html
    (page,) = page_texts(html)
    text = " ".join(page)
    assert "PO number: PO-1234" in text and "Thank you for your order" in text
    note = " ".join(page_texts((folder / "CN-000001.html").read_text())[0])
    assert "Credits invoice INV-000001. Reason: Order change" in note
    assert "Seat count lowered" in note and "Total credited" in note and "-$10.00" in note
    assert (folder / "CN-000001.pdf").read_bytes()[:5] == b"%PDF-"


def test_metadata_follows_orb_rules(tmp_path):
    lake = Lake(tmp_path)
    assert invoice_metadata.record_update(lake, "i", {"a": "1", "b": "2"}, AT) == {
        "a": "1", "b": "2"}
    assert invoice_metadata.record_update(lake, "i", {"a": None, "c": "3"}, AT) == {
        "b": "2", "c": "3"}  # null deletes its key, others stay
    assert invoice_metadata.record_update(lake, "i", None, AT) == {}  # null clears
    assert invoice_metadata.current(lake) == {"i": {}}
    assert len(lake.all_files("invoice_metadata")) == 3  # every update kept


CATALOG = {
    "metrics": [{"id": "calls", "name": "Calls", "sql": "SELECT count(*) FROM events"}],
    "plans": [{"id": "p", "name": "P", "currency": "USD", "prices": [
        {"id": "p_calls", "name": "Calls", "model_type": "unit", "billable_metric_id": "calls",
         "unit_config": {"unit_amount": "1.00"}}]}],
    "customers": [{"id": "acme", "name": "Acme"}],
    "subscriptions": [{"id": "sub", "customer_id": "acme", "plan_id": "p",
                       "start_date": "2026-01-01"}],
}


def test_auto_issue_after_the_grace_period_once(tmp_path):
    write_data_dir(tmp_path, CATALOG)
    (tmp_path / "landing").mkdir()
    batch(tmp_path / "landing" / "october.jsonl", *calls("a", 10, 10))
    store = OrbStore(data_dir=str(tmp_path), max_event_age_days=36500)
    defs, instance = build_definitions(store), dg.DagsterInstance.ephemeral()
    runner.bill_months(defs, [date(2026, 10, 1)], instance)
    con, lake = connect(), store.lake
    (draft,) = drafts(con, lake, date(2026, 10, 1))
    assert (draft.head.invoice_date, draft.head.total) == (NOV, Decimal("10.00"))  # 10 x 1.00

    def on(day: int, grace: int | None) -> list[str]:
        at = datetime(2026, 11, day, 6, tzinfo=UTC)
        return [number for number, _ in auto_issue(con, lake, grace, at).issued]

    assert on(30, None) == []  # default off: nothing, however late
    assert on(3, 3) == []  # Nov 1 + 3 days = Nov 4: day grace - 1 is too early
    # the daily job, now (after Nov 4): issued, numbered and rendered
    job = defs.resolve_job_def("auto_issue_invoices")
    assert job.execute_in_process(instance=instance, run_config={"ops": {
        "auto_issue_drafts": {"config": {"grace_days": 3}}}}).success
    assert (lake.reports / "documents" / "INV-000001.pdf").exists()
    assert on(4, 3) == on(5, 3) == []  # never twice
    assert [h.invoice_id for h in documents.issued_documents(lake)] == [draft.head.invoice_id]
    with pytest.raises(ValueError, match="0 or more"):
        auto_issue(con, lake, -1, AT + timedelta(days=1))


def test_cli_one_off_invoice_then_a_credit_note(tmp_path):
    write_data_dir(tmp_path, {"customers": [{"id": "acme", "name": "Acme", "net_terms": 0}]})

    def orb(*args: str) -> Result:
        return CliRunner().invoke(main, [*args, "--data-dir", str(tmp_path)])

    made = orb("invoices", "create", "--customer", "acme", "--currency", "USD", "--date",
               "2026-11-01", "--line", "Onboarding, day 1,3,12.50", "--memo", "Welcome",
               "--metadata", "PO number=PO-7", "--issue")
    assert made.exit_code == 0, made.output
    assert made.output.endswith("issued as INV-000001\n")
    (line,) = documents.issued_lines(Lake(tmp_path), ["INV-000001"]).to_pylist()
    assert (line["name"], line["amount"]) == ("Onboarding, day 1", Decimal("37.5000"))
    refused = orb("credit-notes", "create", "INV-000001", "--line", line["line_key"],
                  "--amount", "40.00", "--reason", "duplicate")
    assert refused.exit_code == 1 and "can still be credited: 37.50" in refused.output
    done = orb("credit-notes", "create", "INV-000001", "--amount", "7.50",
               "--reason", "order_change", "--memo", "Goodwill")
    assert (done.exit_code, done.output) == (
        0, "CN-000001  credits INV-000001  7.50 USD  (order_change)\n")
    html = (tmp_path / "reports" / "documents" / "CN-000001.html").read_text()
    assert "Reason: Order change" in html and "Goodwill" in html
    assert "PO number: PO-7" in (tmp_path / "reports" / "documents" /
                                 "INV-000001.html").read_text()
