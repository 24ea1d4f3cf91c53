"""Invoice, adjustment invoice and credit note documents: HTML drafts per billing run,
and HTML + PDF for each issued document (reports/documents/<number>.html|.pdf).

Rendering issued documents is its own step after issuing: it writes only the documents
whose files are missing (an issued document is never rendered again), in chunks over
every core (``reports/issued_pages.py``), and can be re-run (``orb invoices render``)."""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from billing.catalog import Catalog
from invoicing import documents
from invoicing.document_model import CorrectionLine, DocumentHead, DocumentLine, Draft
from invoicing.issuing import DRAFT_TABLES, drafts, issue_month
from pricing_sql.run_catalog import billing_catalog
from reports.issued_pages import Page, render_html, write_pages
from storage.billing_runs import completed_runs, read_month
from storage.duck import connect
from storage.lake import Lake
from storage.settings import Deployment

log = logging.getLogger(__name__)
PARALLEL_FROM = 20  # documents; fewer are quicker than starting worker processes
CHUNK = 50  # documents a worker renders per task (~2.5 s of layout)
TASKS_PER_WORKER = 40  # then it is replaced, so WeasyPrint's caches (~13 kB a page) never pile up
# A line's tier and group breakdown: its rows of sub_line_items, by line item id.
Breakdowns = Mapping[str, list[dict[str, Any]]]


def render_document(draft: Draft, breakdowns: Breakdowns, catalog: Catalog, issuer: str,
                    number: str | None = None, issued_on: date | None = None) -> str:
    return render_html(draft, breakdowns, catalog.customer(draft.head.customer_id),
                       issuer, number, issued_on)


def _breakdowns(lake: Lake, month: date) -> Breakdowns:
    return _grouped(lake.read_partition("sub_line_items", "billing_month", month))


def _grouped(sub_line_items: pa.Table) -> Breakdowns:
    rows = sub_line_items.to_pylist()
    # Sorted by line item id, so groupby sees each line's rows together.
    return {key: list(group) for key, group in groupby(rows, key=itemgetter("line_item_id"))}


def render_drafts(con: duckdb.DuckDBPyConnection, lake: Lake, catalog: Catalog, issuer: str,
                  month: date) -> tuple[Path, int]:
    """Replace reports/invoices/<YYYY-MM>/ with one HTML file per draft, from the month's
    newest completed billing run, breakdowns included."""
    run = read_month(lake, month, (*DRAFT_TABLES, "sub_line_items"))
    details = _grouped(run["sub_line_items"])
    files = {}
    for draft in drafts(con, lake, month, run):
        files[f"{draft.head.reference}.html"] = render_document(draft, details, catalog, issuer)
    folder = lake.replace_directory(lake.reports / "invoices" / month.strftime("%Y-%m"), files)
    return folder, len(files)


def _pages(lake: Lake, catalog: Catalog, issuer: str,
           docs: list[tuple[str, Draft, date]]) -> list[Page]:
    """The pages of those ``(number, draft, issued on)`` whose HTML or PDF is missing,
    each with the breakdowns of its own lines from its run's ``sub_line_items``. The
    folder is listed once, never per document."""
    folder = lake.reports / "documents"
    folder.mkdir(parents=True, exist_ok=True)
    present = {entry.name for entry in os.scandir(folder)}
    details: dict[date, Breakdowns] = {}
    pages = []
    for number, draft, issued_on in docs:
        if f"{number}.pdf" in present and f"{number}.html" in present:
            continue
        month = draft.head.billing_month
        if month not in details:
            details[month] = (_breakdowns(lake, month) if lake.partition_file(
                "sub_line_items", "billing_month", month).exists() else {})
        html = ((folder / f"{number}.html").read_text(encoding="utf-8")
                if f"{number}.html" in present else None)
        pages.append(Page(folder, number, draft,
                          {line.line_key: details[month][line.line_key] for line in draft.lines
                           if line.line_key in details[month]},
                          catalog.customer(draft.head.customer_id), issuer, issued_on, html))
    return pages


def _write_pages(pages: list[Page]) -> None:
    """Render in this process when there are few, else in chunks over every core; the
    workers are replaced now and then, so none grows with the number of documents."""
    if len(pages) < PARALLEL_FROM:
        write_pages(pages)
        return
    workers = min(os.cpu_count() or 1, max(1, len(pages) // CHUNK))
    chunks = [pages[i:i + CHUNK] for i in range(0, len(pages), CHUNK)]
    # A fresh pool per round (not ``max_tasks_per_child``, which can hang on 3.11; and
    # not multiprocessing's Pool, which hangs if a worker is killed).
    per_round = workers * TASKS_PER_WORKER
    for start in range(0, len(chunks), per_round):
        with ProcessPoolExecutor(workers,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            for _ in pool.map(write_pages, chunks[start:start + per_round]):
                pass


def write_issued(lake: Lake, catalog: Catalog, issuer: str, month: date,
                 issued: list[tuple[str, Draft]], issued_on: date) -> Path:
    """HTML and PDF of documents just issued from ``month``'s drafts, named by number
    (only those missing: never rewritten), with the tier and group breakdown of the run
    they came from."""
    _write_pages(_pages(lake, catalog, issuer,
                        [(number, draft, issued_on) for number, draft in issued]))
    return lake.reports / "documents"


def render_issued(lake: Lake, catalog: Catalog, issuer: str, month: date | None = None,
                  ) -> tuple[Path, int]:
    """Render every issued document (of ``month``'s run, when given) whose HTML or PDF
    is missing, from its issued head and lines; a correction's billed and computed
    amounts come from its run's ``invoice_corrections``. Returns the folder and how many
    documents were written."""
    folder = lake.reports / "documents"
    folder.mkdir(parents=True, exist_ok=True)
    present = {entry.name for entry in os.scandir(folder)}
    heads = [head for head in documents.issued_documents(lake)
             if (month is None or head.billing_month == month)
             and not {f"{head.number}.pdf", f"{head.number}.html"} <= present]
    if not heads:
        return folder, 0
    lines: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in documents.issued_lines(lake, [head.number for head in heads]).to_pylist():
        lines[row["number"]].append(row)
    corrections: dict[date, dict[tuple[str, str], dict[str, Any]]] = {}
    todo = []
    for head in heads:
        month_of = head.billing_month
        if head.correction_id and month_of not in corrections:
            corrections[month_of] = {
                (row["correction_id"], row["line_key"]): row for row in
                lake.read_partition("invoice_corrections", "billing_month",
                                    month_of).to_pylist()} if lake.partition_file(
                "invoice_corrections", "billing_month", month_of).exists() else {}
        draft_lines: list[DocumentLine] = []
        for row in lines[head.number]:
            if head.correction_id:
                billed = corrections[month_of].get((head.correction_id, row["line_key"]))
                if billed is None:
                    break
                draft_lines.append(CorrectionLine.from_row({**row, **{
                    k: billed[k] for k in ("billed", "computed")}}))
            else:
                draft_lines.append(DocumentLine.from_row(row))
        if len(draft_lines) < len(lines[head.number]):
            log.warning("%s not rendered: its run's corrections were recomputed since it "
                        "was issued, so its billed and computed amounts are gone", head.number)
            continue
        todo.append((head.number, Draft(DocumentHead.from_row(head.to_row()),
                                        tuple(draft_lines)), head.issued_at.date()))
    pages = _pages(lake, catalog, issuer, todo)
    _write_pages(pages)
    return folder, len(pages)


def issue_and_render(deployment: Deployment, month: date, customers: set[str] | None = None,
                     ) -> tuple[list[tuple[str, Draft]], Path]:
    """Issue the month's drafts dated up to now (one set-based step), then write each as
    HTML and PDF (a separate step, in parallel); documents of the month issued earlier
    whose files are missing are rendered too."""
    now = datetime.now(UTC)
    lake = deployment.lake
    issued = issue_month(connect(), lake, month, now, customers)
    # the customers the month was billed to: the snapshot of the run just issued
    catalog = billing_catalog(deployment, month, next(iter(completed_runs(lake, month)), None))
    folder = write_issued(lake, catalog, deployment.issuer, month, issued, now.date())
    render_issued(lake, catalog, deployment.issuer, month)
    return issued, folder
