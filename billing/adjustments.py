"""Apply adjustments to one invoice's rounded line amounts.

Order, as Orb documents it: amount discounts, then percentage discounts, then
minimums, then maximums (ties by adjustment id). Each adjustment works on the sum of
its lines plus the earlier adjustments whose lines all lie within its own, so an
invoice-level minimum sees a price-level discount, but a price-level minimum does
not see an invoice-level discount. Each amount is rounded once, when it is made,
to the currency's minor unit with ROUND_HALF_UP:

- amount discount:      -min(amount, base), never below zero
- percentage discount:  -round(base * percentage)
- minimum:              +(minimum - base) when base is below it (a true-up)
- maximum:              -(base - maximum) when base is above it
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billing import money
from billing.catalog.adjustments import ADJUSTMENT_TYPES, Adjustment

ZERO = Decimal(0)


@dataclass(frozen=True)
class Scope:
    """One adjustment on one invoice: the lines it covers and their rounded sum."""

    adjustment: Adjustment
    source: str
    line_item_ids: tuple[str, ...]
    lines_amount: Decimal


@dataclass(frozen=True)
class Applied:
    adjustment_id: str
    adjustment_type: str
    source: str
    line_item_ids: tuple[str, ...]
    base: Decimal  # the adjusted subtotal of its lines before this adjustment
    amount: Decimal  # signed, rounded: negative lowers the invoice


def _amount(adjustment: Adjustment, base: Decimal, currency: str) -> Decimal:
    if adjustment.adjustment_type == "amount_discount":
        return -min(adjustment.amount_discount, max(base, ZERO))
    if adjustment.adjustment_type == "percentage_discount":
        return -money.quantize(base * adjustment.percentage_discount, currency)
    if adjustment.adjustment_type == "minimum":
        return max(adjustment.minimum_amount - base, ZERO)
    return -max(base - adjustment.maximum_amount, ZERO)


def apply_adjustments(scopes: list[Scope], currency: str) -> list[Applied]:
    """The adjustments of one invoice with their amounts, in the order applied."""
    ordered = sorted(scopes, key=lambda s: (ADJUSTMENT_TYPES.index(s.adjustment.adjustment_type),
                                            s.adjustment.id, s.source, s.line_item_ids))
    applied: list[Applied] = []
    for scope in ordered:
        own = set(scope.line_item_ids)
        base = scope.lines_amount + sum(
            (a.amount for a in applied if set(a.line_item_ids) <= own), ZERO)
        amount = money.quantize(_amount(scope.adjustment, base, currency), currency)
        applied.append(Applied(scope.adjustment.id, scope.adjustment.adjustment_type,
                               scope.source, scope.line_item_ids, base, amount))
    return applied
