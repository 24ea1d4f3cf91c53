"""Adjustments in the shape of Orb's API: discounts, minimums and maximums on plans,
subscriptions and coupons.

An adjustment applies to the lines of the prices in ``applies_to_price_ids`` on one
invoice, or to every line of the plan when the list is omitted (an invoice-level
adjustment). How they are applied: ``invoicing/sql/applied_adjustments.sql`` and
docs/invoicing.md.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, model_validator

from billing.catalog.fields import DecimalString, Identifier, Strict

Positive = Annotated[DecimalString, Field(gt=0)]


class AdjustmentBase(Strict):
    id: Identifier
    applies_to_price_ids: list[Identifier] | None = Field(default=None, min_length=1)


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


Adjustment = Annotated[AmountDiscount | PercentageDiscount | Minimum | Maximum,
                       Field(discriminator="adjustment_type")]
ADJUSTMENT_TYPES = ("amount_discount", "percentage_discount", "minimum", "maximum")


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
