"""The product catalog as validated data: metrics, plans with prices, customers, subscriptions.

Prices follow the shape of Orb's public API: ``model_type`` plus a
``<model_type>_config`` object, amounts as decimal strings. A price with a
``billable_metric_id`` is a usage price; one with ``fixed_price_quantity`` is
a fixed fee.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from billing import money, periods


def _decimal_string(value: object) -> object:
    # Floats in YAML (0.1) are binary approximations; money must be written exactly.
    if isinstance(value, float):
        raise ValueError(f"write decimal amounts as quoted strings (e.g. '{value}'), not numbers")
    if isinstance(value, bool):
        raise ValueError("expected a decimal string, got a boolean")
    return value


DecimalString = Annotated[Decimal, BeforeValidator(_decimal_string)]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]+$", min_length=1, max_length=128)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(Strict):
    """A graduated tier: units in ``(first_unit, last_unit]`` cost ``unit_amount`` each."""

    first_unit: Decimal = Field(ge=0)
    last_unit: Decimal | None = None
    unit_amount: DecimalString = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Tier:
        if self.last_unit is not None and self.last_unit <= self.first_unit:
            raise ValueError(f"last_unit {self.last_unit} must exceed first_unit {self.first_unit}")
        return self


class UnitConfig(Strict):
    unit_amount: DecimalString = Field(ge=0)


class TieredConfig(Strict):
    tiers: list[Tier] = Field(min_length=1)

    @model_validator(mode="after")
    def _contiguous(self) -> TieredConfig:
        if self.tiers[0].first_unit != 0:
            raise ValueError("the first tier must start at first_unit 0")
        for index, (lower, upper) in enumerate(zip(self.tiers, self.tiers[1:], strict=False)):
            if lower.last_unit is None:
                raise ValueError(f"tier {index} has no last_unit but is not the last tier")
            if upper.first_unit != lower.last_unit:
                raise ValueError(
                    f"tier {index + 1} starts at {upper.first_unit}, "
                    f"but tier {index} ends at {lower.last_unit}: tiers must be contiguous"
                )
        return self


class PriceBase(Strict):
    id: Identifier
    name: str
    cadence: Literal["monthly"] = "monthly"
    billable_metric_id: Identifier | None = None
    fixed_price_quantity: Decimal | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _usage_or_fixed(self) -> PriceBase:
        if (self.billable_metric_id is None) == (self.fixed_price_quantity is None):
            raise ValueError(
                "a price needs exactly one of billable_metric_id (usage price) "
                "or fixed_price_quantity (fixed fee)"
            )
        return self

    @property
    def is_fixed(self) -> bool:
        return self.fixed_price_quantity is not None

    def tiers(self) -> list[Tier]:
        """The price as graduated tiers, the form the pricing SQL evaluates."""
        raise NotImplementedError


class UnitPrice(PriceBase):
    model_type: Literal["unit"]
    unit_config: UnitConfig

    def tiers(self) -> list[Tier]:
        return [Tier(first_unit=Decimal(0), unit_amount=self.unit_config.unit_amount)]


class TieredPrice(PriceBase):
    model_type: Literal["tiered"]
    tiered_config: TieredConfig

    def tiers(self) -> list[Tier]:
        return self.tiered_config.tiers


PRICE_MODELS = (UnitPrice, TieredPrice)
MODEL_TYPES = frozenset(get_args(m.model_fields["model_type"].annotation)[0] for m in PRICE_MODELS)
Price = Annotated[UnitPrice | TieredPrice, Field(discriminator="model_type")]


class Metric(Strict):
    """A billable metric: one aggregate over the ``events`` table, written in SQL."""

    id: Identifier
    name: str
    sql: str = Field(min_length=1)


class Plan(Strict):
    id: Identifier
    name: str
    currency: str
    prices: list[Price] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_currency(self) -> Plan:
        money.exponent(self.currency)
        return self


class Customer(Strict):
    id: Identifier
    name: str
    external_customer_id: Identifier | None = None
    email: str | None = None
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _known_zone(self) -> Customer:
        periods.zone(self.timezone)
        return self


class Subscription(Strict):
    """A customer on a plan from ``start_date`` (inclusive) to ``end_date`` (exclusive),
    both dates in the customer's time zone."""

    id: Identifier
    customer_id: Identifier
    plan_id: Identifier
    start_date: date
    end_date: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Subscription:
        if self.end_date is not None and self.end_date <= self.start_date:
            raise ValueError(f"end_date {self.end_date} must be after start_date {self.start_date}")
        return self


class Catalog(Strict):
    metrics: list[Metric] = []
    plans: list[Plan] = []
    customers: list[Customer] = []
    subscriptions: list[Subscription] = []

    def metric(self, metric_id: str) -> Metric:
        return next(m for m in self.metrics if m.id == metric_id)

    def plan(self, plan_id: str) -> Plan:
        return next(p for p in self.plans if p.id == plan_id)

    def customer(self, customer_id: str) -> Customer:
        return next(c for c in self.customers if c.id == customer_id)
