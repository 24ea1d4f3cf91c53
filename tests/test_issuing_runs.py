"""Issuing as one set-based run: one file per table per run, committed by its heads.

A run writes lines, then 'issued' events, then heads (its commit); a crash after any
write before the last leaves no document, and the re-run hands out the same numbers
once, with every document, line and event exactly once."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pytest

from invoicing import documents
from invoicing.issuing import drafts, issue_month
from payments.manual import ManualProcessor
from payments.run import run_payments
from storage.duck import connect
from storage.lake import Lake
from tests.test_payments import ISSUED, OCTOBER, issued_lake, write_payments

FEES = {"a": ("USD", "100.00"), "b": ("USD", "20.00"), "c": ("USD", "5.00")}


def test_a_crash_mid_issue_leaves_nothing_and_the_rerun_issues_once(tmp_path, monkeypatch):
    con = connect()
    real_issue = documents.issue_all
    monkeypatch.setattr(documents, "issue_all", lambda lake, due, at: [])
    lake, _ = issued_lake(tmp_path, FEES)  # billed, nothing issued yet
    monkeypatch.setattr(documents, "issue_all", real_issue)
    expected = [d.head.invoice_id for d in drafts(con, lake, OCTOBER)]
    assert len(expected) == 3
    write = Lake.write_file_now
    for crash_after in (0, 1, 2):
        writes: list[str] = []

        def crashing(self, table, *args, crash_after=crash_after, writes=writes, **kwargs):
            if len(writes) == crash_after:
                raise RuntimeError("killed")
            writes.append(table)
            return write(self, table, *args, **kwargs)

        monkeypatch.setattr(Lake, "write_file_now", crashing)
        with pytest.raises(RuntimeError, match="killed"):
            issue_month(con, lake, OCTOBER, ISSUED)
        monkeypatch.setattr(Lake, "write_file_now", write)
        assert documents.issued_documents(lake) == []
        assert documents.statuses(con, lake) == {}
        assert documents.issued_lines(lake, ["INV-000001"]).num_rows == 0
        assert documents.status_of(lake, "INV-000001") is None
        assert len(drafts(con, lake, OCTOBER)) == 3
    issued = issue_month(con, lake, OCTOBER, ISSUED)
    assert [n for n, _ in issued] == ["INV-000001", "INV-000002", "INV-000003"]
    assert [d.head.invoice_id for _, d in issued] == expected
    # the crashed runs' debris is gone: each table holds exactly this run's file
    for table in ("issued_documents", "issued_lines", "document_events"):
        assert len(list(lake.table_dir(table).glob("*/*.parquet"))) == 1, table
    numbers = documents.issued_heads(lake)["number"].to_pylist()
    assert numbers == ["INV-000001", "INV-000002", "INV-000003"]
    assert documents.issued_lines(lake, numbers).num_rows == 3  # the fee of each
    assert documents.statuses(con, lake) == dict.fromkeys(numbers, "issued")
    assert issue_month(con, lake, OCTOBER, ISSUED) == []
    # a status change finds its document's run; numbering goes on from the heads
    documents.change_status(lake, "INV-000002", "paid", ISSUED, "wire")
    assert documents.status_of(lake, "INV-000002") == "paid"
    assert documents.status_of(lake, "INV-000001") == "issued"
    with pytest.raises(ValueError, match="is paid"):
        documents.change_status(lake, "INV-000002", "void", ISSUED)
    assert documents.statuses(con, lake) == {"INV-000001": "issued", "INV-000002": "paid",
                                             "INV-000003": "issued"}
    assert documents.next_numbers(lake)["INV"] == 4


def test_a_payment_run_writes_its_status_changes_as_one_file_per_issuing_run(tmp_path):
    con = connect()
    lake, catalog = issued_lake(tmp_path, FEES)  # a, b and c in one issuing run
    file = tmp_path / "payments.csv"
    write_payments(file, "INV-000001,100.00,USD,2026-11-03,w1",
                   "INV-000002,20.00,USD,2026-11-03,w2")
    assert run_payments(lake, ManualProcessor(file), ISSUED, catalog).paid == [
        "INV-000001", "INV-000002"]
    (run,) = lake.table_dir("document_events").iterdir()
    changes = sorted(p.name for p in run.glob("changes-*.parquet"))
    assert len(changes) == 1 and sorted(p.name for p in run.iterdir()) == [
        *changes, "issued.parquet"]
    assert documents.statuses(con, lake) == {"INV-000001": "paid", "INV-000002": "paid",
                                             "INV-000003": "issued"}
    documents.change_status(lake, "INV-000003", "void", ISSUED, "wrong address")
    assert len(list(run.glob("changes-*.parquet"))) == 2
    assert [documents.status_of(lake, f"INV-00000{n}") for n in (1, 2, 3, 4)] == [
        "paid", "paid", "void", None]
    with pytest.raises(ValueError, match="INV-000003 is void"):  # nothing of it written
        documents.change_statuses(lake, [
            documents.StatusChange("INV-000003", "paid", ISSUED),
            documents.StatusChange("INV-000001", "void", ISSUED)], ISSUED)
    assert len(list(run.glob("changes-*.parquet"))) == 2


def _to_per_document_layout(lake: Lake) -> None:
    """Rewrite a lake's issuing runs as lakes before 2026-12-03 held them."""
    tables = {table: documents._read(lake, table, schema) for table, schema in (
        ("issued_documents", documents.HEADS), ("issued_lines", documents.LINES),
        ("document_events", documents.EVENTS))}
    for table, rows in tables.items():
        schema = rows.schema
        for number in sorted(set(rows["number"].to_pylist())):
            mine = rows.filter(pa.compute.equal(rows["number"], number))
            if table == "document_events":
                for event in mine.to_pylist():
                    lake.write_file(table, "number", number, f"{event['seq']:06d}.parquet",
                                    pa.Table.from_pylist([event], schema=schema))
            else:
                lake.write_partition(table, "number", number, mine)
    for table in tables:
        for run in lake.table_dir(table).glob("issue_run=*"):
            shutil.rmtree(run)


def test_a_lake_of_the_per_document_layout_is_refused_until_adopted(tmp_path, monkeypatch):
    con = connect()
    lake, _ = issued_lake(tmp_path, FEES)
    documents.change_status(lake, "INV-000002", "paid", ISSUED, "wire")
    before = {table: documents._read(lake, table, schema).to_pylist() for table, schema in (
        ("issued_documents", documents.HEADS), ("issued_lines", documents.LINES))}
    _to_per_document_layout(lake)
    with pytest.raises(RuntimeError, match="adopt_per_document_layout"):
        documents.issued_documents(lake)
    with pytest.raises(RuntimeError, match="adopt_per_document_layout"):
        issue_month(con, lake, OCTOBER, ISSUED)  # never hands those numbers out again
    # a crash after the commit, before the old folders went: adopting again finishes it
    def killed(path):
        raise OSError("killed")

    monkeypatch.setattr(shutil, "rmtree", killed)
    with pytest.raises(OSError, match="killed"):
        documents.adopt_per_document_layout(lake)
    monkeypatch.undo()
    assert len(list(lake.table_dir("issued_documents").glob("issue_run=*"))) == 1
    assert documents.adopt_per_document_layout(lake) is None  # the old folders go, no new run
    for table in ("issued_documents", "issued_lines", "document_events"):
        assert [p.name.split("=")[0] for p in lake.table_dir(table).iterdir()] == ["issue_run"]
    assert {table: documents._read(lake, table, schema).to_pylist() for table, schema in (
        ("issued_documents", documents.HEADS), ("issued_lines", documents.LINES))} == before
    assert documents.statuses(con, lake) == {"INV-000001": "issued", "INV-000002": "paid",
                                             "INV-000003": "issued"}
    with pytest.raises(ValueError, match="INV-000002 is paid"):  # its history came along
        documents.change_status(lake, "INV-000002", "void", ISSUED)
    documents.change_status(lake, "INV-000003", "void", ISSUED, "wrong address")
    assert documents.status_of(lake, "INV-000003") == "void"
    assert documents.next_numbers(lake)["INV"] == 4
