"""Taxes: the rate table (exclusive, inclusive, exempt, reverse charge, two jurisdictions),
applied after credits, rounded per line or per invoice, corrected on re-rating, on the
documents, and the Stripe Tax adapter against a fake server (docs/invoicing.md#taxes).
Every amount below is worked out by hand in its comment."""

from __future__ import annotations

import json
import threading
import urllib.parse
from datetime import UTC, date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api import invoices as api_invoices
from api.resources.invoices import shaped
from api.views import View
from billing.catalog import Catalog, CatalogError, parse_catalog
from billing.catalog.parties import Seller
from billing.credits import Grant
from billing.taxes import tax_of, treatment
from invoicing import documents
from invoicing.assembly import Invoiced, assemble_invoices
from invoicing.issuing import compute_corrections, drafts, issue_month
from invoicing.taxes.stripe_tax import StripeTax
from pricing_sql.rating import price_line_items
from reports.issued_pages import render_html
from storage import billing_runs
from storage.duck import connect
from storage.lake import Lake
from storage.tables import BILLING_RUNS, INVOICE_CORRECTIONS, ISSUED_DOCUMENTS, TABLES
from tests.catalogs import unit
from tests.invoicing import usage_table
from tests.pdf_pages import page_texts

OCTOBER = date(2026, 10, 1)
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ADDRESSES = {"FR": {"line1": "8 rue de Rivoli", "city": "Paris", "country": "FR"},
             "DE": {"line1": "Unter den Linden 1", "city": "Berlin", "country": "DE"},
             "CH": {"line1": "Bahnhofstrasse 1", "city": "Zurich", "country": "CH"}}
RATES = [
    {"id": "fr_vat", "country": "FR", "percentage": "20", "description": "VAT 20%",
     "reverse_charge": True},
    {"id": "de_vat", "country": "DE", "percentage": "19", "description": "MwSt. 19%"},
    {"id": "ch_vat", "country": "CH", "percentage": "20", "description": "MWST 20%",
     "inclusive": True},
]


def shop(customers: dict[str, str], *, fee: str | None = None, call: str = "1.00",
         rounding: str = "line", exempt: tuple[str, ...] = (), tax_ids: tuple[str, ...] = (),
         taxes: bool = True, rates: list[dict] = RATES) -> Catalog:
    """EUR, ``call`` a call in arrears (and ``fee`` a month in advance); customer id ->
    country; subscriptions ``s_<customer>`` from Oct 1, so October's run makes the Nov 1
    invoice: October's calls and November's fee."""
    prices = [unit("calls", call, metric="calls")]
    if fee is not None:
        prices.append(unit("fee", fee, fixed_quantity=1))
    return Catalog.model_validate({
        "metrics": [{"id": "calls", "name": "calls", "sql": "SELECT count(*) FROM events"}],
        "plans": [{"id": "p", "name": "P", "currency": "EUR", "prices": prices}],
        "customers": [{"id": c, "name": c.upper(), "billing_address": ADDRESSES[country],
                       **({"tax_id": {"country": "FR", "type": "eu_vat",
                                      "value": "FR40303265045"}} if c in tax_ids else {})}
                      for c, country in customers.items()],
        "subscriptions": [{"id": f"s_{c}", "customer_id": c, "plan_id": "p",
                           "start_date": "2026-10-01"} for c in customers],
        "taxes": {"rounding": rounding, "exempt_customers": list(exempt), "rates": rates}
        if taxes else None,
    })


def run(catalog: Catalog, calls: dict[str, int], grants: list[Grant] = (),
        tax_provider=None) -> Invoiced:
    con = connect()
    usage = usage_table({(f"s_{c}:20261001-20261101", "calls"): n for c, n in calls.items()})
    priced = price_line_items(con, catalog, OCTOBER, usage)
    return assemble_invoices(con, catalog, OCTOBER, priced.line_items, list(grants), {}, {},
                             tax_provider)


def heads(invoiced: Invoiced) -> dict[str, tuple[Decimal, Decimal]]:
    """customer -> (tax, total)."""
    return {r["customer_id"]: (r["tax"], r["total"]) for r in invoiced.invoices.to_pylist()}


def test_exclusive_20_percent_on_100_is_20():
    invoiced = run(shop({"fr": "FR"}), {"fr": 100})
    # 100 calls × 1.00 = 100.00; 100.00 × 20 % = 20.00; total 120.00
    assert heads(invoiced) == {"fr": (Decimal("20.00"), Decimal("120.00"))}
    (row,) = invoiced.taxes.to_pylist()  # one taxable line, rounded per line
    assert (row["line_key"], row["taxable"], row["amount"], row["reason"], row["jurisdiction"]
            ) == ("s_fr:calls:20261001", Decimal("100.00"), Decimal("20.00"),
                  "taxed", "FR")


def test_an_inclusive_price_holds_its_tax():
    invoiced = run(shop({"ch": "CH"}), {"ch": 120})
    # 120.00 gross at 20 % inclusive: tax = 120 × 0.2/1.2 = 20.00, net 100.00; the total
    # stays 120.00 and the head's tax (what is added) is 0
    assert heads(invoiced) == {"ch": (Decimal("0.00"), Decimal("120.00"))}
    (row,) = invoiced.taxes.to_pylist()
    assert (row["inclusive"], row["amount"]) == (True, Decimal("20.00"))


def test_an_exempt_customer_and_a_reverse_charge_pay_no_tax():
    invoiced = run(shop({"gov": "FR", "b2b": "FR"}, exempt=("gov",), tax_ids=("b2b",)),
                   {"gov": 100, "b2b": 100})
    assert heads(invoiced) == {"gov": (Decimal("0.00"), Decimal("100.00")),
                               "b2b": (Decimal("0.00"), Decimal("100.00"))}
    reasons = {r["invoice_id"].split("-")[0]: (r["reason"], r["description"], r["amount"])
               for r in invoiced.taxes.to_pylist()}
    assert reasons == {"gov": ("customer_exempt", "VAT 20% (exempt)", Decimal("0.00")),
                       "b2b": ("reverse_charge", "VAT 20% (reverse charge)", Decimal("0.00"))}


def test_two_jurisdictions_in_one_run():
    invoiced = run(shop({"fr": "FR", "de": "DE"}), {"fr": 100, "de": 100})
    # FR: 100.00 × 20 % = 20.00; DE: 100.00 × 19 % = 19.00
    assert heads(invoiced) == {"fr": (Decimal("20.00"), Decimal("120.00")),
                               "de": (Decimal("19.00"), Decimal("119.00"))}


def test_tax_applies_after_prepaid_credits():
    grant = Grant("g", "fr", "EUR", Decimal("30.00"), Decimal(0), date(2026, 9, 1), None)
    invoiced = run(shop({"fr": "FR"}), {"fr": 100}, [grant])
    # 100.00 − 30.00 credits = 70.00 taxable; 70.00 × 20 % = 14.00; total 84.00
    (invoice,) = invoiced.invoices.to_pylist()
    assert (invoice["credits_applied"], invoice["tax"], invoice["total"]) == (
        Decimal("30.00"), Decimal("14.00"), Decimal("84.00"))
    # per line: the calls' 100.00 → 20.00 and the credits' −30.00 → −6.00
    assert sorted((r["line_key"], r["amount"]) for r in invoiced.taxes.to_pylist()) == [
        ("credits", Decimal("-6.00")), ("s_fr:calls:20261001", Decimal("20.00"))]


def test_rounding_per_line_and_per_invoice_differ_by_a_cent():
    # Two lines of 0.10 (1 call at 0.10, a 0.10 fee) at 25 % (a rate table of its own):
    # per line 0.025 → 0.03 each (half away from zero) = 0.06; per invoice
    # 0.20 × 25 % = 0.05.
    def taxed(rounding: str) -> Decimal:
        catalog = shop({"fr": "FR"}, fee="0.10", call="0.10", rounding=rounding,
                       rates=[{**RATES[0], "percentage": "25"}])
        (invoice,) = run(catalog, {"fr": 1}).invoices.to_pylist()
        assert invoice["total"] == Decimal("0.20") + invoice["tax"]
        return invoice["tax"]

    assert (taxed("line"), taxed("invoice")) == (Decimal("0.06"), Decimal("0.05"))


def test_without_a_tax_table_nothing_changes():
    invoiced = run(shop({"fr": "FR"}, taxes=False), {"fr": 100})
    assert heads(invoiced) == {"fr": (Decimal("0.00"), Decimal("100.00"))}
    assert invoiced.taxes.num_rows == 0


def _write_run(lake: Lake, invoiced: Invoiced, line_items: pa.Table,
               corrections: pa.Table) -> None:
    for table, rows in (("line_items", line_items), ("invoice_adjustments", invoiced.adjustments),
                        ("invoices", invoiced.invoices), ("invoice_taxes", invoiced.taxes),
                        ("invoice_corrections", corrections)):
        lake.write_partition(table, "billing_month", OCTOBER, rows)


def test_rerating_corrects_the_tax_and_the_documents_show_it(tmp_path):
    lake, con, catalog = Lake(tmp_path), connect(), shop({"fr": "FR"})
    first = price_line_items(con, catalog, OCTOBER, usage_table(
        {("s_fr:20261001-20261101", "calls"): 100}))
    invoiced = assemble_invoices(con, catalog, OCTOBER, first.line_items, [], {}, {})
    _write_run(lake, invoiced, first.line_items, INVOICE_CORRECTIONS.empty_table())
    ((number, issued),) = issue_month(con, lake, OCTOBER, NOW)
    # issued: 100.00 + VAT 20.00 = 120.00
    assert (number, issued.head.tax, issued.head.total) == (
        "INV-000001", Decimal("20.00"), Decimal("120.00"))
    assert [(line.kind, line.name, line.amount) for line in issued.lines
            if line.kind == "tax"] == [("tax", "VAT 20%", Decimal("20.00"))]

    # 20 late calls: 120.00 + 24.00 now; the correction is +20.00 and +4.00 of tax
    second = price_line_items(con, catalog, OCTOBER, usage_table(
        {("s_fr:20261001-20261101", "calls"): 120}))
    again = assemble_invoices(con, catalog, OCTOBER, second.line_items, [], {}, {})
    corrections = compute_corrections(con, lake, OCTOBER, second.line_items, again.adjustments,
                                      set(), again.taxes)
    _write_run(lake, again, second.line_items, corrections)
    (draft,) = drafts(con, lake, OCTOBER)
    assert (draft.head.document_type, draft.head.subtotal, draft.head.tax, draft.head.total) == (
        "adjustment_invoice", Decimal("20.00"), Decimal("4.00"), Decimal("24.00"))

    seller = Seller(name="Example Cloud SAS")
    customer = catalog.customer("fr")
    for document, shown in ((issued, ["Subtotal", "€100.00", "VAT 20%", "€20.00",
                                      "Amount due", "€120.00"]),
                            (draft, ["VAT 20%", "€4.00", "€24.00"])):
        html = render_html(document, {}, customer, seller, "INV-000001", date(2026, 11, 2))
        on_page = " ".join(" ".join(page) for page in page_texts(html))
        for text in shown:
            assert text in html, text
            assert text in on_page, text


def test_a_lake_from_before_taxes_reads_with_no_tax(tmp_path):
    lake = Lake(tmp_path)
    # an issuing run's heads written without the tax column
    old_heads = ISSUED_DOCUMENTS.remove(ISSUED_DOCUMENTS.get_field_index("tax"))
    lake.write_file("issued_documents", "issue_run", "20261102T090000-0a0b0c0d", "data.parquet",
                    pa.Table.from_pylist([{
                        "number": "INV-000001", "document_type": "invoice",
                        "invoice_id": "fr-20261101-EUR", "customer_id": "fr",
                        "currency": "EUR", "billing_month": OCTOBER,
                        "invoice_date": date(2026, 11, 1), "due_date": date(2026, 12, 1),
                        "issued_at": NOW, "subtotal": Decimal("100.00"),
                        "adjustments": Decimal(0), "credits_applied": Decimal(0),
                        "total": Decimal("100.00")}], schema=old_heads))
    (head,) = documents.issued_documents(lake)
    assert (head.tax, head.total) == (Decimal(0), Decimal("100.00"))
    # a month whose completed run's commit does not list invoice_taxes
    tables = [t for t in billing_runs.RUN_TABLES if t != "invoice_taxes"]
    for table in tables:
        schema = TABLES[table].schema
        billing_runs.write(lake, table, OCTOBER, "old",
                           schema.remove(schema.get_field_index("run_id")).empty_table())
    lake.write_file("billing_runs", "billing_month", OCTOBER, "old.parquet", pa.Table.from_pylist(
        [{"run_id": "old", "billing_month": OCTOBER, "finished_at": NOW, "tables": tables}],
        schema=BILLING_RUNS))
    month = billing_runs.read_month(lake, OCTOBER, ["invoices", "invoice_taxes"])
    assert (month.run_id, month["invoice_taxes"].num_rows) == ("old", 0)


def test_the_api_shows_each_lines_tax_amounts(tmp_path):
    lake, con, catalog = Lake(tmp_path), connect(), shop({"de": "DE"})
    priced = price_line_items(con, catalog, OCTOBER, usage_table(
        {("s_de:20261001-20261101", "calls"): 100}))
    invoiced = assemble_invoices(con, catalog, OCTOBER, priced.line_items, [], {}, {})
    computed = {"line_items": priced.line_items, "invoices": invoiced.invoices,
                "invoice_adjustments": invoiced.adjustments, "invoice_taxes": invoiced.taxes,
                "credit_ledger": invoiced.ledger}
    for table in billing_runs.RUN_TABLES:
        schema = TABLES[table].schema
        billing_runs.write(lake, table, OCTOBER, "r1", computed.get(
            table, schema.remove(schema.get_field_index("run_id")).empty_table()))
    billing_runs.commit(lake, OCTOBER, "r1", NOW)
    (invoice,) = api_invoices.read(lake)
    view = View(catalog, catalog.customers, catalog.subscriptions, {}, NOW, NOW)
    shape = shaped(view, invoice)
    # 100 calls × 1.00 = 100.00; MwSt. 19 % = 19.00; total 119.00
    assert (shape["subtotal"], shape["total"]) == ("100.00", "119.00")
    assert [line["tax_amounts"] for line in shape["line_items"]] == [[{
        "amount": "19.00", "tax_rate_description": "MwSt. 19%",
        "tax_rate_percentage": "19", "tax_reason": "taxed"}]]


class FakeStripeTax(BaseHTTPRequestHandler):
    """POST /v1/tax/calculations: records the form, answers 20 % VAT of line 0."""

    seen: list[tuple[str, str, dict[str, str]]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        form = dict(urllib.parse.parse_qsl(self.rfile.read(
            int(self.headers["Content-Length"])).decode()))
        FakeStripeTax.seen.append((self.path, self.headers["Authorization"], form))
        amount = int(form["line_items[0][amount]"])
        body = json.dumps({
            "object": "tax.calculation", "currency": form["currency"],
            "amount_total": amount + amount // 5, "tax_amount_exclusive": amount // 5,
            "tax_breakdown": [{
                "amount": amount // 5, "inclusive": False, "taxable_amount": amount,
                "taxability_reason": "standard_rated",
                "tax_rate_details": {"country": "FR", "state": None,
                                     "percentage_decimal": "20.0", "tax_type": "vat"}}],
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stripe_tax():
    server = HTTPServer(("127.0.0.1", 0), FakeStripeTax)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeStripeTax.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_stripe_tax_adapter_sends_the_invoice_and_keeps_stripes_tax(stripe_tax):
    catalog = shop({"fr": "FR"}, tax_ids=("fr",))
    catalog = catalog.model_copy(update={"taxes": catalog.taxes.model_copy(
        update={"provider": "stripe_tax"})})
    grant = Grant("g", "fr", "EUR", Decimal("30.00"), Decimal(0), date(2026, 9, 1), None)
    invoiced = run(catalog, {"fr": 100}, [grant],
                   StripeTax(catalog.taxes, "sk_test_123", stripe_tax))
    ((path, auth, form),) = FakeStripeTax.seen
    # 100.00 − 30.00 credits = 70.00 = 7000 cents, one line for the invoice
    assert (path, auth) == ("/v1/tax/calculations", "Bearer sk_test_123")
    assert form == {
        "currency": "eur", "line_items[0][amount]": "7000",
        "line_items[0][reference]": "fr-20261101-EUR",
        "line_items[0][tax_behavior]": "exclusive",
        "customer_details[address_source]": "billing",
        "customer_details[address][line1]": "8 rue de Rivoli",
        "customer_details[address][city]": "Paris",
        "customer_details[address][country]": "FR",
        "customer_details[tax_ids][0][type]": "eu_vat",
        "customer_details[tax_ids][0][value]": "FR40303265045"}
    # Stripe's 1400 cents: 14.00 of VAT on 70.00, total 84.00
    assert heads(invoiced) == {"fr": (Decimal("14.00"), Decimal("84.00"))}
    (row,) = invoiced.taxes.to_pylist()
    assert (row["provider"], row["description"], row["taxable"], row["reason"]) == (
        "stripe_tax", "VAT 20% (FR)", Decimal("70.00"), "taxed")


def test_a_bad_tax_table_names_file_line_and_field():
    text = ("taxes:\n  rounding: line\n  rates:\n"
            "    - {id: fr, country: FR, percentage: \"20\", description: VAT}\n"
            "    - {id: xx, country: XX, percentage: \"5\", description: X}\n")
    with pytest.raises(CatalogError) as error:
        parse_catalog([("taxes.yaml", text)])
    assert error.value.problems == [
        "taxes.yaml:5: taxes.rates[1].country: Value error, country must be an ISO 3166-1 "
        "alpha-2 code such as US or FR, got 'XX'"]


@settings(max_examples=8, deadline=None)
@given(calls=st.lists(st.integers(0, 5000), min_size=2, max_size=2),
       fee=st.decimals("0.00", "99.99", places=2), credit=st.decimals("0", "50", places=2),
       rounding=st.sampled_from(["line", "invoice"]))
def test_total_is_the_rounded_lines_less_credits_plus_the_tax_lines(calls, fee, credit,
                                                                      rounding):
    catalog = shop({"fr": "FR", "de": "DE"}, fee=str(fee), call="0.0137", rounding=rounding)
    grants = [Grant("g", "de", "EUR", credit, Decimal(0), date(2026, 9, 1), None)] if credit else []
    invoiced = run(catalog, {"fr": calls[0], "de": calls[1]}, grants)
    taxes = invoiced.taxes.to_pylist()
    for invoice in invoiced.invoices.to_pylist():
        mine = [t for t in taxes if t["invoice_id"] == invoice["invoice_id"]]
        assert invoice["total"] == (invoice["subtotal"] + invoice["adjustments"]
                                    - invoice["credits_applied"]
                                    + sum((t["amount"] for t in mine), Decimal(0)))
        # the SQL's amounts are the pure rule's (billing/taxes.py), line by line
        rule = treatment(catalog.taxes, catalog.customer(invoice["customer_id"]))
        assert [t["amount"] for t in mine] == tax_of([t["taxable"] for t in mine], rule,
                                                      rounding, 2)
