"""Issued invoices and credit notes: numbered, immutable, with a status history.

Issuing freezes a draft: its head goes to ``issued_documents/number=<N>`` and its
lines to ``issued_lines/number=<N>``, each written once and never replaced. Numbers
are sequential per issuer and series (``INV-000001`` for invoices and adjustment
invoices, ``CN-000001`` for credit notes), handed out under a lock. Status changes
(issued, paid, void) are appended to ``document_events/number=<N>/<seq>.parquet``; a
document's status is its latest event, read from its own folder, so changing one costs
the same however many documents exist. Corrections of an issued invoice are new
documents that reference it.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from invoicing.document_model import DocumentStatus, DocumentType, Draft, IssuedHead
from storage.lake import Lake
from storage.tables import DOCUMENT_EVENTS as EVENTS
from storage.tables import ISSUED_DOCUMENTS as HEADS
from storage.tables import ISSUED_LINES as LINES
from storage.tables import TABLES

SERIES: dict[DocumentType, str] = {"invoice": "INV", "adjustment_invoice": "INV",
                                   "credit_note": "CN"}

# Which status may follow which.
TRANSITIONS: dict[DocumentStatus, set[DocumentStatus]] = {"paid": {"issued"}, "void": {"issued"}}


def _read(lake: Lake, table: str, schema: pa.Schema,
          numbers: list[str] | None = None) -> pa.Table:
    """Every file of a table, or those of the given document numbers only."""
    files = (lake.all_files(table) if numbers is None
             else lake.files_in(table, "number", numbers))
    if not files:
        return schema.empty_table()
    return pq.read_table(files, partitioning=None, schema=schema)


def issued_heads(lake: Lake) -> pa.Table:
    return _read(lake, "issued_documents", HEADS)


def issued_documents(lake: Lake) -> list[IssuedHead]:
    """Every issued document's head, in the order of the table's files."""
    return [IssuedHead.from_row(row) for row in issued_heads(lake).to_pylist()]


def issued_lines(lake: Lake, numbers: list[str]) -> pa.Table:
    return _read(lake, "issued_lines", LINES, numbers)


def statuses(con: duckdb.DuckDBPyConnection, lake: Lake,
             numbers: list[str] | None = None) -> dict[str, DocumentStatus]:
    """Each document number's current status (of ``numbers`` only, when given)."""
    con.register("document_events", _read(lake, "document_events", EVENTS, numbers))
    return dict(con.sql("SELECT number, arg_max(status, seq) FROM document_events "
                        "GROUP BY number").fetchall())


def status_of(lake: Lake, number: str) -> DocumentStatus | None:
    """One document's current status (None: never issued)."""
    files = lake.files_in("document_events", "number", [number])
    if not files:
        return None
    return pq.read_table(files[-1], partitioning=None, schema=EVENTS)["status"][0].as_py()


def next_numbers(lake: Lake) -> dict[str, int]:
    """The next free number of each series; the caller holds ``lake.lock("issue")``."""
    used = issued_heads(lake).column("number").to_pylist()
    return {prefix: 1 + max((int(n.split("-", 1)[1]) for n in used
                             if n.startswith(prefix + "-")), default=0)
            for prefix in set(SERIES.values())}


def record_event(lake: Lake, number: str, status: DocumentStatus, at: datetime,
                 note: str = "") -> None:
    """Append a status event; the caller holds ``lake.lock("issue")``."""
    key = TABLES["document_events"].key
    seq = len(lake.files_in("document_events", key, [number])) + 1
    lake.write_file("document_events", key, number, f"{seq:06d}.parquet",
                    pa.Table.from_pylist([{"seq": seq, "number": number, "status": status,
                                           "changed_at": at, "note": note}], schema=EVENTS))


def issue(lake: Lake, counters: dict[str, int], draft: Draft, at: datetime) -> str:
    """Give a draft the next number of its series (``counters`` from ``next_numbers``)
    and freeze it; the caller holds ``lake.lock("issue")``."""
    prefix = SERIES[draft.head.document_type]
    number = f"{prefix}-{counters[prefix]:06d}"
    counters[prefix] += 1
    for table, schema, rows in (
            ("issued_lines", LINES, [line.to_row(number) for line in draft.lines]),
            ("issued_documents", HEADS, [draft.head.issued(number, at).to_row()])):
        target = lake.partition_file(table, TABLES[table].key, number)
        if target.exists():  # never overwrite an issued document
            raise RuntimeError(f"{table} for {number} already exists")
        lake.write_partition(table, TABLES[table].key, number,
                             pa.Table.from_pylist(rows, schema=schema))
    record_event(lake, number, "issued", at)
    return number


def change_status(lake: Lake, number: str, status: DocumentStatus, at: datetime,
                  note: str = "") -> None:
    """Mark an issued document paid or void; anything else is refused with the reason."""
    with lake.lock("issue"):
        current = status_of(lake, number)
        if current is None:
            raise ValueError(f"no issued document {number!r}")
        if current not in TRANSITIONS[status]:
            raise ValueError(f"{number} is {current}; only an issued document can be "
                             f"marked {status}")
        record_event(lake, number, status, at, note)
