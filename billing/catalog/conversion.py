"""Orb's custom pricing units: a price written in a unit of its own (``currency``, such as
credits) and converted to its plan's currency at ``conversion_rate``, plan currency per
unit.

Conversion happens in the normal form: every amount of the price's program (rates, flat
amounts, minimums, maximums, caps) is multiplied by the rate, exactly, before rating.
The SQL then rates in the plan's currency and rounds once per line, as for any price;
an amount that would need more than 12 decimal places after conversion is refused.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_validator

from billing.catalog.fields import DecimalString, Strict

if TYPE_CHECKING:
    from billing.catalog.prices import Program

RATE_PLACES = 12  # amounts are DECIMAL(38, 12) in SQL
ConversionRate = Annotated[DecimalString, Field(gt=0, lt=Decimal(10) ** 26,
                                                decimal_places=RATE_PLACES)]


class UnitConversion(Strict):
    unit_amount: ConversionRate


class ConversionRateConfig(Strict):
    """Orb's ``conversion_rate_config``: only the ``unit`` type, one rate."""

    conversion_rate_type: Literal["unit", "tiered"]
    unit_config: UnitConversion | None = None
    tiered_config: object = None

    @field_validator("conversion_rate_type")
    @classmethod
    def _unit(cls, value: str) -> str:
        if value != "unit":
            raise ValueError("a tiered conversion rate is not supported: give one rate "
                             "(conversion_rate_type 'unit' or conversion_rate)")
        return value


def _exact(value: Decimal, what: str) -> Decimal:
    if value != value.quantize(Decimal(1).scaleb(-RATE_PLACES)):
        raise ValueError(f"{what} {value} x conversion_rate needs more than {RATE_PLACES} "
                         "decimal places")
    return value


def converted(program: Program, rate: Decimal) -> Program:
    """``program`` with every amount in the plan's currency (× ``rate``)."""
    if program.composite or program.value_rates or program.cell_discounts \
            or program.daily_allowance is not None or program.metered_minimum is not None:
        raise ValueError("a conversion_rate is not supported on this model yet: give its "
                         "amounts in the plan's currency")

    def money(value: Decimal | None, what: str) -> Decimal | None:
        return None if value is None else _exact(value * rate, what)

    tiers = [replace(tier, rate=_exact(tier.rate * rate, "a rate"),
                     flat_amount=money(tier.flat_amount, "a flat amount"),
                     minimum_amount=money(tier.minimum_amount, "a minimum amount"),
                     per_unit_maximum=money(tier.per_unit_maximum, "a per_unit_maximum"))
             for tier in program.tiers]
    cells = [(values, money(cell_rate, "a cell's rate")) for values, cell_rate in program.cells]
    return replace(program, tiers=tiers, cells=cells,
                   group_maximum=money(program.group_maximum, "a group maximum"),
                   prorated_group_minimum=money(program.prorated_group_minimum, "a minimum"))
