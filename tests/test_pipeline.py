"""The whole asset graph on a small scenario, through Dagster, with hand-worked invoices.

New York (America/New_York, plan pro, USD), October 2026:
  calls: 15 in mid-October + 1 at 2026-11-01T03:30Z (still Oct 31 in New York) = 16;
         the one at 2026-10-01T03:59:59Z is September there. Re-sent key ny-call-3 counts once.
         graduated: 10 x 0.50 + 6 x 0.10 = 5.60
  tokens: 1200 + 25 (sent by external id 'acme') = 1225 x 0.001 = 1.225 -> 1.23 (half up)
  The run that closes October makes the invoice dated Nov 1: October's usage in
  arrears plus November's platform fee in advance, 20.00 + 5.60 + 1.23 = 26.83.
Tokyo (Asia/Tokyo, plan jp, JPY), subscription from 2026-10-15 local:
  Oct 15 invoice: the platform fee in advance for Oct 15 - Nov 1, 17 of October's 31
         days: 1000 x 17 / 31 = 548.39 -> 548 yen.
  Nov 1 invoice: calls 8 on Oct 20 + 2 at 2026-10-31T14:59:59Z = 10; not the one before
         the start (2026-10-14T14:59:59Z) nor 2026-10-31T15:00Z (November 1st in Tokyo).
         10 x 0.25 = 2.5 yen -> 3 yen (half up); November's fee 1000; total 1003
"""

import hashlib
import logging
import threading
from concurrent import futures
from datetime import date
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.resources import OrbStore
from billing.catalog import CatalogError
from pipelines import runner
from storage import billing_runs
from storage.lake import Lake
from storage.write_behind import WriteBehind
from tests.scenario import OCTOBER, scenario_bytes, write_scenario


def read(store, table, key="billing_month", value=OCTOBER):
    return pq.read_table(store.lake.partition_file(table, key, value)).to_pylist()


def test_definitions_load():
    from pipelines.definitions import defs

    dg.Definitions.validate_loadable(defs)
    assert {job.name for job in defs.resolve_all_job_defs()} >= {
        "ingest_events", "monthly_billing", "refresh_lake_views"}


def test_october_invoices_match_the_hand_worked_amounts(billed):
    store, _, _ = billed
    invoices = {row["invoice_id"]: row for row in read(store, "invoices")}
    assert {key: row["total"] for key, row in invoices.items()} == {
        "ny-20261101-USD": Decimal("26.83"),
        "tokyo-20261015-JPY": Decimal("548"),
        "tokyo-20261101-JPY": Decimal("1003"),
    }
    assert invoices["ny-20261101-USD"]["due_date"] == date(2026, 12, 1)  # net 30
    lines = {row["line_item_id"]: (row["invoice_id"], row["quantity"], row["amount"])
             for row in read(store, "line_items")}
    assert lines == {
        "sub_ny:pro_platform:20261101": ("ny-20261101-USD", Decimal(1), Decimal("20.00")),
        "sub_ny:pro_calls:20261001": ("ny-20261101-USD", Decimal(16), Decimal("5.60")),
        "sub_ny:pro_tokens:20261001": ("ny-20261101-USD", Decimal(1225), Decimal("1.23")),
        "sub_tokyo:jp_platform:20261015": ("tokyo-20261015-JPY", Decimal(1), Decimal("548")),
        "sub_tokyo:jp_platform:20261101": ("tokyo-20261101-JPY", Decimal(1), Decimal("1000")),
        "sub_tokyo:jp_calls:20261015": ("tokyo-20261101-JPY", Decimal(10), Decimal("3")),
    }
    for invoice_id, invoice in invoices.items():
        own = [amount for (invoice, _, amount) in lines.values() if invoice == invoice_id]
        assert invoice["total"] == sum(own)


def test_quarantine_keeps_reason_and_source(billed):
    store, _, _ = billed
    batches = {row["file"]: row for row in pq.read_table(
        store.lake.table_dir("batches"), partitioning=None).to_pylist()}
    assert {name: (b["rows"], b["accepted"], b["rejected"], b["duplicates"])
            for name, b in batches.items()} == {
        "batch-1.parquet": (31, 31, 0, 0),
        "batch-2.parquet": (3, 0, 3, 1),
    }
    second = batches["batch-2.parquet"]["batch_id"]
    rows = read(store, "quarantine", "batch_id", second)
    found = {(r["idempotency_key"], r["reject_reason"], r["source_file"], r["source_row"])
             for r in rows}
    assert found == {
        ("ny-call-3", "duplicate idempotency_key", "batch-2.parquet", 1),
        ("ghost-1", "unknown customer_id", "batch-2.parquet", 2),
        ("bad-ts", "timestamp is not an ISO 8601 instant", "batch-2.parquet", 3),
    }
    duplicate = next(r for r in rows if r["idempotency_key"] == "ny-call-3")
    first = batches["batch-1.parquet"]["batch_id"]
    assert duplicate["reject_detail"] == f"already ingested in batch {first}"
    # the landing folder is emptied; what was received is kept under raw/
    assert list(store.lake.landing.iterdir()) == []
    assert store.lake.raw_file(second).read_bytes() == scenario_bytes()["batch-2.parquet"]


def test_documents_are_written(billed):
    store, _, _ = billed
    html = (store.lake.reports / "invoices" / "2026-10" / "ny-20261101-USD.html").read_text()
    assert "<td>Oct 1, 2026 – Oct 31, 2026</td>" in html  # usage, in arrears
    assert "<td>Nov 1, 2026 – Nov 30, 2026</td>" in html  # the fee, in advance
    assert '<td class="num">$26.83</td>' in html
    assert (store.lake.reports / "revenue" / "2026-10.html").exists()
    by_plan = [r for r in read(store, "revenue_by_dimension") if r["dimension"] == "plan"]
    assert {(r["currency"], r["billed"]) for r in by_plan} == {
        ("USD", Decimal("26.83")), ("JPY", Decimal("1551"))}


def test_rerunning_a_partition_is_byte_identical(billed):
    """Every output of a re-run month is byte-identical but for the run id its month
    tables carry; each run keeps its own state snapshot, holding the same customers and
    subscriptions, and its own commit."""
    store, defs, instance = billed

    def fingerprint():
        files = sorted((store.lake.root / "lake").rglob("*.parquet"))
        return {str(f): digest(f) for f in files}

    def digest(path):
        if path.parent.parent.name not in billing_runs.RUN_TABLES:
            return hashlib.sha256(path.read_bytes()).hexdigest()
        rows = pq.read_table(path, partitioning=None)
        return rows.drop_columns(["run_id"]), set(rows["run_id"].to_pylist())

    def outputs(prints):
        # batch records hold the time they were committed, snapshots and commits are kept
        # per run, and the run id of the month tables is the run's; nothing else moves
        return {path: print_[0] if isinstance(print_, tuple) else print_
                for path, print_ in prints.items() if "/batches/" not in path
                and "/state_" not in path and "/billing_runs/" not in path}

    def run_ids(prints):
        return set().union(*(print_[1] for print_ in prints.values()
                             if isinstance(print_, tuple)))

    def snapshots():
        return sorted((store.lake.root / "lake" / "state_snapshots").rglob("*.parquet"))

    before = fingerprint()
    runner.bill_months(defs, [OCTOBER], instance)
    assert outputs(fingerprint()) == outputs(before)
    (first_run,), (second_run,) = run_ids(before), run_ids(fingerprint())
    assert second_run != first_run
    assert billing_runs.completed_runs(store.lake, OCTOBER) == [second_run, first_run]
    first, second = snapshots()
    # the second run's snapshot (7 tables: 6 and its invoicing thresholds) and commit
    assert len(fingerprint()) == len(before) + 8
    content = [pq.read_table(store.lake.table_dir("state_subscriptions") / path.parent.name
                             / path.name).drop_columns(["snapshot_id"])
               for path in (first, second)]
    assert content[0].equals(content[1])
    # sending both files again ingests nothing new
    write_scenario(store.lake.root, catalog=False)
    runner.bill_months(defs, [OCTOBER], instance)
    assert outputs(fingerprint()) == outputs(before)
    # 8 event days (Oct 1, 5, 6, 10, 14, 20, 31, Nov 1) and their hour and day rollups,
    # October's and November's rollup compactions, 2 quarantine and 2 batch records,
    # the state snapshot (7 tables), usage, rating exclusions, line items, sub line
    # items, invoices, adjustments, taxes, credit ledger, corrections, the run's commit
    # and 7 revenue tables (the key index is numpy arrays, not Parquet)
    assert len(before) == 54


def test_unsafe_metric_sql_stops_billing_before_anything_runs(tmp_path):
    write_scenario(tmp_path)
    path = tmp_path / "catalog" / "catalog.yaml"
    path.write_text(path.read_text().replace(
        "SELECT count(*) FROM events WHERE event_name = 'api_request'",
        "SELECT count(*) FROM read_csv('/etc/passwd')"))
    with pytest.raises(CatalogError, match="metric 'calls': line 1, column 22: a metric must "
                                           "select FROM events"):
        OrbStore(data_dir=str(tmp_path)).current_catalog()


def test_landing_sensor_requests_a_run_for_waiting_files(tmp_path):
    from pipelines.ingestion import landing_sensor

    store = OrbStore(data_dir=str(tmp_path))
    (tmp_path / "landing").mkdir()
    context = dg.build_sensor_context(resources={"store": store})
    assert isinstance(landing_sensor(context), dg.SkipReason)
    (tmp_path / "landing" / "a.jsonl").write_text("{}\n")
    (tmp_path / "landing" / ".uploading.jsonl").write_text("{}\n")
    request = landing_sensor(dg.build_sensor_context(resources={"store": store}))
    assert request.run_config["ops"]["ingest"]["config"]["files"] == [
        str(tmp_path.resolve() / "landing" / "a.jsonl")]


def test_a_steps_tables_are_written_behind_only_when_the_run_goes_on_to_what_waits_for_them(
        billed, monkeypatch):
    """The rating steps hand their tables to the lake's writer thread when the run goes on
    to the invoices step (whose writes wait for them), the invoices step its tables when
    the run goes on to its commit (which waits for them); a run that stops before writes
    them in the steps themselves."""
    store, defs, instance = billed
    writers: dict[str, set[str]] = {}
    write_file = Lake.write_file_now

    def recorded(lake, table, *args, **kwargs):
        writers.setdefault(table, set()).add(threading.current_thread().name.split("_")[0])
        return write_file(lake, table, *args, **kwargs)

    monkeypatch.setattr(Lake, "write_file_now", recorded)
    runner.bill_month(defs, OCTOBER, instance)
    rating = ("usage", "rating_exclusions", "line_items", "sub_line_items")
    invoicing = ("invoices", "invoice_adjustments", "credit_ledger", "invoice_taxes")
    assert {table: writers[table] for table in (*rating, *invoicing)} == {
        table: {"lake-writer"} for table in (*rating, *invoicing)}
    assert billing_runs.read_month(store.lake, OCTOBER, billing_runs.RUN_TABLES).run_id

    job = defs.resolve_job_def("monthly_billing")
    # stopping after pricing, then after the invoices step (before the commit)
    for then, in_steps in (((), rating), (invoicing, invoicing)):
        writers.clear()
        done = job.execute_in_process(
            instance=instance, partition_key=OCTOBER.isoformat(), asset_selection=[
                dg.AssetKey(key) for key in ("state_snapshot", *rating[:1], *rating[2:],
                                             *then)])
        assert done.success
        assert {table: writers[table] for table in in_steps} == {
            table: {"MainThread"} for table in in_steps}


@pytest.mark.parametrize(("error", "told"), [
    (OSError(28, "No space left on device"), "OSError: [Errno 28] No space left on device"),
    (pa.ArrowInvalid("Integer value 300 not in range: -128 to 127"),
     "ArrowInvalid: Integer value 300 not in range: -128 to 127")])
def test_a_failed_write_behind_fails_its_run_and_not_the_next(billed, monkeypatch, error,
                                                             told):
    """The disk (or the Parquet writer) refuses the line items the price step handed to
    the writer thread: the step that reads them fails with that error, not with a
    missing file; the next run in the process is not failed by it, only warned."""
    store, defs, instance = billed
    write_file = Lake.write_file_now

    def full_disk(lake, table, *args, **kwargs):
        if table == "line_items":
            raise error
        return write_file(lake, table, *args, **kwargs)

    def once_tried(writer, path):
        # a reader of a file asks after the writer thread has tried it, as it does when
        # the writes queued before it are done: else the check may read the rows from
        # memory, and the invoices step is the first to be told (a race, not the point)
        with writer._lock:
            pending = writer._pending.get(path)
        if pending is not None:
            futures.wait([pending[1]])
        return rows(writer, path)

    rows = WriteBehind.rows
    monkeypatch.setattr(WriteBehind, "rows", once_tried)
    monkeypatch.setattr(Lake, "write_file_now", full_disk)
    job = defs.resolve_job_def("monthly_billing")
    failed = job.execute_in_process(instance=instance, partition_key=OCTOBER.isoformat(),
                                    raise_on_error=False)
    failures = {event.step_key: event.event_specific_data.error.cause.message
                for event in failed.all_events if event.event_type_value == "STEP_FAILURE"}
    # the first reader of the line items: the check on them, before invoices
    assert {step: message.removeprefix("pyarrow.lib.") for step, message in
            failures.items()} == {"line_items_line_items_match_usage": f"{told}\n"}

    monkeypatch.setattr(Lake, "write_file_now", write_file)
    again = job.execute_in_process(instance=instance, partition_key=OCTOBER.isoformat())
    assert again.success
    assert billing_runs.read_month(store.lake, OCTOBER, billing_runs.RUN_TABLES).run_id == \
        again.run_id
    warned = [log.user_message for log in instance.all_logs(again.run_id)
              if not log.is_dagster_event and log.level == logging.WARNING]
    assert warned == [f"a write an earlier billing run left behind failed: {told}"]
