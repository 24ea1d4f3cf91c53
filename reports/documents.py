"""Invoice, adjustment invoice and credit note documents: HTML drafts per billing run,
and HTML + PDF for each issued document (reports/documents/<number>.html|.pdf).

An issued document is rendered once, when it is issued, from its frozen lines."""

from __future__ import annotations

import multiprocessing
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

import duckdb
import weasyprint

from billing.catalog import Catalog
from invoicing.document_model import DocumentType, Draft
from invoicing.issuing import drafts, issue_month
from pricing_sql.catalog_files import load_checked_catalog
from reports.render import environment
from storage.duck import connect
from storage.lake import Lake
from storage.settings import Deployment

PARALLEL_FROM = 20  # documents; fewer are quicker than starting worker processes
TITLES: dict[DocumentType, str] = {
    "invoice": "Invoice", "adjustment_invoice": "Adjustment invoice", "credit_note": "Credit note"}
# A line's tier and group breakdown: its rows of sub_line_items, by line item id.
Breakdowns = Mapping[str, list[dict[str, Any]]]


def render_document(draft: Draft, breakdowns: Breakdowns, catalog: Catalog, issuer: str,
                    number: str | None = None, issued_on: date | None = None) -> str:
    head = draft.head
    return environment().get_template("document.html.j2").render(
        doc=head, lines=draft.lines, breakdowns=breakdowns,
        customer=catalog.customer(head.customer_id), issuer=issuer,
        title=TITLES[head.document_type], number=number, issued_on=issued_on,
        status="issued" if number else "draft")


def _breakdowns(lake: Lake, month: date) -> Breakdowns:
    rows = lake.read_partition("sub_line_items", "billing_month", month).to_pylist()
    # Sorted by line item id, so groupby sees each line's rows together.
    return {key: list(group) for key, group in groupby(rows, key=itemgetter("line_item_id"))}


def render_drafts(con: duckdb.DuckDBPyConnection, lake: Lake, catalog: Catalog, issuer: str,
                  month: date) -> tuple[Path, int]:
    """Replace reports/invoices/<YYYY-MM>/ with one HTML file per draft."""
    details = _breakdowns(lake, month)
    files = {}
    for draft in drafts(con, lake, month):
        files[f"{draft.head.reference}.html"] = render_document(draft, details, catalog, issuer)
    folder = lake.replace_directory(lake.reports / "invoices" / month.strftime("%Y-%m"), files)
    return folder, len(files)


def write_issued(lake: Lake, catalog: Catalog, issuer: str, month: date,
                 issued: list[tuple[str, Draft]], issued_on: date) -> Path:
    """HTML and PDF of documents just issued from ``month``'s drafts, named by number
    (never rewritten), with the tier and group breakdown of the run they came from."""
    folder = lake.reports / "documents"
    folder.mkdir(parents=True, exist_ok=True)
    details = _breakdowns(lake, month)
    pages = []
    for number, draft in issued:
        html = render_document(draft, details, catalog, issuer, number=number,
                               issued_on=issued_on)
        (folder / f"{number}.html").write_text(html, encoding="utf-8")
        pages.append((html, folder / f"{number}.pdf"))
    if len(pages) < PARALLEL_FROM:
        for page in pages:
            _write_pdf(page)
    else:  # layout is CPU-bound, ~0.2 s a page: use every core
        with ProcessPoolExecutor(mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(_write_pdf, pages, chunksize=8))
    return folder


def _write_pdf(page: tuple[str, Path]) -> None:
    html, target = page
    weasyprint.HTML(string=html).write_pdf(target)


def issue_and_render(deployment: Deployment, month: date, customers: set[str] | None = None,
                     ) -> tuple[list[tuple[str, Draft]], Path]:
    """Issue the month's drafts dated up to now and write each as HTML and PDF."""
    now = datetime.now(UTC)
    issued = issue_month(connect(), deployment.lake, month, now, customers)
    return issued, write_issued(deployment.lake, load_checked_catalog(deployment.catalog_path),
                                deployment.issuer, month, issued, now.date())
