"""Issuing as one set-based run: one file per table per run, committed by its heads.

A run writes lines, then 'issued' events, then heads (its commit); a crash after any
write before the last leaves no document, and the re-run hands out the same numbers
once, with every document, line and event exactly once."""

from __future__ import annotations

import pytest

from invoicing import documents
from invoicing.issuing import drafts, issue_month
from storage.duck import connect
from storage.lake import Lake
from tests.test_payments import ISSUED, OCTOBER, issued_lake

FEES = {"a": ("USD", "100.00"), "b": ("USD", "20.00"), "c": ("USD", "5.00")}


def test_a_crash_mid_issue_leaves_nothing_and_the_rerun_issues_once(tmp_path, monkeypatch):
    con = connect()
    real_issue = documents.issue_all
    monkeypatch.setattr(documents, "issue_all", lambda lake, due, at: [])
    lake, _ = issued_lake(tmp_path, FEES)  # billed, nothing issued yet
    monkeypatch.setattr(documents, "issue_all", real_issue)
    expected = [d.head.invoice_id for d in drafts(con, lake, OCTOBER)]
    assert len(expected) == 3
    write = Lake.write_file
    for crash_after in (0, 1, 2):
        writes: list[str] = []

        def crashing(self, table, *args, crash_after=crash_after, writes=writes, **kwargs):
            if len(writes) == crash_after:
                raise RuntimeError("killed")
            writes.append(table)
            return write(self, table, *args, **kwargs)

        monkeypatch.setattr(Lake, "write_file", crashing)
        with pytest.raises(RuntimeError, match="killed"):
            issue_month(con, lake, OCTOBER, ISSUED)
        monkeypatch.setattr(Lake, "write_file", write)
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
