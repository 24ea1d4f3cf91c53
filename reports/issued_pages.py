"""The render workers of issued documents: HTML and PDF of a chunk of documents.

Kept apart from ``reports/documents.py`` so a worker process imports only what a page
needs (the templates, ReportLab, the document types), and receives only what its own
documents need: their heads, lines, the tier breakdowns of their lines and their
customers, never the catalog or the lake.

A document's PDF is its HTML printed by ``reports/document_pdf.py``; each process
registers the fonts once, not per page (docs/capacity.md has the figures)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from markupsafe import Markup

from billing.catalog.models import Customer
from billing.catalog.parties import Seller
from invoicing.document_model import REASON_LABELS, DocumentStatus, DocumentType, Draft
from reports.document_pdf import print_pdf
from reports.document_view import document_view
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
    seller: Seller
    issued_on: date | None
    html: str | None = None
    status: DocumentStatus = "issued"  # its latest event when rendered
    balance_applied: Decimal = Decimal(0)  # the customer balance applied at issue


@functools.cache
def stylesheet() -> str:
    """The documents' CSS, embedded in every HTML file so that it stands alone (a
    template only so that it ships with the others)."""
    return environment().get_template("document.css.j2").render() + "\n"


def render_html(draft: Draft, breakdowns: Mapping[str, list[dict[str, Any]]], customer: Customer,
                seller: Seller, number: str | None = None, issued_on: date | None = None,
                status: DocumentStatus = "issued", balance_applied: Decimal = Decimal(0)) -> str:
    """A draft without ``number``; an issued document in its ``status``, with the
    customer balance applied to it at issue (its amount due is the total less it)."""
    head = draft.head
    shown: DocumentStatus | None = status if number else None
    return environment().get_template("document.html.j2").render(
        doc=head, lines=draft.lines, breakdowns=breakdowns, customer=customer, seller=seller,
        title=TITLES[head.document_type], number=number, issued_on=issued_on,
        status=shown or "draft", stylesheet=Markup(stylesheet()), details=draft.details,
        reason=REASON_LABELS.get(draft.details.reason or "", draft.details.reason),
        balance_applied=balance_applied,
        **document_view(head, customer, seller, number, shown).context())


def _write_text(text: str, path: Path) -> None:
    path.write_text(text, encoding="utf-8")


def _write_bytes(data: bytes, path: Path) -> None:
    path.write_bytes(data)


def write_pages(pages: list[Page]) -> int:
    """Write each page's HTML (unless it exists) and PDF, each atomically and the PDF
    last, so a document whose PDF exists is complete. Returns how many were written."""
    for page in pages:
        html = page.html
        if html is None:
            html = render_html(page.draft, page.breakdowns, page.customer, page.seller,
                               page.number, page.issued_on, page.status,
                               page.balance_applied)
            write_atomically(page.folder / f"{page.number}.html",
                             functools.partial(_write_text, html))
        write_atomically(page.folder / f"{page.number}.pdf",
                         functools.partial(_write_bytes, print_pdf(html)))
    return len(pages)
