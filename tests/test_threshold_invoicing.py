"""Threshold invoicing (issue 17; docs/invoicing.md#threshold-invoices), through the
Dagster pipeline.

Plan "metered": $1.00 a call, usage in arrears. Customer acme (UTC), subscription sub
from 2026-01-01, invoicing threshold $100.00; customer other, subscription other_sub on
the same plan, no threshold. October 2026:
  130 calls on Oct 5: by the 12th the period's usage is 130 x 1.00 = $130.00 >= $100.00,
    so the evaluation on Oct 12 issues INV-000001 dated Oct 12 for $130.00 (usage of
    [Oct 1, Oct 12)).
  80 more calls on Oct 20: the period's usage is 210 x 1.00 = $210.00; the final
    invoice (dated Nov 1) shows the line $210.00 and "previously invoiced" -$130.00:
    $80.00.
  5 late calls dated Oct 8 (before the 12th), after both were issued: the threshold
    invoice should have billed 135 x 1.00 = $135.00, a $5.00 adjustment invoice corrects
    it; the final is 215.00 - 135.00 = $80.00 as before (its usage line +5.00 and its
    "previously invoiced" line -5.00, a correction of $0.00 recording them).
"""

from datetime import UTC, date, datetime
from decimal import Decimal

import dagster as dg
import orb as orb_sdk
import pytest
from click.testing import CliRunner

from assets.resources import OrbStore
from assets.thresholds import run_thresholds
from cli.main import main
from invoicing import documents
from invoicing.issuing import IssueRefused, drafts, issue_month
from invoicing.thresholds import EXCEEDED
from pipelines import runner
from pipelines.definitions import build_definitions
from state import StateStore, outbox
from state.database import reading
from state.thresholds import set_threshold
from storage.duck import connect
from tests.api_tenants import API_VARIABLES, create_key, make_tenants, serve
from tests.batches import batch, calls
from tests.catalogs import write_data_dir

OCTOBER = date(2026, 10, 1)
OCT_12 = datetime(2026, 10, 12, 9, 30, tzinfo=UTC)
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
FINAL = "acme-20261101-USD"
THRESHOLD_INVOICE = f"{FINAL}~sub~T1"
CATALOG = {
    "metrics": [{"id": "calls", "name": "Calls", "sql": "SELECT count(*) FROM events"}],
    "plans": [{"id": "metered", "name": "Metered", "currency": "USD", "prices": [
        {"id": "metered_calls", "name": "Calls", "model_type": "unit",
         "billable_metric_id": "calls", "unit_config": {"unit_amount": "1.00"}}]}],
    "customers": [{"id": "acme", "name": "Acme", "net_terms": 15},
                  {"id": "other", "name": "Other"}],
    "subscriptions": [{"id": "sub", "customer_id": "acme", "plan_id": "metered",
                       "start_date": "2026-01-01"},
                      {"id": "other_sub", "customer_id": "other", "plan_id": "metered",
                       "start_date": "2026-01-01"}],
}


@pytest.fixture
def pipeline(tmp_path):
    write_data_dir(tmp_path, CATALOG)
    store = OrbStore(data_dir=str(tmp_path), max_event_age_days=36500)
    with StateStore.open(store.state_store_url) as state:
        set_threshold(state.engine, "sub", Decimal("100.00"), "test", from_start=True)
    (tmp_path / "landing").mkdir()
    batch(tmp_path / "landing" / "early.jsonl", *calls("a", 130, 5),
          *calls("o", 150, 5, customer="other"))
    defs = build_definitions(store)
    instance = dg.DagsterInstance.ephemeral()
    runner.bill_months(defs, [OCTOBER], instance)
    return store, defs, instance


def outbox_events(store, event_type):
    with StateStore.open(store.state_store_url) as state, reading(state.engine) as connection:
        return [e.event for e in outbox.read(connection, types=[event_type])]


def amounts(draft):
    return [(line.kind, line.amount) for line in draft.lines]


def test_the_worked_example(pipeline, tmp_path):
    store, defs, instance = pipeline
    con, lake = connect(), store.lake
    # Oct 12: 130.00 of usage not yet invoiced >= 100.00
    (issued,) = run_thresholds(store, OCTOBER, OCT_12)
    head = issued.draft.head
    assert (issued.number, head.invoice_id, head.invoice_date, head.due_date, head.total) == (
        "INV-000001", THRESHOLD_INVOICE, date(2026, 10, 12), date(2026, 10, 27),
        Decimal("130.00"))  # net 15
    assert amounts(issued.draft) == [("line", Decimal("130.00"))]
    assert head.total == sum(line.amount for line in issued.draft.lines)
    (line,) = issued.draft.lines
    assert (line.line_key, line.quantity, line.service_start, line.service_end) == (
        "sub:metered_calls:20261001~T1", Decimal(130), date(2026, 10, 1), date(2026, 10, 12))
    assert (lake.reports / "documents" / "INV-000001.pdf").exists()
    # running it again, the same day or the next, at the same usage issues nothing
    assert run_thresholds(store, OCTOBER, OCT_12) == []
    assert run_thresholds(store, OCTOBER, datetime(2026, 10, 13, 9, tzinfo=UTC)) == []
    # the final draft does not net it out until the month is billed again: issuing refuses
    with pytest.raises(IssueRefused, match=THRESHOLD_INVOICE):
        issue_month(con, lake, OCTOBER, NOW)

    batch(tmp_path / "landing" / "later.jsonl", *calls("b", 80, 20))
    runner.bill_months(defs, [OCTOBER], instance)
    final, other = drafts(con, lake, OCTOBER)  # the threshold invoice is issued already
    assert (final.head.invoice_id, final.head.subtotal, final.head.adjustments,
            final.head.total) == (FINAL, Decimal("210.00"), Decimal("-130.00"),
                                  Decimal("80.00"))
    assert amounts(final) == [("line", Decimal("210.00")), ("adjustment", Decimal("-130.00"))]
    assert final.head.total == sum(line.amount for line in final.lines)
    # no threshold: the whole period on the final invoice, 150 x 1.00
    assert (other.head.invoice_id, other.head.total) == ("other-20261101-USD",
                                                         Decimal("150.00"))
    numbers = [n for n, _ in issue_month(con, lake, OCTOBER, NOW)]
    assert numbers == ["INV-000002", "INV-000003"]

    # a late event dated before the 12th corrects the threshold invoice, not the final
    batch(tmp_path / "landing" / "late.jsonl", *calls("late", 5, 8))
    runner.bill_months(defs, [OCTOBER], instance)
    final_fix, correction = drafts(con, lake, OCTOBER)
    assert (correction.head.document_type, correction.head.corrects,
            correction.head.total) == ("adjustment_invoice", "INV-000001", Decimal("5.00"))
    assert [(c.line_key, c.billed, c.computed, c.amount) for c in correction.lines] == [
        ("sub:metered_calls:20261001~T1", Decimal("130.00"), Decimal("135.00"),
         Decimal("5.00"))]
    # the final's total stays 215.00 - 135.00 = 80.00; its two lines moved by +5 and -5,
    # which a correction of 0.00 records line by line
    assert (final_fix.head.corrects, final_fix.head.total) == ("INV-000002", Decimal("0.00"))
    assert [(c.kind, c.billed, c.computed, c.amount) for c in final_fix.lines] == [
        ("line", Decimal("210.00"), Decimal("215.00"), Decimal("5.00")),
        ("adjustment", Decimal("-130.00"), Decimal("-135.00"), Decimal("-5.00"))]
    assert [n for n, _ in issue_month(con, lake, OCTOBER, NOW)] == ["INV-000004",
                                                                     "INV-000005"]
    runner.bill_months(defs, [OCTOBER], instance)
    assert drafts(con, lake, OCTOBER) == []  # the final still bills 215 - 135 = 80.00
    heads = {h.number: h for h in documents.issued_documents(lake)}
    assert [(n, heads[n].total) for n in sorted(heads)] == [
        ("INV-000001", Decimal("130.00")), ("INV-000002", Decimal("80.00")),
        ("INV-000003", Decimal("150.00")), ("INV-000004", Decimal("0.00")),
        ("INV-000005", Decimal("5.00"))]  # acme: 130 + 80 + 0 + 5 = 215 calls x 1.00

    # the threshold event, once, with Orb's properties; the invoice issued, once
    (event,) = outbox_events(store, EXCEEDED)
    assert event.payload["properties"] == {
        "evaluated_amount": "130.00", "invoice_id": "INV-000001",
        "invoicing_threshold": "100.00", "threshold_invoice_created": True}
    assert (event.subscription_id, event.payload["subscription"]["id"]) == ("sub", "sub")
    issued_events = [e for e in outbox_events(store, "invoice.issued")
                     if e.payload["invoice"]["id"] == "INV-000001"]
    assert len(issued_events) == 1


def test_the_threshold_re_arms_within_the_period(pipeline, tmp_path):
    """130.00 by the 12th (INV-000001), then 120 calls on Oct 20: 250.00 so far, 120.00
    not yet invoiced >= 100.00 on Oct 21: INV-000002 bills 250.00 less 130.00 = 120.00;
    the final bills 250.00 - 250.00 = 0.00."""
    store, defs, instance = pipeline
    con, lake = connect(), store.lake
    run_thresholds(store, OCTOBER, OCT_12)
    batch(tmp_path / "landing" / "later.jsonl", *calls("b", 120, 20))
    runner.bill_months(defs, [OCTOBER], instance)
    (second,) = run_thresholds(store, OCTOBER, datetime(2026, 10, 21, tzinfo=UTC))
    assert (second.number, second.draft.head.invoice_id, second.draft.head.total) == (
        "INV-000002", f"{FINAL}~sub~T2", Decimal("120.00"))
    assert amounts(second.draft) == [("line", Decimal("250.00")),
                                     ("adjustment", Decimal("-130.00"))]
    runner.bill_months(defs, [OCTOBER], instance)
    final = next(d for d in drafts(con, lake, OCTOBER) if d.head.invoice_id == FINAL)
    assert amounts(final) == [("line", Decimal("250.00")), ("adjustment", Decimal("-250.00"))]
    assert final.head.total == Decimal("0.00")


def test_no_threshold_no_threshold_invoice(pipeline):
    """other_sub used 150.00 by the 12th but has no threshold; a threshold removed from
    Oct 1 on (recorded before the run) leaves acme's period whole too."""
    store, defs, instance = pipeline
    with StateStore.open(store.state_store_url) as state:
        set_threshold(state.engine, "sub", None, "test", date(2026, 10, 1))
    runner.bill_months(defs, [OCTOBER], instance)
    assert run_thresholds(store, OCTOBER, OCT_12) == []
    assert outbox_events(store, EXCEEDED) == []


def test_the_cli_sets_a_threshold_and_runs_the_evaluation(tmp_path):
    """`orb subscriptions set-threshold` then `orb invoices threshold-run`: other_sub's
    150 calls by Oct 12 reach a $120.00 threshold (150 x 1.00 = 150.00 >= 120.00)."""
    write_data_dir(tmp_path, CATALOG)
    (tmp_path / "landing").mkdir()
    batch(tmp_path / "landing" / "early.jsonl", *calls("o", 150, 5, customer="other"))
    home = ["--data-dir", str(tmp_path)]
    refused = CliRunner().invoke(main, ["subscriptions", "set-threshold", "other_sub",
                                        "0.00", *home])
    assert refused.exit_code == 1 and "AMOUNT: '0.00' must be an amount above 0" in refused.output
    unknown = CliRunner().invoke(main, ["subscriptions", "set-threshold", "nope", "5", *home])
    assert unknown.exit_code == 1 and "unknown subscription 'nope'" in unknown.output
    set_it = CliRunner().invoke(main, ["subscriptions", "set-threshold", "other_sub",
                                       "120.00", "--effective", "2026-10-01", *home])
    assert set_it.exit_code == 0, set_it.output
    assert "other_sub: 120.00, effective 2026-10-01T00:00:00+00:00" in set_it.output
    store = OrbStore(data_dir=str(tmp_path), max_event_age_days=36500)
    runner.bill_months(build_definitions(store), [OCTOBER], dg.DagsterInstance.ephemeral())
    ran = CliRunner(env={"COLUMNS": "200"}).invoke(
        main, ["invoices", "threshold-run", "--as-of", "2026-10-12T09:30:00Z", *home])
    assert ran.exit_code == 0, ran.output
    assert "INV-000001  other-20261101-USD~other_sub~T1" in ran.output
    assert "2026-10-12  $150.00" in ran.output
    again = CliRunner().invoke(
        main, ["invoices", "threshold-run", "--as-of", "2026-10-12T09:30:00Z", *home])
    assert "Issued 0 threshold invoices" in again.output


def test_the_official_sdk_sets_updates_and_shows_the_threshold(tmp_path, monkeypatch):
    for variable in API_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    data_dir, _ = make_tenants(tmp_path)
    key = create_key(data_dir, "admin")
    with serve(data_dir) as root:
        client = orb_sdk.Orb(api_key=key, base_url=f"{root}/v1", max_retries=0)
        customer = client.customers.create(email="t@x.test", name="T")
        sub = client.subscriptions.create(customer_id=customer.id, plan_id="starter",
                                          start_date="2026-10-01", invoicing_threshold="100")
        assert sub.invoicing_threshold == "100.00"
        assert client.subscriptions.fetch(sub.id).invoicing_threshold == "100.00"
        assert client.subscriptions.update(
            sub.id, invoicing_threshold="250.5").invoicing_threshold == "250.50"
        assert client.subscriptions.update(
            sub.id, invoicing_threshold=None).invoicing_threshold is None
        with pytest.raises(orb_sdk.BadRequestError, match="body.invoicing_threshold"):
            client.subscriptions.update(sub.id, invoicing_threshold="1e400")
        assert client.subscriptions.fetch(sub.id).invoicing_threshold is None
