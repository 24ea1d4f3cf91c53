"""The customer balance and what invoices ask for: partial payments, overpayments to the
balance applied to the next invoice, credit notes, refunds, past_due
(invoicing/balance.py, invoicing/amounts_due.py, payments/received.py,
payments/receivables.py).

Tiny lakes: documents are issued straight from hand-made drafts (``issue``), no billing
run; every amount below is worked out by hand in a comment.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.periods import local_day
from invoicing import balance, documents
from invoicing.amounts_due import amounts_due
from invoicing.document_model import DocumentHead, DocumentLine, DocumentType, Draft
from payments.manual import ManualProcessor
from payments.receivables import open_receivables
from payments.received import PaymentRefused, movements, record_payment, record_refund
from payments.run import run_payments
from storage.duck import connect
from storage.lake import Lake
from tests.api_tenants import API_VARIABLES, make_tenants
from tests.test_api import ACME, NOW, client_for

AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
_ids = itertools.count(1)


def issue(lake: Lake, total: str, customer: str = "acme", currency: str = "USD",
          document_type: DocumentType = "invoice", corrects: str | None = None,
          at: datetime = AT, due: date = date(2026, 11, 30)) -> str:
    """Issue one document of ``total`` with one line; its number."""
    amount = Decimal(total)
    head = DocumentHead(document_type, f"inv_{next(_ids)}", None, corrects, customer, currency,
                        date(2026, 10, 1), at.date(), due, amount, Decimal(0), Decimal(0),
                        amount)
    line = DocumentLine("fee", "line", "Fee", Decimal(1), date(2026, 10, 1),
                        date(2026, 11, 1), amount)
    with lake.lock("issue"):
        ((number, _),) = documents.issue_all(lake, [Draft(head, (line,))], at)
    return number


def pay(lake: Lake, number: str, amount: str, ref: str, at: datetime = AT):
    return record_payment(lake, number, Decimal(amount), "USD", at, at, "manual", ref,
                          f"manual:{ref}", "test")


def status(lake: Lake, number: str) -> str | None:
    return documents.status_of(lake, number)


def test_a_partial_payment_then_the_rest(tmp_path):
    lake = Lake(tmp_path)
    inv = issue(lake, "100.00")
    first = pay(lake, inv, "40.00", "w1")
    # 100.00 due - 40.00 paid = 60.00 remaining, still issued
    assert (first.amounts.paid, first.amounts.remaining, first.became_paid) == (
        Decimal("40.00"), Decimal("60.00"), False)
    assert status(lake, inv) == "issued"
    (open_one,) = open_receivables(lake, date(2026, 11, 10))
    assert (open_one.amount_due, open_one.paid, open_one.remaining) == (
        Decimal("100.00"), Decimal("40.00"), Decimal("60.00"))
    second = pay(lake, inv, "60.00", "w2")
    # 40.00 + 60.00 = 100.00 = amount due: paid on the second, nothing to the balance
    assert (second.became_paid, second.to_balance) == (True, Decimal(0))
    assert status(lake, inv) == "paid"
    assert open_receivables(lake, date(2026, 11, 10)) == []
    assert balance.read(lake) == []
    # the same payment reported again (a replay) counts once
    again = pay(lake, inv, "60.00", "w2")
    assert (again.amounts.paid, again.became_paid) == (Decimal("100.00"), False)


def test_an_overpayment_goes_to_the_balance_and_is_applied_to_the_next_invoice(tmp_path):
    lake = Lake(tmp_path)
    first = issue(lake, "100.00")
    settled = pay(lake, first, "130.00", "w1")
    # 130.00 paid on 100.00 due: 30.00 over, to the balance as credit (negative)
    assert (settled.became_paid, settled.to_balance) == (True, Decimal("30.00"))
    assert balance.balance(lake, "acme", "USD") == Decimal("-30.00")
    assert balance.balance(lake, "acme", "EUR") == Decimal(0)  # per currency

    second = issue(lake, "50.00", at=AT + timedelta(days=30))
    # the next invoice: 50.00 - 30.00 balance applied = 20.00 due; balance back to 0
    (receivable,) = open_receivables(lake, date(2026, 12, 2))
    assert (receivable.number, receivable.amount_due, receivable.remaining) == (
        second, Decimal("20.00"), Decimal("20.00"))
    assert balance.balance(lake, "acme", "USD") == Decimal(0)
    ledger = [(e.transaction.action, e.transaction.amount, e.transaction.type,
               e.starting_balance, e.ending_balance, e.transaction.invoice_number)
              for e in balance.entries(balance.read(lake, "acme"))]
    assert ledger == [
        ("overpayment_refund", Decimal("-30.00"), "decrement", Decimal(0), Decimal("-30.00"),
         first),
        ("applied_to_invoice", Decimal("30.00"), "increment", Decimal("-30.00"), Decimal(0),
         second)]
    # an invoice of another customer or currency gets none of it
    assert pay(lake, second, "20.00", "w2").became_paid


def test_a_balance_covering_the_whole_invoice_leaves_nothing_due(tmp_path):
    lake = Lake(tmp_path)
    balance.adjust(lake, "acme", "usd", Decimal("80.00"), "decrement", "goodwill", AT)
    inv = issue(lake, "50.00")
    # 50.00 - min(80.00, 50.00) = 0 due; -80.00 + 50.00 = -30.00 left
    assert balance.balance(lake, "acme", "USD") == Decimal("-30.00")
    assert open_receivables(lake, date(2026, 11, 3)) == []
    summary = run_payments(lake, ManualProcessor(tmp_path / "none.csv"), AT)
    assert summary.paid == [inv] and status(lake, inv) == "paid"


def test_credit_notes_reduce_what_is_due_or_credit_the_balance(tmp_path):
    lake = Lake(tmp_path)
    unpaid = issue(lake, "100.00")
    issue(lake, "-25.00", document_type="credit_note", corrects=unpaid)
    # unpaid: 100.00 - 25.00 credit note = 75.00 due, no balance transaction
    (receivable,) = open_receivables(lake, date(2026, 11, 3))
    assert receivable.amount_due == Decimal("75.00")
    assert balance.read(lake) == []

    paid = issue(lake, "40.00")
    assert pay(lake, paid, "40.00", "w9").became_paid
    note = issue(lake, "-10.00", document_type="credit_note", corrects=paid)
    # paid: the 10.00 goes to the balance (credit_note_applied), -10.00
    (t,) = balance.read(lake)
    assert (t.action, t.amount, t.invoice_number, t.credit_note_number) == (
        "credit_note_applied", Decimal("-10.00"), paid, note)
    assert balance.balance(lake, "acme", "USD") == Decimal("-10.00")


def test_refunds_full_and_partial_are_recorded_and_bounded(tmp_path):
    lake = Lake(tmp_path)
    inv = issue(lake, "100.00")
    pay(lake, inv, "100.00", "w1")
    record_refund(lake, inv, Decimal("30.00"), AT, "manual", "r1", "manual:r1", "test")
    # 100.00 - 30.00 refunded = 70.00 net; the invoice stays paid
    refused = None
    try:
        record_refund(lake, inv, Decimal("70.01"), AT, "manual", "r2", "manual:r2", "test")
    except PaymentRefused as exc:
        refused = str(exc)
    assert refused == f"{inv}: refund of 70.01 USD is more than the 70.00 USD paid on it"
    record_refund(lake, inv, Decimal("70.00"), AT, "manual", "r3", "manual:r3", "test")
    (amounts,) = amounts_due(documents.issued_documents(lake), {inv: "paid"}, [],
                             [{"number": inv, "amount": a} for a in (
                                 Decimal("100.00"), Decimal("-30.00"), Decimal("-70.00"))]
                             ).values()
    assert amounts.paid == Decimal(0) and status(lake, inv) == "paid"


def test_past_due_after_the_due_date_not_before(tmp_path):
    lake = Lake(tmp_path)
    issue(lake, "100.00", due=date(2026, 11, 30))
    assert [r.past_due for r in open_receivables(lake, date(2026, 11, 30))] == [False]
    assert [r.past_due for r in open_receivables(lake, date(2026, 12, 1))] == [True]
    # Dec 1 05:00 UTC is still Nov 30 in New York (UTC-5): not past due there yet
    instant = datetime(2026, 12, 1, 5, 0, tzinfo=UTC) - timedelta(minutes=1)
    assert local_day(instant, "America/New_York") == date(2026, 11, 30)
    assert local_day(instant, "Asia/Tokyo") == date(2026, 12, 1)


def test_manual_file_partial_and_over_payments(tmp_path):
    lake = Lake(tmp_path)
    inv = issue(lake, "100.00")
    file = tmp_path / "payments.csv"
    file.write_text("invoice_number,amount,currency,paid_at,reference\n"
                    f"{inv},40.00,USD,2026-11-10,w1\n")
    summary = run_payments(lake, ManualProcessor(file), AT + timedelta(days=9))
    assert (summary.partly_paid, summary.paid) == ([inv], [])
    with file.open("a") as handle:
        handle.write(f"{inv},90.00,USD,2026-11-12,w2\n")
    summary = run_payments(lake, ManualProcessor(file), AT + timedelta(days=11))
    # 40.00 + 90.00 = 130.00 on 100.00: paid, 30.00 to the balance
    assert summary.paid == [inv] and status(lake, inv) == "paid"
    assert balance.balance(lake, "acme", "USD") == Decimal("-30.00")
    run_payments(lake, ManualProcessor(file), AT + timedelta(days=12))  # lines kept: once
    assert balance.balance(lake, "acme", "USD") == Decimal("-30.00")
    statuses = documents.statuses(connect(), lake)
    assert statuses == {inv: "paid"}


amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("500.00"), places=2)


@settings(max_examples=8, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["adjust+", "adjust-", "invoice", "pay"]), amounts),
                min_size=1, max_size=5))
def test_the_balance_is_the_sum_of_its_transactions_and_nothing_due_is_negative(tmp_path_factory,
                                                                              steps):
    lake = Lake(tmp_path_factory.mktemp("lake"))
    invoices: list[str] = []
    for kind, amount in steps:
        if kind.startswith("adjust"):
            balance.adjust(lake, "acme", "USD", amount,
                           "increment" if kind == "adjust+" else "decrement", None, AT)
        elif kind == "invoice":
            invoices.append(issue(lake, str(amount)))
        elif invoices and status(lake, invoices[-1]) == "issued":
            pay(lake, invoices[-1], str(amount), f"p{next(_ids)}")
    entries = balance.entries(balance.read(lake))
    total = sum((e.transaction.amount for e in entries), Decimal(0))
    assert (entries[-1].ending_balance if entries else Decimal(0)) == total == \
        balance.balance(lake, "acme", "USD")
    for previous, entry in itertools.pairwise(entries):
        assert entry.starting_balance == previous.ending_balance
    heads = documents.issued_documents(lake)
    found = amounts_due(heads, documents.statuses(connect(), lake), balance.read(lake),
                        [{"number": m.number, "amount": m.amount}
                         for m in movements(lake)])
    assert all(a.amount_due >= 0 and a.remaining >= 0 and a.amount_due <= a.total
               for a in found.values())


def test_a_manual_balance_adjustment_through_the_api_in_orbs_shape(tmp_path, monkeypatch):
    from orb.types.customers import BalanceTransactionCreateResponse

    for variable in API_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    client = client_for(make_tenants(tmp_path)[0], require_auth=False)
    customer = client.post("/v1/customers", json=ACME).json()
    path = f"/v1/customers/{customer['id']}/balance_transactions"
    refused = client.post(path, json={"amount": "25.00", "type": "decrement"})
    assert (refused.status_code, refused.json()["validation_errors"]) == (
        400, ["body.currency: required: the customer holds balances in no currency yet"])
    first = client.post(path, json={"amount": "25.00", "type": "decrement",
                                    "description": "goodwill", "currency": "usd"}).json()
    # 0.00 - 25.00 = -25.00: credit the customer holds
    assert {k: first[k] for k in ("action", "amount", "starting_balance", "ending_balance",
                                  "type", "description", "invoice", "credit_note")} == {
        "action": "manual_adjustment", "amount": "-25.00", "starting_balance": "0.00",
        "ending_balance": "-25.00", "type": "decrement", "description": "goodwill",
        "invoice": None, "credit_note": None}
    BalanceTransactionCreateResponse.model_validate(first)  # Orb's SDK reads it
    # the currency is the one held; -25.00 + 10.00 = -15.00
    second = client.post(path, json={"amount": "10", "type": "increment"}).json()
    assert (second["amount"], second["ending_balance"]) == ("10.00", "-15.00")
    listed = client.get(path).json()["data"]
    assert [t["id"] for t in listed] == [second["id"], first["id"]]  # newest first
    by_external = client.get("/v1/customers/external_customer_id/acme-1/balance_transactions")
    assert [t["id"] for t in by_external.json()["data"]] == [second["id"], first["id"]]
    assert client.get(f"/v1/customers/{customer['id']}").json()["balance"] == "-15.00"
    bad = client.post(path, json={"amount": "0.001", "type": "increment"})
    assert bad.status_code == 400

    # the next invoice, 50.00: 15.00 of balance applied, 35.00 due
    number = issue(Lake(tmp_path / "a"), "50.00", customer=customer["id"],
                   at=NOW + timedelta(hours=1))  # after the adjustments
    invoice = client.get(f"/v1/invoices/{number}").json()
    assert (invoice["total"], invoice["amount_due"]) == ("50.00", "35.00")
    (applied,) = invoice["customer_balance_transactions"]
    assert (applied["action"], applied["amount"], applied["starting_balance"],
            applied["ending_balance"]) == ("applied_to_invoice", "15.00", "-15.00", "0.00")
    # paid 20.00 then 20.00: issued after the first, paid after the second (40.00 on
    # 35.00 due), 5.00 over to the balance; the same external_id again counts once
    mark = f"/v1/invoices/{number}/mark_paid"
    first_pay = client.post(mark, json={"payment_received_date": "2026-11-05",
                                        "external_id": "w1", "amount": "20.00"}).json()
    assert first_pay["status"] == "issued"
    for _ in range(2):
        second_pay = client.post(mark, json={"payment_received_date": "2026-11-06",
                                             "external_id": "w2", "amount": "20.00"}).json()
    assert second_pay["status"] == "paid"
    assert client.get(f"/v1/customers/{customer['id']}").json()["balance"] == "-5.00"


def test_the_cli_adjusts_and_lists_the_balance_and_records_a_manual_refund(tmp_path,
                                                                          monkeypatch):
    from click.testing import CliRunner

    from cli.main import main

    monkeypatch.delenv("ORB_PAYMENT_PROCESSOR", raising=False)
    lake = Lake(tmp_path)
    inv = issue(lake, "100.00")
    pay(lake, inv, "100.00", "w1")

    def orb(*args: str) -> str:
        result = CliRunner().invoke(main, [*args, "--data-dir", str(tmp_path)])
        assert result.exit_code == 0, result.output
        return result.output

    assert "balance -$12.50" in orb("balance", "adjust", "acme", "12.50", "usd",
                                    "--type", "decrement", "--description", "goodwill")
    listed = orb("balance", "list", "acme")
    assert "manual_adjustment" in listed and "goodwill" in listed
    # the manual processor moves no money: the bank transfer back is recorded
    assert "refunded $40.00 (manual sepa 55)" in orb("payments", "refund", inv, "40.00",
                                                      "--reference", "sepa 55")
    assert [m.amount for m in movements(lake)] == [Decimal("100.00"), Decimal("-40.00")]


def test_the_document_shows_the_balance_applied_and_the_amount_due():
    from billing.catalog.models import Customer
    from billing.catalog.parties import Seller
    from reports.issued_pages import render_html

    amount = Decimal("50.00")
    head = DocumentHead("invoice", "inv_x", None, None, "acme", "USD", date(2026, 10, 1),
                        date(2026, 11, 1), date(2026, 11, 30), amount, Decimal(0), Decimal(0),
                        amount)
    line = DocumentLine("fee", "line", "Fee", Decimal(1), date(2026, 10, 1),
                        date(2026, 11, 1), amount)
    html = render_html(Draft(head, (line,)), {}, Customer(id="acme", name="Acme"),
                       Seller(name="Seller"), "INV-000002", date(2026, 11, 2), "issued",
                       Decimal("30.00"))
    # total 50.00, balance applied -30.00, amount due 50.00 - 30.00 = 20.00
    rows = [" ".join(row.split()) for row in html.split("<tr")]
    assert any("Balance applied" in r and "-$30.00" in r for r in rows)
    assert any("Amount due" in r and "$20.00" in r for r in rows)
    assert any(">Total<" in r.replace("</td>", "<") and "$50.00" in r for r in rows)


def test_voiding_an_invoice_gives_its_balance_back(tmp_path):
    lake = Lake(tmp_path)
    balance.adjust(lake, "acme", "USD", Decimal("30.00"), "decrement", None, AT)
    inv = issue(lake, "50.00")  # 30.00 applied: balance -30.00 + 30.00 = 0.00
    assert balance.balance(lake, "acme", "USD") == Decimal(0)
    documents.change_status(lake, inv, "void", AT, "wrong customer")
    # given back: 0.00 - 30.00 = -30.00, once
    assert balance.balance(lake, "acme", "USD") == Decimal("-30.00")
    assert [t.action for t in balance.read(lake)][-1] == "return_from_voiding"


def test_a_correction_carries_the_change_of_the_excess_credit(tmp_path):
    lake = Lake(tmp_path)
    first = issue(lake, "0.00")
    # The invoice carried 33.33 to the balance when issued: -33.33, credit held.
    head = DocumentHead("invoice", "inv_c", None, None, "acme", "USD", date(2026, 11, 1),
                        date(2026, 12, 1), date(2026, 12, 31), Decimal("-33.33"),
                        Decimal("33.33"), Decimal(0), Decimal("0.00"))
    balance.apply_on_issue(lake, [head.issued(first, AT)], {}, AT, {first: Decimal("33.33")})
    # Re-rated at 4 seats, the credit is -6.67 beside a fee of 40.00 and nothing is
    # carried: the correction has lines +26.66 (-6.67 - -33.33) and +40.00, its carried
    # line 0 - 33.33 = -33.33, total 66.66 - 33.33 = 33.33. Its refund~ takes the credit
    # back (+33.33, an increment) BEFORE the balance is applied, so the 33.33 is due
    # rather than paid with the credit it takes back.
    fix = DocumentHead("adjustment_invoice", "inv_c", "inv_c~1", first, "acme", "USD",
                       date(2026, 11, 1), date(2026, 12, 1), date(2026, 12, 31),
                       Decimal("66.66"), Decimal("-33.33"), Decimal(0), Decimal("33.33"))
    later = AT + timedelta(days=40)
    balance.apply_on_issue(lake, [fix.issued("AI-000001", later)], {}, later,
                           {"AI-000001": Decimal("-33.33")})
    assert [(t.transaction_id, t.action, t.amount, t.type, t.invoice_number)
            for t in balance.read(lake, "acme")] == [
        (f"refund~{first}", "prorated_refund", Decimal("-33.33"), "decrement", first),
        ("refund~AI-000001", "prorated_refund", Decimal("33.33"), "increment", first)]
    assert balance.balance(lake, "acme", "USD") == Decimal("0.00")
