"""A billing run reads customers and subscriptions from the state store once, keeps that
snapshot in the lake, and a later run of the same month takes its own: a plan change
recorded after October was billed changes October's re-rating, not the snapshot the
first run read.

Acme is on ``basic`` (calls at $0.10) from 2026-01-01, in UTC, with 10 calls on
October 5 and 20 on October 20. Billed on November 2: 30 x $0.10 = $3.00, issued as
INV-000001. On November 3 a plan change to ``premium`` (calls at $0.05) effective
October 15 is recorded. Re-rated: basic for [Oct 1, Oct 15), 10 x $0.10 = $1.00;
premium for [Oct 15, Nov 1), 20 x $0.05 = $1.00; $2.00 in all, so a credit note of
-$1.00 corrects INV-000001.
"""

import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal

import dagster as dg
import pyarrow.parquet as pq

from assets.resources import OrbStore
from billing.catalog import Catalog
from invoicing.issuing import drafts, issue_month
from invoicing.rerate import preview
from pipelines import runner
from pipelines.definitions import build_definitions
from state import ChangePlan, StateStore
from storage.duck import connect
from tests.batches import batch, calls
from tests.catalogs import unit, write_data_dir

OCTOBER = date(2026, 10, 1)
PLANS = [{"id": "basic", "name": "Basic", "currency": "USD",
          "prices": [unit("basic_calls", "0.10", metric="calls")]},
         {"id": "premium", "name": "Premium", "currency": "USD",
          "prices": [unit("premium_calls", "0.05", metric="calls")]}]
DATA = {
    "metrics": [{"id": "calls", "name": "Calls", "sql": "SELECT count(*) FROM events"}],
    "plans": PLANS,
    "customers": [{"id": "acme", "name": "Acme"}],
    "subscriptions": [{"id": "sub", "customer_id": "acme", "plan_id": "basic",
                       "start_date": "2026-01-01"}],
}


def totals(store):
    return {r["invoice_id"]: r["total"] for r in
            store.lake.read_partition("invoices", "billing_month", OCTOBER).to_pylist()}


def snapshot_files(store):
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (store.lake.root / "lake").glob("state_*/*/*.parquet")}


def phases(store, snapshot_id):
    path = (store.lake.table_dir("state_subscription_phases") / "billing_month=2026-10-01"
            / f"{snapshot_id}.parquet")
    return [(r["plan_id"], r["start_date"], r["end_date"])
            for r in pq.read_table(path).to_pylist()]


def snapshot_ids(store):
    rows = pq.read_table(store.lake.table_dir("state_snapshots")).to_pylist()
    return [r["snapshot_id"] for r in sorted(rows, key=lambda r: r["taken_at"])]


def test_a_plan_change_recorded_later_changes_the_rerating_not_the_first_snapshot(tmp_path):
    write_data_dir(tmp_path, DATA)
    (tmp_path / "landing").mkdir()
    batch(tmp_path / "landing" / "october.jsonl", *calls("early", 10, 5), *calls("late", 20, 20))
    store = OrbStore(data_dir=str(tmp_path), max_event_age_days=36500)
    defs, instance = build_definitions(store), dg.DagsterInstance.ephemeral()
    runner.bill_months(defs, [OCTOBER], instance)
    assert totals(store) == {"acme-20261101-USD": Decimal("3.00")}
    (first,) = snapshot_ids(store)
    assert phases(store, first) == [("basic", date(2026, 1, 1), None)]
    con = connect()
    ((number, _),) = issue_month(con, store.lake, OCTOBER, datetime(2026, 11, 2, tzinfo=UTC))
    assert number == "INV-000001"
    kept = snapshot_files(store)

    with StateStore.open(store.state_store_url) as state:
        state.apply([ChangePlan("sub", "premium", actor="ana", effective=date(2026, 10, 15))],
                    Catalog.model_validate({"plans": PLANS}))
    (difference,) = preview(store.settings, OCTOBER)
    assert (difference.before, difference.after, difference.action) == (
        Decimal("3.00"), Decimal("2.00"), "credit note")

    runner.bill_month(defs, OCTOBER, instance)
    assert totals(store) == {"acme-20261101-USD": Decimal("2.00")}
    (note,) = drafts(con, store.lake, OCTOBER)
    assert (note.head.document_type, note.head.corrects, note.head.total) == (
        "credit_note", "INV-000001", Decimal("-1.00"))
    # the first run's snapshot is as it was; the re-run read its own
    first_again, second = snapshot_ids(store)
    assert first_again == first
    assert {path: digest for path, digest in snapshot_files(store).items()
            if first in path} == kept
    assert phases(store, first) == [("basic", date(2026, 1, 1), None)]
    assert phases(store, second) == [("basic", date(2026, 1, 1), date(2026, 10, 15)),
                                     ("premium", date(2026, 10, 15), None)]
