"""A billing run killed at any of its writes never gets a month issued half old, half new.

`orb bill` re-runs October and is killed (``os._exit``, as ``kill -9``; tests/killed_run.py)
right before each of its lake writes in turn: every write point, found by running it
whole once. After each kill an issue attempt must refuse, unless the kill came before
the run's first month table (the complete run before it is issued) or after its commit
(the new run is issued); then a re-run and an issue succeed with totals that add up.

The scenario is tests/scenario.py's October (New York in USD, Tokyo in JPY, worked out in
tests/test_pipeline.py) with a 10% discount on New York's plan. Tokyo's invoices stay
548 and 1003 yen throughout. New York's invoice ny-20261101-USD:

  run A (complete): 20.00 fee + 5.60 calls (16: 10 x 0.50 + 6 x 0.10) + 1.23 tokens
      = 26.83; 10% off -2.683 -> -2.68; total 24.15.
  Then a late call on Oct 20 arrives and $5.00 of credits are granted from Oct 20.
  run B: calls 17: 10 x 0.50 + 7 x 0.10 = 5.70; subtotal 26.93; 10% off -2.693 -> -2.69;
      credits pay usage only (5.70 + 1.23 = 6.93 >= 5.00): 5.00; total 19.24.
  B's invoice beside A's adjustments would show 26.93 - 2.68 - 5.00 = 19.25 against a
  total of 19.24: the inconsistency the refusal prevents.
  A's invoice issued, then B: its correction is an adjustment invoice of
      +0.10 (calls) - 0.01 (discount) = 0.09; an issued invoice keeps its credits (none).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from assets.resources import OrbStore
from billing.catalog import Catalog
from billing.credits import Grant
from cli.main import main as orb
from invoicing import documents
from invoicing.assembly import assemble_invoices
from invoicing.issuing import IssueRefused, issue_month
from pipelines import runner
from pipelines.definitions import build_definitions
from pricing_sql.rating import price_line_items
from storage import billing_runs
from storage.billing_runs import RUN_TABLES, MixedBillingRun
from storage.duck import connect
from storage.lake import Lake
from storage.tables import REVENUE_SCHEMAS, TABLES
from tests.catalogs import write_data_dir
from tests.invoicing import basic, usage_table
from tests.killed_run import KILLED
from tests.scenario import CATALOG, OCTOBER, event, write_scenario

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent
ISSUE_REFUSAL = "re-run the month with `orb bill --period 2026-10`"
NY, TOKYO_15, TOKYO_1 = "ny-20261101-USD", "tokyo-20261015-JPY", "tokyo-20261101-JPY"
TOKYO = [("INV-000002", "invoice", TOKYO_15, Decimal("548")),
         ("INV-000003", "invoice", TOKYO_1, Decimal("1003"))]
RUN_A = [("INV-000001", "invoice", NY, Decimal("24.15")), *TOKYO]
RUN_B = [("INV-000001", "invoice", NY, Decimal("19.24")), *TOKYO]
# What is issued in the end: A's invoices and the correction B makes of New York's, or B's.
ISSUED_IN_THE_END = {"old": [*RUN_A, ("INV-000004", "adjustment_invoice", NY, Decimal("0.09"))],
                     "refused": RUN_B, "new": RUN_B}


def _store(root: Path) -> OrbStore:
    return OrbStore(data_dir=str(root), max_event_age_days=36500)


@pytest.fixture(scope="module")
def october(tmp_path_factory) -> Path:
    """October billed by run A; then a late call ingested and a grant recorded, so that
    the next run (B) changes usage, lines, adjustments, invoices and the credit ledger."""
    root = tmp_path_factory.mktemp("october")
    catalog = copy.deepcopy(CATALOG)
    pro = next(plan for plan in catalog["plans"] if plan["id"] == "pro")
    pro["adjustments"] = [{"id": "pro10", "adjustment_type": "percentage_discount",
                           "percentage_discount": "0.10"}]
    write_data_dir(root, catalog)
    write_scenario(root, catalog=False)
    defs, instance = build_definitions(_store(root)), dg.DagsterInstance.ephemeral()
    runner.bill_months(defs, [OCTOBER], instance)
    late = event("ny-late-call", "api_request", "2026-10-20T12:00:00Z", "ny")
    pq.write_table(pa.Table.from_pylist([late]), root / "landing" / "late.parquet")
    runner.ingest_landing(defs, instance)
    granted = CliRunner().invoke(orb, [
        "credits", "grant", "--customer", "ny", "--amount", "5.00", "--currency", "USD",
        "--effective", "2026-10-20", "--data-dir", str(root)])
    assert granted.exit_code == 0, granted.output
    return root


def killed_bills(runs: list[tuple[int, Path]], folder: Path) -> list[tuple[int, list[str]]]:
    """``orb bill --period 2026-10`` in each data folder, killed before write N (-1: run
    whole): each one's exit status and the tables it wrote, in order. Any other end than
    the one planned fails with the runs' output."""
    plan = {"args": ["bill", "--period", "2026-10", "--data-dir", "{data_dir}"],
            "runs": [{"kill_at": kill_at, "data_dir": str(root),
                      "writes": str(folder / f"writes-{root.name}.txt")}
                     for kill_at, root in runs]}
    plan_file = folder / "plan.json"
    plan_file.write_text(json.dumps(plan))
    # The run's own settings only: the data folder given, an ephemeral Dagster instance.
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("ORB_") and name != "DAGSTER_HOME"}
    env["ORB_MAX_EVENT_AGE_DAYS"] = "36500"
    done = subprocess.run([sys.executable, "-m", "tests.killed_run", str(plan_file)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stderr
    results = json.loads(plan_file.read_text())["runs"]
    assert [run["status"] for run in results] == [
        0 if kill_at < 0 else KILLED for kill_at, _ in runs], done.stdout + done.stderr
    return [(run["status"], Path(run["writes"]).read_text().split()
             if Path(run["writes"]).exists() else []) for run in results]


def issued(lake: Lake) -> list[tuple[str, str, str, Decimal]]:
    return sorted((head.number, head.document_type, head.invoice_id, head.total)
                  for head in documents.issued_documents(lake))


def assert_documents_add_up(lake: Lake) -> None:
    """Every issued document: total = its lines + its adjustments - credits applied."""
    heads = documents.issued_documents(lake)
    lines = documents.issued_lines(lake, [head.number for head in heads]).to_pylist()
    for head in heads:
        mine = [line for line in lines if line["number"] == head.number]
        charged = sum((line["amount"] for line in mine if line["kind"] == "line"), Decimal(0))
        adjusted = sum((line["amount"] for line in mine if line["kind"] == "adjustment"),
                       Decimal(0))
        assert (head.subtotal, head.adjustments) == (charged, adjusted), head.number
        assert head.total == charged + adjusted - head.credits_applied, head.number


def killed_at_every_write(october: Path, tmp_path: Path, share: int, shares: int) -> None:
    """The run whole once, to find its writes; then killed before each write ``n`` of
    this share (``n % shares == share``), each left month issued, re-run and issued."""
    whole = tmp_path / "whole"
    shutil.copytree(october, whole)
    ((status, writes),) = killed_bills([(-1, whole)], tmp_path)
    assert status == 0
    # Each month table once (rating_exclusions twice: usage, then pricing adds to it),
    # after the state snapshot, then the commit, then the revenue tables.
    month_writes = [i for i, table in enumerate(writes) if table in RUN_TABLES]
    assert {writes[i] for i in month_writes} == set(RUN_TABLES)
    commit = writes.index("billing_runs")
    assert writes.count("billing_runs") == 1 and commit == month_writes[-1] + 1
    assert set(writes[:month_writes[0]]) == {t for t in TABLES if t.startswith("state_")}
    assert set(writes[commit + 1:]) == set(REVENUE_SCHEMAS)

    points = range(share, len(writes), shares)
    folders = [tmp_path / f"killed-{n}" for n in points]
    for folder in folders:
        shutil.copytree(october, folder)
    killed = killed_bills(list(zip(points, folders, strict=True)), tmp_path)
    failures = []
    for n, folder, (status, written) in zip(points, folders, killed, strict=True):
        point = f"killed before write {n} ({writes[n]})"
        try:
            assert (status, written) == (KILLED, writes[:n])
            # writes[:n] done: the month is mixed from its first table on, until the commit
            path = "old" if n <= month_writes[0] else "refused" if n <= commit else "new"
            _issue_rerun_and_issue(folder, path, set(written) & set(RUN_TABLES))
        except AssertionError as failure:
            failures.append(f"{point}: {failure}")
    assert not failures, "\n".join(failures)


# Every write point, in two shares: a class each, so that `make test`'s workers
# (pytest-xdist, --dist loadscope) take one each.
class TestKilledAtEvenWrites:
    def test_a_billing_run_killed_at_any_write_never_gets_a_mixed_month_issued(
            self, october: Path, tmp_path: Path) -> None:
        killed_at_every_write(october, tmp_path, 0, 2)


class TestKilledAtOddWrites:
    def test_a_billing_run_killed_at_any_write_never_gets_a_mixed_month_issued(
            self, october: Path, tmp_path: Path) -> None:
        killed_at_every_write(october, tmp_path, 1, 2)


def test_a_billing_run_removes_the_scratch_files_killed_runs_left(october, tmp_path):
    """A run killed mid-write leaves its hidden scratch file (``.data.parquet.<uuid>.tmp``)
    in the partition; the next run removes those an hour old or older, and leaves a
    fresh one, which may be a live writer's."""
    root = tmp_path / "lake"
    shutil.copytree(october, root)
    lake = Lake(root)
    stale, fresh, other = (
        lake.table_dir("usage") / "billing_month=2026-10-01" / ".data.parquet.{}.tmp".format(
            "a" * 32),
        lake.table_dir("invoices") / "billing_month=2026-10-01" / ".data.parquet.{}.tmp".format(
            "b" * 32),
        lake.table_dir("billing_runs") / "billing_month=2026-10-01" / ".notes.tmp")
    for path in (stale, fresh, other):
        path.write_bytes(b"half a file")
    two_hours_ago = datetime.now(UTC).timestamp() - 7200
    for path in (stale, other):
        os.utime(path, (two_hours_ago, two_hours_ago))
    runner.bill_months(build_definitions(_store(root)), [OCTOBER], dg.DagsterInstance.ephemeral())
    assert not stale.exists()
    assert fresh.exists() and other.exists()  # too young; not a scratch file's name


def _issue_rerun_and_issue(root: Path, path: str, written: set[str]) -> None:
    lake, con = Lake(root), connect()
    if path == "refused":
        result = CliRunner().invoke(orb, ["invoices", "issue", "--period", "2026-10",
                                          "--data-dir", str(root)])
        assert result.exit_code == 1, result.output
        refusal = " ".join(result.output.split())
        # exactly the tables the killed run wrote differ from the complete run before it
        new = ", ".join(table for table in RUN_TABLES if table in written)
        assert f": {new} from run " in refusal and "(never completed);" in refusal, refusal
        assert refusal.endswith(ISSUE_REFUSAL)
        assert issued(lake) == []
    else:  # the kill left the month whole: the complete run before it, or the new one
        issue_month(con, lake, OCTOBER, NOW)
        assert issued(lake) == (RUN_A if path == "old" else RUN_B)
    runner.bill_months(build_definitions(_store(root)), [OCTOBER], dg.DagsterInstance.ephemeral())
    issue_month(con, lake, OCTOBER, NOW)
    assert issued(lake) == ISSUED_IN_THE_END[path]
    assert_documents_add_up(lake)
    if path != "old":
        (ny,) = [head for head in documents.issued_documents(lake) if head.invoice_id == NY]
        assert (ny.subtotal, ny.adjustments, ny.credits_applied) == (
            Decimal("26.93"), Decimal("-2.69"), Decimal("5.00"))


# -- one month, written by hand the way runs write it -----------------------------------

PLAN = basic(fee="9.99", calls="0.0137", adjustments=[
    {"id": "pct", "adjustment_type": "percentage_discount", "percentage_discount": "0.15"},
    {"id": "min", "adjustment_type": "minimum", "minimum_amount": "20.00"}])
SHOP = Catalog.model_validate({
    "metrics": [{"id": "calls", "name": "calls", "sql": "SELECT count(*) FROM events"}],
    "plans": [PLAN],
    "customers": [{"id": f"c{i}", "name": f"C{i}"} for i in range(3)],
    "subscriptions": [{"id": f"s{i}", "customer_id": f"c{i}", "plan_id": "basic",
                       "start_date": "2026-01-01"} for i in range(3)]})


def computed_schema(table: str) -> pa.Schema:
    schema = TABLES[table].schema
    return schema.remove(schema.get_field_index("run_id"))


def month_of(quantities: list[int], credits: list[Decimal]) -> dict[str, pa.Table]:
    """Every month table of a run of SHOP's October: ``quantities`` calls of s0.., and a
    grant of ``credits`` to c0.. effective before the month."""
    con = connect()
    usage = usage_table({(f"s{i}:20261001-20261101", "calls"): q
                         for i, q in enumerate(quantities)})
    priced = price_line_items(con, SHOP, OCTOBER, usage)
    grants = [Grant(f"g{i}", f"c{i}", "USD", amount, Decimal(0), date(2026, 9, 1), None)
              for i, amount in enumerate(credits) if amount]
    invoiced = assemble_invoices(con, SHOP, OCTOBER, priced.line_items, grants, {}, {})
    computed = {"usage": usage, "line_items": priced.line_items,
                "sub_line_items": priced.sub_line_items, "invoices": invoiced.invoices,
                "invoice_adjustments": invoiced.adjustments, "credit_ledger": invoiced.ledger}
    return {table: computed.get(table, computed_schema(table).empty_table())
            for table in RUN_TABLES}


def write_run(lake: Lake, run_id: str, tables: dict[str, pa.Table], commit: bool = True) -> None:
    for table, rows in tables.items():
        billing_runs.write(lake, table, OCTOBER, run_id, rows)
    if commit:
        billing_runs.commit(lake, OCTOBER, run_id, NOW)


def test_issuing_checks_the_totals_of_what_it_issues_again(tmp_path):
    lake = Lake(tmp_path)
    month = month_of([100, 0, 2000], [Decimal(0)] * 3)
    write_run(lake, "run-a", month)
    # c0: 9.99 fee + 100 x 0.0137 = 1.37 -> 11.36; 15% off -1.70; 9.66 < 20.00: +10.34
    c0 = "c0-20261101-USD"
    assert {r["invoice_id"]: r["total"] for r in month["invoices"].to_pylist()}[c0] == Decimal(
        "20.00")
    # The file of a completed run, its totals broken (a bug, a hand edit): refused whole.
    invoices = month["invoices"]
    broken = pc.if_else(pc.equal(invoices["invoice_id"], c0),
                        pa.scalar(Decimal("20.01"), invoices.schema.field("total").type),
                        invoices["total"])
    billing_runs.write(lake, "invoices", OCTOBER, "run-a",
                       invoices.set_column(invoices.schema.get_field_index("total"), "total",
                                           broken))
    with pytest.raises(IssueRefused, match=f"{c0}: total is not subtotal \\+ adjustments - "
                                           "credits \\+ tax; re-run the month"):
        issue_month(connect(), lake, OCTOBER, NOW)
    assert documents.issued_documents(lake) == []


def test_a_run_whose_tables_another_replaced_never_completes(tmp_path):
    lake = Lake(tmp_path)
    write_run(lake, "run-a", month_of([1, 2, 3], [Decimal(0)] * 3), commit=False)
    billing_runs.write(lake, "invoices", OCTOBER, "run-b",
                       month_of([4, 5, 6], [Decimal(0)] * 3)["invoices"])
    with pytest.raises(MixedBillingRun, match="billing run run-a of 2026-10 cannot complete: "
                                              "invoices from run run-b;"):
        billing_runs.commit(lake, OCTOBER, "run-a", NOW)
    with pytest.raises(MixedBillingRun, match=r"are not all this run's \(run-a\): invoices "
                                              "from run run-b; re-run"):
        billing_runs.read_month(lake, OCTOBER, ["line_items", "invoices"], "run-a")
    assert billing_runs.completed_runs(lake, OCTOBER) == []


def test_a_month_written_before_runs_were_recorded_is_read_until_a_run_touches_it(tmp_path):
    lake = Lake(tmp_path)
    month = month_of([10, 20, 30], [Decimal(0)] * 3)
    for table in ("line_items", "invoice_adjustments", "invoices", "invoice_corrections"):
        lake.write_partition(table, "billing_month", OCTOBER, month[table])
    before = billing_runs.read_month(lake, OCTOBER, ["invoices"])
    assert before.run_id is None and before["invoices"].equals(month["invoices"])
    # A run of this version, killed after its first write: the month is no longer whole.
    billing_runs.write(lake, "usage", OCTOBER, "run-x", month["usage"])
    with pytest.raises(MixedBillingRun) as refused:
        issue_month(connect(), lake, OCTOBER, NOW)
    assert str(refused.value) == (
        "billing month 2026-10 has no completed billing run: usage from run run-x (never "
        "completed); rating_exclusions, sub_line_items, credit_ledger, invoice_taxes missing; "
        "line_items, "
        "invoices, invoice_adjustments, invoice_corrections no run id (written before "
        f"billing runs were recorded); {ISSUE_REFUSAL}")
    write_run(lake, "run-y", month)
    assert [n for n, _ in issue_month(connect(), lake, OCTOBER, NOW)] == [
        "INV-000001", "INV-000002", "INV-000003"]


ORDERED = st.permutations(RUN_TABLES)


@settings(max_examples=30, deadline=None)
@given(first=st.lists(st.integers(0, 3000), min_size=3, max_size=3),
       second=st.lists(st.integers(0, 3000), min_size=3, max_size=3),
       credits=st.lists(st.sampled_from([Decimal(0), Decimal("0.01"), Decimal("7.50"),
                                         Decimal("100.00")]), min_size=3, max_size=3),
       order=ORDERED, written=st.integers(0, len(RUN_TABLES)), commit=st.booleans())
def test_issued_documents_always_add_up(first, second, credits, order, written, commit):
    """Run A completes; run B writes some of its tables, in any order, and may try to
    complete. Issuing refuses a mixed month; what it issues is one run's, and every
    document's total is its lines + adjustments - credits."""
    run_a, run_b = month_of(first, credits), month_of(second, credits[::-1])
    with tempfile.TemporaryDirectory() as folder:
        lake = Lake(folder)
        write_run(lake, "run-a", run_a)
        write_run(lake, "run-b", {t: run_b[t] for t in order[:written]}, commit=False)
        whole = written == len(RUN_TABLES)
        if commit and whole:
            billing_runs.commit(lake, OCTOBER, "run-b", NOW)
        elif commit:
            with pytest.raises(MixedBillingRun, match="cannot complete"):
                billing_runs.commit(lake, OCTOBER, "run-b", NOW)
        try:
            issue_month(connect(), lake, OCTOBER, NOW)
        except MixedBillingRun as refused:
            assert written and not (commit and whole), refused
            return
        assert not written or (commit and whole)
        source = run_b if written else run_a
        assert_documents_add_up(lake)
        expected = {row["invoice_id"]: (row["subtotal"], row["adjustments"],
                                        row["credits_applied"], row["total"])
                    for row in source["invoices"].to_pylist()}
        assert {head.invoice_id: (head.subtotal, head.adjustments, head.credits_applied,
                                  head.total)
                for head in documents.issued_documents(lake)} == expected
