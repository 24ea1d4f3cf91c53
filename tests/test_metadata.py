"""The metadata Dagster shows for a billed month (docs/operations.md#materialization-metadata),
on tests/scenario.py's October 2026, with its hand-worked amounts:

invoices: New York 26.83 USD (20.00 + 5.60 + 1.23), Tokyo 548 JPY (Oct 15) and 1003 JPY
(Nov 1); no credits, so amount due = total. Billed per currency: 26.83 USD = 2683 cents,
548 + 1003 = 1551 JPY (no minor unit: 1551). Six line items (three each).
MRR at October's end (docs/revenue.md): New York's only fee line here is November's
(October's was billed on Oct 1, by September's run, not in this lake), so its MRR is
October's usage, 5.60 + 1.23 = 6.83 USD; Tokyo's Oct 15 fee line spans Oct 31 at its
full rate, 1000, plus 3 of usage = 1003 JPY.
"""

import re
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from assets.checks import invoice_totals_add_up
from assets.partitions import first_month
from storage import billing_runs
from storage.tables import TABLES
from tests.scenario import OCTOBER


def latest(instance, asset: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    return event.asset_materialization.metadata


def test_row_count_and_column_schema_are_the_lake_files(billed):
    store, _, instance = billed
    for table, rows in (("invoices", 3), ("line_items", 6), ("usage", 3)):
        metadata = latest(instance, table)
        file = store.lake.partition_file(table, "billing_month", OCTOBER)
        assert metadata["dagster/row_count"] == dg.MetadataValue.int(rows), table
        assert pq.read_metadata(file).num_rows == rows, table
        declared = [(c.name, c.type) for c in metadata["dagster/column_schema"].schema.columns]
        assert declared == [(f.name, str(f.type)) for f in TABLES[table].schema], table
        assert [name for name, _ in declared] == pq.read_schema(file).names, table
    invoice_columns = [c.name for c in latest(instance, "invoices")[
        "dagster/column_schema"].schema.columns]
    assert invoice_columns[:3] == ["invoice_id", "customer_id", "currency"]
    assert invoice_columns[-3:] == ["amount_due", "status", "run_id"]
    types = {c.name: c.type for c in latest(instance, "invoices")[
        "dagster/column_schema"].schema.columns}
    assert (types["total"], types["invoice_date"]) == ("decimal128(38, 4)", "date32[day]")


def test_money_totals_are_exact_per_currency(billed):
    _, _, instance = billed
    invoices = latest(instance, "invoices")
    money = {key: value.value for key, value in invoices.items()
             if key.startswith(("billed", "amount_due"))}
    assert money == {"billed_usd": "26.83", "billed_minor_usd": 2683,
                     "amount_due_usd": "26.83", "amount_due_minor_usd": 2683,
                     "billed_jpy": "1551", "billed_minor_jpy": 1551,
                     "amount_due_jpy": "1551", "amount_due_minor_jpy": 1551}
    assert isinstance(invoices["billed_minor_usd"], dg.IntMetadataValue)
    mrr = {key: value.value for key, value in latest(instance, "mrr").items()
           if key.startswith("mrr")}
    assert mrr == {"mrr_usd": "6.83", "mrr_minor_usd": 683,
                   "mrr_jpy": "1003", "mrr_minor_jpy": 1003}


def test_reports_are_linked(billed):
    store, _, instance = billed
    report = latest(instance, "revenue_report")["report"]
    assert report.url.endswith("/reports/revenue/2026-10.html")
    assert Path(report.url.removeprefix("file://")).is_file()
    drafts = Path(latest(instance, "invoice_documents")["report"].url.removeprefix("file://"))
    assert sorted(p.name for p in drafts.iterdir()) == [
        "ny-20261101-USD.html", "tokyo-20261015-JPY.html", "tokyo-20261101-JPY.html"]


def test_a_failing_check_shows_the_failing_invoice_as_a_table(billed):
    store, defs, instance = billed
    # A run whose invoices do not add up: New York's total one cent over its lines.
    run_id = str(uuid.uuid4())
    month = billing_runs.read_month(store.lake, OCTOBER, ["invoices", "line_items",
                                                          "invoice_adjustments", "invoice_taxes"])
    invoices = month["invoices"]
    bad = pc.if_else(pc.equal(invoices["invoice_id"], "ny-20261101-USD"),
                     pa.scalar(Decimal("26.84"), invoices.schema.field("total").type),
                     invoices["total"])
    planted = {**month.tables, "invoices": invoices.set_column(
        invoices.schema.get_field_index("total"), "total", bad)}
    for table, rows in planted.items():
        billing_runs.write(store.lake, table, OCTOBER, run_id, rows)
    only_check = dg.define_asset_job("invoice_check",
                                     selection=dg.AssetSelection.checks(invoice_totals_add_up))
    job = dg.Definitions.merge(defs, dg.Definitions(jobs=[only_check])).resolve_job_def(
        "invoice_check")
    # Only a check selected: Dagster takes the partition from the run's tag, not a key.
    result = job.execute_in_process(instance=instance, tags={"dagster/partition": "2026-10-01"},
                                    run_id=run_id, raise_on_error=False)
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    failing = evaluation.metadata["first"]
    assert isinstance(failing, dg.TableMetadataValue)
    assert [c.name for c in failing.schema.columns] == ["invoice_id", "problem"]
    assert [r.data for r in failing.records] == [
        {"invoice_id": "ny-20261101-USD",
         "problem": "total is not subtotal + adjustments - credits + tax"}]
    assert evaluation.metadata["failures"].value == 1


def test_every_asset_has_an_owner_code_reference_and_a_rendering_description(billed):
    _, defs, _ = billed
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners == ["team:billing"], key
        # Markdown drops an <html-like> word outside a code span.
        assert "<" not in re.sub(r"`[^`]*`", "", node.description or ""), key
        if node.is_materializable and key.path[0] != "events":
            (reference,) = node.metadata["dagster/code_references"].code_references
            assert Path(reference.file_path).parent.name == "assets", key
    assert "`reports/revenue/<YYYY-MM>.html`" in graph.get(
        dg.AssetKey("revenue_report")).description


def test_first_month_setting():
    assert first_month(None, "2025-01-01") == "2025-01-01"
    assert first_month("2026-09", "2025-01-01") == "2026-09-01"
    with pytest.raises(ValueError, match=r"ORB_FIRST_MONTH='2026-13' is not a month YYYY-MM"):
        first_month("2026-13", "2025-01-01")
    with pytest.raises(ValueError, match="before ORB_FIRST_DAY=2025-01-01"):
        first_month("2024-12", "2025-01-01")
    shown = subprocess.run(
        [sys.executable, "-c", "from assets.partitions import MONTHLY, DAILY; "
         "print(MONTHLY.get_first_partition_key(), DAILY.get_first_partition_key())"],
        env={"ORB_FIRST_MONTH": "2026-09", "PATH": ""}, capture_output=True, text=True,
        check=True, cwd=Path(__file__).parent.parent)
    assert shown.stdout.split() == ["2026-09-01", "2025-01-01"]
