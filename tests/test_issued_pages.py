"""Issued documents as HTML and PDF: every line and total on the page, and PDFs laid out
with the cut-down user-agent stylesheet byte for byte those of WeasyPrint's own."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import weasyprint

from billing.catalog.models import Customer
from invoicing.document_model import CorrectionLine, DocumentHead, DocumentLine, Draft
from reports import issued_pages
from reports.issued_pages import Page, render_html, write_pages

CUSTOMER = Customer(id="acme", name="Acme Corp", email="ap@acme.test",
                    timezone="America/New_York")
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


def test_a_document_shows_every_line_and_total():
    html = render_html(INVOICE, TIERS, CUSTOMER, "Example Cloud, Inc.", "INV-000007",
                       date(2026, 11, 2))
    for text in ("INV-000007", "acme-20261101-USD", "Acme Corp", "ap@acme.test",
                 "Example Cloud, Inc.", "Dates in America/New_York", "Currency: USD",
                 "<td>API calls by endpoint, per thousand</td>",
                 "<td>Oct 1, 2026 – Oct 31, 2026</td>", "<td>Nov 1, 2026 – Nov 30, 2026</td>",
                 "/v1/search · 0 – 1,000", "/v1/search · 1,000+", '<td class="num">$0.05</td>',
                 '<td class="num">$60.00</td>', '<td class="num">$1,234,500.00</td>',
                 "Ten percent off calls", '<td class="num">-$16.00</td>',
                 "Prepaid credits applied", '<td class="num">-$10.00</td>',
                 '<td class="num">$1,234,560.00</td>', '<td class="num">$1,234,534.00</td>'):
        assert text in html, text


def test_pdfs_with_the_cut_down_user_agent_stylesheet_are_weasyprints():
    assert "_ua_stylesheets" in vars(weasyprint.HTML)  # the hook it replaces exists
    fonts = weasyprint.text.fonts.FontConfiguration()
    for draft in (INVOICE, CREDIT_NOTE):
        html = render_html(draft, TIERS, CUSTOMER, "Example Cloud, Inc.", "N-1",
                           date(2026, 11, 2))
        assert issued_pages._pdf(html) == weasyprint.HTML(string=html).write_pdf(
            font_config=fonts)


def test_pages_are_written_once_each(tmp_path):
    old = "<!doctype html><html><body><p>Laid out as issued, with its own style</p></body></html>"
    written = write_pages([
        Page(tmp_path, "INV-000001", INVOICE, TIERS, CUSTOMER, "Example Cloud, Inc.",
             date(2026, 11, 2)),
        Page(tmp_path, "INV-000002", INVOICE, TIERS, CUSTOMER, "Example Cloud, Inc.",
             date(2026, 11, 2), html=old)])  # its HTML exists: only the PDF is missing
    assert written == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "INV-000001.html", "INV-000001.pdf", "INV-000002.pdf"]
    assert "INV-000001" in (tmp_path / "INV-000001.html").read_text()
    assert (tmp_path / "INV-000002.pdf").read_bytes() == issued_pages._pdf(old)
