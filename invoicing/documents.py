"""Issued invoices and credit notes: numbered, immutable, with a status history.

Issuing freezes a run's drafts in one set-based step (``issue_run``): numbers are
handed out in draft order, sequential per issuer and series (``INV-000001`` for
invoices and adjustment invoices, ``CN-000001`` for credit notes), under the lake's
issue lock. One issuing run writes three files, each once and never replaced, in
this order::

    issued_lines/issue_run=<R>/data.parquet        every line of every document
    document_events/issue_run=<R>/issued.parquet   their 'issued' events
    issued_documents/issue_run=<R>/data.parquet    their heads: the run's commit

A run is committed by its heads file, written last: the readers take lines and events
only of runs whose heads exist, numbers are counted from the heads alone, and the next
issuing run deletes the lines and events a crashed run left without heads. So a crash
leaves either nothing or the whole run, and never a number used twice.

Status changes (paid, void) are appended, one file each, beside the document's
'issued' events: ``document_events/issue_run=<R>/<number>.<seq>.parquet`` (seq 2, 3,
...). A document's status is its latest event; finding one document's status costs a
lookup of its run (the heads' numbers, read once per heads file and cached: they never
change) and a few file-existence checks, however many documents exist.

Lakes written before issuing runs hold one folder per document (``number=<N>/``); they
are read too, and status changes of those documents go on in their folders.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from invoicing.document_model import DocumentStatus, DocumentType, Draft, IssuedHead
from storage.lake import PARTITION_FILE, Lake
from storage.tables import DOCUMENT_EVENTS as EVENTS
from storage.tables import ISSUED_DOCUMENTS as HEADS
from storage.tables import ISSUED_LINES as LINES
from storage.tables import TABLES

SERIES: dict[DocumentType, str] = {"invoice": "INV", "adjustment_invoice": "INV",
                                   "credit_note": "CN"}
RUN_KEY = TABLES["issued_documents"].key  # issue_run
LEGACY_KEY = "number"  # the folder per document of lakes written before issuing runs
ISSUED_EVENTS = "issued.parquet"

# Which status may follow which.
TRANSITIONS: dict[DocumentStatus, set[DocumentStatus]] = {"paid": {"issued"}, "void": {"issued"}}

# The numbers in each heads file (an issuing run's commit, never rewritten), by file.
_numbers_of_run: dict[str, set[str]] = {}


def _committed_runs(lake: Lake) -> list[str]:
    """The issuing runs whose heads file exists, in run order (one folder listing)."""
    folder = lake.table_dir("issued_documents")
    if not folder.is_dir():
        return []
    prefix = f"{RUN_KEY}="
    return sorted(p.name[len(prefix):] for p in folder.iterdir()
                  if p.name.startswith(prefix) and (p / PARTITION_FILE).exists())


def _legacy_files(lake: Lake, table: str) -> list[str]:
    return sorted(str(p) for p in lake.table_dir(table).glob(f"{LEGACY_KEY}=*/*.parquet"))


def committed_files(lake: Lake, table: str) -> list[str]:
    """Every file of ``issued_documents``, ``issued_lines`` or ``document_events`` that
    belongs to a committed issuing run (and every file of the per-document layout)."""
    runs = _committed_runs(lake)
    if table == "document_events":
        files = [str(p) for run in runs
                 for p in sorted((lake.table_dir(table) / f"{RUN_KEY}={run}").glob("*.parquet"))]
    else:
        files = [str(lake.table_dir(table) / f"{RUN_KEY}={run}" / PARTITION_FILE)
                 for run in runs]
        files = [f for f in files if Path(f).exists()]
    return _legacy_files(lake, table) + files


def _read(lake: Lake, table: str, schema: pa.Schema,
          numbers: list[str] | None = None) -> pa.Table:
    """The committed rows of a table, or those of the given document numbers only."""
    files = committed_files(lake, table)
    if not files:
        return schema.empty_table()
    rows = pq.read_table(files, partitioning=None, schema=schema)
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


def statuses(con: duckdb.DuckDBPyConnection, lake: Lake,
             numbers: list[str] | None = None) -> dict[str, DocumentStatus]:
    """Each document number's current status (of ``numbers`` only, when given)."""
    con.register("document_events", _read(lake, "document_events", EVENTS, numbers))
    return dict(con.sql("SELECT number, arg_max(status, seq) FROM document_events "
                        "GROUP BY number").fetchall())


def _run_of(lake: Lake, number: str) -> str | None:
    """The committed issuing run that issued ``number`` (None: none did)."""
    for run in _committed_runs(lake):
        path = lake.table_dir("issued_documents") / f"{RUN_KEY}={run}" / PARTITION_FILE
        stat = path.stat()
        key = f"{path}:{stat.st_ino}:{stat.st_mtime_ns}"  # a lake deleted and rebuilt
        if key not in _numbers_of_run:
            _numbers_of_run[key] = set(pq.read_table(
                path, columns=["number"], partitioning=None)["number"].to_pylist())
        if number in _numbers_of_run[key]:
            return run
    return None


def _change_file(lake: Lake, run: str, number: str, seq: int) -> Path:
    return lake.table_dir("document_events") / f"{RUN_KEY}={run}" / f"{number}.{seq:06d}.parquet"


def _events_of(lake: Lake, number: str) -> tuple[str | None, list[Path]]:
    """The run of a document (None: the per-document layout) and its event files after
    the 'issued' one, in order, found by existence checks, not by listing folders."""
    run = _run_of(lake, number)
    if run is None:
        return None, [Path(f) for f in lake.files_in("document_events", LEGACY_KEY, [number])]
    files, seq = [], 2
    while (path := _change_file(lake, run, number, seq)).exists():
        files.append(path)
        seq += 1
    return run, files


def status_of(lake: Lake, number: str) -> DocumentStatus | None:
    """One document's current status (None: never issued)."""
    run, files = _events_of(lake, number)
    if files:
        return pq.read_table(files[-1], partitioning=None, schema=EVENTS)["status"][0].as_py()
    return "issued" if run is not None else None


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


def record_event(lake: Lake, number: str, status: DocumentStatus, at: datetime,
                 note: str = "") -> None:
    """Append a status event; the caller holds ``lake.lock("issue")``."""
    run, files = _events_of(lake, number)
    if run is None:  # the per-document layout (or a test's hand-written document)
        seq = len(files) + 1
        target = lake.table_dir("document_events") / f"{LEGACY_KEY}={number}" / f"{seq:06d}.parquet"
    else:
        seq = len(files) + 2  # seq 1 is in the run's issued.parquet
        target = _change_file(lake, run, number, seq)
    if target.exists():
        raise RuntimeError(f"event {seq} of {number} already exists")
    rows = pa.Table.from_pylist([_event(seq, number, status, at, note)], schema=EVENTS)
    lake.write_file("document_events", target.parent.name.split("=", 1)[0],
                    target.parent.name.split("=", 1)[1], target.name, rows)


def _discard_uncommitted(lake: Lake) -> None:
    """Delete what a crashed issuing run wrote before its heads: never read, and its
    numbers are handed out again. The caller holds ``lake.lock("issue")``."""
    committed = set(_committed_runs(lake))
    for table in ("issued_lines", "document_events"):
        folder = lake.table_dir(table)
        if folder.is_dir():
            for path in folder.glob(f"{RUN_KEY}=*"):
                if path.name.split("=", 1)[1] not in committed:
                    shutil.rmtree(path)


def new_run_id(at: datetime) -> str:
    """Sortable by time, unique: ``20261020T120000-1a2b3c4d``."""
    return f"{at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


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
    run = new_run_id(at)
    for table, name, schema, rows in (
            ("issued_lines", PARTITION_FILE, LINES,
             [line.to_row(number) for number, draft in issued for line in draft.lines]),
            ("document_events", ISSUED_EVENTS, EVENTS,
             [_event(1, number, "issued", at) for number, _ in issued]),
            ("issued_documents", PARTITION_FILE, HEADS,  # the commit: written last
             [draft.head.issued(number, at).to_row() for number, draft in issued])):
        if (lake.table_dir(table) / f"{RUN_KEY}={run}" / name).exists():
            raise RuntimeError(f"{table} of issuing run {run} already exists")
        lake.write_file(table, RUN_KEY, run, name, pa.Table.from_pylist(rows, schema=schema))
    return issued


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
