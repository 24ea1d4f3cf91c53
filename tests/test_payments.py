"""Payments with the manual processor and the payment run's rules (retries, crashes,
reconciliation) with an in-memory processor that behaves like a gateway honouring
idempotency keys. Stripe itself: tests/test_stripe.py.

The lake: catalog customers on a fixed monthly fee billed in advance; October 2026's
run makes one invoice per customer dated Nov 1 for November's fee, issued on Nov 2:
acme 100.00 USD (INV-000001), kyoto 15000 JPY (INV-000002).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import pytest

from assets.resources import OrbStore, PaymentsConfig
from billing.catalog import Catalog
from invoicing import documents
from invoicing.issuing import issue_month
from payments import ledger, received
from payments.manual import ManualProcessor, PaymentFileError
from payments.processor import (
    Outcome,
    PaymentProcessor,
    RemoteState,
    from_minor_units,
    to_minor_units,
)
from payments.run import MAX_ATTEMPTS, run_payments
from pipelines.payments import payments_job, payments_schedule
from storage.duck import connect
from storage.lake import Lake
from storage.tables import INVOICE_CORRECTIONS as CORRECTIONS
from tests.catalogs import unit, write_data_dir
from tests.invoicing import bill

OCTOBER = date(2026, 10, 1)
ISSUED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
FEES = {"acme": ("USD", "100.00"), "kyoto": ("JPY", "15000")}


def catalog_data(fees: dict[str, tuple[str, str]]) -> dict:
    return {
        "metrics": [{"id": "calls", "name": "Calls", "sql": "SELECT count(*) FROM events"}],
        "plans": [{"id": f"plan_{c}", "name": c, "currency": currency,
                   "prices": [unit(f"fee_{c}", fee, fixed_quantity=1)]}
                  for c, (currency, fee) in fees.items()],
        "customers": [{"id": c, "name": c.title(), "email": f"billing@{c}.example"}
                      for c in fees],
        "subscriptions": [{"id": f"sub_{c}", "customer_id": c, "plan_id": f"plan_{c}",
                           "start_date": "2026-01-01"} for c in fees],
    }


def issued_lake(root, fees: dict[str, tuple[str, str]] = FEES) -> tuple[Lake, Catalog]:
    """Bill October for ``fees`` (customer -> (currency, monthly fee)) and issue it."""
    data = catalog_data(fees)
    write_data_dir(root, data)
    catalog = Catalog.model_validate(data)
    result, lake = bill(catalog, OCTOBER), Lake(root)
    for table, rows in (("line_items", result.line_items),
                        ("invoice_adjustments", result.adjustment_table),
                        ("invoices", pa.Table.from_pylist(list(result.invoices.values()))),
                        ("invoice_corrections", CORRECTIONS.empty_table())):
        lake.write_partition(table, "billing_month", OCTOBER, rows)
    issue_month(connect(), lake, OCTOBER, ISSUED)
    return lake, catalog


def statuses(lake: Lake) -> dict[str, str]:
    return documents.statuses(connect(), lake)


def events(lake: Lake, status: str) -> list[tuple[str, str]]:
    rows = documents._read(lake, "document_events", documents.EVENTS).to_pylist()
    return sorted((r["number"], r["note"]) for r in rows if r["status"] == status)


def records(lake: Lake) -> list[tuple]:
    return sorted((r["subject"], r["step"], r["attempt"], r["phase"], r["status"])
                  for r in ledger.read_all(lake).to_pylist())


def write_payments(path, *rows: str) -> None:
    path.write_text("invoice_number,amount,currency,paid_at,reference\n"
                    + "".join(row + "\n" for row in rows))


# -- the manual processor --------------------------------------------------------------


def test_issued_invoices(tmp_path):
    lake, _ = issued_lake(tmp_path)
    heads = {h["number"]: (h["customer_id"], h["currency"], h["total"])
             for h in documents.issued_heads(lake).to_pylist()}
    assert heads == {"INV-000001": ("acme", "USD", Decimal("100.00")),
                     "INV-000002": ("kyoto", "JPY", Decimal("15000"))}


def test_manual_payments_are_recorded_exactly_once(tmp_path):
    lake, catalog = issued_lake(tmp_path)
    file = tmp_path / "payments.csv"
    manual = ManualProcessor(file)

    summary = run_payments(lake, manual, ISSUED, catalog)  # no file yet: nothing paid
    assert (summary.pending, summary.paid) == (["INV-000001", "INV-000002"], [])
    assert records(lake) == []

    write_payments(file, "INV-000001,100.00,USD,2026-11-20T10:00:00Z,wire 7781")
    summary = run_payments(lake, manual, ISSUED + timedelta(days=20), catalog)
    assert (summary.paid, summary.pending) == (["INV-000001"], ["INV-000002"])
    assert statuses(lake) == {"INV-000001": "paid", "INV-000002": "issued"}
    (paid,) = documents._read(lake, "document_events", documents.EVENTS).filter(
        pa.compute.equal(pa.compute.field("status"), "paid")).to_pylist()
    assert (paid["note"], paid["changed_at"]) == (
        "manual wire 7781", datetime(2026, 11, 20, 10, tzinfo=UTC))
    # a payment made elsewhere: one movement, no processor call (no attempt record)
    assert records(lake) == []
    (payment,) = received.movements(lake)
    assert (payment.number, payment.kind, payment.amount, payment.currency, payment.reference,
            payment.paid_at) == ("INV-000001", "payment", Decimal("100.0000"), "USD",
                                 "wire 7781", datetime(2026, 11, 20, 10, tzinfo=UTC))

    # JPY has no minor unit: 15000, not 15000.00; a date without time is midnight UTC.
    write_payments(file, "INV-000001,100.00,USD,2026-11-20T10:00:00Z,wire 7781",
                   "INV-000002,15000,jpy,2026-11-21,furikomi 42")
    summary = run_payments(lake, manual, ISSUED + timedelta(days=21), catalog)
    assert summary.paid == ["INV-000002"]  # INV-000001 is paid already: not again
    assert statuses(lake) == {"INV-000001": "paid", "INV-000002": "paid"}
    assert events(lake, "paid") == [("INV-000001", "manual wire 7781"),
                                    ("INV-000002", "manual furikomi 42")]
    before = records(lake)
    assert run_payments(lake, manual, ISSUED + timedelta(days=30), catalog).paid == []
    assert records(lake) == before
    assert len(received.movements(lake)) == 2  # the lines kept in the file: once


@pytest.mark.parametrize(("rows", "problems"), [
    (["INV-000001,100.00,EUR,2026-11-20,w1"],
     [":2: INV-000001 is in USD, the payment is in EUR (a payment must be in the "
      "invoice's currency)"]),
    (["INV-000002,15000.5,JPY,2026-11-20,w1", "INV-000001,1e2x,USD,2026-11-20,w2"],
     [":2: amount 15000.5 has more than 0 decimal digit(s), the minor unit of JPY",
      ":3: amount '1e2x' is not a decimal number"]),
    (["INV-000001,100.001,USD,2026-11-20,w1"],
     [":2: amount 100.001 has more than 2 decimal digit(s), the minor unit of USD"]),
    # two payments of one invoice are fine (partial payments); the same line twice is not
    (["INV-000001,60.00,USD,2026-11-20,w1", "INV-000001,60.00,USD,2026-11-20,w1"],
     [":3: the same payment as line 2 (give each payment its own reference)"]),
    # every line's problems, the invoice's included, in one pass
    (["INV-000009,100.00,USD,2026-11-20,w1", "INV-000001,100.00,XYZ,2026-11-20,w2",
      "INV-000002,,JPY,2026-11-20,w3", "INV-000001,-100.00,USD,20.11.2026,w4"],
     [":2: no issued invoice 'INV-000009'", ":3: unknown ISO 4217 currency code 'XYZ'",
      ":4: empty amount", ":5: amount -100.00 must be a positive number",
      ":5: paid_at '20.11.2026' is not an ISO 8601 date or instant"]),
    (["INV-000009,100.00,USD,2026-11-20,w1"], [":2: no issued invoice 'INV-000009'"]),
    (["INV-000001,100.00,USD,20.11.2026,w4"],
     [":2: paid_at '20.11.2026' is not an ISO 8601 date or instant"]),
    # beyond any amount the lake sums safely, not a number, not money
    (["INV-000001,1e30,USD,2026-11-20,w1", "INV-000002,NaN,JPY,2026-11-20,w2",
      "INV-000001,Infinity,xxx,2026-11-20,w3"],
     [":2: amount 1E+30 is too large: an amount must be below "
      "1,000,000,000,000,000,000",
      ":3: amount NaN is not a finite number",
      ":4: ISO 4217 code 'XXX' is not a currency of money",
      ":4: amount Infinity is not a finite number"]),
])
def test_manual_file_is_rejected_naming_file_and_line(tmp_path, rows, problems):
    lake, catalog = issued_lake(tmp_path)
    file = tmp_path / "payments.csv"
    write_payments(file, *rows)
    with pytest.raises(PaymentFileError) as error:
        run_payments(lake, ManualProcessor(file), ISSUED, catalog)
    assert error.value.problems == [f"{file}{expected}" for expected in problems]
    assert records(lake) == [] and set(statuses(lake).values()) == {"issued"}


def test_every_kind_of_problem_is_reported_in_one_pass(tmp_path):
    # Issued in customer order: acme INV-000001, bolt -2, dune -3, eden -4, kyoto -5.
    lake, catalog = issued_lake(tmp_path, {"acme": ("USD", "100.00"), "bolt": ("USD", "40.00"),
                                           "dune": ("USD", "7.50"), "eden": ("EUR", "12.00"),
                                           "kyoto": ("JPY", "15000")})
    documents.change_status(lake, "INV-000002", "void", ISSUED, "wrong address")
    file = tmp_path / "payments.csv"
    write_payments(file, "INV-000001,100.00,USD,2026-11-31,w1",  # no such day
                   "INV-000002,40.00,USD,2026-11-20,w2",  # void
                   "INV-000005,15000,USD,2026-11-20,w3",  # a JPY invoice
                   "INV-000003,7.05,USD,2026-11-20,w4",  # 7.50 due: partial, fine
                   "INV-000004,12,eur,2026-11-21,sepa")  # right, yet not recorded
    with pytest.raises(PaymentFileError) as error:
        run_payments(lake, ManualProcessor(file), ISSUED, catalog)
    assert error.value.problems == [
        f"{file}:2: paid_at '2026-11-31' is not an ISO 8601 date or instant",
        f"{file}:3: INV-000002 is void: a payment for a void invoice is refused",
        f"{file}:4: INV-000005 is in JPY, the payment is in USD (a payment must be in "
        "the invoice's currency)"]
    assert records(lake) == []
    assert statuses(lake) == {"INV-000001": "issued", "INV-000002": "void",
                              "INV-000003": "issued", "INV-000004": "issued",
                              "INV-000005": "issued"}

    # those three fixed, nothing new comes up; currencies in any case are the same code
    write_payments(file, "INV-000001,100.00,usd,2026-11-30,w1",
                   "INV-000005,15000,JPY,2026-11-20,w3",
                   "INV-000003,7.5,USD,2026-11-20,w4",
                   "INV-000004,12,eur,2026-11-21,sepa")
    summary = run_payments(lake, ManualProcessor(file), ISSUED, catalog)
    assert summary.paid == ["INV-000001", "INV-000003", "INV-000004", "INV-000005"]
    assert sorted((m.number, m.amount, m.currency) for m in received.movements(lake)) == [
        ("INV-000001", Decimal("100.0000"), "USD"), ("INV-000003", Decimal("7.5000"), "USD"),
        ("INV-000004", Decimal("12.0000"), "EUR"), ("INV-000005", Decimal("15000.0000"), "JPY")]


def test_manual_file_without_columns_is_rejected(tmp_path):
    lake, catalog = issued_lake(tmp_path)
    file = tmp_path / "payments.csv"
    file.write_text("number,amount\nINV-000001,100.00\n")
    with pytest.raises(PaymentFileError, match=r"payments.csv:1: missing column\(s\) "
                       "invoice_number, currency, paid_at, reference"):
        run_payments(lake, ManualProcessor(file), ISSUED, catalog)


def test_payments_asset_through_dagster(tmp_path):
    from assets.payments import payments

    lake, _ = issued_lake(tmp_path)
    (tmp_path / "payments").mkdir()
    write_payments(tmp_path / "payments" / "payments.csv",
                   "INV-000002,15000,JPY,2026-11-21,furikomi 42")
    store = OrbStore(data_dir=str(tmp_path))
    result = dg.materialize([payments], resources={
        "store": store, "payment_processor": PaymentsConfig()})
    assert result.success
    (materialization,) = result.asset_materializations_for_node("payments")
    meta = {k: v.value for k, v in materialization.metadata.items()}
    assert (meta["processor"], meta["paid"], meta["pending"]) == ("manual", 1, 1)
    assert statuses(lake) == {"INV-000001": "issued", "INV-000002": "paid"}
    defs = dg.Definitions(assets=[payments], jobs=[payments_job], schedules=[
        payments_schedule], resources={"store": store, "payment_processor": PaymentsConfig()})
    assert defs.resolve_job_def("collect_payments").execute_in_process().success


def test_processor_choice(monkeypatch):
    monkeypatch.delenv("ORB_STRIPE_API_KEY", raising=False)
    store = OrbStore(data_dir="/nonexistent")
    assert PaymentsConfig().build(store).name == "manual"
    with pytest.raises(ValueError, match="unknown payment processor 'paypal'"):
        PaymentsConfig(processor="paypal").build(store)
    with pytest.raises(RuntimeError, match="ORB_STRIPE_API_KEY is not set"):
        PaymentsConfig(processor="stripe").build(store)


def test_minor_units():
    assert to_minor_units(Decimal("100.00"), "USD") == 10000
    assert to_minor_units(Decimal("0.07"), "USD") == 7
    assert to_minor_units(Decimal("15000"), "JPY") == 15000
    assert to_minor_units(Decimal("1.234"), "KWD") == 1234
    assert from_minor_units(1234, "USD") == Decimal("12.34")
    assert from_minor_units(15000, "JPY") == Decimal("15000")
    with pytest.raises(ValueError, match="1.005 USD is not a whole number of minor units"):
        to_minor_units(Decimal("1.005"), "USD")
    with pytest.raises(ValueError, match="0.5 JPY"):
        to_minor_units(Decimal("0.5"), "JPY")


# -- the run's rules, with a gateway in memory -------------------------------------------


class Crash(BaseException):
    """The process dies: nothing after this point runs (not an Exception, so no handler
    in the run can swallow it)."""


@dataclass
class FakeGateway(PaymentProcessor):
    """A gateway with Stripe's idempotency: a key seen before returns its first result.
    ``declines`` customers' payments fail; ``charges`` lists every real charge."""

    name = "fake"
    declines: set[str] = field(default_factory=set)
    charges: list[tuple[str, Decimal]] = field(default_factory=list)
    paid: dict[str, Decimal] = field(default_factory=dict)  # invoice ref -> amount paid
    void: set[str] = field(default_factory=set)
    seen: dict[str, object] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def _once(self, key, action):
        self.calls.append(key)
        if key not in self.seen:
            self.seen[key] = action()
        return self.seen[key]

    def sync_customer(self, customer, key):
        return self._once(key, lambda: f"cus_{customer.customer_id}")

    def sync_invoice(self, invoice, customer_ref, key):
        return self._once(key, lambda: f"in_{invoice.number}")

    def collect(self, invoice, invoice_ref, key):
        def charge():
            if invoice.customer_id in self.declines:
                return Outcome("failed", detail="card_declined: Your card was declined.")
            self.charges.append((invoice_ref, invoice.amount))
            self.paid[invoice_ref] = invoice.amount
            return Outcome("paid", reference=f"ch_{len(self.charges)}", amount=invoice.amount,
                           currency=invoice.currency)
        return self._once(key, charge)

    def fetch_state(self, invoice, invoice_ref):
        if invoice_ref in self.void:
            return RemoteState("void", Decimal(0), invoice.currency, invoice_ref)
        if invoice_ref in self.paid:
            return RemoteState("paid", self.paid[invoice_ref], invoice.currency, invoice_ref)
        return RemoteState("open", Decimal(0), invoice.currency, invoice_ref)


def test_failed_payments_are_retried_after_1_3_and_7_days(tmp_path):
    lake, catalog = issued_lake(tmp_path)
    gateway = FakeGateway(declines={"acme"})
    summary = run_payments(lake, gateway, ISSUED, catalog)
    assert summary.paid == ["INV-000002"]
    assert summary.retry_scheduled == {"INV-000001": ISSUED + timedelta(days=1)}

    # before the retry is due nothing is attempted
    summary = run_payments(lake, gateway, ISSUED + timedelta(hours=23), catalog)
    assert summary.waiting == {"INV-000001": ISSUED + timedelta(days=1)}
    assert gateway.calls.count("orb:INV-000001:collect:2") == 0

    at = ISSUED
    for attempt, delay in ((2, 1), (3, 3), (4, 7)):
        at += timedelta(days=delay)
        summary = run_payments(lake, gateway, at, catalog)
        assert f"orb:INV-000001:collect:{attempt}" in gateway.calls
    assert attempt == MAX_ATTEMPTS and summary.exhausted == ["INV-000001"]
    failed = [(r["attempt"], r["recorded_at"], r["next_retry_at"], r["detail"])
              for r in ledger.read_all(lake).to_pylist()
              if (r["subject"], r["step"], r["phase"]) == ("INV-000001", "collect", "outcome")]
    assert failed == [
        (1, ISSUED, ISSUED + timedelta(days=1), "card_declined: Your card was declined."),
        (2, ISSUED + timedelta(days=1), ISSUED + timedelta(days=4),
         "card_declined: Your card was declined."),
        (3, ISSUED + timedelta(days=4), ISSUED + timedelta(days=11),
         "card_declined: Your card was declined."),
        (4, ISSUED + timedelta(days=11), None, "card_declined: Your card was declined.")]
    # out of retries: no more attempts, the invoice stays issued for a human to chase
    summary = run_payments(lake, gateway, at + timedelta(days=30), catalog)
    assert summary.exhausted == ["INV-000001"]
    assert "orb:INV-000001:collect:5" not in gateway.calls
    assert statuses(lake)["INV-000001"] == "issued"

    # a retry that succeeds
    lake2, _ = issued_lake(tmp_path / "second")
    gateway = FakeGateway(declines={"acme"})
    run_payments(lake2, gateway, ISSUED, catalog)
    gateway.declines.clear()
    assert run_payments(lake2, gateway, ISSUED + timedelta(days=1), catalog).paid == [
        "INV-000001"]
    assert events(lake2, "paid")[0] == ("INV-000001", "fake ch_2")


def crash_before_recording(monkeypatch, step: str) -> None:
    """The next outcome record of ``step`` raises Crash (once): the call was made, its
    result is lost, as when a run dies between the two."""
    write = ledger.Ledger.write

    def crash_once(self, subject, step_, attempt, phase, *args, **kwargs):
        if (step_, phase) == (step, "outcome"):
            monkeypatch.setattr(ledger.Ledger, "write", write)
            raise Crash
        return write(self, subject, step_, attempt, phase, *args, **kwargs)

    monkeypatch.setattr(ledger.Ledger, "write", crash_once)


@pytest.mark.parametrize("step", ["customer", "invoice", "collect"])
def test_a_crash_between_the_call_and_its_record_never_charges_twice(tmp_path, monkeypatch,
                                                                     step):
    lake, catalog = issued_lake(tmp_path, {"acme": ("USD", "100.00")})
    gateway = FakeGateway()
    crash_before_recording(monkeypatch, step)
    with pytest.raises(Crash):
        run_payments(lake, gateway, ISSUED, catalog)
    assert statuses(lake) == {"INV-000001": "issued"}

    summary = run_payments(lake, gateway, ISSUED + timedelta(minutes=5), catalog)
    assert summary.paid == ["INV-000001"]
    assert gateway.charges == [("in_INV-000001", Decimal("100.00"))]  # one charge
    key = {"customer": "orb:customer:acme:customer:1", "invoice": "orb:INV-000001:invoice:1",
           "collect": "orb:INV-000001:collect:1"}[step]
    assert gateway.calls.count(key) == 2  # the same call, repeated with the same key
    assert events(lake, "paid") == [("INV-000001", "fake ch_1")]
    assert [r for r in records(lake) if r[1] == "collect"] == [
        ("INV-000001", "collect", 1, "intent", "started"),
        ("INV-000001", "collect", 1, "outcome", "paid")]


def test_a_crash_between_the_payment_record_and_the_status_is_finished(tmp_path,
                                                                        monkeypatch):
    lake, catalog = issued_lake(tmp_path, {"acme": ("USD", "100.00")})
    gateway = FakeGateway()
    change = documents.change_statuses

    def crash(*args, **kwargs):
        monkeypatch.setattr(documents, "change_statuses", change)
        raise Crash

    monkeypatch.setattr(documents, "change_statuses", crash)
    with pytest.raises(Crash):
        run_payments(lake, gateway, ISSUED, catalog)
    assert statuses(lake) == {"INV-000001": "issued"}
    assert run_payments(lake, gateway, ISSUED, catalog).paid == ["INV-000001"]
    assert len(gateway.charges) == 1 and events(lake, "paid") == [("INV-000001", "fake ch_1")]


def test_reconciliation(tmp_path):
    lake, catalog = issued_lake(tmp_path, {"acme": ("USD", "100.00"), "bolt": ("USD", "40.00"),
                                           "cole": ("USD", "7.50")})
    gateway = FakeGateway(declines={"acme", "bolt", "cole"})
    summary = run_payments(lake, gateway, ISSUED, catalog)
    assert sorted(summary.retry_scheduled) == ["INV-000001", "INV-000002", "INV-000003"]

    # while they wait for their retry: acme pays the right amount out of band, bolt pays
    # the wrong amount, cole's invoice is voided on the gateway's side
    gateway.paid["in_INV-000001"] = Decimal("100.00")
    gateway.paid["in_INV-000002"] = Decimal("4.00")
    gateway.void.add("in_INV-000003")
    summary = run_payments(lake, gateway, ISSUED + timedelta(hours=2), catalog)
    assert summary.reconciled == ["INV-000001"] and summary.paid == ["INV-000001"]
    assert summary.flagged == {
        "INV-000002": "fake shows 4.00 USD paid, the invoice is 40.00 USD",
        "INV-000003": "fake shows the invoice void; it is issued here"}
    assert statuses(lake) == {"INV-000001": "paid", "INV-000002": "issued",
                              "INV-000003": "issued"}
    assert events(lake, "paid") == [("INV-000001", "reconciled: fake in_INV-000001")]
    assert gateway.charges == []  # nothing charged by us

    # flags are recorded once, and reported on every run until someone acts
    before = records(lake)
    summary = run_payments(lake, gateway, ISSUED + timedelta(hours=3), catalog)
    assert sorted(summary.flagged) == ["INV-000002", "INV-000003"]
    assert records(lake) == before
    assert [r[1:] for r in before if r[0] == "INV-000002" and r[1] == "reconcile"] == [
        ("reconcile", 1, "outcome", "flagged")]


def test_collected_amount_differing_from_the_invoice_is_flagged_not_paid(tmp_path):
    lake, catalog = issued_lake(tmp_path, {"acme": ("USD", "100.00")})

    class Short(FakeGateway):
        def collect(self, invoice, invoice_ref, key):
            return Outcome("paid", reference="ch_x", amount=Decimal("99.00"), currency="USD")

    summary = run_payments(lake, Short(), ISSUED, catalog)
    assert summary.flagged == {"INV-000001": "fake collected 99.00 USD, the invoice is "
                                             "100.00 USD"}
    assert statuses(lake) == {"INV-000001": "issued"}


def test_only_open_invoices_with_an_amount_are_collected(tmp_path):
    lake, catalog = issued_lake(tmp_path, {"acme": ("USD", "100.00"), "zero": ("USD", "0.00")})
    documents.change_status(lake, "INV-000001", "void", ISSUED, "wrong address")
    gateway = FakeGateway()
    summary = run_payments(lake, gateway, ISSUED, catalog)
    assert summary == type(summary)() and gateway.calls == []
