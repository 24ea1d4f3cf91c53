"""Orb's dimensional price groups: a billable metric partitioned by event properties.

A price names a group and one value per dimension (``dimensional_price_configuration``)
and rates only the group's metric's events whose properties equal those values, as if
it had a filter on them (``pricing_sql/price_usage.py`` builds that filter).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from billing.catalog.fields import Identifier, Strict
from billing.catalog.prices import PropertyKey


class DimensionalPriceGroup(Strict):
    id: Identifier
    name: str
    billable_metric_id: Identifier
    # event properties, in the order a price's dimension_values give their values
    dimensions: Annotated[list[PropertyKey], Field(min_length=1)]
    external_dimensional_price_group_id: Identifier | None = None
    metadata: dict[str, str] = {}

    @model_validator(mode="after")
    def _distinct(self) -> DimensionalPriceGroup:
        if len(set(self.dimensions)) != len(self.dimensions):
            raise ValueError(f"dimensions {self.dimensions} name a property twice")
        return self
