"""What a subscription may refer to, checked as the catalog loader checks a catalog
file's subscriptions (``billing/catalog/loader.py``): known plans and plan versions,
known coupons, adjustments on prices of the subscription's plans. The plans and coupons
come from the catalog folder, which the caller reads and passes in."""

from __future__ import annotations

from collections.abc import Iterable

from billing.catalog.loader import adjustment_price_problems
from billing.catalog.models import Catalog, Plan, Subscription
from billing.catalog.prices import Price
from state.operations import Where


class References:
    """The catalog's plans and coupons, by id."""

    def __init__(self, catalog: Catalog):
        self.plans = {plan.id: plan for plan in catalog.plans}
        self.coupons = {coupon.id for coupon in catalog.coupons}

    def plan_problem(self, plan_id: str, version: int | None, where: Where,
                     *at: str | int) -> str | None:
        plan = self.plans.get(plan_id)
        if plan is None:
            return f"{where(*at, 'plan_id')}: unknown plan {plan_id!r}"
        if version is not None and version > len(plan.versions) + 1:
            return f"{where(*at, 'plan_version')}: plan {plan_id!r} has no version {version}"
        return None

    def coupon_problem(self, coupon_id: str, where: Where, *at: str | int) -> str | None:
        if coupon_id not in self.coupons:
            return f"{where(*at, 'coupon_id')}: unknown coupon {coupon_id!r}"
        return None

    def prices(self, plan_ids: Iterable[str]) -> list[Price]:
        plans = [self.plans[p] for p in plan_ids if p in self.plans]
        return [price for plan in plans for price in Plan.all_prices(plan)]

    def price_ids(self, plan_ids: Iterable[str]) -> set[str]:
        return {price.id for price in self.prices(plan_ids)}

    def fixed_fee_problem(self, price_id: str | None, plan_ids: Iterable[str], where: Where,
                          *at: str | int) -> str | None:
        """A quantity is for a fixed fee of the subscription's plans (None: all of them)."""
        prices = {price.id: price for price in self.prices(plan_ids)}
        if price_id is None or not prices:
            return None
        if price_id not in prices:
            return (f"{where(*at, 'price_id')}: price {price_id!r} is not on the "
                    "subscription's plans")
        if prices[price_id].fixed_price_quantity is None:
            return (f"{where(*at, 'price_id')}: price {price_id!r} is not a fixed fee (it has "
                    "no fixed_price_quantity)")
        return None

    def subscription_problems(self, sub: Subscription, where: Where) -> list[str]:
        problems = []
        for index, phase in enumerate(sub.plan_phases):
            at: tuple[str | int, ...] = ("phases", index) if sub.phases else ()
            if problem := self.plan_problem(phase.plan_id, phase.plan_version, where, *at):
                problems.append(problem)
        for index, redemption in enumerate(sub.coupons):
            if problem := self.coupon_problem(redemption.coupon_id, where, "coupons", index):
                problems.append(problem)
        plan_ids = [phase.plan_id for phase in sub.plan_phases]
        for index, change in enumerate(sub.fixed_fee_quantities):
            if problem := self.fixed_fee_problem(change.price_id, plan_ids, where,
                                                 "fixed_fee_quantities", index):
                problems.append(problem)
        return problems + adjustment_price_problems(sub, self.prices(plan_ids), where)
