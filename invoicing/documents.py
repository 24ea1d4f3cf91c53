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

from storage.lake import Lake

AMOUNT = pa.decimal128(38, 4)
SERIES = {"invoice": "INV", "adjustment_invoice": "INV", "credit_note": "CN"}

HEADS = pa.schema([
    ("number", pa.string()),
    ("document_type", pa.string()),  # invoice | adjustment_invoice | credit_note
    ("invoice_id", pa.string()),  # the computed invoice it issues or corrects
    ("correction_id", pa.string()),  # <invoice_id>~<n> for a correction
    ("corrects", pa.string()),  # the number of the invoice a correction refers to
    ("customer_id", pa.string()),
    ("currency", pa.string()),
    ("billing_month", pa.date32()),
    ("invoice_date", pa.date32()),
    ("due_date", pa.date32()),
    ("issued_at", pa.timestamp("us", tz="UTC")),
    ("subtotal", AMOUNT),
    ("adjustments", AMOUNT),
    ("credits_applied", AMOUNT),
    ("total", AMOUNT),
])

LINES = pa.schema([
    ("number", pa.string()),
    ("line_key", pa.string()),  # a line item id, or "adjustment:<source>:<id>"
    ("kind", pa.string()),  # line | adjustment
    ("name", pa.string()),
    ("quantity", pa.decimal128(38, 9)),
    ("service_start", pa.date32()),
    ("service_end", pa.date32()),
    ("amount", AMOUNT),
])

EVENTS = pa.schema([
    ("seq", pa.int64()),  # the order of a document's events: clocks can tie
    ("number", pa.string()),
    ("status", pa.string()),  # issued | paid | void
    ("changed_at", pa.timestamp("us", tz="UTC")),
    ("note", pa.string()),
])

# Which status may follow which.
TRANSITIONS = {"paid": {"issued"}, "void": {"issued"}}


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


def issued_lines(lake: Lake, numbers: list[str]) -> pa.Table:
    return _read(lake, "issued_lines", LINES, numbers)


def statuses(con: duckdb.DuckDBPyConnection, lake: Lake,
             numbers: list[str] | None = None) -> dict[str, str]:
    """Each document number's current status (of ``numbers`` only, when given)."""
    con.register("document_events", _read(lake, "document_events", EVENTS, numbers))
    return dict(con.sql("SELECT number, arg_max(status, seq) FROM document_events "
                        "GROUP BY number").fetchall())


def status_of(lake: Lake, number: str) -> str | None:
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


def record_event(lake: Lake, number: str, status: str, at: datetime, note: str = "") -> None:
    """Append a status event; the caller holds ``lake.lock("issue")``."""
    seq = len(lake.files_in("document_events", "number", [number])) + 1
    lake.write_file("document_events", "number", number, f"{seq:06d}.parquet",
                    pa.Table.from_pylist([{"seq": seq, "number": number, "status": status,
                                           "changed_at": at, "note": note}], schema=EVENTS))


def issue(lake: Lake, counters: dict[str, int], head: dict, lines: list[dict],
          at: datetime) -> str:
    """Give a draft the next number of its series (``counters`` from ``next_numbers``)
    and freeze it; the caller holds ``lake.lock("issue")``."""
    prefix = SERIES[head["document_type"]]
    number = f"{prefix}-{counters[prefix]:06d}"
    counters[prefix] += 1
    for table, schema, rows in (("issued_lines", LINES, lines),
                                ("issued_documents", HEADS, [head])):
        target = lake.partition_file(table, "number", number)
        if target.exists():  # never overwrite an issued document
            raise RuntimeError(f"{table} for {number} already exists")
        lake.write_partition(table, "number", number, pa.Table.from_pylist(
            [{**row, "number": number, "issued_at": at} for row in rows], schema=schema))
    record_event(lake, number, "issued", at)
    return number


def change_status(lake: Lake, number: str, status: str, at: datetime, note: str = "") -> None:
    """Mark an issued document paid or void; anything else is refused with the reason."""
    with lake.lock("issue"):
        current = status_of(lake, number)
        if current is None:
            raise ValueError(f"no issued document {number!r}")
        if current not in TRANSITIONS[status]:
            raise ValueError(f"{number} is {current}; only an issued document can be "
                             f"marked {status}")
        record_event(lake, number, status, at, note)
