"""What a document shows besides its rows: the parties' blocks, the due-date banner, how
to pay, and the paper it is printed on (docs/invoicing.md#the-document)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from billing.catalog.models import Customer
from billing.catalog.parties import LETTER_COUNTRIES, Address, Seller, TaxId
from invoicing.document_model import DocumentHead, DocumentStatus

# A tax id's usual name on an invoice, by the end of Orb's type; else "Tax ID".
TAX_LABELS = {"vat": "VAT", "ein": "EIN", "gst": "GST", "abn": "ABN", "hst": "GST/HST"}


def tax_line(tax_id: TaxId | None) -> list[str]:
    if tax_id is None:
        return []
    return [f"{TAX_LABELS.get(tax_id.type.rsplit('_', 1)[1], 'Tax ID')} {tax_id.value}"]


def address_lines(address: Address | None) -> list[str]:
    return [] if address is None else address.lines()


def long_day(day: date) -> str:
    """15 January 2027: unambiguous on both sides of the Atlantic."""
    return f"{day.day} {day:%B %Y}"


@dataclass(frozen=True)
class DocumentView:
    paper: str  # "letter" or "a4", the CSS page name
    banner: str | None
    seller_lines: list[str]
    customer_lines: list[str]
    pay_url: str | None
    instructions: str | None

    def context(self) -> dict[str, Any]:
        return {"paper": self.paper, "banner": self.banner, "seller_lines": self.seller_lines,
                "customer_lines": self.customer_lines, "pay_url": self.pay_url,
                "instructions": self.instructions}


def document_view(head: DocumentHead, customer: Customer, seller: Seller, number: str | None,
                  status: DocumentStatus | None) -> DocumentView:
    """``status`` None: a draft."""
    country = customer.billing_address.country if customer.billing_address else None
    payable = (head.document_type != "credit_note" and status not in ("paid", "void")
               and head.total > 0)
    if status == "void":
        banner: str | None = "Void"
    elif status == "paid":
        banner = "Paid"
    elif payable:
        banner = f"Due {long_day(head.due_date)}"
    else:
        banner = None
    return DocumentView(
        paper="letter" if country in LETTER_COUNTRIES else "a4",
        banner=banner,
        seller_lines=[*address_lines(seller.address), *tax_line(seller.tax_id),
                      *([seller.email] if seller.email else [])],
        customer_lines=[*address_lines(customer.billing_address), *tax_line(customer.tax_id),
                        *([customer.email] if customer.email else [])],
        pay_url=seller.pay_url(number) if payable and number else None,
        instructions=seller.payment_instructions if payable else None)
