"""What a PDF document shows, for the document tests, read back from the PDF itself with
pypdf: each page's size and each page's lines of text."""

from __future__ import annotations

import io

from pypdf import PdfReader

from reports.document_pdf import print_pdf


def page_sizes(pdf: bytes) -> list[tuple[float, float]]:
    """Each page's MediaBox, in points, rounded to the hundredth."""
    return [(round(float(page.mediabox.width), 2), round(float(page.mediabox.height), 2))
            for page in PdfReader(io.BytesIO(pdf)).pages]


def page_texts(html: str) -> list[list[str]]:
    """The lines of text of each page of the document's PDF, the footer included, each
    stripped of the spaces pypdf puts between the cells of a row."""
    return [[line.strip() for line in page.extract_text().splitlines() if line.strip()]
            for page in PdfReader(io.BytesIO(print_pdf(html))).pages]
