"""The writes the store takes, each with who makes it, when it takes effect and where it
came from (a CLI argument, a file's line or row), so that a refusal names that place.

``StateStore.apply`` takes a list of them as one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from billing.catalog.adjustments import Adjustment
from billing.catalog.models import Customer, Subscription

# When a change takes effect: a day (midnight in the customer's time zone), an instant
# (aware), or None for now.
Effective = date | datetime | None


class Where(Protocol):
    """The place a write came from, for a field of it: ``where("plan_id")`` is
    ``"--plan"`` on the CLI, ``"subs.yaml:12: subscriptions[3].plan_id"`` in a file."""

    def __call__(self, *field: str | int) -> str: ...


def parse_effective(text: str) -> date | datetime:
    """A day (``2026-03-15``: midnight in the customer's time zone) or an instant with a
    UTC offset (``2026-03-15T09:30:00Z``)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected a day (YYYY-MM-DD) or an ISO 8601 instant, got "
                         f"{text!r}") from None
    if instant.tzinfo is None:
        raise ValueError(f"{text!r} needs a UTC offset, e.g. {text}Z")
    return instant


def nowhere(*field: str | int) -> str:
    """The place of a write made from code: the field's path."""
    return ".".join(str(part) for part in field) or "(value)"


@dataclass(frozen=True)
class AddCustomer:
    """A new customer, its first version. ``existing_ok`` (imports): a customer already
    in the store gets a new version with the fields that differ, or nothing."""

    customer: Customer
    actor: str
    effective: Effective = None
    where: Where = nowhere
    existing_ok: bool = False


@dataclass(frozen=True)
class UpdateCustomer:
    """A new version setting ``values`` (field name to value; None clears an optional
    field) from ``effective`` on."""

    customer_id: str
    values: Mapping[str, Any]
    actor: str
    effective: Effective = None
    where: Where = nowhere


@dataclass(frozen=True)
class CreateSubscription:
    """A subscription as the catalog models it: its phases become plan changes, its end
    date a cancellation, its coupons and adjustments rows of their own, all in effect
    from the dates the model gives. ``existing_ok`` (imports): a subscription already in
    the store with the same terms is left as it is."""

    subscription: Subscription
    actor: str
    where: Where = nowhere
    existing_ok: bool = False


@dataclass(frozen=True)
class ChangePlan:
    subscription_id: str
    plan_id: str
    actor: str
    plan_version: int | None = None
    effective: Effective = None
    where: Where = nowhere


@dataclass(frozen=True)
class Cancel:
    subscription_id: str
    actor: str
    effective: Effective = None
    where: Where = nowhere


@dataclass(frozen=True)
class RedeemCoupon:
    subscription_id: str
    coupon_id: str
    actor: str
    effective: Effective = None
    where: Where = nowhere


@dataclass(frozen=True)
class AddAdjustment:
    """An adjustment (discount, minimum, maximum; a price override is one of these) from
    ``effective`` on."""

    subscription_id: str
    adjustment: Adjustment
    actor: str
    effective: Effective = None
    where: Where = nowhere


@dataclass(frozen=True)
class SetQuantity:
    """A fixed fee's quantity (seats) from ``effective`` on, for one fixed fee of the
    subscription's plans or (``price_id`` None) every one; billed as
    ``billing/quantities.py`` says."""

    subscription_id: str
    quantity: Decimal
    actor: str
    price_id: str | None = None
    effective: Effective = None
    where: Where = nowhere


Operation = (AddCustomer | UpdateCustomer | CreateSubscription | ChangePlan | Cancel
             | RedeemCoupon | AddAdjustment | SetQuantity)
SUBSCRIPTION_CHANGES = (ChangePlan, Cancel, RedeemCoupon, AddAdjustment, SetQuantity)
