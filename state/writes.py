"""A list of operations turned into the rows they add, or refused with every problem.

Checked against the store's rows of the ids they touch, the ones earlier in the same
list, and the catalog's plans and coupons (``state/checks.py``), with the catalog
models' own rules (``billing/catalog/models.py``): a subscription's rows must add up to
a subscription the catalog would accept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from billing import periods
from billing.catalog.adjustments import ADJUSTMENT_TYPES, usage_discount_problems
from billing.catalog.models import Customer, Subscription
from state.checks import References
from state.errors import StateError
from state.history import (
    FAR_FUTURE,
    Change,
    CustomerVersion,
    SubscriptionState,
    adjustment_json,
    customer_at,
    customer_fields,
    customer_values,
    local_day,
    stored_fields,
    stored_value,
    subscription_state,
)
from state.operations import (
    AddAdjustment,
    AddCustomer,
    Cancel,
    ChangePlan,
    CreateSubscription,
    Effective,
    Operation,
    RedeemCoupon,
    SetQuantity,
    UpdateCustomer,
    Where,
)
from state.rows import Created, Rows


@dataclass
class NewRows:
    customers: list[dict[str, Any]] = field(default_factory=list)
    versions: list[CustomerVersion] = field(default_factory=list)
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)


def touched_ids(operations: list[Operation]) -> tuple[set[str], set[str], set[str]]:
    """The customer ids, subscription ids and external customer ids ``operations`` name."""
    customers: set[str] = set()
    subscriptions: set[str] = set()
    external: set[str] = set()
    for op in operations:
        if isinstance(op, AddCustomer):
            customers.add(op.customer.id)
            if op.customer.external_customer_id:
                external.add(op.customer.external_customer_id)
        elif isinstance(op, UpdateCustomer):
            customers.add(op.customer_id)
            if isinstance(value := op.values.get("external_customer_id"), str):
                external.add(value)
        elif isinstance(op, CreateSubscription):
            subscriptions.add(op.subscription.id)
            customers.add(op.subscription.customer_id)
        else:
            subscriptions.add(op.subscription_id)
    return customers, subscriptions, external


class Batch:
    """Operations added one by one; ``finish`` returns their rows or raises
    ``StateError`` with every problem."""

    def __init__(self, rows: Rows, references: References, owners: dict[str, set[str]],
                 recorded_at: datetime):
        self.rows = rows
        self.references = references
        self.owners = owners  # external id -> customers that have had it, in the store
        self.recorded_at = recorded_at
        self.new = NewRows()
        self.problems: list[str] = []
        self.added: dict[tuple[str, str], str] = {}  # (kind, id) -> where it was added
        self.touched: dict[str, Operation] = {}  # subscription id -> last operation on it

    def add(self, op: Operation) -> None:
        if isinstance(op, AddCustomer):
            self._add_customer(op)
        elif isinstance(op, UpdateCustomer):
            self._update_customer(op)
        elif isinstance(op, CreateSubscription):
            self._create_subscription(op)
        else:
            self._change_subscription(op)

    def finish(self) -> NewRows:
        for sub_id, op in self.touched.items():
            try:
                self._state(sub_id).model()
            except ValidationError as exc:
                self.problems += _validation_problems(exc, op.where)
        if self.problems:
            raise StateError(self.problems)
        return self.new

    # -- customers ---------------------------------------------------------------------

    def _current(self, customer_id: str) -> dict[str, Any]:
        """The customer's fields as stored (addresses as JSON text)."""
        return customer_fields(customer_at(self.rows.versions[customer_id], FAR_FUTURE)[0])

    def _add_customer(self, op: AddCustomer) -> None:
        customer = op.customer
        if first := self.added.get(("customer", customer.id)):
            self.problems.append(f"{op.where('id')}: duplicate id {customer.id!r} (first "
                                 f"defined at {first})")
        elif customer.id in self.rows.versions:
            if not op.existing_ok:
                self.problems.append(f"{op.where('id')}: customer {customer.id!r} already "
                                     "exists (orb customers update changes it)")
                return
            current = self._current(customer.id)
            changed = {name: value for name, value in stored_fields(customer).items()
                       if value != current.get(name)}
            if changed:
                self._version(customer.id, changed, op.effective, customer.timezone, op.actor,
                              op.where)
        else:
            self.added[("customer", customer.id)] = op.where("id")
            self.new.customers.append({"customer_id": customer.id,
                                       "recorded_at": self.recorded_at, "actor": op.actor})
            self.rows.versions[customer.id] = []
            self._version(customer.id, stored_fields(customer),
                          op.effective, customer.timezone, op.actor, op.where)

    def _update_customer(self, op: UpdateCustomer) -> None:
        if op.customer_id not in self.rows.versions:
            self.problems.append(f"{op.where('id')}: unknown customer {op.customer_id!r}")
            return
        if not op.values:
            self.problems.append(f"{op.where()}: nothing to change")
            return
        current = customer_at(self.rows.versions[op.customer_id], FAR_FUTURE)[0]
        try:
            merged = Customer.model_validate(
                {"id": op.customer_id} | customer_values(current) | dict(op.values))
        except ValidationError as exc:
            self.problems += _validation_problems(exc, op.where)
            return
        self._version(op.customer_id, {name: stored_value(name, getattr(merged, name))
                                       for name in op.values},
                      op.effective, merged.timezone, op.actor, op.where)

    def _version(self, customer_id: str, values: dict[str, Any], effective: Effective,
                 timezone: str, actor: str, where: Where) -> None:
        external_id = values.get("external_customer_id")
        if external_id is not None:
            others = self.owners.get(external_id, set()) - {customer_id}
            if others:
                self.problems.append(f"{where('external_customer_id')}: external_customer_id "
                                     f"{external_id!r} is already used by customer "
                                     f"{min(others)!r}")
            self.owners.setdefault(external_id, set()).add(customer_id)
        version = CustomerVersion(
            customer_id, tuple(values), values.get("name"), external_id, values.get("email"),
            values.get("timezone"), values.get("net_terms"), values.get("billing_address"),
            values.get("shipping_address"), values.get("tax_id"),
            self._instant(effective, timezone), self.recorded_at, actor)
        self.rows.versions[customer_id].append(version)
        self.new.versions.append(version)

    def _instant(self, effective: Effective, timezone: str) -> datetime:
        if effective is None:
            return self.recorded_at
        if isinstance(effective, datetime):
            if effective.tzinfo is None:
                raise ValueError(f"effective instant {effective} has no time zone")
            return effective.astimezone(UTC)
        return periods.local_midnight(effective, timezone)

    # -- subscriptions -----------------------------------------------------------------

    def _state(self, sub_id: str) -> SubscriptionState:
        return subscription_state(sub_id, self.rows.subscriptions[sub_id].customer_id,
                                  self.rows.changes[sub_id], FAR_FUTURE)

    def _create_subscription(self, op: CreateSubscription) -> None:
        sub = op.subscription
        if first := self.added.get(("subscription", sub.id)):
            self.problems.append(f"{op.where('id')}: duplicate id {sub.id!r} (first defined "
                                 f"at {first})")
            return
        if sub.customer_id not in self.rows.versions:
            self.problems.append(f"{op.where('customer_id')}: unknown customer "
                                 f"{sub.customer_id!r}")
            return
        changes = subscription_rows(sub, self._current(sub.customer_id)["timezone"],
                                    self.recorded_at, op.actor)
        if sub.id in self.rows.changes:
            if op.existing_ok and self._same(sub.id, sub.customer_id, changes):
                return
            self.problems.append(
                f"{op.where('id')}: subscription {sub.id!r} already exists"
                + (" with other terms" if op.existing_ok else "")
                + " (orb subscriptions change or cancel changes it)")
            return
        if problems := self.references.subscription_problems(sub, op.where):
            self.problems += problems
            return
        self.added[("subscription", sub.id)] = op.where("id")
        self.new.subscriptions.append({"subscription_id": sub.id,
                                       "customer_id": sub.customer_id,
                                       "recorded_at": self.recorded_at, "actor": op.actor})
        self.rows.subscriptions[sub.id] = Created(self.recorded_at, op.actor, sub.customer_id)
        self.rows.changes[sub.id] = list(changes)
        self.new.changes += changes
        self.touched[sub.id] = op

    def _same(self, sub_id: str, customer_id: str, changes: list[Change]) -> bool:
        stored = self._state(sub_id)
        incoming = subscription_state(sub_id, customer_id, changes, FAR_FUTURE)
        return stored.customer_id == customer_id and stored.model() == incoming.model()

    def _change_subscription(self, op: ChangePlan | Cancel | RedeemCoupon | AddAdjustment
                             | SetQuantity) -> None:
        sub_id, where = op.subscription_id, op.where
        if sub_id not in self.rows.changes:
            self.problems.append(f"{where('subscription_id')}: unknown subscription "
                                 f"{sub_id!r}")
            return
        current = self._state(sub_id)
        timezone = self._current(current.customer_id)["timezone"]
        instant = self._instant(op.effective, timezone)
        day = local_day(instant, timezone)
        prices = self.references.price_ids(phase.plan_id for phase in current.phases)
        problems: list[str | None] = []
        values: dict[str, Any] = {}
        if isinstance(op, ChangePlan):
            kind = "plan"
            values = {"plan_id": op.plan_id, "plan_version": op.plan_version}
            problems.append(self.references.plan_problem(op.plan_id, op.plan_version, where))
            start = current.phases[0].start_date
            if day < start:
                problems.append(f"{where('effective')}: the change takes effect on {day}, "
                                f"before the subscription starts on {start}")
        elif isinstance(op, Cancel):
            kind = "cancel"
        elif isinstance(op, RedeemCoupon):
            kind = "coupon"
            values = {"coupon_id": op.coupon_id, "redeemed_on": day}
            problems.append(self.references.coupon_problem(op.coupon_id, where))
        elif isinstance(op, AddAdjustment):
            kind = "adjustment"
            values = {"adjustment": adjustment_json(op.adjustment)}
            unknown = set(op.adjustment.applies_to_price_ids or ()) - prices
            if unknown and prices:
                problems.append(f"{where('adjustment', 'applies_to_price_ids')}: prices "
                                f"{sorted(unknown)} are not on the subscription's plans")
            problems += [f"{where('adjustment')}: {problem}" for problem in
                         usage_discount_problems(op.adjustment, self.references.prices(
                             phase.plan_id for phase in current.phases))]
        else:
            kind = "quantity"
            values = {"quantity": op.quantity, "price_id": op.price_id}
            if op.quantity < 0 or not op.quantity.is_finite():
                problems.append(f"{where('quantity')}: must be a number, zero or more, got "
                                f"{op.quantity}")
            elif -int(op.quantity.as_tuple().exponent) > 9:
                problems.append(f"{where('quantity')}: at most 9 decimal places, got "
                                f"{op.quantity}")
            problems.append(self.references.fixed_fee_problem(
                op.price_id, (phase.plan_id for phase in current.phases), where))
        if found := [problem for problem in problems if problem]:
            self.problems += found
            return
        change = Change(sub_id, kind, instant, day, self.recorded_at, op.actor, **values)
        self.rows.changes[sub_id].append(change)
        self.new.changes.append(change)
        self.touched[sub_id] = op


def subscription_rows(sub: Subscription, timezone: str, recorded_at: datetime,
                      actor: str) -> list[Change]:
    """The rows of a subscription given as the catalog models it: each in effect at the
    customer's local midnight of its date."""
    phases = sub.plan_phases
    start = phases[0].start_date

    def row(kind: str, day: date, **values: Any) -> Change:
        return Change(sub.id, kind, periods.local_midnight(day, timezone), day, recorded_at,
                      actor, **values)

    rows = [row("create", start, plan_id=phases[0].plan_id,
                plan_version=phases[0].plan_version, trial_end_date=sub.trial_end_date,
                billing_cycle_day=sub.billing_cycle_day,
                align_with_start=sub.align_billing_with_subscription_start_date)]
    rows += [row("plan", phase.start_date, plan_id=phase.plan_id,
                 plan_version=phase.plan_version) for phase in phases[1:]]
    rows += [row("coupon", coupon.redeemed_on or start, coupon_id=coupon.coupon_id,
                 redeemed_on=coupon.redeemed_on) for coupon in sub.coupons]
    rows += [row("adjustment", start, adjustment=adjustment_json(adjustment))
             for adjustment in sub.adjustments]
    rows += [row("quantity", change.start_date, price_id=change.price_id,
                 quantity=change.quantity) for change in sub.fixed_fee_quantities]
    if sub.end_date is not None:
        rows.append(row("cancel", sub.end_date))
    return rows


def _validation_problems(exc: ValidationError, where: Where) -> list[str]:
    return [f"{where(*(p for p in err['loc'] if p not in ADJUSTMENT_TYPES))}: {err['msg']}"
            for err in exc.errors()]
