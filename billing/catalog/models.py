"""The product catalog as validated data: metrics, plans with prices, customers, subscriptions.

Prices (``billing/catalog/prices.py``) follow the shape of Orb's public API:
``model_type`` plus a ``<model_type>_config`` object, amounts as decimal strings.
"""

from __future__ import annotations

from datetime import date
from typing import get_args

from pydantic import Field, PrivateAttr, model_validator

from billing import money, periods
from billing.catalog.fields import Identifier, Strict
from billing.catalog.prices import PRICE_MODELS, Price

MODEL_TYPES = frozenset(get_args(m.model_fields["model_type"].annotation)[0] for m in PRICE_MODELS)


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

    # Lookups by id, built once: invoicing looks up every invoice's customer.
    _by_id: dict[str, dict] = PrivateAttr(default_factory=dict)

    def model_post_init(self, _context: object) -> None:
        self._by_id.update(metrics={m.id: m for m in self.metrics},
                           plans={p.id: p for p in self.plans},
                           customers={c.id: c for c in self.customers})

    def metric(self, metric_id: str) -> Metric:
        return self._by_id["metrics"][metric_id]

    def plan(self, plan_id: str) -> Plan:
        return self._by_id["plans"][plan_id]

    def customer(self, customer_id: str) -> Customer:
        return self._by_id["customers"][customer_id]
