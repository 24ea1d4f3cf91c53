"""Issued invoices and credit notes: numbered, immutable, with a status history.

Issuing freezes a run's drafts in one set-based step (``issue_run``): numbers are
handed out in draft order, sequential per issuer and series (``INV-000001`` for
invoices and adjustment invoices, ``CN-000001`` for credit notes), under the lake's
issue lock. One issuing run writes three files, each once and never replaced, in
this order::

    issued_lines/issue_run=<R>/data.parquet        every line of every document
    document_details/issue_run=<R>/data.parquet    memos, reasons, custom fields (if any)
    document_events/issue_run=<R>/issued.parquet   their 'issued' events
    issued_documents/issue_run=<R>/data.parquet    their heads: the run's commit

A run is committed by its heads file, written last: the readers take lines and events
only of runs whose heads exist, numbers are counted from the heads alone, and the next
issuing run deletes the lines and events a crashed run left without heads. So a crash
leaves either nothing or the whole run, and never a number used twice.

Status changes (paid, void) are written as change runs: a payment run, or one
``orb invoices pay|void``, checks all its changes and writes them at once, one file per
issuing run they touch, beside those documents' 'issued' events:
``document_events/issue_run=<R>/changes-<C>.parquet``. A document's status is its latest
event (the highest ``seq``). Finding documents' runs reads the heads' numbers (one column
of one file per issuing run), and finding their statuses their runs' change files (one
per change run that touched the run), however many documents there are.

Lakes written before 2026-12-03 kept one folder per document and table
(``number=<N>/``). Readers refuse such a lake rather than miss its documents (and hand
their numbers out again); ``adopt_per_document_layout`` moves them, once, into one
issuing run, rows unchanged.
"""

from __future__ import annotations

import shutil
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from invoicing import balance
from invoicing.document_model import (
    NO_DETAILS,
    DocumentDetails,
    DocumentStatus,
    DocumentType,
    Draft,
    IssuedHead,
)
from storage.lake import PARTITION_FILE, Lake
from storage.tables import DOCUMENT_DETAILS as DETAILS
from storage.tables import DOCUMENT_EVENTS as EVENTS
from storage.tables import ISSUED_DOCUMENTS as HEADS
from storage.tables import ISSUED_LINES as LINES
from storage.tables import TABLES

SERIES: dict[DocumentType, str] = {"invoice": "INV", "adjustment_invoice": "INV",
                                   "credit_note": "CN"}
RUN_KEY = TABLES["issued_documents"].key  # issue_run
LEGACY_KEY = "number"  # the folder per document of lakes written before issuing runs
ISSUED_EVENTS = "issued.parquet"
CHANGES = "changes-{}.parquet"  # a change run's events for one issuing run's documents

# Which status may follow which.
TRANSITIONS: dict[DocumentStatus, set[DocumentStatus]] = {"paid": {"issued"}, "void": {"issued"}}


@dataclass(frozen=True)
class StatusChange:
    """A document's new status, when it changed, and why (a payment's reference, a reason)."""

    number: str
    status: DocumentStatus
    at: datetime
    note: str = ""


def _run_folders(lake: Lake) -> tuple[list[str], bool]:
    """The issuing runs whose heads file exists, in run order, and whether documents of
    the per-document layout are there too (one folder listing)."""
    folder = lake.table_dir("issued_documents")
    if not folder.is_dir():
        return [], False
    prefix = f"{RUN_KEY}="
    names = [p.name for p in folder.iterdir()]
    return (sorted(name[len(prefix):] for name in names if name.startswith(prefix)
                   and (folder / name / PARTITION_FILE).exists()),
            any(name.startswith(f"{LEGACY_KEY}=") for name in names))


def _committed_runs(lake: Lake) -> list[str]:
    """The committed issuing runs, in run order; a lake of the old layout is refused."""
    runs, legacy = _run_folders(lake)
    if legacy:
        raise RuntimeError(
            f"{lake.table_dir('issued_documents')} holds documents in the per-document "
            "layout of lakes written before 2026-12-03; move them into one issuing run, "
            "once, with invoicing.documents.adopt_per_document_layout (docs/lake.md)")
    return runs


def committed_files(lake: Lake, table: str) -> list[str]:
    """Every file of ``issued_documents``, ``issued_lines`` or ``document_events`` that
    belongs to a committed issuing run."""
    runs = _committed_runs(lake)
    if table in ("document_events", "document_details"):
        return [str(p) for run in runs
                for p in sorted((lake.table_dir(table) / f"{RUN_KEY}={run}").glob("*.parquet"))]
    files = [lake.table_dir(table) / f"{RUN_KEY}={run}" / PARTITION_FILE for run in runs]
    return [str(f) for f in files if f.exists()]


def _read_files(files: list[str], schema: pa.Schema) -> pa.Table:
    return (pq.read_table(files, partitioning=None, schema=schema) if files
            else schema.empty_table())


def _read(lake: Lake, table: str, schema: pa.Schema,
          numbers: list[str] | None = None) -> pa.Table:
    """The committed rows of a table, or those of the given document numbers only."""
    rows = _read_files(committed_files(lake, table), schema)
    if numbers is not None:
        rows = rows.filter(pc.is_in(rows["number"], pa.array(numbers, pa.string())))
    return rows


def issued_heads(lake: Lake) -> pa.Table:
    return _read(lake, "issued_documents", HEADS)


def issued_documents(lake: Lake) -> list[IssuedHead]:
    """Every issued document's head, in number order within each issuing run."""
    return [IssuedHead.from_row(row) for row in issued_heads(lake).to_pylist()]


def issued_lines(lake: Lake, numbers: list[str]) -> pa.Table:
    return _read(lake, "issued_lines", LINES, numbers)


def _details_row(number: str, details: DocumentDetails) -> dict[str, object]:
    return {"number": number, "memo": details.memo, "reason": details.reason,
            "custom_field_names": [name for name, _ in details.custom_fields],
            "custom_field_values": [value for _, value in details.custom_fields]}


def issued_details(lake: Lake, numbers: list[str] | None = None) -> dict[str, DocumentDetails]:
    """What those documents (default: all) print besides their amounts, as fixed at
    issue; a document without any is absent (``NO_DETAILS``)."""
    return {row["number"]: DocumentDetails(
        row["memo"], row["reason"],
        tuple(zip(row["custom_field_names"], row["custom_field_values"], strict=True)))
        for row in _read(lake, "document_details", DETAILS, numbers).to_pylist()}


def statuses(con: duckdb.DuckDBPyConnection, lake: Lake,
             numbers: list[str] | None = None) -> dict[str, DocumentStatus]:
    """Each document number's current status (of ``numbers`` only, when given)."""
    con.register("document_events", _read(lake, "document_events", EVENTS, numbers))
    return dict(con.sql("SELECT number, arg_max(status, seq) FROM document_events "
                        "GROUP BY number").fetchall())


def _runs_of(lake: Lake, numbers: set[str], runs: list[str] | None = None) -> dict[str, str]:
    """The committed issuing run (of ``runs``, else of all) of each of ``numbers`` that
    was issued."""
    found: dict[str, str] = {}
    for run in _committed_runs(lake) if runs is None else runs:
        issued = pq.read_table(lake.table_dir("issued_documents") / f"{RUN_KEY}={run}"
                               / PARTITION_FILE, columns=["number"], partitioning=None)
        found.update((number, run) for number in numbers.intersection(
            issued["number"].to_pylist()))
        if len(found) == len(numbers):
            break
    return found


def _latest(lake: Lake, runs: dict[str, str]) -> dict[str, tuple[int, DocumentStatus]]:
    """The latest event (seq, status) of each document of ``runs`` (number -> its run),
    from the change files of their runs; ('issued', seq 1) for a document without any."""
    latest: dict[str, tuple[int, DocumentStatus]] = dict.fromkeys(runs, (1, "issued"))
    files = [p for run in sorted(set(runs.values())) for p in sorted(
        (lake.table_dir("document_events") / f"{RUN_KEY}={run}").glob(CHANGES.format("*")))]
    if files:
        rows = pq.read_table(files, columns=["seq", "number", "status"], schema=EVENTS,
                             partitioning=None)
        for row in rows.filter(pc.is_in(rows["number"], pa.array(list(runs)))).to_pylist():
            if row["seq"] > latest[row["number"]][0]:
                latest[row["number"]] = (row["seq"], row["status"])
    return latest


def status_of(lake: Lake, number: str) -> DocumentStatus | None:
    """One document's current status (None: never issued)."""
    runs = _runs_of(lake, {number})
    return _latest(lake, runs)[number][1] if runs else None


def next_numbers(lake: Lake) -> dict[str, int]:
    """The next free number of each series; the caller holds ``lake.lock("issue")``."""
    files = committed_files(lake, "issued_documents")
    used = (pq.read_table(files, columns=["number"], partitioning=None)["number"].to_pylist()
            if files else [])
    return {prefix: 1 + max((int(n.split("-", 1)[1]) for n in used
                             if n.startswith(prefix + "-")), default=0)
            for prefix in set(SERIES.values())}


def _event(seq: int, number: str, status: DocumentStatus, at: datetime,
           note: str = "") -> dict[str, object]:
    return {"seq": seq, "number": number, "status": status, "changed_at": at, "note": note}


def _discard_uncommitted(lake: Lake) -> None:
    """Delete what a crashed issuing run wrote before its heads: never read, and its
    numbers are handed out again. The caller holds ``lake.lock("issue")``."""
    committed = set(_run_folders(lake)[0])
    for table in ("issued_lines", "document_details", "document_events"):
        folder = lake.table_dir(table)
        if folder.is_dir():
            for path in folder.glob(f"{RUN_KEY}=*"):
                if path.name.split("=", 1)[1] not in committed:
                    shutil.rmtree(path)


def new_run_id(at: datetime, earlier: Iterable[str] = ()) -> str:
    """Sortable by time, unique, and after the ``earlier`` runs of the same second (an
    issuing run passes the runs so far, under the issue lock, so that two runs at one
    instant are read back in the order they were issued): ``20261020T120000-0001-1a2b3c4d``."""
    stamp = f"{at:%Y%m%dT%H%M%S}"
    same = sum(1 for run in earlier if run.startswith(stamp))
    return f"{stamp}-{same:04d}-{uuid.uuid4().hex[:8]}"


def issue_all(lake: Lake, due: list[Draft], at: datetime) -> list[tuple[str, Draft]]:
    """Give each draft, in order, the next number of its series and freeze them all as
    one issuing run (three files, heads last); the caller holds ``lake.lock("issue")``."""
    if not due:
        return []
    _discard_uncommitted(lake)
    counters = next_numbers(lake)
    issued: list[tuple[str, Draft]] = []
    for draft in due:
        prefix = SERIES[draft.head.document_type]
        issued.append((f"{prefix}-{counters[prefix]:06d}", draft))
        counters[prefix] += 1
    run = new_run_id(at, _run_folders(lake)[0])
    for table, name, schema, rows in (
            ("issued_lines", PARTITION_FILE, LINES,
             [line.to_row(number) for number, draft in issued for line in draft.lines]),
            ("document_details", PARTITION_FILE, DETAILS,
             [_details_row(number, draft.details) for number, draft in issued
              if draft.details != NO_DETAILS]),
            ("document_events", ISSUED_EVENTS, EVENTS,
             [_event(1, number, "issued", at) for number, _ in issued]),
            ("issued_documents", PARTITION_FILE, HEADS,  # the commit: written last
             [draft.head.issued(number, at).to_row() for number, draft in issued])):
        if (lake.table_dir(table) / f"{RUN_KEY}={run}" / name).exists():
            raise RuntimeError(f"{table} of issuing run {run} already exists")
        if table == "document_details" and not rows:
            continue  # most runs print nothing besides amounts
        lake.write_file(table, RUN_KEY, run, name, pa.Table.from_pylist(rows, schema=schema))
    heads = [draft.head.issued(number, at) for number, draft in issued]
    corrected = {h.corrects for h in heads if h.corrects}
    status = {number: latest[1] for number, latest in
              _latest(lake, _runs_of(lake, corrected)).items()} if corrected else {}
    carried = {number: sum((line.amount for line in draft.lines
                            if line.line_key == balance.CARRIED_LINE), Decimal(0))
               for number, draft in issued}
    balance.apply_on_issue(lake, heads, status, at, carried)  # after the commit: see its docstring
    return issued


def change_statuses(lake: Lake, changes: Sequence[StatusChange], at: datetime) -> None:
    """Record ``changes`` as one change run at ``at``: each must follow its document's
    status (or the change before it here) by ``TRANSITIONS``, else nothing is written and
    the first refused says why. One file per issuing run touched, each whole; should a
    crash fall between two, a payment run finds the missing ones in its ledger."""
    if not changes:
        return
    with lake.lock("issue"):
        runs = _runs_of(lake, {change.number for change in changes})
        latest = _latest(lake, runs)
        rows: defaultdict[str, list[dict[str, object]]] = defaultdict(list)
        for change in changes:
            if change.number not in runs:
                raise ValueError(f"no issued document {change.number!r}")
            seq, current = latest[change.number]
            if current not in TRANSITIONS[change.status]:
                raise ValueError(f"{change.number} is {current}; only an issued document "
                                 f"can be marked {change.status}")
            latest[change.number] = (seq + 1, change.status)
            rows[runs[change.number]].append(
                _event(seq + 1, change.number, change.status, change.at, change.note))
        name = CHANGES.format(new_run_id(at))
        for run, events in sorted(rows.items()):
            lake.write_file("document_events", RUN_KEY, run, name,
                            pa.Table.from_pylist(events, schema=EVENTS))
    voided = [change.number for change in changes if change.status == "void"]
    if voided:  # the balance they used goes back to their customers (Orb's)
        balance.return_from_voiding(lake, voided, at)


def change_status(lake: Lake, number: str, status: DocumentStatus, at: datetime,
                  note: str = "") -> None:
    """Mark an issued document paid or void; anything else is refused with the reason."""
    change_statuses(lake, [StatusChange(number, status, at, note)], at)


def adopt_per_document_layout(lake: Lake) -> str | None:
    """Move the documents of a lake written before issuing runs (one ``number=<N>/``
    folder per document in each table) into one issuing run, rows unchanged: lines,
    'issued' events, later events as one change file, heads last (the commit); then the
    old folders go. Returns the run, None when there was nothing to move."""
    schemas = {"issued_documents": HEADS, "issued_lines": LINES, "document_events": EVENTS}
    with lake.lock("issue"):
        old = {table: sorted(lake.table_dir(table).glob(f"{LEGACY_KEY}=*")) for table in schemas}
        rows = {table: _read_files([str(f) for folder in old[table]
                                    for f in sorted(folder.glob("*.parquet"))], schema)
                for table, schema in schemas.items()}
        heads = rows["issued_documents"]
        numbers = set(heads["number"].to_pylist())
        run = None
        # Heads already in a run: a crash after the commit, before the old folders went.
        if numbers and numbers - set(_runs_of(lake, numbers, _run_folders(lake)[0])):
            _discard_uncommitted(lake)
            run = new_run_id(pc.min(heads["issued_at"]).as_py())  # sorts before later runs
            mine = {table: table_rows.filter(pc.is_in(table_rows["number"], heads["number"]))
                    for table, table_rows in rows.items()}  # not a crashed issue's debris
            first = pc.equal(mine["document_events"]["seq"], 1)
            for table, name, moved in (
                    ("issued_lines", PARTITION_FILE, mine["issued_lines"]),
                    ("document_events", ISSUED_EVENTS, mine["document_events"].filter(first)),
                    ("document_events", CHANGES.format(run),
                     mine["document_events"].filter(pc.invert(first))),
                    ("issued_documents", PARTITION_FILE, heads)):
                if moved.num_rows:
                    lake.write_file(table, RUN_KEY, run, name, moved)
        for folders in old.values():
            for folder in folders:
                shutil.rmtree(folder)
        return run
