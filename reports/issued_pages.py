"""The render workers of issued documents: HTML and PDF of a chunk of documents.

Kept apart from ``reports/documents.py`` so a worker process imports only what a page
needs (the templates, WeasyPrint, the document types), and receives only what its own
documents need: their heads, lines, the tier breakdowns of their lines and their
customers, never the catalog or the lake."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import weasyprint
from weasyprint.text.fonts import FontConfiguration  # type: ignore[import-untyped]

from billing.catalog.models import Customer
from invoicing.document_model import DocumentType, Draft
from reports.render import environment
from storage.lake import write_atomically

TITLES: dict[DocumentType, str] = {
    "invoice": "Invoice", "adjustment_invoice": "Adjustment invoice", "credit_note": "Credit note"}


@dataclass(frozen=True)
class Page:
    """One issued document to write as ``<number>.html`` and ``<number>.pdf`` in
    ``folder``; ``html`` is set when the HTML exists and only the PDF is missing."""

    folder: Path
    number: str
    draft: Draft
    breakdowns: dict[str, list[dict[str, Any]]]  # its lines' rows of sub_line_items
    customer: Customer
    issuer: str
    issued_on: date | None
    html: str | None = None


def render_html(draft: Draft, breakdowns: Mapping[str, list[dict[str, Any]]], customer: Customer,
                issuer: str, number: str | None = None, issued_on: date | None = None) -> str:
    head = draft.head
    return environment().get_template("document.html.j2").render(
        doc=head, lines=draft.lines, breakdowns=breakdowns, customer=customer, issuer=issuer,
        title=TITLES[head.document_type], number=number, issued_on=issued_on,
        status="issued" if number else "draft")


_fonts: FontConfiguration | None = None


def _write_text(text: str, path: Path) -> None:
    path.write_text(text, encoding="utf-8")


def write_pages(pages: list[Page]) -> int:
    """Write each page's HTML (unless it exists) and PDF, each atomically and the PDF
    last, so a document whose PDF exists is complete. Returns how many were written."""
    global _fonts
    if _fonts is None:  # one per process: fonts are looked up once, not per page
        _fonts = FontConfiguration()
    for page in pages:
        html = page.html
        if html is None:
            html = render_html(page.draft, page.breakdowns, page.customer, page.issuer,
                               page.number, page.issued_on)
            write_atomically(page.folder / f"{page.number}.html",
                             functools.partial(_write_text, html))
        document = weasyprint.HTML(string=html).render(font_config=_fonts)
        write_atomically(page.folder / f"{page.number}.pdf", document.write_pdf)
    return len(pages)
