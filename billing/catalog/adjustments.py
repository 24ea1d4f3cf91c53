"""Adjustments in the shape of Orb's API: usage, amount and percentage discounts,
minimums and maximums on plans, subscriptions and coupons.

An adjustment applies to the lines of the prices in ``applies_to_price_ids`` on one
invoice, or to every line of the plan when the list is omitted (an invoice-level
adjustment). A usage discount takes units off the quantity of each usage line it
covers before that line is priced (``invoicing/usage_discounts.py``). How they are
applied: ``invoicing/sql/applied_adjustments.sql`` and docs/invoicing.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, model_validator

from billing.catalog.fields import DecimalString, Identifier, Strict
from billing.catalog.prices import QUANTITY_PLACES, Price

Positive = Annotated[DecimalString, Field(gt=0)]
# Usage units, as a quantity's DECIMAL(38, 9) holds them; Orb sends them as numbers.
Units = Annotated[Decimal, Field(gt=0, lt=Decimal(1).scaleb(38 - QUANTITY_PLACES),
                                 decimal_places=QUANTITY_PLACES)]


class AdjustmentBase(Strict):
    id: Identifier
    applies_to_price_ids: list[Identifier] | None = Field(default=None, min_length=1)


class UsageDiscount(AdjustmentBase):
    adjustment_type: Literal["usage_discount"]
    # Orb: "the number of usage units by which to discount the price this adjustment
    # applies to in a given billing period"; a number in Orb's API, read exactly.
    usage_discount: Units


class AmountDiscount(AdjustmentBase):
    adjustment_type: Literal["amount_discount"]
    amount_discount: Positive


class PercentageDiscount(AdjustmentBase):
    adjustment_type: Literal["percentage_discount"]
    # A fraction, as in Orb: 0.1 is 10 %.
    percentage_discount: Annotated[DecimalString, Field(gt=0, le=1)]


class Minimum(AdjustmentBase):
    adjustment_type: Literal["minimum"]
    minimum_amount: Positive


class Maximum(AdjustmentBase):
    adjustment_type: Literal["maximum"]
    maximum_amount: Positive


Adjustment = Annotated[UsageDiscount | AmountDiscount | PercentageDiscount | Minimum | Maximum,
                       Field(discriminator="adjustment_type")]
# In the order Orb applies them on an invoice (docs/invoicing.md#adjustments).
ADJUSTMENT_TYPES = ("usage_discount", "amount_discount", "percentage_discount", "minimum",
                    "maximum")


def reducible(price: Price) -> str | None:
    """Why a usage discount cannot take units off ``price``'s quantity, or None when it
    can: the price must be rated on one quantity of usage, as the discount gives one."""
    if price.fixed_price_quantity is not None or price.billable_metric_id is None:
        return "it is not a usage price (a usage discount takes units off usage)"
    program = price.invoice_program()
    if program.grouping and program.filter_values is None:
        return (f"it prices each group of {', '.join(program.grouping)} apart, and a usage "
                "discount takes units off one quantity")
    if any(tier.per_unit_maximum is not None for tier in program.tiers):
        return "it caps each event's fee (per_unit_maximum), which is rated from the events"
    return None


def usage_discount_problems(adjustment: Adjustment, prices: Iterable[Price]) -> list[str]:
    """What a usage discount over ``prices`` (those of its plan version or subscription)
    cannot take units off: a price it names, or any usage price when it names none."""
    if not isinstance(adjustment, UsageDiscount):
        return []
    named = adjustment.applies_to_price_ids
    covered = [p for p in prices if p.id in named] if named is not None else [
        p for p in prices if p.billable_metric_id is not None]
    return [f"usage discount {adjustment.id!r} cannot apply to price {price.id!r}: {why}"
            + ("" if named is not None else "; name the prices it applies to in "
               "applies_to_price_ids")
            for price in covered if (why := reducible(price)) is not None]


class Coupon(Strict):
    """A reusable discount redeemed on subscriptions, for ``duration_in_months`` billing
    months from redemption (for ever when omitted)."""

    id: Identifier
    name: str
    percentage_discount: Annotated[DecimalString, Field(gt=0, le=1)] | None = None
    amount_discount: Positive | None = None
    duration_in_months: Annotated[int, Field(gt=0)] | None = None
    applies_to_price_ids: list[Identifier] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_discount(self) -> Coupon:
        if (self.percentage_discount is None) == (self.amount_discount is None):
            raise ValueError("a coupon needs exactly one of percentage_discount or amount_discount")
        return self

    def adjustment(self) -> AmountDiscount | PercentageDiscount:
        if self.amount_discount is not None:
            return AmountDiscount(id=self.id, adjustment_type="amount_discount",
                                  amount_discount=self.amount_discount,
                                  applies_to_price_ids=self.applies_to_price_ids)
        assert self.percentage_discount is not None  # _one_discount: exactly one is set
        return PercentageDiscount(id=self.id, adjustment_type="percentage_discount",
                                  percentage_discount=Decimal(self.percentage_discount),
                                  applies_to_price_ids=self.applies_to_price_ids)
