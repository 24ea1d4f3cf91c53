"""Tax rules: which rate a customer is taxed at, and the exact tax of an amount.

Pure. The rate-table provider (``invoicing/taxes/rate_table.py``) computes the same
amounts set-based in SQL (``invoicing/sql/rate_table_taxes.sql``) from ``rate_terms``;
``tax_of`` is the rule in Python, which the tests compare it with. docs/invoicing.md#taxes.

- Jurisdiction: the customer's billing address, its country and ``state`` (a region);
  a rate of the country and region is taken before the country's own. No address, or
  no rate for it: no tax.
- A customer listed in ``exempt_customers`` is taxed at 0 (``customer_exempt``); one
  with a tax id where the rate says ``reverse_charge``, at 0 (``reverse_charge``).
- Exclusive: tax = amount × r. Inclusive (the price includes it): tax = amount × r/(1+r),
  and the amount stays as it is.
- Rounded once, to the currency's minor unit, ROUND_HALF_UP (half away from zero, as
  every amount here): per taxable line by default, or once per invoice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Literal

from billing.catalog.models import Customer
from billing.catalog.taxes import TaxRate, TaxRounding, TaxTable

ROUNDING = ROUND_HALF_UP
# Orb's ``tax_reason`` values this project gives.
TaxReason = Literal["taxed", "reverse_charge", "customer_exempt"]


@dataclass(frozen=True)
class Treatment:
    """How one customer is taxed: the rate that applies and why."""

    tax_rate_id: str
    description: str
    jurisdiction: str  # "FR", "US-CA"
    percentage: Decimal  # out of 100; 0 when exempt or reverse charged
    inclusive: bool
    reason: TaxReason

    @property
    def factor(self) -> Fraction:
        """What an amount is multiplied by to give its tax, exactly."""
        rate = Fraction(self.percentage) / 100
        return rate / (1 + rate) if self.inclusive else rate


def jurisdiction_rate(table: TaxTable, customer: Customer) -> TaxRate | None:
    """The rate of the customer's billing address, region first; None: not taxed."""
    address = customer.billing_address
    if address is None or address.country is None:
        return None
    by_place = {(rate.country, rate.region): rate for rate in table.rates}
    return by_place.get((address.country, address.state)) or by_place.get((address.country, None))


def treatment(table: TaxTable, customer: Customer) -> Treatment | None:
    """How ``customer`` is taxed under ``table``; None: no rate for its jurisdiction."""
    rate = jurisdiction_rate(table, customer)
    if rate is None:
        return None
    place = rate.country if rate.region is None else f"{rate.country}-{rate.region}"
    reason: TaxReason = "taxed"
    description = rate.description
    if customer.id in table.exempt_customers:
        reason, description = "customer_exempt", f"{rate.description} (exempt)"
    elif rate.reverse_charge and customer.tax_id is not None:
        reason, description = "reverse_charge", f"{rate.description} (reverse charge)"
    return Treatment(rate.id, description, place,
                     rate.percentage if reason == "taxed" else Decimal(0),
                     rate.inclusive, reason)


def round_half_up(value: Fraction, exponent: int) -> Decimal:
    """``value`` to ``exponent`` decimal places, half away from zero, exactly."""
    scaled = abs(value) * 10**exponent
    units = (2 * scaled.numerator + scaled.denominator) // (2 * scaled.denominator)
    return Decimal(units if value >= 0 else -units).scaleb(-exponent)


def tax_of(amounts: Iterable[Decimal], treatment: Treatment, rounding: TaxRounding,
           exponent: int) -> list[Decimal]:
    """The tax of each taxable amount (``line``), or one tax of their sum (``invoice``)."""
    if rounding == "invoice":
        return [round_half_up(sum(map(Fraction, amounts), Fraction(0)) * treatment.factor,
                              exponent)]
    return [round_half_up(Fraction(a) * treatment.factor, exponent) for a in amounts]
