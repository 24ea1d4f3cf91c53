"""The render workers of issued documents: HTML and PDF of a chunk of documents.

Kept apart from ``reports/documents.py`` so a worker process imports only what a page
needs (the templates, WeasyPrint, the document types), and receives only what its own
documents need: their heads, lines, the tier breakdowns of their lines and their
customers, never the catalog or the lake.

A page's cost is WeasyPrint's: styles, layout and drawing, per box. The documents'
stylesheet (``templates/document.css.j2``) is written to keep layout cheap, and each process
parses it and looks fonts up once, not per page (docs/capacity.md has the figures)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import weasyprint
from markupsafe import Markup
from weasyprint.pdf import fonts as pdf_fonts  # type: ignore[import-untyped]
from weasyprint.text.fonts import FontConfiguration  # type: ignore[import-untyped]

from billing.catalog.models import Customer
from billing.catalog.parties import Seller
from invoicing.document_model import REASON_LABELS, DocumentStatus, DocumentType, Draft
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


def subsets_fonts_slowly() -> bool:
    """Whether WeasyPrint subsets each PDF's fonts with fontTools, in Python, as it does
    where the system lacks HarfBuzz's subsetter (Debian: ``libharfbuzz-subset0``; the
    condition is WeasyPrint's own, in ``weasyprint/pdf/fonts.py``). A PDF then costs
    2.5 to 6 times the CPU: 150 against 59 ms a document here with Liberation Sans, 392
    against 65 ms with DejaVu Sans alone, whose layout tables fontTools decodes whole
    (docs/capacity.md)."""
    subsetter = getattr(pdf_fonts, "harfbuzz_subset", True)  # gone: HarfBuzz required
    return not (subsetter and pdf_fonts.harfbuzz.hb_version_atleast(4, 1, 0))


@functools.cache
def _pdf_setup() -> tuple[FontConfiguration, list[weasyprint.CSS], str]:
    """Once per process: the fonts, the parsed stylesheet, and the ``<style>`` element
    that embeds it in the HTML (the template's), cut before WeasyPrint parses a page."""
    fonts = FontConfiguration()
    return (fonts, [weasyprint.CSS(string=stylesheet(), font_config=fonts)],
            f"<style>\n{stylesheet()}</style>")


@functools.cache
def _user_agent_stylesheet() -> weasyprint.CSS:
    return weasyprint.CSS(string=environment().get_template("document_ua.css.j2").render())


class _DocumentHTML(weasyprint.HTML):
    """A document page for WeasyPrint, with a user-agent stylesheet cut down to the
    elements documents use (some 15% less CPU a page: each element is matched against
    fewer rules). WeasyPrint has no option for it, hence its private hook; were the hook
    renamed, pages would be laid out with the whole stylesheet again, as before."""

    def _ua_stylesheets(self, forms: bool = False) -> list[weasyprint.CSS]:
        return [_user_agent_stylesheet()]


def _pdf(html: str) -> bytes:
    fonts, stylesheets, style = _pdf_setup()
    if style in html:
        return _DocumentHTML(string=html.replace(style, "", 1)).write_pdf(
            font_config=fonts, stylesheets=stylesheets)
    # An HTML file written with an earlier stylesheet: laid out as it was then.
    return weasyprint.HTML(string=html).write_pdf(font_config=fonts)


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
                         functools.partial(_write_bytes, _pdf(html)))
    return len(pages)
