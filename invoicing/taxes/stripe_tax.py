"""A tax provider on Stripe Tax: one Tax Calculation per invoice
(``POST /v1/tax/calculations``), its ``tax_breakdown`` kept as the invoice's tax lines.

Each invoice is sent as one line item, its taxable amount after adjustments and
credits (Stripe takes no negative line amounts, and Orb's order puts tax after both), in
the currency's minor units, ``tax_behavior=exclusive``; the customer as its billing
address (``address_source=billing``), its tax id, and ``taxability_override=
customer_exempt`` for a customer the table exempts. Stripe rounds; its amounts are kept
as given. A customer without a billing country is not taxed, as with the rate table.

Called over HTTP with the standard library rather than the ``stripe`` package, so that
only ``payments`` imports Stripe's SDK (the import contract) and no dependency is added.
Configuration: ``ORB_STRIPE_API_KEY`` (required) and ``ORB_STRIPE_API_BASE`` (another
address, e.g. a test server), the variables the Stripe payment processor reads.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from billing.catalog import Catalog
from billing.catalog.models import Customer
from billing.catalog.taxes import TaxTable
from storage.tables import INVOICE_TAXES

API_KEY_ENV = "ORB_STRIPE_API_KEY"
API_BASE_ENV = "ORB_STRIPE_API_BASE"
DEFAULT_BASE = "https://api.stripe.com"
TIMEOUT_SECONDS = 30
# Stripe's taxability_reason as Orb's tax_reason.
REASONS = {"standard_rated": "taxed", "reduced_rated": "taxed", "customer_exempt":
           "customer_exempt", "reverse_charge": "reverse_charge", "zero_rated": "zero_rated",
           "product_exempt": "product_exempt", "not_collecting": "not_registered"}


class StripeTaxError(RuntimeError):
    """Stripe Tax refused or could not be reached: the run stops, naming the invoice."""


@dataclass(frozen=True)
class StripeTax:
    table: TaxTable
    api_key: str
    api_base: str = DEFAULT_BASE

    @classmethod
    def from_env(cls, table: TaxTable) -> StripeTax:
        key = os.environ.get(API_KEY_ENV, "")
        if not key:
            raise StripeTaxError(f"the catalog's taxes name provider stripe_tax, but "
                                 f"{API_KEY_ENV} is not set")
        return cls(table, key, os.environ.get(API_BASE_ENV) or DEFAULT_BASE)

    def request_body(self, invoice_id: str, currency: str, exponent: int, taxable: Decimal,
                     customer: Customer) -> dict[str, str]:
        """The form fields of one invoice's calculation."""
        body = {"currency": currency.lower(),
                "line_items[0][amount]": str(int(taxable.scaleb(exponent))),
                "line_items[0][reference]": invoice_id,
                "line_items[0][tax_behavior]": "exclusive",
                "customer_details[address_source]": "billing"}
        address = customer.billing_address
        for field in ("line1", "line2", "city", "state", "postal_code", "country"):
            value = getattr(address, field) if address else None
            if value:
                body[f"customer_details[address][{field}]"] = value
        if customer.tax_id is not None:
            body["customer_details[tax_ids][0][type]"] = customer.tax_id.type
            body["customer_details[tax_ids][0][value]"] = customer.tax_id.value
        if customer.id in self.table.exempt_customers:
            body["customer_details[taxability_override]"] = "customer_exempt"
        return body

    def calculate(self, invoice_id: str, body: dict[str, str]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.api_base.rstrip('/')}/v1/tax/calculations",
            data=urllib.parse.urlencode(body).encode(), method="POST",
            headers={"Authorization": f"Bearer {self.api_key}",
                     "Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                result: dict[str, Any] = json.load(response)
                return result
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise StripeTaxError(f"Stripe Tax refused the calculation of invoice "
                                 f"{invoice_id}: HTTP {exc.code}: {detail}") from exc
        except OSError as exc:
            raise StripeTaxError(f"Stripe Tax could not be reached for invoice "
                                 f"{invoice_id}: {exc}") from exc

    def taxes(self, con: duckdb.DuckDBPyConnection, taxable: pa.Table,
              catalog: Catalog) -> pa.Table:
        con.register("stripe_taxable", taxable)
        sums = con.sql("SELECT invoice_id, any_value(customer_id), any_value(currency), "
                       "any_value(currency_exponent), sum(amount) FROM stripe_taxable "
                       "GROUP BY invoice_id ORDER BY invoice_id").fetchall()
        rows = []
        for invoice_id, customer_id, currency, exponent, amount in sums:
            customer = catalog.customer(customer_id)
            address = customer.billing_address
            if address is None or address.country is None or amount <= 0:
                continue
            result = self.calculate(invoice_id, self.request_body(
                invoice_id, currency, exponent, amount, customer))
            rows += [_row(invoice_id, exponent, part) for part in result["tax_breakdown"]]
        return pa.Table.from_pylist(rows, schema=INVOICE_TAXES)


def _row(invoice_id: str, exponent: int, part: dict[str, Any]) -> dict[str, Any]:
    details = part.get("tax_rate_details") or {}
    country, state = details.get("country") or "", details.get("state")
    place = f"{country}-{state}" if state else country
    percentage = Decimal(str(details.get("percentage_decimal") or "0"))
    shown = f"{percentage.normalize():f}"  # "20.0" as 20, not 2E+1
    kind = str(details.get("tax_type") or "tax")
    return {"invoice_id": invoice_id, "line_key": None,
            "tax_rate_id": f"stripe:{place}:{kind}:{shown}",
            "description": f"{kind.replace('_', ' ').upper()} {shown}% ({place})",
            "jurisdiction": place, "percentage": percentage,
            "inclusive": bool(part.get("inclusive")),
            "reason": REASONS.get(part.get("taxability_reason") or "", "not_taxed_other"),
            "taxable": Decimal(int(part["taxable_amount"])).scaleb(-exponent),
            "amount": Decimal(int(part["amount"])).scaleb(-exponent),
            "provider": "stripe_tax"}
