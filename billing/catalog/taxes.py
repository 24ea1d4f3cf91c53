"""The ``taxes`` section of the catalog folder: which provider computes taxes, how they
round, and the rate-table provider's rates by jurisdiction (docs/invoicing.md#taxes).

```yaml
taxes:
  provider: rate_table            # or stripe_tax
  rounding: line                  # line (the default) or invoice
  exempt_customers: [city_of_paris]
  rates:
    - {id: fr_vat, country: FR, percentage: "20", description: VAT 20%, reverse_charge: true}
    - {id: us_ca, country: US, region: CA, percentage: "7.25", description: CA sales tax}
    - {id: ch_vat, country: CH, percentage: "8.1", description: MWST 8.1%, inclusive: true}
```
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, model_validator

from billing.catalog.fields import DecimalString, Identifier, Strict
from billing.catalog.parties import Country

TaxProviderName = Literal["rate_table", "stripe_tax"]
# Per line: each taxable line's tax rounded, the invoice's the sum (the default; as
# Stripe Tax rounds). Per invoice: one rounding of the invoice's taxable sum.
TaxRounding = Literal["line", "invoice"]


def _percentage(value: Decimal) -> Decimal:
    if not value.is_finite() or not Decimal(0) <= value <= Decimal(100):
        raise ValueError(f"percentage must be a number from 0 to 100, got {value}")
    if value != value.quantize(Decimal("0.000001")):
        raise ValueError(f"percentage {value} has more than 6 decimal places")
    return value


class TaxRate(Strict):
    """A jurisdiction's rate: a country, or a region of it (``state`` in the address)."""

    id: Identifier
    country: Country
    region: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    percentage: DecimalString  # out of 100, exact: "20", "7.25"
    description: Annotated[str, Field(min_length=1, max_length=128)]
    # The catalog's prices include the tax: tax = gross × r / (1 + r), the total unchanged.
    inclusive: bool = False
    # Zero-rated, "reverse charge", for a customer with a tax id (B2B in the EU).
    reverse_charge: bool = False

    @model_validator(mode="after")
    def _checked(self) -> TaxRate:
        _percentage(self.percentage)
        return self


class TaxTable(Strict):
    provider: TaxProviderName = "rate_table"
    rounding: TaxRounding = "line"
    exempt_customers: list[Identifier] = []
    rates: list[TaxRate] = []

    @model_validator(mode="after")
    def _unique(self) -> TaxTable:
        seen: dict[str, str] = {}
        places: dict[tuple[str, str | None], str] = {}
        for index, rate in enumerate(self.rates):
            if rate.id in seen:
                raise ValueError(f"rates[{index}]: duplicate rate id {rate.id!r} "
                                 f"(first at {seen[rate.id]})")
            place = (rate.country, rate.region)
            if place in places:
                raise ValueError(f"rates[{index}]: a second rate for {_name(place)} "
                                 f"(the first is {places[place]!r})")
            seen[rate.id], places[place] = f"rates[{index}]", rate.id
        return self


def _name(place: tuple[str, str | None]) -> str:
    return place[0] if place[1] is None else f"{place[0]}-{place[1]}"
