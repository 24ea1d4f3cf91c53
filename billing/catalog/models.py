"""The product catalog as validated data: metrics, plans with prices, customers, subscriptions.

Prices (``billing/catalog/prices.py``) follow the shape of Orb's public API:
``model_type`` plus a ``<model_type>_config`` object, amounts as decimal strings.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, TypedDict, cast, get_args

from pydantic import Field, PrivateAttr, field_validator, model_validator

from billing import money, periods
from billing.catalog.adjustments import Adjustment, Coupon, usage_discount_problems
from billing.catalog.fields import Identifier, Strict
from billing.catalog.parties import Address, Seller, TaxId
from billing.catalog.price_groups import DimensionalPriceGroup
from billing.catalog.prices import PRICE_MODELS, Price, Quantity
from billing.catalog.taxes import TaxTable

MODEL_TYPES = frozenset(tag for m in PRICE_MODELS
                        for tag in get_args(m.model_fields["model_type"].annotation))


class Metric(Strict):
    """A billable metric: one aggregate over the ``events`` table, written in SQL."""

    id: Identifier
    name: str
    sql: str = Field(min_length=1)


class PlanVersion(Strict):
    """A later version of a plan's prices, in effect for billing periods starting on or
    after ``effective_from`` (a subscription can pin a version instead)."""

    version: Annotated[int, Field(ge=2)]
    effective_from: date
    prices: list[Price] = Field(min_length=1)
    adjustments: list[Adjustment] = []


def _check_price_currency(price: Price, currency: str) -> None:
    """A price in the plan's currency has no conversion rate; one in a unit of its own
    (Orb's custom pricing units) needs one, to the plan's currency."""
    own = price.currency not in (None, currency)
    if own and price.conversion is None:
        raise ValueError(f"price {price.id!r} is in {price.currency}, not the plan's "
                         f"{currency}: give its conversion_rate ({currency} per "
                         f"{price.currency})")
    if not own and price.conversion is not None:
        raise ValueError(f"price {price.id!r} has a conversion_rate but is in the plan's "
                         f"currency {currency}: give the price's own currency (a custom "
                         "pricing unit such as credits)")


class Plan(Strict):
    """A plan: its prices and adjustments are version 1; ``versions`` lists later ones."""

    id: Identifier
    name: str
    currency: str
    prices: list[Price] = Field(min_length=1)
    adjustments: list[Adjustment] = []
    versions: list[PlanVersion] = []

    @model_validator(mode="after")
    def _valid(self) -> Plan:
        money.exponent(self.currency)
        numbers = [v.version for v in self.versions]
        if numbers != list(range(2, len(numbers) + 2)):
            raise ValueError(f"versions must be numbered 2, 3, ... in order, got {numbers}")
        starts = [v.effective_from for v in self.versions]
        if starts != sorted(set(starts)):
            raise ValueError("versions must take effect on strictly increasing dates")
        versions: tuple[Plan | PlanVersion, ...] = (self, *self.versions)
        for version in versions:
            for price in version.prices:
                _check_price_currency(price, self.currency)
            ids = {price.id for price in version.prices}
            for adjustment in version.adjustments:
                unknown = set(adjustment.applies_to_price_ids or ()) - ids
                if unknown:
                    raise ValueError(f"adjustment {adjustment.id!r} applies to prices "
                                     f"{sorted(unknown)} not in the same plan version")
                if problems := usage_discount_problems(adjustment, version.prices):
                    raise ValueError("; ".join(problems))
        return self

    # Version 1 as a PlanVersion, built once: billing asks for it per subscription.
    _first: PlanVersion = PrivateAttr()

    def model_post_init(self, _context: object) -> None:
        self._first = PlanVersion.model_construct(version=1, effective_from=date.min,
                                                  prices=self.prices,
                                                  adjustments=self.adjustments)

    def version(self, number: int) -> PlanVersion:
        if number == 1:
            return self._first
        if not 2 <= number <= len(self.versions) + 1:
            raise KeyError(f"plan {self.id!r} has no version {number}")
        return self.versions[number - 2]

    def all_versions(self) -> list[PlanVersion]:
        """Every version, version 1 (the plan's own prices and adjustments) first."""
        return [self._first, *self.versions]

    def version_on(self, day: date) -> PlanVersion:
        """The version in effect on ``day``."""
        number = 1 + sum(1 for v in self.versions if v.effective_from <= day)
        return self.version(number)

    def all_prices(self) -> list[Price]:
        versions: tuple[Plan | PlanVersion, ...] = (self, *self.versions)
        return [price for version in versions for price in version.prices]


class Customer(Strict):
    id: Identifier
    name: str
    external_customer_id: Identifier | None = None
    email: str | None = None
    timezone: str = "UTC"
    # Days from an invoice's date to its due date.
    net_terms: Annotated[int, Field(ge=0)] = 30
    # Orb's shapes; the billing address and tax id are printed on the documents.
    billing_address: Address | None = None
    shipping_address: Address | None = None
    tax_id: TaxId | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, timezone: str) -> str:
        periods.zone(timezone)
        return timezone


class Phase(Strict):
    """The plan a subscription is on from ``start_date`` until the next phase starts."""

    plan_id: Identifier
    start_date: date
    plan_version: Annotated[int, Field(ge=1)] | None = None  # else the version in effect


class CouponRedemption(Strict):
    coupon_id: Identifier
    redeemed_on: date | None = None  # defaults to the subscription's start


class FixedFeeQuantity(Strict):
    """A fixed fee's quantity from ``start_date`` on (Orb's fixed_fee_quantity_schedule):
    for the price ``price_id``, or for every fixed fee of the subscription when None.
    Before a price's first one, the price's own ``fixed_price_quantity``."""

    price_id: Identifier | None = None
    start_date: date
    quantity: Quantity


class Subscription(Strict):
    """A customer on a plan from its start date (inclusive) to ``end_date`` (exclusive),
    dates in the customer's time zone. Either ``plan_id`` and ``start_date``, or
    ``phases`` for a plan that changes (trial plan then paid, upgrade, downgrade).

    Billing periods are anchored on ``billing_cycle_day`` (1 = calendar months), or on
    the start date's day with ``align_billing_with_subscription_start_date``. Nothing is
    charged before ``trial_end_date``."""

    id: Identifier
    customer_id: Identifier
    plan_id: Identifier | None = None
    plan_version: Annotated[int, Field(ge=1)] | None = None
    start_date: date | None = None
    phases: list[Phase] = []
    end_date: date | None = None
    trial_end_date: date | None = None
    billing_cycle_day: Annotated[int, Field(ge=1, le=31)] | None = None
    align_billing_with_subscription_start_date: bool = False
    coupons: list[CouponRedemption] = []
    adjustments: list[Adjustment] = []
    # in the order recorded, later ones correcting earlier ones (billing/quantities.py)
    fixed_fee_quantities: list[FixedFeeQuantity] = []

    @model_validator(mode="after")
    def _ordered(self) -> Subscription:
        if self.phases and (self.plan_id or self.start_date or self.plan_version):
            raise ValueError("give either plan_id and start_date, or phases, not both")
        if not self.phases and not (self.plan_id and self.start_date):
            raise ValueError("a subscription needs plan_id and start_date, or phases")
        starts = [phase.start_date for phase in self.plan_phases]
        if starts != sorted(set(starts)):
            raise ValueError("phases must start on strictly increasing dates")
        if self.end_date is not None and self.end_date <= starts[-1]:
            raise ValueError(f"end_date {self.end_date} must be after the last phase's start "
                             f"{starts[-1]}")
        if self.trial_end_date is not None and not (
                starts[0] < self.trial_end_date < (self.end_date or date.max)):
            raise ValueError(f"trial_end_date {self.trial_end_date} must fall inside the "
                             "subscription")
        if self.billing_cycle_day and self.align_billing_with_subscription_start_date:
            raise ValueError("give billing_cycle_day or align_billing_with_subscription_start_date"
                             ", not both")
        return self

    @property
    def plan_phases(self) -> list[Phase]:
        if self.phases:
            return list(self.phases)
        if self.plan_id is None or self.start_date is None:
            raise ValueError("a subscription needs plan_id and start_date, or phases")
        return [Phase(plan_id=self.plan_id, start_date=self.start_date,
                      plan_version=self.plan_version)]

    @property
    def starts_on(self) -> date:
        return self.plan_phases[0].start_date

    @property
    def cycle_day(self) -> int:
        if self.align_billing_with_subscription_start_date:
            return self.starts_on.day
        return self.billing_cycle_day or 1


class _Lookups(TypedDict):
    metrics: dict[str, Metric]
    plans: dict[str, Plan]
    customers: dict[str, Customer]
    coupons: dict[str, Coupon]


class Catalog(Strict):
    metrics: list[Metric] = []
    plans: list[Plan] = []
    customers: list[Customer] = []
    subscriptions: list[Subscription] = []
    coupons: list[Coupon] = []
    dimensional_price_groups: list[DimensionalPriceGroup] = []
    # Who issues the documents (one, in any file of the folder); None: ORB_ISSUER's name.
    seller: Seller | None = None
    # How invoices are taxed (one, in any file of the folder); None: no tax.
    taxes: TaxTable | None = None

    # Lookups by id, built once: invoicing looks up every invoice's customer.
    _by_id: _Lookups = PrivateAttr()
    # What is derived from the whole catalog, computed once (billing windows per month,
    # billing/charges.py): the catalog is frozen, and a run's steps share one.
    _derived: dict[tuple[str, object], object] = PrivateAttr(default_factory=dict)

    def model_post_init(self, _context: object) -> None:
        self._by_id = _Lookups(metrics={m.id: m for m in self.metrics},
                               plans={p.id: p for p in self.plans},
                               customers={c.id: c for c in self.customers},
                               coupons={c.id: c for c in self.coupons})

    def metric(self, metric_id: str) -> Metric:
        return self._by_id["metrics"][metric_id]

    def plan(self, plan_id: str) -> Plan:
        return self._by_id["plans"][plan_id]

    @property
    def derived(self) -> dict[tuple[str, object], object]:
        return self._derived

    def customer(self, customer_id: str) -> Customer:
        return self._by_id["customers"][customer_id]

    def coupon(self, coupon_id: str) -> Coupon:
        return self._by_id["coupons"][coupon_id]

    def dimensional_price_group(self, ref: str) -> DimensionalPriceGroup:
        """The group a price names: its id, or ``external:<external id>``
        (``DimensionalPriceConfiguration.group_ref``)."""
        key = ("dimensional_price_groups", None)
        if key not in self._derived:
            groups = self.dimensional_price_groups
            self._derived[key] = {g.id: g for g in groups} | {
                f"external:{g.external_dimensional_price_group_id}": g for g in groups
                if g.external_dimensional_price_group_id is not None}
        return cast(dict[str, DimensionalPriceGroup], self._derived[key])[ref]
