"""Invoice, adjustment invoice and credit note documents: HTML drafts of each month's
newest billing run, kept current in place (``reports/draft_folder.py``), and HTML + PDF
for each issued document (reports/documents/<number>.html|.pdf).

Rendering issued documents is its own step after issuing: it writes only the documents
whose files are missing (an issued document is never rendered again), in chunks over
every core (``reports/issued_pages.py``), and can be re-run (``orb invoices render``)."""

from __future__ import annotations

import functools
import hashlib
import logging
import multiprocessing
import os
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib import metadata, resources
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from billing import money, periods
from billing.catalog import Catalog, parties
from billing.catalog.parties import Seller
from invoicing import balance, document_model, documents, issuing
from invoicing.document_model import (
    NO_DETAILS,
    CorrectionLine,
    DocumentHead,
    DocumentLine,
    DocumentStatus,
    Draft,
)
from invoicing.draft_fingerprints import SOURCE_TABLES, draft_fingerprints
from invoicing.issuing import drafts, issue_month
from pricing_sql.run_catalog import billing_catalog, current_catalog
from reports import document_view, draft_folder, issued_pages, render
from reports.issued_pages import Page, render_html, write_pages
from storage.billing_runs import MonthTables, completed_runs, read_month
from storage.duck import connect
from storage.lake import Lake
from storage.settings import Deployment

log = logging.getLogger(__name__)
# documents: fewer are quicker in this process (~20 ms each) than in workers, each of
# which takes 1.3–1.6 s of CPU to start
PARALLEL_FROM = 150
CHUNK = 50  # documents a worker renders per task (~1 s)
# A line's tier and group breakdown: its rows of sub_line_items, by line item id.
Breakdowns = Mapping[str, list[dict[str, Any]]]


def seller_of(catalog: Catalog, issuer: str) -> Seller:
    """The catalog folder's seller, else one named by ``ORB_ISSUER`` alone."""
    return catalog.seller or Seller(name=issuer)


def render_document(draft: Draft, breakdowns: Breakdowns, catalog: Catalog, issuer: str) -> str:
    """A draft's HTML."""
    return render_html(draft, breakdowns, catalog.customer(draft.head.customer_id),
                       seller_of(catalog, issuer))


def _breakdowns(lake: Lake, month: date) -> Breakdowns:
    return _grouped(lake.read_partition("sub_line_items", "billing_month", month))


def _grouped(sub_line_items: pa.Table) -> Breakdowns:
    rows = sub_line_items.to_pylist()
    # Sorted by line item id, so groupby sees each line's rows together.
    return {key: list(group) for key, group in groupby(rows, key=itemgetter("line_item_id"))}


class DraftsWritten(NamedTuple):
    folder: Path
    documents: int  # the month's drafts, each a file of the folder
    rendered: int  # of them, written by this call: new or changed
    removed: int  # files of drafts gone (issued, or no longer made)


def render_drafts(con: duckdb.DuckDBPyConnection, lake: Lake, catalog: Catalog, issuer: str,
                  month: date) -> DraftsWritten:
    """Bring reports/invoices/<YYYY-MM>/ up to the drafts of the month's newest completed
    billing run, one HTML file each, breakdowns included: only the drafts whose content
    changed since they were written are rendered again (``reports/draft_folder.py``)."""
    run = read_month(lake, month, SOURCE_TABLES)
    prints = draft_fingerprints(con, lake, run, _customers(catalog), _renderer_version(
        seller_of(catalog, issuer).model_dump_json()))
    references = prints["reference"].to_pylist()
    folder = lake.reports / "invoices" / month.strftime("%Y-%m")
    with lake.lock(f"drafts-{month:%Y-%m}"):
        plan = draft_folder.plan(folder, dict(zip(
            references, prints["fingerprint"].to_pylist(), strict=True)))
        draft_folder.begin(plan)
        if plan.changed:
            changed = set(plan.changed)
            invoice_ids = {invoice for reference, invoice in zip(
                references, prints["invoice_id"].to_pylist(), strict=True)
                if reference in changed}
            subset = _of_invoices(run, invoice_ids)
            details = _grouped(subset["sub_line_items"])
            for draft in drafts(con, lake, month, subset):
                if draft.head.reference in changed:
                    draft_folder.write_document(folder, draft.head.reference,
                                                render_document(draft, details, catalog, issuer))
        draft_folder.finish(plan)
    return DraftsWritten(folder, len(references), len(plan.changed), len(plan.gone))


def _of_invoices(run: MonthTables, invoice_ids: set[str]) -> MonthTables:
    """``run`` cut down to the rows of those invoices: their drafts are the same."""
    wanted = pa.array(sorted(invoice_ids), pa.string())
    return MonthTables(run.month, run.run_id, {
        table: rows.filter(pc.is_in(rows["invoice_id"], value_set=wanted))
        for table, rows in run.tables.items()})


def _customers(catalog: Catalog) -> pa.Table:
    """Each customer whole, as it enters its documents' fingerprints."""
    return pa.table({"customer_id": [customer.id for customer in catalog.customers],
                     "content": [customer.model_dump_json() for customer in catalog.customers]})


@functools.cache
def _renderer_version(seller: str) -> str:
    """What shapes a document besides its data: the seller (as JSON), the templates, the
    code that makes drafts of the run's rows and fills and formats the templates, and the
    libraries it formats with. Any change to them renders every draft again once."""
    digest = hashlib.sha256(seller.encode())
    templates = resources.files("reports") / "templates"
    for template in sorted(templates.iterdir(), key=lambda t: t.name):
        digest.update(template.name.encode() + template.read_bytes())
    digest.update((resources.files("invoicing.sql") / "document_lines.sql").read_bytes())
    for module in (issuing, document_model, render, issued_pages, document_view, parties,
                   money):
        digest.update(Path(str(module.__file__)).read_bytes())
    for package in ("jinja2", "babel", "markupsafe"):
        digest.update(f"{package}=={metadata.version(package)}".encode())
    return digest.hexdigest()


def _pages(lake: Lake, catalog: Catalog, issuer: str, docs: list[tuple[str, Draft, datetime]],
           statuses: Mapping[str, DocumentStatus] | None = None) -> list[Page]:
    """The pages of those ``(number, draft, issued at)`` whose HTML or PDF is missing,
    each with the breakdowns of its own lines from its run's ``sub_line_items`` and its
    status (in ``statuses``, else issued), and the day it was issued on the customer's
    calendar, as every date it prints. The folder is listed once, never per document."""
    seller = seller_of(catalog, issuer)
    folder = lake.reports / "documents"
    folder.mkdir(parents=True, exist_ok=True)
    present = {entry.name for entry in os.scandir(folder)}
    applied = balance.applied_to(balance.read(lake))  # at issue: before the first render
    details: dict[date, Breakdowns] = {}
    pages = []
    for number, draft, issued_at in docs:
        if f"{number}.pdf" in present and f"{number}.html" in present:
            continue
        month = draft.head.billing_month
        if month not in details:
            details[month] = (_breakdowns(lake, month) if lake.partition_file(
                "sub_line_items", "billing_month", month).exists() else {})
        html = ((folder / f"{number}.html").read_text(encoding="utf-8")
                if f"{number}.html" in present else None)
        customer = catalog.customer(draft.head.customer_id)
        pages.append(Page(folder, number, draft,
                          {line.line_key: details[month][line.line_key] for line in draft.lines
                           if line.line_key in details[month]},
                          customer, seller, periods.local_day(issued_at, customer.timezone), html,
                          (statuses or {}).get(number, "issued"),
                          applied.get(number, Decimal(0))))
    return pages


def _write_pages(pages: list[Page]) -> None:
    """Render in this process when there are few, else in chunks over every core. A
    worker's memory stays flat however many it renders (48 MiB after 3,000 documents,
    docs/capacity.md), so one pool serves them all; not multiprocessing's Pool, which
    hangs if a worker is killed."""
    if len(pages) < PARALLEL_FROM:
        write_pages(pages)
        return
    workers = min(os.cpu_count() or 1, max(1, len(pages) // CHUNK))
    chunks = [pages[i:i + CHUNK] for i in range(0, len(pages), CHUNK)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for _ in pool.map(write_pages, chunks):
            pass


def write_issued(lake: Lake, catalog: Catalog, issuer: str, month: date,
                 issued: list[tuple[str, Draft]], issued_at: datetime) -> Path:
    """HTML and PDF of documents just issued from ``month``'s drafts, named by number
    (only those missing: never rewritten), with the tier and group breakdown of the run
    they came from."""
    _write_pages(_pages(lake, catalog, issuer,
                        [(number, draft, issued_at) for number, draft in issued]))
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
    printed = documents.issued_details(lake, [head.number for head in heads])
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
                                        tuple(draft_lines),
                                        printed.get(head.number, NO_DETAILS)),
                     head.issued_at))
    pages = _pages(lake, catalog, issuer, todo,
                   documents.statuses(connect(), lake, [number for number, _, _ in todo]))
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
    folder = write_issued(lake, catalog, deployment.issuer, month, issued, now)
    render_issued(lake, catalog, deployment.issuer, month)
    return issued, folder


def render_months(deployment: Deployment, months: set[date]) -> int:
    """Render the documents of those billing months whose files are missing (those
    issued outside ``issue_and_render``: auto-issued, credit notes and one-off invoices
    made by hand), with the customers as the store holds them now, as ``orb invoices
    render`` does (a one-off invoice's customer may be newer than its month's run)."""
    catalog = current_catalog(deployment)
    return sum(render_issued(deployment.lake, catalog, deployment.issuer, month)[1]
               for month in sorted(months))
