"""Orb's new adjustments (``NewUsageDiscount``, ``NewAmountDiscount``,
``NewPercentageDiscount``, ``NewMinimum``, ``NewMaximum``) as a subscription's
adjustments, and the catalog's adjustments as Orb's plan-phase adjustment objects.

A subscription's adjustments apply for as long as it runs, to the prices named in
``applies_to_price_ids`` or, with none named (``applies_to_all``), to every price of its
plan; what Orb can narrow them by besides (items, filters, a currency, a price type, an
interval's dates) is refused, naming the field (docs/api.md#subscriptions)."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from api.errors import bad_request, validation_problems
from billing.catalog.adjustments import Adjustment, UsageDiscount

ADJUSTMENT = TypeAdapter(Adjustment)
# what Orb can narrow an adjustment by, and this project cannot
UNSUPPORTED = {
    "applies_to_item_ids": "items are not modelled; name the prices in applies_to_price_ids",
    "filters": "price filters are not supported; name the prices in applies_to_price_ids",
    "currency": "an adjustment applies in its plan's currency; leave currency out",
    "price_type": "name the prices in applies_to_price_ids instead of a price_type",
    "item_id": "items are not modelled",
}


class NewAdjustment(BaseModel):
    """Orb's ``New*`` adjustment: its type and amount (checked as the catalog checks
    them), and what it applies to."""

    model_config = ConfigDict(extra="allow")
    adjustment_type: str
    applies_to_all: Literal[True] | None = None
    applies_to_price_ids: list[str] | None = None
    applies_to_item_ids: list[str] | None = None
    filters: list[dict[str, Any]] | None = None
    currency: str | None = None
    price_type: str | None = None
    item_id: str | None = None
    # Orb: false applies it to a single price. Here the prices it names decide.
    is_invoice_level: bool | None = None


class AddAdjustment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    adjustment: NewAdjustment
    start_date: None = None  # from the subscription's start, as Orb's default
    end_date: None = None
    plan_phase_order: None = None


def subscription_adjustment(added: AddAdjustment, index: int) -> Adjustment:
    """``added`` (``add_adjustments[index]``) as a catalog adjustment with an id of its
    own (``adj_...``, as Orb makes one); a 400 naming each field it cannot take."""
    new = added.adjustment
    at = ("body", "add_adjustments", index, "adjustment")
    problems = [f"{'.'.join(map(str, at))}.{name}: {reason}"
                for name, reason in UNSUPPORTED.items() if getattr(new, name)]
    if new.applies_to_all and new.applies_to_price_ids is not None:
        problems.append(f"{'.'.join(map(str, at))}.applies_to_all: give applies_to_all or "
                        "applies_to_price_ids, not both")
    if problems:
        raise bad_request(problems)
    values = {**(new.model_extra or {}), "id": f"adj_{secrets.token_hex(8)}",
              "adjustment_type": new.adjustment_type,
              "applies_to_price_ids": new.applies_to_price_ids}
    try:
        return ADJUSTMENT.validate_python(values)
    except ValidationError as exc:
        raise bad_request(validation_problems(
            {**error, "loc": (*at, "adjustment_type") if error["type"] == "union_tag_invalid"
             else (*at, *error["loc"][1:])} for error in exc.errors())) from exc


def units(value: Decimal) -> int | float:
    """A usage discount's units as Orb's JSON number (the SDK's ``float``)."""
    return int(value) if value == value.to_integral_value() else float(value)


def plan_phase_adjustment(a: Adjustment) -> dict[str, Any]:
    """Orb's ``PlanPhase<Type>Adjustment``: amounts as strings, units as a number."""
    shaped = a.model_dump(mode="json")
    if isinstance(a, UsageDiscount):
        shaped["usage_discount"] = units(a.usage_discount)
    return {**shaped, "applies_to_price_ids": a.applies_to_price_ids or [], "filters": [],
            "is_invoice_level": a.applies_to_price_ids is None, "plan_phase_order": None,
            "reason": None, "replaces_adjustment_id": None}
