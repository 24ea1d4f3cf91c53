"""An issued document's PDF, printed from its HTML with ReportLab.

The HTML the template wrote is the one source of what a document says; this module
prints its elements with the look of ``templates/document.css.j2`` (sizes in points: the
stylesheet's 1rem of 16px is 12pt). It knows the elements the templates write, and
refuses any other, so a template change that it cannot print fails the tests rather than
dropping text; a class only chooses a style. It replaced WeasyPrint, a browser-grade CSS
engine for a page whose layout is fixed, at about a third of the CPU a document
(docs/capacity.md, "Twelfth session").

Fonts: Liberation Sans (Debian's ``fonts-liberation``, the stylesheet's Helvetica and
Arial), embedded as subsets; characters it lacks are set in DejaVu Sans when the system
has it (``fonts-dejavu-core``)."""

from __future__ import annotations

import functools
import io
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4, LETTER
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from reports.html_tree import Element, parse

log = logging.getLogger(__name__)
PAPER = {"a4": A4, "letter": LETTER}
MARGINS = {"left": 15 * mm, "right": 15 * mm, "top": 15 * mm, "bottom": 20 * mm}
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts")
# Liberation Sans has the metrics of the stylesheet's Helvetica and Arial; DejaVu Sans
# has the characters it lacks (Armenian, Georgian, many symbols), and stands in for it.
FAMILIES = (("Liberation Sans", "LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf"),
            ("DejaVu Sans", "DejaVuSans.ttf", "DejaVuSans-Bold.ttf"))
INK, MUTED, RULE = "#1f2328", "#656d76", "#d0d7de"  # the stylesheet's text, .muted, borders
BANNERS = {  # background, left border: .banner, .banner.paid, .banner.void
    "paid": ("#dafbe1", "#1a7f37"), "void": ("#eaeef2", MUTED)}
BANNER = ("#fff8c5", "#d4a72c")  # .banner, and the DRAFT .badge's background
LINK = "#0000ee"  # a link's colour in the user agent's stylesheet
# Column widths of the lines tables by their header's class (the stylesheet's); a column
# whose header has none takes what is left.
COLUMNS = {"text": 0.19, "period": 0.33, "quantity": 0.15, "rate": 0.14, "money": 0.16}
_SPACES = re.compile(r"[ \t\r\f\n]+")  # CSS white space: not the no-break space
BLOCKS = ("h1", "p", "div", "table")  # the block elements: each printed by its tag
BODY, SMALL, HEADER = 12.0, 10.2, 9.6  # pt: 1rem, 0.85rem (breakdown rows), 0.8rem (th)


@dataclass(frozen=True)
class _Fonts:
    family: str  # a ReportLab family: its regular face, and "<family>-Bold"
    has: frozenset[int]  # the characters it has
    fallback: str | None  # the family for the characters it lacks


@functools.cache
def _fonts() -> _Fonts:
    """The fonts, registered once per process: the first of ``FAMILIES`` installed, the
    next one for the characters it lacks. With neither, the PDF standard Helvetica, which
    is not embedded and has the Latin-1 characters alone (others print as "?")."""
    found = [(regular, bold) for _, regular_file, bold_file in FAMILIES
             if (regular := _font_file(regular_file)) and (bold := _font_file(bold_file))]
    if not found:
        log.warning("neither Liberation Sans nor DejaVu Sans is installed under %s (Debian: "
                    "fonts-liberation, fonts-dejavu-core): PDFs are set in the viewer's "
                    "Helvetica, Latin-1 characters only", " or ".join(FONT_DIRS))
        latin = bytes(range(32, 256)).decode("cp1252", errors="ignore")
        return _Fonts("Helvetica", frozenset(map(ord, latin)), None)
    family = _register("Doc", *found[0])
    fallback = _register("DocFallback", *found[1]) if len(found) > 1 else None
    face = pdfmetrics.getFont(family).face
    return _Fonts(family, frozenset(face.charToGlyph), fallback)


def _font_file(name: str) -> Path | None:
    for folder in FONT_DIRS:
        for root, _, files in os.walk(folder):
            if name in files:
                return Path(root) / name
    return None


def _register(family: str, regular: Path, bold: Path) -> str:
    pdfmetrics.registerFont(TTFont(family, str(regular)))
    pdfmetrics.registerFont(TTFont(f"{family}-Bold", str(bold)))
    pdfmetrics.registerFontFamily(family, normal=family, bold=f"{family}-Bold",
                                  italic=family, boldItalic=f"{family}-Bold")
    return family


def _markup(text: str) -> str:
    """Text as Paragraph markup: escaped, and runs of characters that the font lacks set
    in the fallback font (or "?" without one)."""
    fonts = _fonts()
    escaped = escape(text)
    if all(ord(c) in fonts.has for c in text):
        return escaped
    if fonts.fallback is None:
        return "".join(c if ord(c) in fonts.has or c.isspace() else "?" for c in escaped)
    out, missing = [], False
    for char in escaped:
        lacks = ord(char) not in fonts.has and not char.isspace()
        if lacks != missing:
            out.append(f'<font face="{fonts.fallback}">' if lacks else "</font>")
            missing = lacks
        out.append(char)
    return "".join(out) + ("</font>" if missing else "")


@functools.cache
def _style(name: str, size: float = BODY, bold: bool = False, color: str = INK,
           align: int = 0, before: float = 0, after: float = 0) -> ParagraphStyle:
    family = _fonts().family
    return ParagraphStyle(name, fontName=f"{family}-Bold" if bold else family, fontSize=size,
                          leading=round(size * 1.15, 2), textColor=colors.HexColor(color),
                          alignment=align, spaceBefore=before, spaceAfter=after)


class _Printer:
    """Turns the body's elements into flowables: blocks by tag, inline content into
    Paragraph markup. Classes only choose a style; a tag it does not know is refused."""

    def __init__(self, width: float) -> None:
        self.width = width

    def blocks(self, element: Element, style: ParagraphStyle | None = None,
               pre_line: bool = False) -> Iterator[Flowable]:
        """A container's children: block elements by their tag, headings (``heading``:
        a block in the stylesheet) apart, and each run of inline content between them as
        one paragraph."""
        style = style or _style("p")
        run: list[Element | str] = []
        for child in [*element.children, None]:  # None: the end, after the last run
            if isinstance(child, str) or (child is not None and child.tag not in BLOCKS
                                          and "heading" not in child.classes):
                run.append(child)
                continue
            text = "".join(self.inline(node, pre_line) for node in run).strip()
            if text:
                yield Paragraph(_lines(text) if pre_line else text, style)
            run = []
            if child is None:
                return
            if "heading" in child.classes:
                yield Paragraph(self.inline(child), _style("heading", bold=True, after=3))
            else:
                yield from getattr(self, f"_{child.tag}")(child)

    def content(self, element: Element, pre_line: bool = False, upper: bool = False) -> str:
        return "".join(self.inline(child, pre_line, upper) for child in element.children
                       ).strip()

    def inline(self, node: Element | str, pre_line: bool = False, upper: bool = False) -> str:
        """Paragraph markup of inline content. White space collapses as in CSS, except
        that under ``pre_line`` (the ``lines`` class) a newline stays a line break;
        ``upper`` is the header cells' text-transform."""
        if isinstance(node, str):
            text = node.upper() if upper else node
            if pre_line:
                return "\n".join(_markup(_SPACES.sub(" ", part)) for part in text.split("\n"))
            return _markup(_SPACES.sub(" ", text))
        if node.tag == "br":  # the templates before the sixth session's broke lines so
            return "<br/>"
        inner = self.content(node, pre_line, upper)
        if node.tag == "strong":
            return f"<b>{inner}</b>"
        if node.tag == "a":
            href = escape(node.attributes.get("href", ""), {'"': "&quot;"})
            return f'<a href="{href}" color="{LINK}"><u>{inner}</u></a>'
        if node.tag == "span" and "muted" in node.classes:
            return f'<font color="{MUTED}">{inner}</font>'
        if node.tag == "span" and "badge" in node.classes:
            return f'<font size="9.6" backColor="{BANNER[0]}">&nbsp;{inner}&nbsp;</font>'
        if node.tag == "span":
            return inner
        raise ValueError(f"<{node.tag} class=\"{' '.join(node.classes)}\"> has no place in "
                         "a document's PDF (reports/document_pdf.py)")

    def _h1(self, element: Element) -> Iterator[Flowable]:
        yield Paragraph(self.content(element), _style("h1", 19.2, bold=True, after=2.4))

    def _p(self, element: Element) -> Iterator[Flowable]:
        if "banner" in element.classes:
            yield self._banner(element)
            return
        muted = "muted" in element.classes
        yield Spacer(0, 6)
        yield from self.blocks(element, _style("muted" if muted else "p-block",
                                               color=MUTED if muted else INK,
                                               after=6), "lines" in element.classes)

    def _div(self, element: Element) -> Iterator[Flowable]:
        if "payment" in element.classes:
            yield Spacer(0, 12)
        yield from self.blocks(element)

    def _banner(self, element: Element) -> Flowable:
        background, border = next((BANNERS[c] for c in element.classes if c in BANNERS),
                                  BANNER)
        table = Table([[Paragraph(self.content(element), _style("banner", 14.4, bold=True))]],
                      colWidths=[self.width])
        table.setStyle(TableStyle([
            ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(background)),
            ("LINEBEFORE", (0, 0), (0, -1), 3, colors.HexColor(border)),
            ("TOPPADDING", (0, 0), (-1, -1), 4.8), ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
            ("LEFTPADDING", (0, 0), (-1, -1), 7.2)]))
        table.spaceBefore = table.spaceAfter = 7.2
        return table

    def _table(self, element: Element) -> Iterator[Flowable]:
        yield self._parties(element) if "parties" in element.classes else self._rows(element)

    def _parties(self, element: Element) -> Flowable:
        """Seller and buyer side by side, each cell's lines as they are in the HTML."""
        cells = [Paragraph(_lines(self.content(cell, pre_line=True)), _style("p"))
                 for row in _rows_of(element) for cell in row.elements()]
        table = Table([cells], colWidths=[self.width / len(cells)] * len(cells))
        table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                                   ("LEFTPADDING", (0, 0), (-1, -1), 0),
                                   ("TOPPADDING", (0, 0), (-1, -1), 5.4),
                                   ("BOTTOMPADDING", (0, 0), (-1, -1), 5.4)]))
        table.spaceBefore = table.spaceAfter = 12
        return table

    def _rows(self, element: Element) -> Flowable:
        """A table of lines: the header's rows (again on each page the table runs onto),
        then each row, styled by its class: breakdown (``sub``), ``total`` or plain; the
        columns as wide as the first row's classes say."""
        rows = _rows_of(element)
        head = {id(row) for group in element.elements() if group.tag == "thead"
                for row in group.elements()}
        classes = [_width_class(th) for th in rows[0].elements()]
        left = 1 - sum(COLUMNS[c] for c in classes if c)
        widths = [self.width * (COLUMNS[c] if c else left / classes.count(None))
                  for c in classes]
        data: list[list[Paragraph | str]] = []
        style: list[tuple[Any, ...]] = [
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ("LEFTPADDING", (0, 0), (-1, -1), 6), ("RIGHTPADDING", (0, 0), (-1, -1), 6),
            ("TOPPADDING", (0, 0), (-1, -1), 5.4), ("BOTTOMPADDING", (0, 0), (-1, -1), 5.4)]
        for y, row in enumerate(rows):
            kind = "th" if id(row) in head else next(
                (c for c in row.classes if c in ("sub", "total")), "td")
            cells: list[Paragraph | str] = []
            for cell in row.elements():
                span = int(cell.attributes.get("colspan", "1"))
                if span > 1:
                    style.append(("SPAN", (len(cells), y), (len(cells) + span - 1, y)))
                cells += [self._cell(cell, kind), *[""] * (span - 1)]
            data.append(cells)
            if kind == "sub":
                style.append(("TOPPADDING", (0, y), (-1, y), 1.2))
            else:
                style.append(("LINEBELOW", (0, y), (-1, y), 0.75, colors.HexColor(RULE)))
            if kind == "total":
                style.append(("LINEABOVE", (0, y), (-1, y), 1.5, colors.HexColor(INK)))
        table = Table(data, colWidths=widths, repeatRows=len(head))
        table.setStyle(TableStyle(style))
        table.spaceBefore = table.spaceAfter = 12
        return table

    def _cell(self, cell: Element, kind: str) -> Paragraph:
        align = TA_RIGHT if "num" in cell.classes else 0
        if kind == "th":
            return Paragraph(self.content(cell, upper=True),
                             _style("th", HEADER, True, MUTED, align))
        size, color = (SMALL, MUTED) if kind == "sub" else (BODY, INK)
        return Paragraph(self.content(cell), _style(f"td-{kind}", size, kind == "total",
                                                    color, align))


def _width_class(th: Element) -> str | None:
    return next((c for c in th.classes if c in COLUMNS), None)


def _rows_of(table: Element) -> list[Element]:
    return [row for group in table.elements() for row in group.elements() if row.tag == "tr"]


def _lines(markup: str) -> str:
    """Pre-line text as markup: each non-empty line of it a line of the paragraph."""
    return "<br/>".join(line for line in (part.strip() for part in markup.split("\n")) if line)


class _FooterCanvas(Canvas):
    """Draws each page's footer once the number of pages is known: the document's number
    at the left, "Page x of y" at the right, in the middle of the bottom margin."""

    def __init__(self, *args: Any, number: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._number = number
        self._pages: list[dict[str, Any]] = []

    def showPage(self) -> None:  # noqa: N802 (ReportLab's name)
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        family = _fonts().family
        for page, state in enumerate(self._pages, start=1):
            self.__dict__.update(state)
            width, _ = self._pagesize
            self.setFont(family, 8)
            self.setFillColor(colors.HexColor(MUTED))
            y = MARGINS["bottom"] / 2 - 3
            self.drawString(MARGINS["left"], y, self._number)
            self.drawRightString(width - MARGINS["right"], y,
                                 f"Page {page} of {len(self._pages)}")
            super().showPage()
        super().save()


def print_pdf(html: str) -> bytes:
    """The PDF of a document's HTML, on the paper its body's class names (``a4`` or
    ``letter``). Deterministic: the same HTML gives the same bytes (ReportLab's
    ``invariant``), so a document rendered again is the document it was."""
    root = parse(html)
    body, title = root.find("body"), root.find("title")
    if body is None:
        raise ValueError("a document's HTML has no <body>")
    paper = PAPER[next((c for c in body.classes if c in PAPER), "a4")]
    number = root.find("span", "number")
    out = io.BytesIO()
    document = BaseDocTemplate(
        out, pagesize=paper, leftMargin=MARGINS["left"], rightMargin=MARGINS["right"],
        topMargin=MARGINS["top"], bottomMargin=MARGINS["bottom"],
        title=title.text().strip() if title else "", invariant=1)
    # the page's content box, as the stylesheet's @page margins make it: no padding
    document.addPageTemplates([PageTemplate("page", [Frame(
        document.leftMargin, document.bottomMargin, document.width, document.height,
        leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)])])
    story = list(_Printer(document.width).blocks(body))
    document.build(story, canvasmaker=functools.partial(
        _FooterCanvas, number=number.text().strip() if number else ""))
    return out.getvalue()
