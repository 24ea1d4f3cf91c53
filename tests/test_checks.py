"""Asset checks: they pass on a correct run and catch what they are for."""

from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from invoicing.sql import load_sql
from pipelines import runner
from storage.duck import connect
from tests.scenario import OCTOBER


def evaluations(defs, instance, check_name):
    """Statuses of a check's executions, newest first."""
    key = next(k for k in defs.resolve_asset_graph().asset_check_keys if k.name == check_name)
    history = instance.event_log_storage.get_asset_check_execution_history(key, limit=10)
    return [record.status.value for record in history]


def test_billing_checks_pass_in_every_run(billed):
    _, defs, instance = billed
    assert evaluations(defs, instance, "invoice_totals_add_up") == ["SUCCEEDED"]
    assert evaluations(defs, instance, "line_items_match_usage") == ["SUCCEEDED"]


def test_lake_checks_pass_and_catch_a_duplicate_key(billed):
    store, defs, instance = billed
    job = defs.resolve_job_def("check_lake")
    result = job.execute_in_process(instance=instance)
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == {
        "event_keys_unique": True, "event_customers_known": True,
        "usage_matches_the_event_lake": True}
    # A file written into the lake behind ingestion's back, repeating a key.
    day = store.lake.table_dir("events") / "event_date=2026-10-10"
    first = sorted(day.glob("*.parquet"))[0]
    pq.write_table(pq.read_table(first).slice(0, 1), day / "sneaked.parquet")
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["event_keys_unique"].passed
    assert checks["event_keys_unique"].metadata["failures"].value == 1


def _tables(store):
    return {t: pq.read_table(store.lake.partition_file(t, "billing_month", OCTOBER))
            for t in ("invoices", "line_items", "invoice_adjustments", "invoice_taxes")}


@pytest.mark.parametrize(("column", "value", "problem"), [
    ("total", Decimal("26.84"), "total is not subtotal + adjustments - credits + tax"),
    ("tax", Decimal("0.01"), "tax is not the sum of its tax lines"),
    ("subtotal", Decimal("26.84"), "subtotal is not the sum of its lines"),
    ("credits_applied", Decimal("-1"), "negative credits"),
])
def test_invoice_check_names_the_problem(billed, column, value, problem):
    store, _, _ = billed
    tables = _tables(store)
    invoices = tables["invoices"]
    index = invoices.schema.get_field_index(column)
    changed = pc.if_else(pc.equal(invoices["invoice_id"], "ny-20261101-USD"),
                         pa.scalar(value, invoices.schema.field(column).type), invoices[column])
    tables["invoices"] = invoices.set_column(index, column, changed)
    con = connect()
    for name, table in tables.items():
        con.register(name, table)
    assert ("ny-20261101-USD", problem) in con.sql(load_sql("check_invoice_totals")).fetchall()


def test_correct_month_has_no_invoice_problems(billed):
    store, _, _ = billed
    con = connect()
    for name, table in _tables(store).items():
        con.register(name, table)
    assert con.sql(load_sql("check_invoice_totals")).fetchall() == []


def test_usage_reconciliation_names_the_windows_late_events_changed(billed):
    store, defs, instance = billed
    job = defs.resolve_job_def("check_lake")

    def reconcile():
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        return next(e for e in result.get_asset_check_evaluations()
                    if e.check_name == "usage_matches_the_event_lake")

    assert reconcile().passed
    # A call New York made on Oct 20, arriving after October was billed.
    late = {"event_name": "api_request", "timestamp": "2026-10-20T12:00:00Z",
            "customer_id": "ny", "idempotency_key": "ny-late-call", "properties": "{}"}
    pq.write_table(pa.Table.from_pylist([late]), store.lake.landing / "late.parquet")
    runner.ingest_landing(defs, instance)
    evaluation = reconcile()
    assert not evaluation.passed
    # the calls of New York's October window: 16 billed, 17 in the lake now
    assert [record.data for record in evaluation.metadata["first"].records] == [
        {"month": "2026-10", "window_id": "sub_ny:20261001-20261101", "metric_id": "calls",
         "group_values": "[]", "billed": "16.000000000", "now": "17.000000000"}]
