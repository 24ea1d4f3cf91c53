"""Credits and credit notes through Orb's official SDK against the real ``orb serve``
(docs/api.md#credits, #credit-notes): credit blocks, the ledger with its running
balances, increments, a decrement, an expiration change, a void, an amendment, the billing
runs that draw on them, and the credit note a re-rating issues.

Tenant ``metered``: plan "metered", 1.00 USD a call, no fee; customer acme (UTC).
  g1: 50.00 from 1 Sep 2026, expiring 2099-01-01; g2: 20.00 from 2 Sep, expiring
  2098-01-01, so g2 is drawn first, until g1's expiry is changed to 2097-01-01.
  October: 30 calls = 30.00, on the invoice dated 1 Nov, paid by g1: g1 20, g2 20.
  A decrement of 5.00 today takes g1's (first in draw order): g1 15. Voiding g2: 0.
  This month: 20 calls = 20.00, on the invoice dated the 1st of next month; g1 pays
  its 15.00 (the decrement seen by the run), g2 nothing (void): total 5.00.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, date, datetime

import dagster as dg
import orb
import pytest
from orb.types.customers.credits import (
    AmendmentLedgerEntry,
    DecrementLedgerEntry,
    ExpirationChangeLedgerEntry,
    IncrementLedgerEntry,
    VoidLedgerEntry,
)
from orb.types.shared import CreditNote

from assets.resources import OrbStore
from billing import periods
from invoicing.issuing import issue_month
from pipelines import runner
from pipelines.definitions import build_definitions
from storage.duck import connect
from tests.api_tenants import create_key
from tests.api_tenants import orb as orb_cli
from tests.batches import batch, calls
from tests.catalogs import write_data_dir
from tests.test_api_sdk import server  # noqa: F401  (the module's served API)
from tests.test_lifecycle import CATALOG as VOLUME_CATALOG

OCTOBER = date(2026, 10, 1)
METERED = {
    "metrics": [{"id": "calls", "name": "Calls", "sql": "SELECT count(*) FROM events"}],
    "plans": [{"id": "metered", "name": "Metered", "currency": "USD", "prices": [
        {"id": "metered_calls", "name": "Calls", "model_type": "unit",
         "billable_metric_id": "calls", "unit_config": {"unit_amount": "1.00"}}]}],
    "customers": [{"id": "acme", "name": "Acme", "external_customer_id": "acme-ext"}],
    "subscriptions": [{"id": "sub", "customer_id": "acme", "plan_id": "metered",
                       "start_date": "2026-01-01"}],
}


def _tenant(server, root, name, catalog):  # noqa: F811
    write_data_dir(root, catalog)
    (root / "landing").mkdir()
    orb_cli(["tenants", "add", name, "--tenant-data-dir", str(root),
             "--data-dir", str(server.data_dir)])
    store = OrbStore(data_dir=str(root), max_event_age_days=36500)
    return store, build_definitions(store), dg.DagsterInstance.ephemeral()


def _audit_events(server, key):  # noqa: F811
    request = urllib.request.Request(f"{server.url}/audit_events?limit=100",
                                     headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)["data"]


def test_credits_through_the_official_sdk(server, tmp_path):  # noqa: F811
    root = tmp_path / "metered"
    store, defs, instance = _tenant(server, root, "metered", METERED)
    operator = create_key(server.data_dir, "billing_operator", tenant="metered")
    client = server.client(operator)
    ledger = client.customers.credits.ledger

    g1 = ledger.create_entry("acme", entry_type="increment", amount=50,
                             effective_date="2026-09-01", expiry_date="2099-01-01",
                             per_unit_cost_basis="1.00", description="prepaid")
    assert isinstance(g1, IncrementLedgerEntry)
    assert (g1.amount, g1.starting_balance, g1.ending_balance, g1.currency,
            g1.credit_block.expiry_date, g1.credit_block.per_unit_cost_basis,
            g1.description, g1.customer.external_customer_id) == (
        50.0, 0.0, 50.0, "USD", datetime(2099, 1, 1, tzinfo=UTC), "1", "prepaid",
        "acme-ext")
    # by external id, the same customer's ledger: 50 + 20 = 70
    g2 = ledger.create_entry_by_external_id("acme-ext", entry_type="increment", amount=20,
                                            effective_date="2026-09-02",
                                            expiry_date="2098-01-01")
    assert (g2.starting_balance, g2.ending_balance) == (50.0, 70.0)
    g1_id, g2_id = g1.credit_block.id, g2.credit_block.id
    # g2 expires first, so it would be drawn first; now g1 expires before it
    changed = ledger.create_entry("acme", entry_type="expiration_change", block_id=g1_id,
                                  target_expiry_date="2097-01-01")
    assert isinstance(changed, ExpirationChangeLedgerEntry)
    assert (changed.amount, changed.ending_balance, changed.new_block_expiry_date) == (
        0.0, 70.0, datetime(2097, 1, 1, tzinfo=UTC))

    batch(root / "landing" / "october.jsonl", *calls("oct", 30, 10))
    runner.bill_months(defs, [OCTOBER], instance)
    (invoice,) = client.invoices.list(customer_id="acme")
    # 30 calls x 1.00 = 30.00, all paid by credits
    assert (invoice.invoice_date, invoice.total) == (datetime(2026, 11, 1, tzinfo=UTC), "0.00")
    blocks = list(client.customers.credits.list("acme"))
    # g1 paid the 30.00: 50 - 30 = 20; g2 untouched: 20. Draw order: g1 (2097), g2 (2098)
    assert [(b.id, b.balance, b.expiry_date, b.per_unit_cost_basis) for b in blocks] == [
        (g1_id, 20.0, datetime(2097, 1, 1, tzinfo=UTC), "1"),
        (g2_id, 20.0, datetime(2098, 1, 1, tzinfo=UTC), "0")]

    taken = ledger.create_entry("acme", entry_type="decrement", amount=5,
                                description="goodwill reversed")
    assert isinstance(taken, DecrementLedgerEntry)
    # 20 + 20 = 40 before; g1 is first in draw order: 40 - 5 = 35
    assert (taken.amount, taken.starting_balance, taken.ending_balance,
            taken.credit_block.id, taken.invoice_id) == (-5.0, 40.0, 35.0, g1_id, None)
    with pytest.raises(orb.BadRequestError):  # 1000 is more than the 35 left
        ledger.create_entry("acme", entry_type="decrement", amount=1000)
    with pytest.raises(orb.BadRequestError):  # more than the 30 + 5 taken from g1
        ledger.create_entry("acme", entry_type="amendment", amount=36, block_id=g1_id)
    with pytest.raises(orb.BadRequestError):  # nothing was taken from g2
        ledger.create_entry("acme", entry_type="amendment", amount=1, block_id=g2_id)
    with pytest.raises(orb.BadRequestError):
        ledger.create_entry("acme", entry_type="void", block_id="grant_404", amount=1)
    with pytest.raises(orb.BadRequestError):  # a void takes the whole block: 20, not 7
        ledger.create_entry("acme", entry_type="void", block_id=g2_id, amount=7)
    voided = ledger.create_entry("acme", entry_type="void", block_id=g2_id, amount=20,
                                 void_reason="refund")
    assert isinstance(voided, VoidLedgerEntry)
    assert (voided.amount, voided.void_amount, voided.void_reason, voided.starting_balance,
            voided.ending_balance) == (-20.0, 20.0, "refund", 35.0, 15.0)

    # newest first, with the customer's running balance in USD
    entries = list(ledger.list("acme", limit=2))  # the SDK follows the cursor
    assert [(e.entry_type, e.amount, e.starting_balance, e.ending_balance,
             e.ledger_sequence_number) for e in entries] == [
        ("void", -20.0, 35.0, 15.0, 6), ("decrement", -5.0, 40.0, 35.0, 5),
        ("expiration_change", 0.0, 40.0, 40.0, 4), ("decrement", -30.0, 70.0, 40.0, 3),
        ("increment", 20.0, 50.0, 70.0, 2), ("increment", 50.0, 0.0, 50.0, 1)]
    assert all(e.entry_status == "committed" for e in entries)
    drawdown = entries[3]
    assert isinstance(drawdown, DecrementLedgerEntry)
    assert (drawdown.invoice_id, drawdown.credit_block.id) == ("acme-20261101-USD", g1_id)
    assert [e.amount for e in ledger.list("acme", entry_type="decrement")] == [-5.0, -30.0]
    # |amount| >= 20: the void, the drawdown, both increments
    assert [e.amount for e in ledger.list("acme", minimum_amount="20")] == [
        -20.0, -30.0, 20.0, 50.0]
    assert [e.id for e in ledger.list_by_external_id("acme-ext")] == [e.id for e in entries]
    assert list(ledger.list("acme", currency="EUR")) == []
    # by default only blocks with a balance: g2 is void
    assert [(b.id, b.balance) for b in client.customers.credits.list_by_external_id(
        "acme-ext")] == [(g1_id, 15.0)]
    assert [(b.id, b.balance) for b in client.customers.credits.list(
        "acme", include_all_blocks=True)] == [(g1_id, 15.0), (g2_id, 0.0)]

    # the billing run sees the decrement and the void: this month's 20 calls
    today = datetime.now(UTC)
    month = today.date().replace(day=1)
    batch(root / "landing" / "now.jsonl", *[
        {**event, "timestamp": f"{month.isoformat()}T00:30:00Z"}
        for event in calls("now", 20, 1)])
    runner.bill_months(defs, [month], instance)
    due = periods.add_months(month, 1)
    (now_invoice,) = [i for i in client.invoices.list(customer_id="acme")
                      if i.invoice_date == datetime(due.year, due.month, due.day, tzinfo=UTC)]
    assert now_invoice.total == "5.00"  # 20.00 - g1's 15.00
    assert [(b.id, b.balance) for b in client.customers.credits.list(
        "acme", include_all_blocks=True)] == [(g1_id, 0.0), (g2_id, 0.0)]
    # an amendment gives back part of what was taken from g1 (30 + 5 + 15 = 50); dated
    # today, it sits before this month's drawdown (dated the 1st of next month) in the
    # ledger: 15.00 left after the void, 15 + 2.5 = 17.5; g1 holds 0 + 2.5 now
    given = ledger.create_entry("acme", entry_type="amendment", amount=2.5, block_id=g1_id,
                                description="incident 42")
    assert isinstance(given, AmendmentLedgerEntry)
    assert (given.amount, given.starting_balance, given.ending_balance, given.credit_block.id,
            given.description) == (2.5, 15.0, 17.5, g1_id, "incident 42")
    assert [(b.id, b.balance) for b in client.customers.credits.list("acme")] == [
        (g1_id, 2.5)]
    with pytest.raises(orb.BadRequestError):  # 50 taken, 2.5 given back: 47.5 at most
        ledger.create_entry("acme", entry_type="amendment", amount=47.51, block_id=g1_id)

    # every write audited, with the key that made it
    admin = create_key(server.data_dir, "admin", tenant="metered")
    audited = [e for e in _audit_events(server, admin)
               if e["resource"] == "credit_ledger_entry"]
    assert sorted(e["after"]["entry_type"] for e in audited) == [
        "amendment", "decrement", "expiration_change", "increment", "increment", "void"]
    assert len({e["key_id"] for e in audited}) == 1  # the operator's key, for every one
    assert {(e["key_id"] is None, e["role"], e["before"]) for e in audited} == {
        (False, "billing_operator", None)}

    # a read-only key reads but cannot write; another tenant's key finds no customer
    reader = server.client(create_key(server.data_dir, "read_only", tenant="metered"))
    assert [b.id for b in reader.customers.credits.list("acme", include_all_blocks=True)] == [
        g1_id, g2_id]
    with pytest.raises(orb.PermissionDeniedError):
        reader.customers.credits.ledger.create_entry("acme", entry_type="decrement", amount=1)
    theirs = server.client(server.tenant_b)
    with pytest.raises(orb.NotFoundError):
        theirs.customers.credits.list("acme")
    with pytest.raises(orb.NotFoundError):
        theirs.customers.credits.ledger.list("acme")
    with pytest.raises(orb.NotFoundError):
        theirs.customers.credits.ledger.create_entry("acme", entry_type="decrement", amount=1)


def test_credit_notes_through_the_official_sdk(server, tmp_path):  # noqa: F811
    """tests/test_lifecycle.py's re-rating: 100 calls at 1.00 = 100.00 issued as
    INV-000001; 20 late calls make 120 at 0.50 = 60.00, a credit note of 40.00."""
    root = tmp_path / "notes"
    store, defs, instance = _tenant(server, root, "notes", VOLUME_CATALOG)
    batch(root / "landing" / "october.jsonl", *calls("a", 100, 10))
    runner.bill_months(defs, [OCTOBER], instance)
    issue_month(connect(), store.lake, OCTOBER, datetime(2026, 11, 2, 9, tzinfo=UTC))
    batch(root / "landing" / "late.jsonl", *calls("late", 20, 30))
    runner.ingest_landing(defs, instance)
    runner.bill_month(defs, OCTOBER, instance)
    issued_at = datetime(2026, 11, 20, 9, tzinfo=UTC)
    issue_month(connect(), store.lake, OCTOBER, issued_at)

    client = server.client(create_key(server.data_dir, "read_only", tenant="notes"))
    (note,) = client.credit_notes.list()
    assert isinstance(note, CreditNote)
    assert (note.id, note.credit_note_number, note.invoice_id, note.customer.id, note.total,
            note.subtotal, note.type, note.reason, note.credit_note_pdf, note.voided_at,
            note.created_at) == ("CN-000001", "CN-000001", "INV-000001", "acme", "40.00",
                                 "40.00", "adjustment", None, None, None, issued_at)
    (line,) = note.line_items
    # the line's October service period, [1 Oct, 1 Nov)
    assert (line.name, line.amount, line.start_time_inclusive, line.end_time_exclusive) == (
        "Calls", "40.00", datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
    assert client.credit_notes.fetch("CN-000001") == note
    # the corrected invoice lists it with the same, positive, total
    (listed,) = client.invoices.fetch("INV-000001").credit_notes
    assert (listed.id, listed.total) == ("CN-000001", "40.00")
    assert list(client.credit_notes.list(created_at_lt=issued_at)) == []
    with pytest.raises(orb.NotFoundError):
        client.credit_notes.fetch("CN-000404")
    with pytest.raises(orb.NotFoundError):  # another tenant's credit note
        server.client(server.tenant_b).credit_notes.fetch("CN-000001")
