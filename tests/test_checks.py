"""Asset checks: they pass on a correct run and catch what they are for."""

from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pricing_sql.loader import load_sql
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
        "event_keys_unique": True, "event_customers_known": True}
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
            for t in ("invoices", "line_items", "invoice_adjustments")}


@pytest.mark.parametrize(("column", "value", "problem"), [
    ("total", Decimal("26.84"), "total is not subtotal + adjustments - credits"),
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
