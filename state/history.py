"""The rows of the store's history and the state they add up to at an instant.

Pure: no database. A customer is its first version with the edits in effect at the
instant laid over it, field by field. A subscription is its change rows applied in the
order they were recorded (docs/state.md#how-history-adds-up):

- ``create`` starts it: the first phase, trial end, billing cycle;
- ``plan`` puts it on a plan from its day on: phases starting on or after that day,
  from rows recorded earlier, give way to it (a later correction wins);
- ``cancel`` sets the end date (the last one recorded wins); phases that would start on
  or after it are dropped, except the first;
- ``coupon`` adds a redemption; ``adjustment`` an adjustment, part of the subscription
  once it is in effect at the instant asked for, or from the start;
- ``quantity`` sets a fixed fee's quantity from its day on, kept in the order recorded
  (``billing/quantities.py`` reads a later one as correcting earlier ones).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from pydantic import TypeAdapter

from billing import periods
from billing.catalog.adjustments import Adjustment
from billing.catalog.models import Customer, Subscription

CUSTOMER_FIELDS = ("name", "external_customer_id", "email", "timezone", "net_terms",
                   "billing_address", "shipping_address", "tax_id")
# Kept as JSON text in Orb's shape (an Address, a CustomerTaxID), like adjustments.
JSON_FIELDS = frozenset({"billing_address", "shipping_address", "tax_id"})
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
ADJUSTMENT = TypeAdapter(Adjustment)


class CustomerVersion(NamedTuple):
    """One row of ``customer_versions``: the fields it sets, from ``effective_at`` on."""

    customer_id: str
    fields: tuple[str, ...]
    name: str | None
    external_customer_id: str | None
    email: str | None
    timezone: str | None
    net_terms: int | None
    billing_address: str | None  # JSON
    shipping_address: str | None  # JSON
    tax_id: str | None  # JSON
    effective_at: datetime
    recorded_at: datetime
    actor: str
    version_id: int = 0  # 0 until written; orders rows recorded at the same instant

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.fields}


class Change(NamedTuple):
    """One row of ``subscription_changes`` (``state/schema.py`` says which columns each
    kind uses)."""

    subscription_id: str
    kind: str
    effective_at: datetime
    effective_date: date
    recorded_at: datetime
    actor: str
    plan_id: str | None = None
    plan_version: int | None = None
    trial_end_date: date | None = None
    billing_cycle_day: int | None = None
    align_with_start: bool | None = None
    coupon_id: str | None = None
    redeemed_on: date | None = None
    adjustment: str | None = None  # JSON, Orb's shape
    price_id: str | None = None
    quantity: Decimal | None = None
    change_id: int = 0


class Phase(NamedTuple):
    start_date: date
    plan_id: str
    plan_version: int | None
    change: Change  # the row that started it


@dataclass(slots=True)
class SubscriptionState:
    """A subscription as its rows add up at one instant."""

    subscription_id: str
    customer_id: str
    created: Change
    phases: list[Phase]
    end_date: date | None = None
    coupons: list[tuple[str, date | None]] = field(default_factory=list)
    adjustments: list[str] = field(default_factory=list)  # JSON
    quantities: list[tuple[str | None, date, Decimal]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The subscription in the catalog's shape: ``plan_id`` and ``start_date`` for one
        phase, ``phases`` for more, as a catalog file would hold it."""
        created = self.created
        data: dict[str, Any] = {"id": self.subscription_id, "customer_id": self.customer_id}
        if len(self.phases) == 1:
            data.update(plan_id=self.phases[0].plan_id, start_date=self.phases[0].start_date)
            if self.phases[0].plan_version is not None:
                data["plan_version"] = self.phases[0].plan_version
        else:
            data["phases"] = [
                {"plan_id": p.plan_id, "start_date": p.start_date}
                | ({} if p.plan_version is None else {"plan_version": p.plan_version})
                for p in self.phases]
        optional = {"end_date": self.end_date, "trial_end_date": created.trial_end_date,
                    "billing_cycle_day": created.billing_cycle_day}
        data.update({k: v for k, v in optional.items() if v is not None})
        if created.align_with_start:
            data["align_billing_with_subscription_start_date"] = True
        if self.coupons:
            data["coupons"] = [{"coupon_id": c} | ({} if on is None else {"redeemed_on": on})
                               for c, on in self.coupons]
        if self.adjustments:
            data["adjustments"] = [json.loads(a) for a in self.adjustments]
        if self.quantities:
            data["fixed_fee_quantities"] = [
                {"price_id": price_id, "start_date": day, "quantity": quantity}
                for price_id, day, quantity in self.quantities]
        return data

    def model(self) -> Subscription:
        """The catalog model; raises pydantic's ValidationError when the rows add up to a
        subscription the catalog would refuse."""
        return Subscription.model_validate(self.as_dict())


def customer_at(versions: Sequence[CustomerVersion],
                as_of: datetime) -> tuple[CustomerVersion, CustomerVersion]:
    """The customer at ``as_of`` (a version with every field) and the newest version
    among those applied. ``versions`` in the order recorded; the first sets every field
    and stands for all time before the edits."""
    first = versions[0]
    if len(versions) == 1:
        return first, first
    values, last = {}, first
    for version in sorted((v for v in versions[1:] if v.effective_at <= as_of),
                          key=lambda v: (v.effective_at, v.recorded_at, v.version_id)):
        values.update(version.values())
        last = version
    return first._replace(**values), last


def customer_fields(version: CustomerVersion) -> dict[str, Any]:
    """The fields as stored: addresses and tax ids as JSON text."""
    return {name: getattr(version, name) for name in CUSTOMER_FIELDS}


def customer_values(version: CustomerVersion) -> dict[str, Any]:
    """The fields as the catalog model takes them: JSON text parsed."""
    return {name: json.loads(value) if name in JSON_FIELDS and value is not None else value
            for name, value in customer_fields(version).items()}


def stored_value(name: str, value: Any) -> Any:
    """A customer model's field as the store keeps it."""
    if name in JSON_FIELDS and value is not None:
        return json.dumps(value.model_dump(mode="json", exclude_none=True), sort_keys=True)
    return value


def stored_fields(customer: Customer) -> dict[str, Any]:
    return {name: stored_value(name, getattr(customer, name)) for name in CUSTOMER_FIELDS}


def customer_model(version: CustomerVersion) -> Customer:
    return Customer.model_validate({"id": version.customer_id} | customer_values(version))


def subscription_state(subscription_id: str, customer_id: str, changes: Sequence[Change],
                       as_of: datetime) -> SubscriptionState:
    """The subscription its ``changes`` (in the order recorded, starting with its
    ``create``) add up to; adjustments count once in effect at ``as_of``."""
    created, *rows = changes
    if created.kind != "create":
        raise ValueError(f"subscription {subscription_id!r}: the first row is a "
                         f"{created.kind!r}, not its create")
    state = SubscriptionState(subscription_id, customer_id, created, [
        Phase(created.effective_date, _plan(created), created.plan_version, created)])
    if not rows:
        return state
    adjustments_until = max(as_of, created.effective_at)
    for change in rows:
        kind = change.kind
        if kind == "plan":
            day = change.effective_date
            first, kept = state.phases[0], [p for p in state.phases[1:] if p.start_date < day]
            phase = Phase(day, _plan(change), change.plan_version, change)
            state.phases = [phase] if day <= first.start_date else [first, *kept, phase]
        elif kind == "cancel":
            state.end_date = change.effective_date
            state.phases = state.phases[:1] + [p for p in state.phases[1:]
                                               if p.start_date < change.effective_date]
        elif kind == "coupon":
            assert change.coupon_id is not None
            state.coupons.append((change.coupon_id, change.redeemed_on))
        elif kind == "adjustment":
            assert change.adjustment is not None
            if change.effective_at <= adjustments_until:
                state.adjustments.append(change.adjustment)
        elif kind == "quantity":
            assert change.quantity is not None
            state.quantities.append((change.price_id, change.effective_date, change.quantity))
        else:
            raise ValueError(f"subscription {subscription_id!r}: a second {kind!r} row")
    return state


def _plan(change: Change) -> str:
    assert change.plan_id is not None, change
    return change.plan_id


def local_day(instant: datetime, timezone: str) -> date:
    """The customer's day a change at ``instant`` takes effect on: the first local
    midnight at or after it (billing counts whole local days)."""
    day = periods.local_day(instant, timezone)
    return day if instant <= periods.local_midnight(day, timezone) else day + timedelta(days=1)


def adjustment_json(adjustment: Any) -> str:
    """An adjustment as the store keeps it: Orb's shape, amounts as strings."""
    return json.dumps(ADJUSTMENT.dump_python(adjustment, mode="json", exclude_none=True),
                      sort_keys=True)
