"""Issued documents as HTML and PDF: every line and total on the page, the parties with
their addresses and tax ids, the due-date banner and how to pay, page x of y, Letter or
A4 by the buyer's country, and a PDF that prints every word of its HTML, read back from
the PDF with pypdf."""

from __future__ import annotations

import io
import logging
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from pypdf import PdfReader

from billing.catalog.models import Customer
from billing.catalog.parties import Address, Seller
from invoicing.document_model import (
    CorrectionLine,
    DocumentDetails,
    DocumentHead,
    DocumentLine,
    Draft,
)
from reports import document_pdf, documents, html_tree, issued_pages
from reports.issued_pages import Page, render_html, write_pages
from tests.pdf_pages import page_sizes, page_texts

CUSTOMER = Customer(id="acme", name="Acme Corp", email="ap@acme.test",
                    timezone="America/New_York")
ISSUER = Seller(name="Example Cloud, Inc.")  # ORB_ISSUER's name alone, as before
INVOICE = Draft(DocumentHead(
    document_type="invoice", invoice_id="acme-20261101-USD", correction_id=None,
    corrects=None, customer_id="acme", currency="USD", billing_month=date(2026, 10, 1),
    invoice_date=date(2026, 11, 1), due_date=date(2026, 12, 1), subtotal=Decimal("1234560.00"),
    adjustments=Decimal("-16.00"), credits_applied=Decimal("10.00"),
    total=Decimal("1234534.00")), (
    DocumentLine("li_calls", "line", "API calls by endpoint, per thousand", Decimal("1500"),
                 date(2026, 10, 1), date(2026, 11, 1), Decimal("60.00")),
    DocumentLine("li_fee", "line", "Platform fee", Decimal("1"), date(2026, 11, 1),
                 date(2026, 12, 1), Decimal("1234500.00")),
    DocumentLine("adjustment:plan:ten", "adjustment", "ten percent off calls", None, None,
                 None, Decimal("-16.00"))))
TIERS = {"li_calls": [
    {"group_values": ["/v1/search"], "first_unit": Decimal(0), "last_unit": Decimal(1000),
     "quantity": Decimal(1000), "unit_amount": Decimal("0.05"), "amount": Decimal("50")},
    {"group_values": ["/v1/search"], "first_unit": Decimal(1000), "last_unit": None,
     "quantity": Decimal(500), "unit_amount": Decimal("0.02"), "amount": Decimal("10")}]}
CREDIT_NOTE = Draft(DocumentHead(
    document_type="credit_note", invoice_id="acme-20261101-USD",
    correction_id="acme-20261101-USD~1", corrects="INV-000001", customer_id="acme",
    currency="USD", billing_month=date(2026, 10, 1), invoice_date=date(2026, 11, 1),
    due_date=date(2026, 12, 1), subtotal=Decimal("-40.00"), adjustments=Decimal(0),
    credits_applied=Decimal(0), total=Decimal("-40.00")), (
    CorrectionLine("li_calls", "line", "API calls by endpoint, per thousand", Decimal("1200"),
                   date(2026, 10, 1), date(2026, 11, 1), Decimal("-40.00"),
                   billed=Decimal("100.00"), computed=Decimal("60.00")),))


SELLER = Seller.model_validate({
    "name": "Example Cloud, Inc.",
    "address": {"line1": "500 Howard St", "line2": "Suite 300", "city": "San Francisco",
                "state": "CA", "postal_code": "94105", "country": "US"},
    "tax_id": {"country": "US", "type": "us_ein", "value": "12-3456789"},
    "email": "billing@example.test",
    "payment_instructions": "Wire to First Bank\nAccount 000123, routing 021000021",
    "pay_link": "https://pay.example.test/{number}"})
AMERICAN = CUSTOMER.model_copy(update={"billing_address": Address(
    line1="1 Broadway", city="New York", state="NY", postal_code="10004", country="US")})
FRENCH = Customer.model_validate({
    "id": "bonjour", "name": "Bonjour SAS", "timezone": "Europe/Paris",
    "billing_address": {"line1": "8 rue de Rivoli", "postal_code": "75004", "city": "Paris",
                        "country": "FR"},
    "tax_id": {"country": "FR", "type": "eu_vat", "value": "FR40303265045"}})


def test_a_document_shows_every_line_and_total():
    html = render_html(INVOICE, TIERS, CUSTOMER, ISSUER, "INV-000007",
                       date(2026, 11, 2))
    for text in ("INV-000007", "Acme Corp", "ap@acme.test",
                 "Example Cloud, Inc.", "Dates in America/New_York", "Currency: USD",
                 "<td>API calls by endpoint, per thousand</td>",
                 "<td>Oct 1, 2026 – Oct 31, 2026</td>", "<td>Nov 1, 2026 – Nov 30, 2026</td>",
                 "/v1/search · 0 – 1,000", "/v1/search · 1,000+", '<td class="num">$0.05</td>',
                 '<td class="num">$60.00</td>', '<td class="num">$1,234,500.00</td>',
                 "Ten percent off calls", '<td class="num">-$16.00</td>',
                 "Prepaid credits applied", '<td class="num">-$10.00</td>',
                 '<td class="num">$1,234,560.00</td>', '<td class="num">$1,234,534.00</td>'):
        assert text in html, text


def _words(text: str) -> list[str]:
    return sorted(text.casefold().split())


def _shown(element: html_tree.Element) -> str:
    """An element's text as a browser shows it: blocks and cells apart from their
    neighbours even where the HTML writes them side by side."""
    return "".join(child if isinstance(child, str) else
                   f" {_shown(child)} " if child.tag in ("p", "div", "h1", "tr", "td", "th")
                   or "heading" in child.classes
                   else _shown(child) for child in element.children)


def test_every_word_of_a_documents_html_is_on_its_pdf_and_nothing_else():
    # the HTML is the document; the PDF prints its body's text, each word once, plus the
    # footer (number, "Page 1 of 1"); header cells are upper case, hence casefold
    memo = replace(INVOICE, details=DocumentDetails(
        memo="Thank you for your business", custom_fields=(("PO number", "PO-4471"),)))
    for draft, customer, status in ((INVOICE, FRENCH, "issued"), (memo, AMERICAN, "issued"),
                                    (INVOICE, FRENCH, "paid"), (INVOICE, FRENCH, "void"),
                                    (CREDIT_NOTE, AMERICAN, "issued")):
        html = render_html(draft, TIERS, customer, SELLER, "N-000001", date(2026, 11, 2),
                           status)
        body = html_tree.parse(html).find("body")
        assert body is not None
        printed = " ".join(" ".join(page) for page in page_texts(html))
        assert _words(printed) == _words(_shown(body) + " N-000001 Page 1 of 1"), status
    draft_html = render_html(INVOICE, TIERS, FRENCH, SELLER)
    body = html_tree.parse(draft_html).find("body")
    assert body is not None
    assert _words(" ".join(page_texts(draft_html)[0])) == _words(_shown(body) + " Page 1 of 1")


def test_the_same_html_prints_the_same_bytes():
    html = render_html(INVOICE, TIERS, FRENCH, SELLER, "INV-000007", date(2026, 11, 2))
    assert document_pdf.print_pdf(html) == document_pdf.print_pdf(html)


def test_text_liberation_sans_lacks_is_set_in_dejavu_sans():
    # Armenian is in DejaVu Sans, not in Liberation Sans: the name prints, in DejaVu
    armenian = FRENCH.model_copy(update={"name": "Արարատ ՍՊԸ"})
    html = render_html(INVOICE, TIERS, armenian, SELLER, "INV-000007", date(2026, 11, 2))
    pdf = document_pdf.print_pdf(html)
    fonts = {str(font["/BaseFont"]) for font in PdfReader(io.BytesIO(pdf)).pages[0][
        "/Resources"]["/Font"].values()}
    assert any("DejaVuSans" in font for font in fonts), fonts
    assert any("LiberationSans" in font for font in fonts), fonts
    assert "Արարատ ՍՊԸ" in page_texts(html)[0]


def test_an_element_the_printer_does_not_know_is_refused_by_name():
    html = "<html><body class='a4'><p>Total <em>due</em></p></body></html>"
    with pytest.raises(ValueError, match='<em class=""> has no place'):
        document_pdf.print_pdf(html)


def test_fonts_are_embedded_as_subsets():
    pdf = document_pdf.print_pdf(render_html(INVOICE, TIERS, FRENCH, SELLER, "INV-000007",
                                   date(2026, 11, 2)))
    # a whole PDF, its fonts embedded as subsets: the two Liberation Sans files it uses
    # are 139 kB and 137 kB whole
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert len(pdf) < 100_000


def test_pages_are_written_once_each(tmp_path):
    old = "<!doctype html><html><body><p>Laid out as issued, with its own style</p></body></html>"
    written = write_pages([
        Page(tmp_path, "INV-000001", INVOICE, TIERS, CUSTOMER, ISSUER, date(2026, 11, 2)),
        Page(tmp_path, "INV-000002", INVOICE, TIERS, CUSTOMER, ISSUER, date(2026, 11, 2),
             html=old)])  # its HTML exists: only the PDF is missing
    assert written == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "INV-000001.html", "INV-000001.pdf", "INV-000002.pdf"]
    assert "INV-000001" in (tmp_path / "INV-000001.html").read_text()
    assert (tmp_path / "INV-000002.pdf").read_bytes() == document_pdf.print_pdf(old)


def test_a_us_customers_pdf_is_letter_and_a_french_customers_a4():
    # Letter is 8.5 x 11 in = 612 x 792 pt; A4 is 210 x 297 mm = 595.28 x 841.89 pt
    for customer, size in ((AMERICAN, (612, 792)), (FRENCH, (595.28, 841.89)),
                           (CUSTOMER, (595.28, 841.89))):  # no address: A4
        html = render_html(INVOICE, TIERS, customer, SELLER, "INV-000007", date(2026, 11, 2))
        assert page_sizes(document_pdf.print_pdf(html)) == [size], customer.name


def test_the_parties_the_number_the_banner_and_how_to_pay_are_on_the_page():
    html = render_html(INVOICE, TIERS, FRENCH, SELLER, "INV-000007", date(2026, 11, 2))
    shown = [
        "Invoice", "INV-000007", "Due 1 December 2026",  # due_date 2026-12-01
        "From", "Example Cloud, Inc.", "500 Howard St", "Suite 300",
        "San Francisco, CA 94105", "United States", "EIN 12-3456789", "billing@example.test",
        "Bill to", "Bonjour SAS", "8 rue de Rivoli", "Paris 75004", "France",
        "VAT FR40303265045",
        "Invoice date: Nov 1, 2026 · Issued: Nov 2, 2026 · Due: Dec 1, 2026",
        "How to pay", "https://pay.example.test/INV-000007", "Wire to First Bank",
        "Account 000123, routing 021000021", "$1,234,534.00"]
    for text in shown:
        assert text in html, text
    pages = page_texts(html)
    on_page = " ".join(" ".join(page) for page in pages)
    for text in shown:
        assert text in on_page, text
    # each line of a party, the dates and how to pay is a line of its own on the page
    for line in ("From", "Example Cloud, Inc.", "500 Howard St", "Suite 300",
                 "San Francisco, CA 94105", "United States", "EIN 12-3456789",
                 "billing@example.test", "Bill to", "Bonjour SAS", "8 rue de Rivoli",
                 "Paris 75004", "France", "VAT FR40303265045",
                 "Invoice date: Nov 1, 2026 · Issued: Nov 2, 2026 · Due: Dec 1, 2026",
                 "How to pay", "Wire to First Bank", "Account 000123, routing 021000021"):
        assert line in pages[0], line
    assert pages[0][-2:] == ["INV-000007", "Page 1 of 1"]  # the footer: number, page x of y
    # the ids billing keeps for itself are nowhere on it
    for internal in ("acme-20261101-USD", "bonjour", "Customer "):
        assert internal not in html, internal
        assert internal not in on_page, internal


def test_a_two_page_invoice_is_numbered_page_1_of_2_and_2_of_2():
    lines = tuple(DocumentLine(f"li_{n}", "line", f"Charge {n}", Decimal(1), date(2026, 10, 1),
                               date(2026, 11, 1), Decimal("1.00")) for n in range(30))
    head = replace(INVOICE.head, subtotal=Decimal("30.00"), adjustments=Decimal(0),
                   credits_applied=Decimal(0), total=Decimal("30.00"))
    html = render_html(Draft(head, lines), {}, AMERICAN, SELLER, "INV-000008", date(2026, 11, 2))
    pages = page_texts(html)
    assert [page[-2:] for page in pages] == [["INV-000008", "Page 1 of 2"],
                                             ["INV-000008", "Page 2 of 2"]]
    assert "Charge 0" in pages[0] and "Charge 29" in pages[1]
    assert page_sizes(document_pdf.print_pdf(html)) == [(612, 792), (612, 792)]


def test_rates_keep_the_precision_they_were_given_in():
    # the lake keeps unit amounts as DECIMAL(38, 12): 0.000120000000 is the 0.00012 given;
    # 250,000 x 0.00012 = 30.00. A rate of 2.5 shows at least the cent: $2.50
    lines = (DocumentLine("li_tokens", "line", "Tokens", Decimal(250000), date(2026, 10, 1),
                          date(2026, 11, 1), Decimal("30.00")),
             DocumentLine("li_seats", "line", "Seats", Decimal(4), date(2026, 10, 1),
                          date(2026, 11, 1), Decimal("10.00")))
    subs = {"li_tokens": [{"group_values": [], "first_unit": None, "last_unit": None,
                           "quantity": Decimal(250000), "unit_amount": Decimal("0.000120000000"),
                           "amount": Decimal("30")}],
            "li_seats": [{"group_values": [], "first_unit": None, "last_unit": None,
                          "quantity": Decimal(4), "unit_amount": Decimal("2.500000000000"),
                          "amount": Decimal("10")}]}
    head = replace(INVOICE.head, subtotal=Decimal("40.00"), adjustments=Decimal(0),
                   credits_applied=Decimal(0), total=Decimal("40.00"))
    html = render_html(Draft(head, lines), subs, FRENCH, SELLER, "INV-000009",
                       date(2026, 11, 2))
    assert '<td class="num">$0.00012</td>' in html
    assert '<td class="num">$2.50</td>' in html
    on_page = page_texts(html)[0]
    assert "$0.00012" in on_page and "$2.50" in on_page


def test_the_banner_follows_the_status_and_a_draft_has_no_number():
    paid = render_html(INVOICE, TIERS, FRENCH, SELLER, "INV-000007", date(2026, 11, 2), "paid")
    void = render_html(INVOICE, TIERS, FRENCH, SELLER, "INV-000007", date(2026, 11, 2), "void")
    assert '<p class="banner paid">Paid</p>' in paid
    assert '<p class="banner void">Void</p>' in void
    for html in (paid, void):  # nothing left to pay
        assert "Due 1 December 2026" not in html and "How to pay" not in html
    credit = render_html(CREDIT_NOTE, TIERS, FRENCH, SELLER, "CN-000001", date(2026, 11, 2))
    assert 'class="banner' not in credit and "How to pay" not in credit
    draft = render_html(INVOICE, TIERS, FRENCH, SELLER)
    assert '<span class="badge">DRAFT</span>' in draft
    # a draft is for review before issuing: its reference, no number and no pay link yet
    assert "Draft of acme-20261101-USD: numbered when issued" in draft
    assert "Due 1 December 2026" in draft and "pay.example.test" not in draft
    assert "Wire to First Bank" in draft


def test_many_documents_are_written_by_worker_processes(tmp_path, monkeypatch):
    # past PARALLEL_FROM, chunks of CHUNK documents go to spawned workers: every one of
    # them is written, whole
    monkeypatch.setattr(documents, "PARALLEL_FROM", 3)
    monkeypatch.setattr(documents, "CHUNK", 2)

    def not_here(html):  # a spawned worker imports the real one; this process must not print
        raise AssertionError("printed in the issuing process, not in a worker")

    monkeypatch.setattr(issued_pages, "print_pdf", not_here)
    documents._write_pages([Page(tmp_path, f"INV-{n:06d}", INVOICE, TIERS, CUSTOMER, ISSUER,
                                 date(2026, 11, 2)) for n in range(1, 6)])
    for n in range(1, 6):
        pages = PdfReader(tmp_path / f"INV-{n:06d}.pdf").pages
        assert pages[0].extract_text().splitlines()[-2:] == [f"INV-{n:06d}", "Page 1 of 1"]


def test_the_pdfs_columns_are_the_stylesheets():
    css = issued_pages.stylesheet()
    for name, share in document_pdf.COLUMNS.items():
        assert f"th.{name} {{ width: {share * 100:g}%; }}" in css, name


def test_html_written_by_an_earlier_template_prints_every_word():
    # a PDF missing beside an HTML file of an earlier template (lines broken with <br>,
    # the parties as nested blocks) is printed from that file
    old = ("<!doctype html><html><head><title>Invoice INV-000002</title></head><body>"
           "<h1>Invoice <span class='number'>INV-000002</span></h1>"
           "<div class='grid'><div class='party'><strong>Bill to</strong><br>Acme Corp<br>"
           "ap@acme.test</div></div><p>Invoice date: Oct 1, 2026<br>"
           "<span class='muted'>(America/New_York)</span><br></p><table><thead><tr>"
           "<th>Description</th><th class='num'>Amount</th></tr></thead><tbody><tr>"
           "<td>Seats<br>Oct 1 – Oct 31</td><td class='num'>$10.00</td></tr></tbody></table>"
           "<div class='payment'><strong>How to pay</strong><br>"
           "<div>Pay online: <a href='https://pay.example.test/2'>the link</a></div></div>"
           "</body></html>")
    printed = " ".join(page_texts(old)[0])
    assert _words(printed) == _words(
        "Invoice INV-000002 Bill to Acme Corp ap@acme.test Invoice date: Oct 1, 2026 "
        "(America/New_York) DESCRIPTION AMOUNT Seats Oct 1 – Oct 31 $10.00 How to pay "
        "Pay online: the link INV-000002 Page 1 of 1")


def test_without_liberation_or_dejavu_a_pdf_is_set_in_helvetica_and_says_so(
        tmp_path, monkeypatch, caplog):
    # a machine with no fonts installed (make demo needs Python alone): the standard
    # Helvetica, not embedded, Latin-1 only; a warning names the packages
    monkeypatch.setattr(document_pdf, "FONT_DIRS", (str(tmp_path),))
    document_pdf._fonts.cache_clear()
    document_pdf._style.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="reports.document_pdf"):
            html = render_html(INVOICE, TIERS, FRENCH, SELLER, "INV-000007",
                               date(2026, 11, 2))
            pdf = document_pdf.print_pdf(html)
        fonts = {str(font["/BaseFont"]) for font in PdfReader(io.BytesIO(pdf)).pages[0][
            "/Resources"]["/Font"].values()}
        assert fonts == {"/Helvetica", "/Helvetica-Bold"}, fonts
        assert "fonts-liberation" in caplog.text
        assert "Bonjour SAS" in page_texts(html)[0]
    finally:
        document_pdf._fonts.cache_clear()
        document_pdf._style.cache_clear()
