"""What a PDF document shows, for the document tests: each page's size, read from the
PDF itself, and each page's text as WeasyPrint lays it out for that PDF (no PDF
rasterizer is installed; the layout is what WeasyPrint draws)."""

from __future__ import annotations

import re
import zlib

from weasyprint.formatting_structure import boxes

from reports import issued_pages


def page_sizes(pdf: bytes) -> list[tuple[float, float]]:
    """Each page's MediaBox (points), read from the PDF's compressed object streams."""
    sizes = []
    for start in re.finditer(rb"stream\r?\n", pdf):
        try:
            text = zlib.decompressobj().decompress(pdf[start.end():])
        except zlib.error:
            continue
        sizes += [(float(w), float(h)) for w, h in re.findall(
            rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", text)]
    return sizes


def page_texts(html: str) -> list[list[str]]:
    """The text of each page the PDF is drawn from, margin boxes (the footer) included,
    laid out as ``issued_pages._pdf`` lays it out."""
    fonts, stylesheets, style = issued_pages._pdf_setup()
    document = issued_pages._DocumentHTML(string=html.replace(style, "", 1)).render(
        font_config=fonts, stylesheets=stylesheets)

    def texts(box: boxes.Box) -> list[str]:
        found = [box.text] if isinstance(box, boxes.TextBox) else []
        for child in getattr(box, "children", ()):
            found += texts(child)
        return found

    return [texts(page._page_box) for page in document.pages]
